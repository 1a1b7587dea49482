import type { Identity } from '../core/connection.js';
import { decodeIdentity, encodeIdentity } from '../core/identity.js';
import { prefixMask } from '../core/address.js';
import { ANY_PORT, subnetPrefix, type TrafficSelector } from '../core/traffic-selector.js';
import { DecodeError } from '../wire/errors.js';
import type { Payload } from './codec.js';
import { IdType, NotifyType } from './constants.js';

/**
 * Quick mode client identities (IDci/IDcr, RFC 2409 5.5) as traffic selectors, and back
 * (RFC 2407 4.6.2: address, subnet or range IDs, with protocol and a single port).
 */

type IdPayload = Extract<Payload, { kind: 'id' }>;

export function trafficSelectorFromId(id: IdPayload): TrafficSelector {
  const ports = id.port === 0 ? ANY_PORT : { startPort: id.port, endPort: id.port };
  const { data } = id;
  const invalid = (why: string): never => {
    throw new DecodeError(`ID type ${id.idType}: ${why}`, 0, NotifyType.INVALID_ID_INFORMATION);
  };
  const expect = (length: number) => {
    if (data.length !== length) invalid(`${data.length} bytes of data, expected ${length}`);
  };
  switch (id.idType) {
    case IdType.ID_IPV4_ADDR:
    case IdType.ID_IPV6_ADDR: {
      expect(id.idType === IdType.ID_IPV4_ADDR ? 4 : 16);
      return { start: data, end: data, protocol: id.protocolId, ...ports };
    }
    case IdType.ID_IPV4_ADDR_SUBNET:
    case IdType.ID_IPV6_ADDR_SUBNET: {
      const size = id.idType === IdType.ID_IPV4_ADDR_SUBNET ? 4 : 16;
      expect(size * 2);
      const address = data.subarray(0, size);
      const mask = data.subarray(size);
      const start = address.map((byte, i) => byte & mask[i]!);
      const end = address.map((byte, i) => (byte & mask[i]!) | (~mask[i]! & 0xff));
      return { start, end, protocol: id.protocolId, ...ports };
    }
    case IdType.ID_IPV4_ADDR_RANGE:
    case IdType.ID_IPV6_ADDR_RANGE: {
      const size = id.idType === IdType.ID_IPV4_ADDR_RANGE ? 4 : 16;
      expect(size * 2);
      return { start: data.slice(0, size), end: data.slice(size), protocol: id.protocolId, ...ports };
    }
    default:
      return invalid('not an address, subnet or range identity');
  }
}

/** The most specific ID for a selector: an address, a subnet when it is one CIDR block, else a range. */
export function idFromTrafficSelector(ts: TrafficSelector): IdPayload {
  if (ts.startPort !== ts.endPort && !(ts.startPort === 0 && ts.endPort === 65535)) {
    throw new RangeError(`IKEv1 IDs carry one port, not ${ts.startPort}-${ts.endPort}`);
  }
  const port = ts.startPort === ts.endPort ? ts.startPort : 0;
  const v4 = ts.start.length === 4;
  const base = { kind: 'id' as const, protocolId: ts.protocol, port };
  const prefix = subnetPrefix(ts);
  if (prefix === ts.start.length * 8) {
    return { ...base, idType: v4 ? IdType.ID_IPV4_ADDR : IdType.ID_IPV6_ADDR, data: ts.start };
  }
  if (prefix !== undefined) {
    const mask = prefixMask(prefix, ts.start.length as 4 | 16);
    const data = new Uint8Array(ts.start.length * 2);
    data.set(ts.start);
    data.set(mask, ts.start.length);
    return { ...base, idType: v4 ? IdType.ID_IPV4_ADDR_SUBNET : IdType.ID_IPV6_ADDR_SUBNET, data };
  }
  const data = new Uint8Array(ts.start.length * 2);
  data.set(ts.start);
  data.set(ts.end, ts.start.length);
  return { ...base, idType: v4 ? IdType.ID_IPV4_ADDR_RANGE : IdType.ID_IPV6_ADDR_RANGE, data };
}

/** Phase 1 identities (IDii/IDir) to and from ID payloads; protocol and port are 0 (RFC 2407 4.6.2). */
export function idPayloadFromIdentity(identity: Identity): IdPayload {
  return { kind: 'id', ...encodeIdentity(identity), protocolId: 0, port: 0 };
}

export function identityFromIdPayload(id: IdPayload): Identity | undefined {
  return decodeIdentity(id.idType, id.data);
}
