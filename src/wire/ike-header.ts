/**
 * The part of the 28-byte header that IKEv1 (RFC 2408 section 3.1) and IKEv2 (RFC 7296 section
 * 3.1) share: two 8-byte SPIs (IKEv1's cookies), next payload, version, exchange type, flags,
 * message ID and length. Enough to pick the protocol module and the SA; each module's own codec
 * then checks the whole message.
 */

import type { Reader } from './reader.js';
import type { Writer } from './writer.js';

export const IKE_HEADER_LENGTH = 28;

/** The fields after the two SPIs, decoded: each version's codec adds the SPIs under its names. */
export interface IkeHeaderFields {
  readonly nextPayload: number;
  readonly majorVersion: number;
  readonly minorVersion: number;
  readonly exchangeType: number;
  readonly flags: number;
  readonly messageId: number;
  readonly length: number;
}

export interface IkeHeaderPeek {
  /** The major version: 1 (ISAKMP) or 2 (IKEv2); anything else is for nobody. */
  readonly majorVersion: number;
  readonly spiI: Uint8Array;
  readonly spiR: Uint8Array;
  readonly exchangeType: number;
  readonly flags: number;
  readonly messageId: number;
  /** The responder's SPI is zero: the first message of an exchange that creates an SA. */
  readonly initial: boolean;
}

/** The header's fixed fields, or undefined when the datagram is too short to hold one. */
export function peekIkeHeader(datagram: Uint8Array): IkeHeaderPeek | undefined {
  if (datagram.length < IKE_HEADER_LENGTH) return undefined;
  const spiR = datagram.subarray(8, 16);
  let initial = true;
  for (let i = 0; i < 8; i++) if (spiR[i] !== 0) initial = false;
  return {
    majorVersion: datagram[17]! >> 4,
    spiI: datagram.subarray(0, 8),
    spiR,
    exchangeType: datagram[18]!,
    flags: datagram[19]!,
    messageId: ((datagram[20]! << 24) | (datagram[21]! << 16) | (datagram[22]! << 8) | datagram[23]!) >>> 0,
    initial,
  };
}

/**
 * Writes the header with a zero length (the caller fills it in once the message is complete) and
 * returns where the length goes. `version` is the whole octet: 0x10 for ISAKMP, 0x20 for IKEv2.
 */
export function writeIkeHeader(
  w: Writer,
  spis: readonly [Uint8Array, Uint8Array],
  fields: Pick<IkeHeaderFields, 'nextPayload' | 'exchangeType' | 'flags' | 'messageId'> & { version: number },
): number {
  if (spis[0].length !== 8 || spis[1].length !== 8) throw new RangeError('the two SPIs are 8 bytes each');
  w.bytes(spis[0])
    .bytes(spis[1])
    .u8(fields.nextPayload)
    .u8(fields.version)
    .u8(fields.exchangeType)
    .u8(fields.flags)
    .u32(fields.messageId);
  const lengthAt = w.offset;
  w.u32(0);
  return lengthAt;
}

/**
 * The whole header read from `r` (which fails with its protocol's notify when it is too short):
 * the SPIs as `spis`, the rest decoded. Checking the version, flags and length is the caller's.
 */
export function readIkeHeader(r: Reader): IkeHeaderFields & { readonly spis: [Uint8Array, Uint8Array] } {
  const spis: [Uint8Array, Uint8Array] = [r.take(8, 'initiator SPI'), r.take(8, 'responder SPI')];
  const nextPayload = r.u8('next payload');
  const version = r.u8('version');
  const exchangeType = r.u8('exchange type');
  const flags = r.u8('flags');
  const messageId = r.u32('message ID');
  const length = r.u32('length');
  return {
    spis,
    nextPayload,
    majorVersion: version >> 4,
    minorVersion: version & 0x0f,
    exchangeType,
    flags,
    messageId,
    length,
  };
}
