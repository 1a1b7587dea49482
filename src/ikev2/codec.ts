import type { TrafficSelector } from '../core/traffic-selector.js';
import { type Attribute, readAttributes, writeAttribute } from '../wire/attributes.js';
import { DecodeError } from '../wire/errors.js';
import { type IkeHeaderFields, readIkeHeader, writeIkeHeader } from '../wire/ike-header.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import {
  GENERIC_HEADER_LENGTH,
  IKE_HEADER_LENGTH,
  NotifyType,
  PayloadType,
  TsType,
  VERSION,
} from './constants.js';

/**
 * The IKEv2 codec (RFC 7296 section 3, fragments of RFC 7383): `decode*` returns typed objects or
 * throws DecodeError with the notify RFC 7296 prescribes (INVALID_SYNTAX for a malformed message,
 * UNSUPPORTED_CRITICAL_PAYLOAD for a critical payload we do not know); `encode*` is the exact
 * inverse. The Encrypted (SK) and Encrypted Fragment (SKF) payloads are located, not opened:
 * protection.ts decrypts them and hands their plaintext back to decodePayloads.
 */

export const MAX_MESSAGE_LENGTH = 65535;

export interface Ikev2Header extends IkeHeaderFields {
  readonly spiI: Uint8Array;
  readonly spiR: Uint8Array;
}

export type { Attribute };

export interface Transform {
  readonly type: number;
  readonly id: number;
  readonly attributes: readonly Attribute[];
}

export interface Proposal {
  readonly number: number;
  readonly protocolId: number;
  readonly spi: Uint8Array;
  readonly transforms: readonly Transform[];
}

/** A traffic selector as TSi/TSr carry it (RFC 7296 section 3.13.1); ICMP puts type/code in the ports. */
export type SelectorPayload = TrafficSelector;

export interface ConfigAttribute {
  readonly type: number;
  readonly value: Uint8Array;
}

export type Payload =
  | { readonly kind: 'sa'; readonly proposals: readonly Proposal[] }
  | { readonly kind: 'ke'; readonly group: number; readonly data: Uint8Array }
  | { readonly kind: 'id'; readonly role: 'i' | 'r'; readonly idType: number; readonly data: Uint8Array }
  | { readonly kind: 'auth'; readonly method: number; readonly data: Uint8Array }
  | { readonly kind: 'nonce'; readonly data: Uint8Array }
  | {
      readonly kind: 'notify';
      readonly protocolId: number;
      readonly spi: Uint8Array;
      readonly notifyType: number;
      readonly data: Uint8Array;
    }
  | {
      readonly kind: 'delete';
      readonly protocolId: number;
      readonly spiSize: number;
      readonly spis: readonly Uint8Array[];
    }
  | { readonly kind: 'vendor'; readonly data: Uint8Array }
  | { readonly kind: 'ts'; readonly role: 'i' | 'r'; readonly selectors: readonly SelectorPayload[] }
  | { readonly kind: 'cp'; readonly cfgType: number; readonly attributes: readonly ConfigAttribute[] }
  /** CERT, CERTREQ, EAP and payloads we do not know (not critical ones: those are refused). */
  | { readonly kind: 'opaque'; readonly type: number; readonly critical: boolean; readonly data: Uint8Array };

export type PayloadKind = Payload['kind'];

export function payloadType(payload: Payload): number {
  switch (payload.kind) {
    case 'sa':
      return PayloadType.SA;
    case 'ke':
      return PayloadType.KE;
    case 'id':
      return payload.role === 'i' ? PayloadType.IDi : PayloadType.IDr;
    case 'auth':
      return PayloadType.AUTH;
    case 'nonce':
      return PayloadType.NONCE;
    case 'notify':
      return PayloadType.NOTIFY;
    case 'delete':
      return PayloadType.DELETE;
    case 'vendor':
      return PayloadType.VENDOR;
    case 'ts':
      return payload.role === 'i' ? PayloadType.TSi : PayloadType.TSr;
    case 'cp':
      return PayloadType.CP;
    case 'opaque':
      return payload.type;
  }
}

/** A critical payload (C bit) of a type we do not implement: answered UNSUPPORTED_CRITICAL_PAYLOAD. */
export class CriticalPayloadError extends DecodeError {
  constructor(
    readonly payloadType: number,
    offset: number,
  ) {
    super(`critical payload of unknown type ${payloadType}`, offset, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD);
    this.name = 'CriticalPayloadError';
  }
}

// ---------------------------------------------------------------------------------------------
// Header

export function decodeHeader(datagram: Uint8Array): Ikev2Header {
  const r = new Reader(datagram, 0, datagram.length, NotifyType.INVALID_SYNTAX);
  if (datagram.length < IKE_HEADER_LENGTH)
    r.fail(`datagram of ${datagram.length} bytes is shorter than a header`);
  const { spis, ...fields } = readIkeHeader(r);
  const { majorVersion, length } = fields;
  // The minor version is ignored on receipt (RFC 7296 section 3.1).
  if (majorVersion !== 2) r.fail(`IKE major version ${majorVersion}`, NotifyType.INVALID_MAJOR_VERSION, 17);
  if (length !== datagram.length)
    r.fail(`header says ${length} bytes, datagram has ${datagram.length}`, NotifyType.INVALID_SYNTAX, 24);
  return { spiI: spis[0], spiR: spis[1], ...fields };
}

export interface HeaderFields {
  readonly spiI: Uint8Array;
  readonly spiR: Uint8Array;
  readonly exchangeType: number;
  readonly flags: number;
  readonly messageId: number;
}

/** Writes the header with a zero length; returns where the length goes. */
export function encodeHeader(w: Writer, fields: HeaderFields, nextPayload: number): number {
  return writeIkeHeader(w, [fields.spiI, fields.spiR], { ...fields, nextPayload, version: VERSION });
}

// ---------------------------------------------------------------------------------------------
// Messages

/** Where an Encrypted (SK) or Encrypted Fragment (SKF) payload sits in a message. */
export interface EncryptedPart {
  readonly type: typeof PayloadType.SK | typeof PayloadType.SKF;
  /** The Next Payload field: the first payload inside (0 in fragments after the first). */
  readonly innerFirst: number;
  /** Offset of its generic header in the datagram (what AEADs authenticate ends 4 bytes later). */
  readonly offset: number;
  /** SKF: this fragment's number and the total (RFC 7383 section 2.5). */
  readonly fragment?: { readonly number: number; readonly total: number };
  /** IV, ciphertext and ICV (after the fragment numbers, for SKF). */
  readonly body: Uint8Array;
}

export interface DecodedMessage {
  readonly header: Ikev2Header;
  /** Payloads in the clear (before an SK/SKF payload, if any). */
  readonly payloads: readonly Payload[];
  readonly encrypted?: EncryptedPart;
}

/** Decodes a datagram: the clear payloads, and the SK or SKF payload located but not opened. */
export function decodeMessage(datagram: Uint8Array): DecodedMessage {
  const header = decodeHeader(datagram);
  const r = new Reader(datagram, IKE_HEADER_LENGTH, datagram.length, NotifyType.INVALID_SYNTAX);
  const payloads: Payload[] = [];
  let next = header.nextPayload;
  while (next !== PayloadType.NONE) {
    const type = next;
    const offset = r.absolute;
    const { nextPayload, critical, body } = genericPayload(r, type);
    if (type === PayloadType.SK || type === PayloadType.SKF) {
      // RFC 7296 3.14: the Encrypted payload is the last one; its Next Payload names what is inside.
      if (r.remaining > 0) r.fail(`${r.remaining} bytes after the encrypted payload`);
      const br = new Reader(body, 0, body.length, NotifyType.INVALID_SYNTAX, offset + GENERIC_HEADER_LENGTH);
      const fragment =
        type === PayloadType.SKF
          ? { number: br.u16('fragment number'), total: br.u16('total fragments') }
          : undefined;
      if (fragment && (fragment.number === 0 || fragment.number > fragment.total))
        br.fail(`fragment ${fragment.number} of ${fragment.total}`);
      return {
        header,
        payloads,
        encrypted: {
          type,
          innerFirst: nextPayload,
          offset,
          ...(fragment && { fragment }),
          body: body.subarray(fragment ? 4 : 0),
        },
      };
    }
    payloads.push(decodePayloadBody(type, critical, body, offset + GENERIC_HEADER_LENGTH));
    next = nextPayload;
  }
  if (r.remaining > 0) r.fail(`${r.remaining} bytes after the last payload`);
  return { header, payloads };
}

/**
 * A payload chain (the plaintext of an SK payload, or a message in the clear). `origin`: where
 * `bytes` starts in the message, for error offsets.
 */
export function decodePayloads(bytes: Uint8Array, first: number, origin = 0): Payload[] {
  const r = new Reader(bytes, 0, bytes.length, NotifyType.INVALID_SYNTAX, origin);
  const payloads: Payload[] = [];
  let next = first;
  while (next !== PayloadType.NONE) {
    const type = next;
    const offset = r.absolute;
    const { nextPayload, critical, body } = genericPayload(r, type);
    if (type === PayloadType.SK || type === PayloadType.SKF)
      r.fail('an encrypted payload inside an encrypted one', undefined, offset);
    payloads.push(decodePayloadBody(type, critical, body, offset + GENERIC_HEADER_LENGTH));
    next = nextPayload;
  }
  if (r.remaining > 0) r.fail(`${r.remaining} bytes after the last payload`);
  return payloads;
}

/** The generic payload header (RFC 7296 section 3.2) and the body it delimits. */
function genericPayload(
  r: Reader,
  type: number,
): { nextPayload: number; critical: boolean; body: Uint8Array } {
  if (r.remaining < GENERIC_HEADER_LENGTH) r.fail(`payload ${type}: generic header truncated`);
  const nextPayload = r.u8();
  const critical = (r.u8() & 0x80) !== 0; // the other seven bits are RESERVED, ignored on receipt
  const length = r.u16();
  if (length < GENERIC_HEADER_LENGTH || length - GENERIC_HEADER_LENGTH > r.remaining)
    r.fail(
      `payload ${type}: length ${length} with ${r.remaining + GENERIC_HEADER_LENGTH} bytes left`,
      undefined,
      r.absolute - 2,
    );
  return { nextPayload, critical, body: r.take(length - GENERIC_HEADER_LENGTH) };
}

/** A plaintext message: header and payload chain, next-payload fields and lengths filled in. */
export function encodeMessage(fields: HeaderFields, payloads: readonly Payload[]): Uint8Array {
  const w = new Writer(512);
  const lengthAt = encodeHeader(w, fields, payloads.length ? payloadType(payloads[0]!) : PayloadType.NONE);
  writePayloads(w, payloads, PayloadType.NONE);
  return finishMessage(w, lengthAt);
}

/** A payload chain alone (what an SK payload encrypts); the last Next Payload is NONE. */
export function encodePayloads(payloads: readonly Payload[]): Uint8Array {
  const w = new Writer();
  writePayloads(w, payloads, PayloadType.NONE);
  return w.finish();
}

/**
 * A message whose payloads are `clear` followed by an SK or SKF payload of `bodyLength` bytes
 * (IV, ciphertext, ICV) naming `innerFirst` as its Next Payload; the body is written by `body`
 * once the header and everything before it exist (it authenticates them).
 */
export function encodeEncryptedMessage(
  fields: HeaderFields,
  clear: readonly Payload[],
  encrypted: {
    readonly type: typeof PayloadType.SK | typeof PayloadType.SKF;
    readonly innerFirst: number;
    readonly fragment?: { readonly number: number; readonly total: number };
    readonly bodyLength: number;
  },
  body: (before: Uint8Array) => Uint8Array,
): Uint8Array {
  const w = new Writer(512 + encrypted.bodyLength);
  const lengthAt = encodeHeader(w, fields, clear.length ? payloadType(clear[0]!) : encrypted.type);
  writePayloads(w, clear, encrypted.type);
  const fragmentBytes = encrypted.fragment ? 4 : 0;
  const total = w.offset + GENERIC_HEADER_LENGTH + fragmentBytes + encrypted.bodyLength;
  if (total > MAX_MESSAGE_LENGTH) throw new RangeError(`message of ${total} bytes is too long`);
  w.u8(encrypted.innerFirst)
    .u8(0)
    .u16(GENERIC_HEADER_LENGTH + fragmentBytes + encrypted.bodyLength);
  if (encrypted.fragment) w.u16(encrypted.fragment.number).u16(encrypted.fragment.total);
  w.patchU32(lengthAt, total);
  // What comes before the body, with the final length in the header: what AEADs and ICVs cover.
  const before = w.copy();
  const sealed = body(before);
  if (sealed.length !== encrypted.bodyLength) throw new RangeError('encrypted body of an unexpected length');
  w.bytes(sealed);
  return w.finish();
}

function finishMessage(w: Writer, lengthAt: number): Uint8Array {
  if (w.offset > MAX_MESSAGE_LENGTH) throw new RangeError(`message of ${w.offset} bytes is too long`);
  w.patchU32(lengthAt, w.offset);
  return w.finish();
}

function writePayloads(w: Writer, payloads: readonly Payload[], after: number): void {
  payloads.forEach((payload, index) => {
    const following = payloads[index + 1];
    const start = w.offset;
    const critical = payload.kind === 'opaque' && payload.critical;
    w.u8(following ? payloadType(following) : after)
      .u8(critical ? 0x80 : 0)
      .u16(0);
    encodePayloadBody(w, payload);
    w.patchU16(start + 2, w.offset - start);
  });
}

// ---------------------------------------------------------------------------------------------
// Payload bodies

/** Payload types whose body is kept opaque (we neither refuse nor interpret them). */
const KNOWN_OPAQUE: readonly number[] = [PayloadType.CERT, PayloadType.CERTREQ, PayloadType.EAP];

function decodePayloadBody(type: number, critical: boolean, body: Uint8Array, origin: number): Payload {
  const r = new Reader(body, 0, body.length, NotifyType.INVALID_SYNTAX, origin);
  const payload = decodeKnown(type, r);
  if (payload) {
    if (r.remaining > 0) r.fail(`payload ${type}: ${r.remaining} bytes left over`);
    return payload;
  }
  // RFC 7296 3.2: an unknown payload with the critical bit is refused; without it, skipped.
  if (critical && !KNOWN_OPAQUE.includes(type))
    throw new CriticalPayloadError(type, origin - GENERIC_HEADER_LENGTH);
  return { kind: 'opaque', type, critical, data: r.rest() };
}

function decodeKnown(type: number, r: Reader): Payload | undefined {
  switch (type) {
    case PayloadType.SA:
      return { kind: 'sa', proposals: decodeProposals(r) };
    case PayloadType.KE: {
      const group = r.u16('KE group');
      r.skip(2, 'KE reserved');
      return { kind: 'ke', group, data: r.rest() };
    }
    case PayloadType.IDi:
    case PayloadType.IDr: {
      const idType = r.u8('ID type');
      r.skip(3, 'ID reserved');
      return { kind: 'id', role: type === PayloadType.IDi ? 'i' : 'r', idType, data: r.rest() };
    }
    case PayloadType.AUTH: {
      const method = r.u8('auth method');
      r.skip(3, 'auth reserved');
      return { kind: 'auth', method, data: r.rest() };
    }
    case PayloadType.NONCE: {
      const data = r.rest();
      // RFC 7296 3.9: between 16 and 256 octets.
      if (data.length < 16 || data.length > 256) r.fail(`nonce of ${data.length} bytes`);
      return { kind: 'nonce', data };
    }
    case PayloadType.NOTIFY: {
      const protocolId = r.u8('notify protocol');
      const spiSize = r.u8('notify SPI size');
      const notifyType = r.u16('notify type');
      const spi = r.take(spiSize, 'notify SPI');
      return { kind: 'notify', protocolId, spi, notifyType, data: r.rest() };
    }
    case PayloadType.DELETE: {
      const protocolId = r.u8('delete protocol');
      const spiSize = r.u8('delete SPI size');
      const count = r.u16('delete SPI count');
      if (count * spiSize !== r.remaining)
        r.fail(`delete: ${count} SPIs of ${spiSize} bytes in ${r.remaining} bytes`);
      return {
        kind: 'delete',
        protocolId,
        spiSize,
        spis: Array.from({ length: count }, () => r.take(spiSize)),
      };
    }
    case PayloadType.VENDOR:
      return { kind: 'vendor', data: r.rest() };
    case PayloadType.TSi:
    case PayloadType.TSr:
      return { kind: 'ts', role: type === PayloadType.TSi ? 'i' : 'r', selectors: decodeSelectors(r) };
    case PayloadType.CP: {
      const cfgType = r.u8('CP type');
      r.skip(3, 'CP reserved');
      const attributes: ConfigAttribute[] = [];
      while (r.remaining > 0) {
        const attributeType = r.u16('CP attribute type') & 0x7fff;
        const length = r.u16('CP attribute length');
        attributes.push({ type: attributeType, value: r.take(length, 'CP attribute value') });
      }
      return { kind: 'cp', cfgType, attributes };
    }
    default:
      return undefined;
  }
}

function decodeProposals(r: Reader): Proposal[] {
  const proposals: Proposal[] = [];
  for (let last = false; !last;) {
    const more = r.u8('proposal last');
    if (more !== 0 && more !== 2) r.fail(`proposal: "last substructure" is ${more}`);
    last = more === 0;
    r.skip(1, 'proposal reserved');
    const length = r.u16('proposal length');
    if (length < 8) r.fail(`proposal length ${length}`);
    const p = r.sub(length - 4, 'proposal');
    const number = p.u8('proposal number');
    const protocolId = p.u8('proposal protocol');
    const spiSize = p.u8('proposal SPI size');
    const count = p.u8('transform count');
    const spi = p.take(spiSize, 'proposal SPI');
    const transforms: Transform[] = [];
    for (let i = 0; i < count; i++) {
      const tmore = p.u8('transform last');
      if (tmore !== (i === count - 1 ? 0 : 3))
        p.fail(`transform ${i + 1} of ${count}: "last substructure" is ${tmore}`);
      p.skip(1, 'transform reserved');
      const tlength = p.u16('transform length');
      if (tlength < 8) p.fail(`transform length ${tlength}`);
      const t = p.sub(tlength - 4, 'transform');
      const type = t.u8('transform type');
      t.skip(1, 'transform reserved');
      const id = t.u16('transform ID');
      transforms.push({ type, id, attributes: readAttributes(t) });
    }
    if (p.remaining > 0) p.fail(`proposal ${number}: ${p.remaining} bytes after its transforms`);
    proposals.push({ number, protocolId, spi, transforms });
  }
  if (r.remaining > 0) r.fail(`SA: ${r.remaining} bytes after the last proposal`);
  return proposals;
}

function decodeSelectors(r: Reader): SelectorPayload[] {
  const count = r.u8('TS count');
  r.skip(3, 'TS reserved');
  const selectors: SelectorPayload[] = [];
  for (let i = 0; i < count; i++) {
    const type = r.u8('TS type');
    const protocol = r.u8('TS protocol');
    const length = r.u16('TS length');
    const size = type === TsType.IPV4_ADDR_RANGE ? 4 : type === TsType.IPV6_ADDR_RANGE ? 16 : 0;
    if (size === 0) r.fail(`traffic selector of type ${type}`, NotifyType.TS_UNACCEPTABLE);
    if (length !== 8 + 2 * size) r.fail(`traffic selector of type ${type} with length ${length}`);
    const startPort = r.u16('TS start port');
    const endPort = r.u16('TS end port');
    selectors.push({ protocol, startPort, endPort, start: r.take(size), end: r.take(size) });
  }
  if (count === 0) r.fail('a TS payload with no traffic selector');
  return selectors;
}

function encodePayloadBody(w: Writer, payload: Payload): void {
  switch (payload.kind) {
    case 'sa':
      payload.proposals.forEach((proposal, index) =>
        encodeProposal(w, proposal, index === payload.proposals.length - 1),
      );
      return;
    case 'ke':
      w.u16(payload.group).u16(0).bytes(payload.data);
      return;
    case 'id':
      w.u8(payload.idType).u8(0).u16(0).bytes(payload.data);
      return;
    case 'auth':
      w.u8(payload.method).u8(0).u16(0).bytes(payload.data);
      return;
    case 'nonce':
    case 'vendor':
      w.bytes(payload.data);
      return;
    case 'notify':
      w.u8(payload.protocolId)
        .u8(payload.spi.length)
        .u16(payload.notifyType)
        .bytes(payload.spi)
        .bytes(payload.data);
      return;
    case 'delete':
      w.u8(payload.protocolId).u8(payload.spiSize).u16(payload.spis.length);
      for (const spi of payload.spis) w.bytes(spi);
      return;
    case 'ts':
      w.u8(payload.selectors.length).u8(0).u16(0);
      for (const ts of payload.selectors) {
        w.u8(ts.start.length === 4 ? TsType.IPV4_ADDR_RANGE : TsType.IPV6_ADDR_RANGE)
          .u8(ts.protocol)
          .u16(8 + 2 * ts.start.length)
          .u16(ts.startPort)
          .u16(ts.endPort)
          .bytes(ts.start)
          .bytes(ts.end);
      }
      return;
    case 'cp':
      w.u8(payload.cfgType).u8(0).u16(0);
      for (const attribute of payload.attributes)
        w.u16(attribute.type & 0x7fff)
          .u16(attribute.value.length)
          .bytes(attribute.value);
      return;
    case 'opaque':
      w.bytes(payload.data);
      return;
  }
}

function encodeProposal(w: Writer, proposal: Proposal, last: boolean): void {
  const start = w.offset;
  w.u8(last ? 0 : 2)
    .u8(0)
    .u16(0);
  w.u8(proposal.number)
    .u8(proposal.protocolId)
    .u8(proposal.spi.length)
    .u8(proposal.transforms.length)
    .bytes(proposal.spi);
  proposal.transforms.forEach((transform, index) => {
    const tstart = w.offset;
    w.u8(index === proposal.transforms.length - 1 ? 0 : 3)
      .u8(0)
      .u16(0);
    w.u8(transform.type).u8(0).u16(transform.id);
    for (const attribute of transform.attributes) writeAttribute(w, attribute);
    w.patchU16(tstart + 2, w.offset - tstart);
  });
  w.patchU16(start + 2, w.offset - start);
}

/** The first payload of a kind, or undefined. */
export function find<K extends PayloadKind>(
  payloads: readonly Payload[],
  kind: K,
): Extract<Payload, { kind: K }> | undefined {
  return payloads.find((p): p is Extract<Payload, { kind: K }> => p.kind === kind);
}

export function findAll<K extends PayloadKind>(
  payloads: readonly Payload[],
  kind: K,
): Extract<Payload, { kind: K }>[] {
  return payloads.filter((p): p is Extract<Payload, { kind: K }> => p.kind === kind);
}

/** The notify of a type, if present. */
export function findNotify(
  payloads: readonly Payload[],
  type: number,
): Extract<Payload, { kind: 'notify' }> | undefined {
  return payloads.find(
    (p): p is Extract<Payload, { kind: 'notify' }> => p.kind === 'notify' && p.notifyType === type,
  );
}

/** A Notify payload (section 3.10); `protocolId` and `spi` only for notifies about a child SA. */
export function notify(
  type: number,
  data: Uint8Array = new Uint8Array(0),
  protocolId = 0,
  spi: Uint8Array = new Uint8Array(0),
): Payload {
  return { kind: 'notify', protocolId, spi, notifyType: type, data };
}
