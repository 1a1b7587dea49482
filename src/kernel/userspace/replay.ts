/**
 * ESP sequence numbers without ESN (RFC 4303 section 2.2): 32 bits, the first packet of an SA is
 * number 1, and the counter never cycles.
 *
 *  - Outbound (section 3.3.3): the sender refuses to go past 2^32 - 1; the SA must be rekeyed.
 *  - Inbound (section 3.4.3): a sliding anti-replay window. The bitmap is a ring of 32-bit words
 *    with one spare word (the scheme of RFC 6479): advancing the window clears whole words instead
 *    of shifting the bitmap, so a window of 1024 or 4096 packets costs the same per packet as 64.
 */

/** The last sequence number an SA without ESN may send. */
export const SEQUENCE_MAX = 0xffffffff;

/** What the window thinks of a sequence number. */
export type ReplayVerdict = 'new' | 'duplicate' | 'too-old' | 'invalid';

export class ReplayWindow {
  /** Packets behind the highest one that are still accepted (if not seen yet). */
  readonly size: number;
  readonly #words: Uint32Array;
  /** Highest sequence number accepted so far; 0 before the first packet. */
  #top = 0;

  /** `size` is a multiple of 32, from 32 up to 2^20 (RFC 4303 asks for at least 32, default 64). */
  constructor(size = 64) {
    if (!Number.isInteger(size) || size < 32 || size > 1 << 20 || size % 32 !== 0) {
      throw new RangeError(`replay window size must be a multiple of 32 from 32 to 1048576, not ${size}`);
    }
    this.size = size;
    this.#words = new Uint32Array(size / 32 + 1);
  }

  get top(): number {
    return this.#top;
  }

  /**
   * The check before integrity verification (section 3.4.3: duplicates and packets left of the
   * window are dropped without spending the ICV computation on them). Does not change the window.
   */
  check(seq: number): ReplayVerdict {
    if (seq === 0 || seq > SEQUENCE_MAX) return 'invalid';
    if (seq > this.#top) return 'new';
    if (this.#top - seq >= this.size) return 'too-old';
    const words = this.#words;
    const bit = 1 << (seq & 31);
    return words[(seq >>> 5) % words.length]! & bit ? 'duplicate' : 'new';
  }

  /**
   * Records a sequence number whose packet passed integrity verification (only then may the window
   * move, section 3.4.3). Returns false, and changes nothing, when check() would refuse it.
   */
  accept(seq: number): boolean {
    if (this.check(seq) !== 'new') return false;
    const words = this.#words;
    const length = words.length;
    if (seq > this.#top) {
      // Clear the words the window slides onto, at most the whole ring.
      const from = this.#top >>> 5;
      const to = seq >>> 5;
      const steps = Math.min(to - from, length);
      for (let i = 1; i <= steps; i++) words[(from + i) % length] = 0;
      this.#top = seq;
    }
    words[(seq >>> 5) % length]! |= 1 << (seq & 31);
    return true;
  }
}

/**
 * The outbound counter of an SA. `next()` hands out 1, 2, ... 2^32 - 1 and then undefined for
 * ever: the SA has to be replaced (RFC 4303 section 3.3.3, "the sender's counter ... MUST NOT be
 * allowed to cycle").
 */
export class SequenceCounter {
  #next: number;

  /** `first` is for tests that start near the end of the space. */
  constructor(first = 1) {
    if (!Number.isInteger(first) || first < 1 || first > SEQUENCE_MAX + 1) {
      throw new RangeError(`first sequence number must be from 1 to 2^32, not ${first}`);
    }
    this.#next = first;
  }

  /** The number the next packet would carry (2^32 once exhausted). */
  get peek(): number {
    return this.#next;
  }

  get exhausted(): boolean {
    return this.#next > SEQUENCE_MAX;
  }

  next(): number | undefined {
    const seq = this.#next;
    if (seq > SEQUENCE_MAX) return undefined;
    this.#next = seq + 1;
    return seq;
  }
}
