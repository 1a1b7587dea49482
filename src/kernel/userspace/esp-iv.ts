import * as crypto from 'node:crypto';

/** Where the IV starts in an ESP packet: after SPI and sequence number (RFC 4303 section 2). */
export const SPI_SEQ = 8;

/** Bytes of randomness handed out in small pieces: one getrandom per 256 CBC IVs, not per packet. */
export class RandomPool {
  readonly #pool = Buffer.allocUnsafeSlow(4096);
  #offset = this.#pool.length;

  take(length: number): Buffer {
    if (this.#offset + length > this.#pool.length) {
      crypto.randomFillSync(this.#pool);
      this.#offset = 0;
    }
    const out = this.#pool.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return out;
  }
}

export const randomPool = new RandomPool();

/**
 * The counter modes' IV (CTR, GCM, ChaCha20-Poly1305): a random 64-bit value fixed per SA plus
 * the sequence number, unique within the SA because the sequence number never cycles (see
 * esp-crypto.ts).
 */
export class CounterIv {
  readonly #high: number;
  readonly #low: number;

  constructor(random: Uint8Array) {
    const view = Buffer.from(random.buffer, random.byteOffset, 8);
    this.#high = view.readUInt32BE(0);
    this.#low = view.readUInt32BE(4);
  }

  write(packet: Buffer, seq: number): void {
    packet.writeUInt32BE(this.#high, SPI_SEQ);
    packet.writeUInt32BE((this.#low + seq) >>> 0, SPI_SEQ + 4);
  }
}
