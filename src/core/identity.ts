import { equalBytes } from '../wire/bytes.js';
import type { Identity } from './connection.js';

/**
 * Identities as ID payloads carry them: a type and its data. IKEv1 (RFC 2407 4.6.2.1) and IKEv2
 * (RFC 7296 3.5) number these types alike: ID_IPV4_ADDR 1, ID_FQDN 2, ID_USER_FQDN (IKEv2's
 * ID_RFC822_ADDR) 3, ID_IPV6_ADDR 5, ID_KEY_ID 11.
 */
export const IdentityType = {
  IPV4_ADDR: 1,
  FQDN: 2,
  USER_FQDN: 3,
  IPV6_ADDR: 5,
  KEY_ID: 11,
} as const;

export function encodeIdentity(identity: Identity): { idType: number; data: Uint8Array } {
  switch (identity.type) {
    case 'ipv4':
      return { idType: IdentityType.IPV4_ADDR, data: identity.address };
    case 'ipv6':
      return { idType: IdentityType.IPV6_ADDR, data: identity.address };
    case 'fqdn':
      return { idType: IdentityType.FQDN, data: new TextEncoder().encode(identity.value) };
    case 'user-fqdn':
      return { idType: IdentityType.USER_FQDN, data: new TextEncoder().encode(identity.value) };
    case 'key-id':
      return { idType: IdentityType.KEY_ID, data: new TextEncoder().encode(identity.value) };
  }
}

/** The identity an ID payload names, or undefined for a type we do not handle (DNs, ranges...). */
export function decodeIdentity(idType: number, data: Uint8Array): Identity | undefined {
  const text = () => new TextDecoder().decode(data);
  switch (idType) {
    case IdentityType.IPV4_ADDR:
      return data.length === 4 ? { type: 'ipv4', address: data } : undefined;
    case IdentityType.IPV6_ADDR:
      return data.length === 16 ? { type: 'ipv6', address: data } : undefined;
    case IdentityType.FQDN:
      return { type: 'fqdn', value: text() };
    case IdentityType.USER_FQDN:
      return { type: 'user-fqdn', value: text() };
    case IdentityType.KEY_ID:
      return { type: 'key-id', value: text() };
    default:
      return undefined;
  }
}

/** Names compare without case (DNS names and mail addresses do); addresses byte for byte. */
export function sameIdentity(a: Identity, b: Identity): boolean {
  if (a.type !== b.type) return false;
  if ('address' in a && 'address' in b) return equalBytes(a.address, b.address);
  return 'value' in a && 'value' in b && a.value.toLowerCase() === b.value.toLowerCase();
}
