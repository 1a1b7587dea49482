import { DecodeError } from './errors.js';

/**
 * A bounds-checked cursor over a byte range. Every read past `end` throws a DecodeError carrying
 * the absolute offset and the notify the caller chose for truncation.
 */
export class Reader {
  private position: number;

  constructor(
    readonly bytes: Uint8Array,
    readonly start = 0,
    readonly end = bytes.length,
    /** The notify to answer with when the data runs out (PAYLOAD-MALFORMED, INVALID_SYNTAX...). */
    readonly truncatedNotify = 0,
    /** Where `bytes` starts in the datagram, so errors report datagram offsets. */
    readonly origin = 0,
  ) {
    if (start < 0 || end > bytes.length || start > end)
      throw new RangeError('reader range outside the buffer');
    this.position = start;
  }

  get offset(): number {
    return this.position;
  }

  /** The position as an offset into the datagram. */
  get absolute(): number {
    return this.origin + this.position;
  }

  get remaining(): number {
    return this.end - this.position;
  }

  fail(message: string, notify = this.truncatedNotify, offset = this.absolute): never {
    throw new DecodeError(message, offset, notify);
  }

  private need(length: number, what: string): void {
    if (length > this.remaining) this.fail(`${what}: needs ${length} bytes, ${this.remaining} left`);
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.bytes[this.position++]!;
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const value = (this.bytes[this.position]! << 8) | this.bytes[this.position + 1]!;
    this.position += 2;
    return value;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const b = this.bytes;
    const p = this.position;
    this.position += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  /** A copy, so decoded objects never alias the datagram buffer. */
  take(length: number, what = 'bytes'): Uint8Array {
    this.need(length, what);
    const out = this.bytes.slice(this.position, this.position + length);
    this.position += length;
    return out;
  }

  rest(): Uint8Array {
    return this.take(this.remaining);
  }

  skip(length: number, what = 'skip'): void {
    this.need(length, what);
    this.position += length;
  }

  /** A reader over the next `length` bytes; this one moves past them. */
  sub(length: number, what = 'sub-structure'): Reader {
    this.need(length, what);
    const sub = new Reader(
      this.bytes,
      this.position,
      this.position + length,
      this.truncatedNotify,
      this.origin,
    );
    this.position += length;
    return sub;
  }
}
