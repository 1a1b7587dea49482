/**
 * Scratch buffers that finished writers hand back. Every message is built in one and copied out
 * at `finish()`, so a scratch buffer of its own per writer (an ArrayBuffer, each a malloc block
 * and a backing store for V8 to sweep) would be pure churn: a handshake builds dozens of them.
 * Writers that are never finished simply keep theirs; no two live writers share one.
 */
const scratch: Uint8Array[] = [];
const SCRATCH_KEPT = 8;
const SCRATCH_SIZE = 2048;
const EMPTY = new Uint8Array(0);

/** An append-only byte builder with back-patching of length fields. */
export class Writer {
  private buffer: Uint8Array;
  private length = 0;

  constructor(initialCapacity = 256) {
    const reused = initialCapacity <= SCRATCH_SIZE ? scratch.pop() : undefined;
    this.buffer = reused ?? new Uint8Array(Math.max(initialCapacity, SCRATCH_SIZE));
  }

  get offset(): number {
    return this.length;
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    let capacity = Math.max(this.buffer.length * 2, 64);
    while (capacity < this.length + extra) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }

  u8(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xff)
      throw new RangeError(`u8 out of range: ${value}`);
    this.reserve(1);
    this.buffer[this.length++] = value;
    return this;
  }

  u16(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff)
      throw new RangeError(`u16 out of range: ${value}`);
    this.reserve(2);
    this.buffer[this.length++] = value >>> 8;
    this.buffer[this.length++] = value & 0xff;
    return this;
  }

  u32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
      throw new RangeError(`u32 out of range: ${value}`);
    this.reserve(4);
    this.patchU32(this.length, value);
    this.length += 4;
    return this;
  }

  bytes(data: Uint8Array): this {
    this.reserve(data.length);
    this.buffer.set(data, this.length);
    this.length += data.length;
    return this;
  }

  /** Overwrites a 16-bit field written earlier (payload lengths are known only at the end). */
  patchU16(at: number, value: number): void {
    if (value > 0xffff) throw new RangeError(`length ${value} does not fit in 16 bits`);
    this.buffer[at] = value >>> 8;
    this.buffer[at + 1] = value & 0xff;
  }

  patchU32(at: number, value: number): void {
    const b = this.buffer;
    b[at] = value >>> 24;
    b[at + 1] = (value >>> 16) & 0xff;
    b[at + 2] = (value >>> 8) & 0xff;
    b[at + 3] = value & 0xff;
  }

  patchU8(at: number, value: number): void {
    this.buffer[at] = value;
  }

  /** The bytes written so far, in a buffer of their own; writing goes on (what a MAC covers). */
  copy(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }

  /**
   * The bytes written, in a buffer of their own, and the end of this writer's message: the
   * scratch buffer goes back to the pool wiped (a message may carry an identity or a hash), and
   * this writer starts again from nothing.
   */
  finish(): Uint8Array {
    const out = this.copy();
    const { buffer, length } = this;
    this.buffer = EMPTY;
    this.length = 0;
    if (buffer.length === SCRATCH_SIZE && scratch.length < SCRATCH_KEPT) {
      buffer.fill(0, 0, length);
      scratch.push(buffer);
    }
    return out;
  }
}
