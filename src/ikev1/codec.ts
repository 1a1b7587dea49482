import { type Attribute, readAttributes, writeAttribute } from '../wire/attributes.js';
import { type IkeHeaderFields, readIkeHeader, writeIkeHeader } from '../wire/ike-header.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import { GENERIC_HEADER_LENGTH, ISAKMP_HEADER_LENGTH, NotifyType, PayloadType } from './constants.js';

/**
 * The ISAKMP codec (RFC 2408 section 3, IPsec DOI payload bodies of RFC 2407 section 4.6, NAT-T
 * payloads of RFC 3947). `decode*` returns typed objects or throws DecodeError with the notify
 * RFC 2408 prescribes; `encode*` is the exact inverse. Nothing here knows about exchanges or keys:
 * an encrypted body is handed back as bytes for the engine to decrypt and decode with decodePayloads.
 */

export const MAX_MESSAGE_LENGTH = 65535;

export interface IsakmpHeader extends IkeHeaderFields {
  readonly CKY_I: Uint8Array;
  readonly CKY_R: Uint8Array;
}

export type { Attribute };

export interface Transform {
  readonly number: number;
  readonly transformId: number;
  readonly attributes: readonly Attribute[];
}

export interface Proposal {
  readonly number: number;
  readonly protocolId: number;
  readonly spi: Uint8Array;
  readonly transforms: readonly Transform[];
}

export type Payload =
  | {
      readonly kind: 'sa';
      readonly doi: number;
      readonly situation: number;
      readonly proposals: readonly Proposal[];
    }
  | { readonly kind: 'ke'; readonly data: Uint8Array }
  | {
      readonly kind: 'id';
      readonly idType: number;
      readonly protocolId: number;
      readonly port: number;
      readonly data: Uint8Array;
    }
  | { readonly kind: 'hash'; readonly data: Uint8Array }
  | { readonly kind: 'nonce'; readonly data: Uint8Array }
  | { readonly kind: 'vendor'; readonly data: Uint8Array }
  | {
      readonly kind: 'notify';
      readonly doi: number;
      readonly protocolId: number;
      readonly notifyType: number;
      readonly spi: Uint8Array;
      readonly data: Uint8Array;
    }
  | {
      readonly kind: 'delete';
      readonly doi: number;
      readonly protocolId: number;
      readonly spiSize: number;
      readonly spis: readonly Uint8Array[];
    }
  /** NAT-D: `draft` selects payload type 130 (draft-ietf-ipsec-nat-t-ike-02/03) over 20 (RFC 3947). */
  | { readonly kind: 'nat-d'; readonly draft: boolean; readonly data: Uint8Array }
  | {
      readonly kind: 'nat-oa';
      readonly draft: boolean;
      readonly idType: number;
      readonly address: Uint8Array;
    }
  /** CERT, CR, SIG and anything unknown: kept opaque, with the wire type. */
  | { readonly kind: 'opaque'; readonly type: number; readonly data: Uint8Array };

export type PayloadKind = Payload['kind'];

export function payloadType(payload: Payload): number {
  switch (payload.kind) {
    case 'sa':
      return PayloadType.SA;
    case 'ke':
      return PayloadType.KE;
    case 'id':
      return PayloadType.ID;
    case 'hash':
      return PayloadType.HASH;
    case 'nonce':
      return PayloadType.NONCE;
    case 'vendor':
      return PayloadType.VID;
    case 'notify':
      return PayloadType.N;
    case 'delete':
      return PayloadType.D;
    case 'nat-d':
      return payload.draft ? PayloadType.NAT_D_DRAFT : PayloadType.NAT_D;
    case 'nat-oa':
      return payload.draft ? PayloadType.NAT_OA_DRAFT : PayloadType.NAT_OA;
    case 'opaque':
      return payload.type;
  }
}

// ---------------------------------------------------------------------------------------------
// Header

export function decodeHeader(datagram: Uint8Array): IsakmpHeader {
  const r = new Reader(datagram, 0, datagram.length, NotifyType.PAYLOAD_MALFORMED);
  if (datagram.length < ISAKMP_HEADER_LENGTH)
    r.fail(`datagram of ${datagram.length} bytes is shorter than a header`);
  const { spis, ...fields } = readIkeHeader(r);
  const { majorVersion, minorVersion, flags, length } = fields;
  if (majorVersion !== 1)
    r.fail(`ISAKMP major version ${majorVersion}`, NotifyType.INVALID_MAJOR_VERSION, 17);
  if (minorVersion !== 0)
    r.fail(`ISAKMP minor version ${minorVersion}`, NotifyType.INVALID_MINOR_VERSION, 17);
  if (flags & ~0x07) r.fail(`reserved flag bits set: 0x${flags.toString(16)}`, NotifyType.INVALID_FLAGS, 19);
  if (length !== datagram.length) {
    r.fail(
      `header says ${length} bytes, datagram has ${datagram.length}`,
      NotifyType.UNEQUAL_PAYLOAD_LENGTHS,
      24,
    );
  }
  return { CKY_I: spis[0], CKY_R: spis[1], ...fields };
}

export function encodeHeader(
  w: Writer,
  header: Omit<IsakmpHeader, 'length' | 'majorVersion' | 'minorVersion'>,
): number {
  return writeIkeHeader(w, [header.CKY_I, header.CKY_R], { ...header, version: 0x10 });
}

// ---------------------------------------------------------------------------------------------
// Messages

export interface DecodedMessage {
  readonly header: IsakmpHeader;
  /** Decoded payloads, or undefined when the body is encrypted (then `body` holds the ciphertext). */
  readonly payloads?: readonly Payload[];
  readonly body: Uint8Array;
}

/** Decodes a datagram; an encrypted body (E flag) is returned undecoded. */
export function decodeMessage(datagram: Uint8Array): DecodedMessage {
  const header = decodeHeader(datagram);
  const body = datagram.slice(ISAKMP_HEADER_LENGTH);
  if (header.flags & 0x01) return { header, body };
  return {
    header,
    payloads: decodePayloads(body, header.nextPayload, { offset: ISAKMP_HEADER_LENGTH }),
    body,
  };
}

export interface MessageFields {
  readonly CKY_I: Uint8Array;
  readonly CKY_R: Uint8Array;
  readonly exchangeType: number;
  readonly flags: number;
  readonly messageId: number;
}

/** A plaintext message: header and payload chain, next-payload fields and lengths filled in. */
export function encodeMessage(fields: MessageFields, payloads: readonly Payload[]): Uint8Array {
  return encodeWithBody(fields, payloads.length ? payloadType(payloads[0]!) : 0, encodePayloads(payloads));
}

/** A message around an already-built body (for encrypted messages: the ciphertext). */
export function encodeWithBody(fields: MessageFields, firstPayload: number, body: Uint8Array): Uint8Array {
  const w = new Writer(ISAKMP_HEADER_LENGTH + body.length);
  const lengthAt = encodeHeader(w, { ...fields, nextPayload: firstPayload });
  w.bytes(body);
  if (w.offset > MAX_MESSAGE_LENGTH) throw new RangeError(`message of ${w.offset} bytes is too long`);
  w.patchU32(lengthAt, w.offset);
  return w.finish();
}

// ---------------------------------------------------------------------------------------------
// Payload chains

export interface PayloadChainOptions {
  /** Absolute offset of `body` in the datagram, for error messages. */
  readonly offset?: number;
  /**
   * Decrypted bodies end in padding after the last payload (RFC 2408 section 3.5 lets the
   * padding follow the chain); plaintext ones must end exactly.
   */
  readonly allowTrailing?: boolean;
}

export function decodePayloads(
  body: Uint8Array,
  first: number,
  options: PayloadChainOptions = {},
): Payload[] {
  const r = new Reader(body, 0, body.length, NotifyType.PAYLOAD_MALFORMED, options.offset ?? 0);
  const payloads: Payload[] = [];
  let next = first;
  while (next !== PayloadType.NONE) {
    if (r.remaining < GENERIC_HEADER_LENGTH) r.fail(`payload ${next}: generic header truncated`);
    const type = next;
    next = r.u8();
    r.skip(1); // RESERVED: must be zero, ignored on receipt as strongSwan and isakmpd do
    const length = r.u16();
    if (length < GENERIC_HEADER_LENGTH || length - GENERIC_HEADER_LENGTH > r.remaining) {
      r.fail(
        `payload ${type}: length ${length} with ${r.remaining + 4} bytes left`,
        undefined,
        r.absolute - 2,
      );
    }
    payloads.push(decodePayloadBody(type, r.sub(length - GENERIC_HEADER_LENGTH)));
  }
  if (r.remaining > 0 && !options.allowTrailing) {
    r.fail(`${r.remaining} bytes after the last payload`, NotifyType.UNEQUAL_PAYLOAD_LENGTHS);
  }
  return payloads;
}

export function encodePayloads(payloads: readonly Payload[]): Uint8Array {
  const w = new Writer();
  payloads.forEach((payload, index) => {
    const following = payloads[index + 1];
    writeGeneric(w, following ? payloadType(following) : PayloadType.NONE, () =>
      encodePayloadBody(w, payload),
    );
  });
  return w.finish();
}

/** Generic payload header around `body`, its length patched in afterwards. */
function writeGeneric(w: Writer, nextPayload: number, body: () => void): void {
  const start = w.offset;
  w.u8(nextPayload).u8(0).u16(0);
  body();
  w.patchU16(start + 2, w.offset - start);
}

// ---------------------------------------------------------------------------------------------
// Payload bodies

function decodePayloadBody(type: number, r: Reader): Payload {
  switch (type) {
    case PayloadType.SA:
      return decodeSa(r);
    case PayloadType.KE:
      return { kind: 'ke', data: r.rest() };
    case PayloadType.ID: {
      const idType = r.u8('ID type');
      const protocolId = r.u8('ID protocol');
      const port = r.u16('ID port');
      return { kind: 'id', idType, protocolId, port, data: r.rest() };
    }
    case PayloadType.HASH:
      return { kind: 'hash', data: r.rest() };
    case PayloadType.NONCE:
      return { kind: 'nonce', data: r.rest() };
    case PayloadType.VID:
      return { kind: 'vendor', data: r.rest() };
    case PayloadType.N: {
      const doi = r.u32('notify DOI');
      const protocolId = r.u8('notify protocol');
      const spiSize = r.u8('notify SPI size');
      const notifyType = r.u16('notify type');
      const spi = r.take(spiSize, 'notify SPI');
      return { kind: 'notify', doi, protocolId, notifyType, spi, data: r.rest() };
    }
    case PayloadType.D: {
      const doi = r.u32('delete DOI');
      const protocolId = r.u8('delete protocol');
      const spiSize = r.u8('delete SPI size');
      const count = r.u16('delete SPI count');
      if (count * spiSize !== r.remaining) {
        r.fail(
          `delete: ${count} SPIs of ${spiSize} bytes in ${r.remaining} bytes`,
          NotifyType.PAYLOAD_MALFORMED,
        );
      }
      const spis = Array.from({ length: count }, () => r.take(spiSize, 'delete SPI'));
      return { kind: 'delete', doi, protocolId, spiSize, spis };
    }
    case PayloadType.NAT_D:
    case PayloadType.NAT_D_DRAFT:
      return { kind: 'nat-d', draft: type === PayloadType.NAT_D_DRAFT, data: r.rest() };
    case PayloadType.NAT_OA:
    case PayloadType.NAT_OA_DRAFT: {
      const idType = r.u8('NAT-OA ID type');
      r.skip(3, 'NAT-OA reserved');
      const address = r.rest();
      if (address.length !== 4 && address.length !== 16) {
        r.fail(`NAT-OA address of ${address.length} bytes`, NotifyType.PAYLOAD_MALFORMED);
      }
      return { kind: 'nat-oa', draft: type === PayloadType.NAT_OA_DRAFT, idType, address };
    }
    default:
      return { kind: 'opaque', type, data: r.rest() };
  }
}

function encodePayloadBody(w: Writer, p: Payload): void {
  switch (p.kind) {
    case 'sa':
      return encodeSa(w, p);
    case 'ke':
    case 'hash':
    case 'nonce':
    case 'vendor':
    case 'nat-d':
    case 'opaque':
      w.bytes(p.data);
      return;
    case 'id':
      w.u8(p.idType).u8(p.protocolId).u16(p.port).bytes(p.data);
      return;
    case 'notify':
      w.u32(p.doi).u8(p.protocolId).u8(p.spi.length).u16(p.notifyType).bytes(p.spi).bytes(p.data);
      return;
    case 'delete':
      w.u32(p.doi).u8(p.protocolId).u8(p.spiSize).u16(p.spis.length);
      for (const spi of p.spis) {
        if (spi.length !== p.spiSize)
          throw new RangeError(`delete: SPI of ${spi.length} bytes, size says ${p.spiSize}`);
        w.bytes(spi);
      }
      return;
    case 'nat-oa':
      w.u8(p.idType).u8(0).u16(0).bytes(p.address);
      return;
  }
}

// SA payload: DOI, situation, then proposal payloads each carrying transform payloads
// (RFC 2408 sections 3.4-3.6). Both nested chains use the generic header.

function decodeSa(r: Reader): Payload {
  const doi = r.u32('SA DOI');
  const situation = r.u32('SA situation');
  const proposals: Proposal[] = [];
  let next: number = PayloadType.P;
  while (r.remaining > 0 || next !== PayloadType.NONE) {
    if (next !== PayloadType.P) {
      r.fail(`SA: payload type ${next} inside an SA`, NotifyType.BAD_PROPOSAL_SYNTAX);
    }
    const header = genericHeader(r, 'proposal');
    next = header.next;
    proposals.push(decodeProposal(header.body));
  }
  return { kind: 'sa', doi, situation, proposals };
}

function decodeProposal(r: Reader): Proposal {
  const number = r.u8('proposal number');
  const protocolId = r.u8('proposal protocol');
  const spiSize = r.u8('proposal SPI size');
  const count = r.u8('proposal transform count');
  const spi = r.take(spiSize, 'proposal SPI');
  const transforms: Transform[] = [];
  let next: number = PayloadType.T;
  while (r.remaining > 0 || next !== PayloadType.NONE) {
    if (next !== PayloadType.T) {
      r.fail(`proposal ${number}: payload type ${next} inside a proposal`, NotifyType.BAD_PROPOSAL_SYNTAX);
    }
    const header = genericHeader(r, 'transform');
    next = header.next;
    transforms.push(decodeTransform(header.body));
  }
  if (transforms.length !== count) {
    r.fail(
      `proposal ${number}: announces ${count} transforms, carries ${transforms.length}`,
      NotifyType.BAD_PROPOSAL_SYNTAX,
    );
  }
  return { number, protocolId, spi, transforms };
}

function decodeTransform(r: Reader): Transform {
  const number = r.u8('transform number');
  const transformId = r.u8('transform id');
  r.skip(2, 'transform reserved');
  return { number, transformId, attributes: readAttributes(r) };
}

function genericHeader(r: Reader, what: string): { next: number; body: Reader } {
  const start = r.absolute;
  const next = r.u8(`${what} next payload`);
  r.skip(1, `${what} reserved`);
  const length = r.u16(`${what} length`);
  if (length < GENERIC_HEADER_LENGTH || length - GENERIC_HEADER_LENGTH > r.remaining) {
    r.fail(
      `${what}: length ${length} with ${r.remaining + 4} bytes left`,
      NotifyType.BAD_PROPOSAL_SYNTAX,
      start + 2,
    );
  }
  return { next, body: r.sub(length - GENERIC_HEADER_LENGTH) };
}

function encodeSa(w: Writer, sa: Extract<Payload, { kind: 'sa' }>): void {
  w.u32(sa.doi).u32(sa.situation);
  sa.proposals.forEach((proposal, i) => {
    const last = i === sa.proposals.length - 1;
    writeGeneric(w, last ? PayloadType.NONE : PayloadType.P, () => {
      w.u8(proposal.number).u8(proposal.protocolId).u8(proposal.spi.length).u8(proposal.transforms.length);
      w.bytes(proposal.spi);
      proposal.transforms.forEach((transform, j) => {
        const lastTransform = j === proposal.transforms.length - 1;
        writeGeneric(w, lastTransform ? PayloadType.NONE : PayloadType.T, () => {
          w.u8(transform.number).u8(transform.transformId).u16(0);
          for (const attribute of transform.attributes) writeAttribute(w, attribute);
        });
      });
    });
  });
}

/** An attribute's numeric value: TV as is, TLV as a big-endian integer of up to 4 bytes. */
export function attributeNumber(attribute: Attribute): number | undefined {
  if ('value' in attribute) return attribute.value;
  if (attribute.bytes.length > 4) return undefined;
  return attribute.bytes.reduce((n, byte) => n * 256 + byte, 0);
}

/** The shortest encoding of a number: TV up to 0xffff, else a 4-byte TLV (life durations). */
export function numberAttribute(type: number, value: number): Attribute {
  if (value <= 0xffff) return { type, value };
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return { type, bytes };
}

/** One payload's body without its generic header (SAi_b and IDii_b of RFC 2409 section 5). */
export function payloadBody(payload: Payload): Uint8Array {
  const w = new Writer();
  encodePayloadBody(w, payload);
  return w.finish();
}

/**
 * The length of an already-decoded payload chain at the start of `body`, without the padding
 * that may follow it: what HASH(1)/HASH(2) cover in quick mode and informational exchanges.
 */
export function payloadChainLength(body: Uint8Array): number {
  let offset = 0;
  for (;;) {
    const next = body[offset]!;
    offset += (body[offset + 2]! << 8) | body[offset + 3]!;
    if (next === PayloadType.NONE || offset >= body.length) return Math.min(offset, body.length);
  }
}

/** A bare attribute list, as a RESPONDER-LIFETIME notify carries it (RFC 2407 section 4.6.3.1). */
export function encodeAttributes(attributes: readonly Attribute[]): Uint8Array {
  const w = new Writer();
  for (const attribute of attributes) writeAttribute(w, attribute);
  return w.finish();
}

export function decodeAttributes(data: Uint8Array): Attribute[] {
  return readAttributes(new Reader(data, 0, data.length, NotifyType.PAYLOAD_MALFORMED));
}
