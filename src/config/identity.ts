import { isIP } from 'node:net';
import { addressIdentity, type Identity } from '../core/connection.js';

export { addressIdentity };

/**
 * An identity as written in peers.json: an IP address, "user@example.net" (user-fqdn),
 * "@vpn.example.net" or "vpn.example.net" (fqdn), or "keyid:..." (key-id). Returns undefined for
 * text that names nothing ("", "@", "keyid:").
 */
export function parseIdentity(text: string): Identity | undefined {
  const family = isIP(text);
  if (family) return addressIdentity(text);
  if (text.startsWith('keyid:')) {
    const value = text.slice('keyid:'.length);
    return value ? { type: 'key-id', value } : undefined;
  }
  if (text.startsWith('@')) {
    const value = text.slice(1);
    return value ? { type: 'fqdn', value } : undefined;
  }
  if (text.includes('@')) return { type: 'user-fqdn', value: text };
  return text ? { type: 'fqdn', value: text } : undefined;
}
