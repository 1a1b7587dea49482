import { endianness } from 'node:os';

/**
 * Netlink framing (RFC 3549; linux/netlink.h): a 16-byte header, then the family's fixed struct,
 * then attributes (2-byte length, 2-byte type, value padded to 4 bytes). Netlink speaks the host's
 * byte order; this project runs on little-endian hosts and says so once, here.
 */

export const LITTLE_ENDIAN = endianness() === 'LE';

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;

/** Message types every family shares (linux/netlink.h). */
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

/** Header flags. */
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

/** Attribute type flags carried in the top bits of nla_type. */
export const NLA_F_NESTED = 0x8000;
export const NLA_TYPE_MASK = 0x3fff;

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** Everything after the header: the family's struct and its attributes. */
  readonly payload: Uint8Array;
}

export interface NetlinkAttribute {
  readonly type: number;
  readonly value: Uint8Array;
}

/** A netlink message that is too short or whose lengths disagree: the offset says where. */
export class NetlinkParseError extends Error {
  override readonly name = 'NetlinkParseError';
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
  }
}

/** A negative acknowledgement: the kernel's errno for the request with this sequence number. */
export class NetlinkError extends Error {
  override readonly name = 'NetlinkError';
  constructor(
    readonly errno: number,
    readonly code: string,
    readonly seq: number,
    what: string,
  ) {
    super(`${what}: ${code} (errno ${errno})`);
  }
}

export function align4(length: number): number {
  return (length + 3) & ~3;
}

export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** One message: header plus payload, padded to 4 bytes. */
export function encodeMessage(message: NetlinkMessage): Uint8Array {
  const length = NLMSG_HDRLEN + message.payload.length;
  const out = new Uint8Array(align4(length));
  const dv = view(out);
  dv.setUint32(0, length, LITTLE_ENDIAN);
  dv.setUint16(4, message.type, LITTLE_ENDIAN);
  dv.setUint16(6, message.flags, LITTLE_ENDIAN);
  dv.setUint32(8, message.seq, LITTLE_ENDIAN);
  dv.setUint32(12, message.pid, LITTLE_ENDIAN);
  out.set(message.payload, NLMSG_HDRLEN);
  return out;
}

/** Every message in one datagram (the kernel batches dump answers and events). */
export function decodeMessages(datagram: Uint8Array): NetlinkMessage[] {
  const messages: NetlinkMessage[] = [];
  const dv = view(datagram);
  let offset = 0;
  while (offset + NLMSG_HDRLEN <= datagram.length) {
    const length = dv.getUint32(offset, LITTLE_ENDIAN);
    if (length < NLMSG_HDRLEN || offset + length > datagram.length)
      throw new NetlinkParseError(
        `message length ${length} does not fit the ${datagram.length}-byte datagram`,
        offset,
      );
    messages.push({
      type: dv.getUint16(offset + 4, LITTLE_ENDIAN),
      flags: dv.getUint16(offset + 6, LITTLE_ENDIAN),
      seq: dv.getUint32(offset + 8, LITTLE_ENDIAN),
      pid: dv.getUint32(offset + 12, LITTLE_ENDIAN),
      payload: datagram.subarray(offset + NLMSG_HDRLEN, offset + length),
    });
    offset += align4(length);
  }
  if (offset < datagram.length)
    throw new NetlinkParseError(`${datagram.length - offset} trailing bytes are not a message`, offset);
  return messages;
}

/** One attribute, padded; `value` may itself be encoded attributes (set NLA_F_NESTED in `type` if the family wants it). */
export function encodeAttribute(type: number, value: Uint8Array): Uint8Array {
  const length = NLA_HDRLEN + value.length;
  const out = new Uint8Array(align4(length));
  const dv = view(out);
  dv.setUint16(0, length, LITTLE_ENDIAN);
  dv.setUint16(2, type, LITTLE_ENDIAN);
  out.set(value, NLA_HDRLEN);
  return out;
}

export function encodeAttributes(attributes: readonly NetlinkAttribute[]): Uint8Array {
  return concat(attributes.map((attribute) => encodeAttribute(attribute.type, attribute.value)));
}

/** Attributes from `offset` to the end of `bytes` (type flags masked off). */
export function decodeAttributes(bytes: Uint8Array, offset = 0): NetlinkAttribute[] {
  const attributes: NetlinkAttribute[] = [];
  const dv = view(bytes);
  while (offset + NLA_HDRLEN <= bytes.length) {
    const length = dv.getUint16(offset, LITTLE_ENDIAN);
    if (length < NLA_HDRLEN || offset + length > bytes.length)
      throw new NetlinkParseError(`attribute length ${length} does not fit`, offset);
    attributes.push({
      type: dv.getUint16(offset + 2, LITTLE_ENDIAN) & NLA_TYPE_MASK,
      value: bytes.subarray(offset + NLA_HDRLEN, offset + length),
    });
    offset += align4(length);
  }
  return attributes;
}

/** An NLMSG_ERROR payload: errno 0 is an acknowledgement; `seq` is that of the request. */
export function decodeError(message: NetlinkMessage): { errno: number; seq: number } {
  if (message.payload.length < 4 + NLMSG_HDRLEN)
    throw new NetlinkParseError(
      `NLMSG_ERROR of ${message.payload.length} bytes, expected at least 20`,
      NLMSG_HDRLEN,
    );
  const dv = view(message.payload);
  return { errno: -dv.getInt32(0, LITTLE_ENDIAN), seq: dv.getUint32(4 + 8, LITTLE_ENDIAN) };
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * A request/answer conversation with one netlink family (src/kernel/netlink/socket.ts over the
 * native shim, or a fake in tests). Sequence numbers and the port id are the channel's business.
 */
export interface NetlinkChannel {
  /**
   * Sends one request and returns the answers that came before the acknowledgement (or
   * NLMSG_DONE for a dump). Throws NetlinkError on a negative acknowledgement. `what` names the
   * request in errors ("add SA 192.0.2.1->192.0.2.2 spi c0ffee01").
   */
  request(type: number, flags: number, payload: Uint8Array, what: string): Promise<NetlinkMessage[]>;
  /** The same, blocking the event loop for the kernel's answer: only for what the engine needs at once (SPIs). */
  requestSync(type: number, flags: number, payload: Uint8Array, what: string): NetlinkMessage[];
  close(): void;
}

/**
 * Multicast messages from one netlink family (XFRM's ACQUIRE, EXPIRE, MAPPING groups). An error
 * such as ENOBUFS (the kernel dropped events because we read too slowly) is reported and the
 * subscription goes on: the backend then resynchronises from a dump.
 */
export interface NetlinkSubscription {
  onMessages(listener: (messages: NetlinkMessage[]) => void): void;
  onError(listener: (error: Error & { code?: string }) => void): void;
  close(): void;
}
