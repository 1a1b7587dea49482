import { peekIkeHeader } from '../wire/ike-header.js';

/**
 * Legitimate peers first. A first message (IKEv1 main mode 1, IKEv2 IKE_SA_INIT: the responder's
 * SPI is zero) is the cheapest thing to forge: it needs no SPI, no key and no return path, so a
 * flood is made of them. Every other message names an SA that exists, which an off-path sender
 * cannot guess. The daemon therefore hands every other message to the engine as soon as it is
 * read, and lets first messages wait in a bounded queue of their own that is served between
 * reads, a few at a time. Under a flood the socket is read at the pace of reading, not of
 * answering first messages, so an exchange under way is not stuck behind megabytes of main
 * mode 1 in the kernel's receive buffer, and when the queue is full its oldest entry goes (its
 * sender, if it is a real peer, sends it again).
 */

/**
 * The daemon's queue: 1,024 first messages (as many as the default half-open limit admits) at
 * about 20-50 µs each in the engine is well under a second of work, far inside an initiator's
 * first retransmission; 32 per turn keeps a read of the sockets between every 32.
 */
export const FIRST_MESSAGE_QUEUE = 1024;
export const FIRST_MESSAGES_PER_TURN = 32;

/** IKEv2's Notify payload type (RFC 7296 section 3.10). */
const NOTIFY = 41;

/**
 * A first message that proves nothing: main mode 1, or an IKE_SA_INIT that does not open with a
 * Notify. A retried IKE_SA_INIT carries the COOKIE we handed out as its first payload (RFC 7296
 * section 2.6), which shows the sender receives at its address; the engine checks the cookie
 * without Diffie-Hellman or state, so such a message goes straight to it. A forged one is
 * refused there as cheaply as it would be dropped here.
 */
export function isUnprovenFirstMessage(datagram: Uint8Array): boolean {
  const header = peekIkeHeader(datagram);
  if (!header?.initial) return false;
  return !(header.majorVersion === 2 && datagram[16] === NOTIFY);
}

/** What the queue has done, for metrics. */
export interface FirstMessageStats {
  /** Queued first messages dropped, the oldest first, because the queue was full. */
  readonly dropped: number;
}

/**
 * A bounded FIFO served `perTurn` entries per turn of the event loop (setImmediate: after the
 * poll phase has read what the sockets hold), so reads, and with them the messages of exchanges
 * under way, come between every few first messages.
 */
export class FirstMessageQueue<T> implements FirstMessageStats {
  readonly #ring: (T | undefined)[];
  #head = 0;
  #length = 0;
  #dropped = 0;
  #scheduled: NodeJS.Immediate | undefined;
  readonly #perTurn: number;
  readonly #deliver: (item: T) => void;

  constructor(options: { capacity: number; perTurn: number; deliver: (item: T) => void }) {
    if (!(options.capacity >= 1 && options.perTurn >= 1))
      throw new RangeError('capacity and perTurn must be ≥ 1');
    this.#ring = new Array<T | undefined>(options.capacity);
    this.#perTurn = options.perTurn;
    this.#deliver = options.deliver;
  }

  get dropped(): number {
    return this.#dropped;
  }

  get length(): number {
    return this.#length;
  }

  push(item: T): void {
    const capacity = this.#ring.length;
    if (this.#length === capacity) {
      // Full: the oldest goes, so what waits is never older than the queue's length of reading.
      this.#head = (this.#head + 1) % capacity;
      this.#length--;
      this.#dropped++;
    }
    this.#ring[(this.#head + this.#length) % capacity] = item;
    this.#length++;
    this.#scheduled ??= setImmediate(this.#turn);
  }

  /** Forgets what waits (the daemon stops). */
  clear(): void {
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    this.#ring.fill(undefined);
    this.#head = 0;
    this.#length = 0;
  }

  readonly #turn = (): void => {
    this.#scheduled = undefined;
    for (let served = 0; served < this.#perTurn && this.#length > 0; served++) {
      const item = this.#ring[this.#head] as T;
      this.#ring[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.#ring.length;
      this.#length--;
      this.#deliver(item);
    }
    if (this.#length > 0) this.#scheduled = setImmediate(this.#turn);
  };
}
