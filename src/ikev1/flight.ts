import { Retransmission, type RetransmitPolicy } from '../core/retransmit.js';
import { equalBytes } from '../wire/bytes.js';

/**
 * One side's view of an exchange in flight: the last message we sent (to resend on timeout, or when
 * the peer repeats itself) and the last one we received (to recognise the repeat). IKEv1 has no
 * request/response flag, so both roles retransmit while they wait for the peer's next message.
 */
export class Flight {
  lastSent: Uint8Array | undefined;
  /** `timer`: the name of the timer (ProtocolContext.arm) that its retransmissions run on. */
  constructor(readonly timer: string) {}

  #lastReceived: Uint8Array | undefined;
  /** Whether lastSent answers lastReceived; only then does a repeat get it again. */
  #answered = false;
  #retransmission: Retransmission | undefined;

  /** A datagram identical to the last one received: the peer did not get our answer. */
  isRepeat(datagram: Uint8Array): boolean {
    return this.#lastReceived !== undefined && equalBytes(this.#lastReceived, datagram);
  }

  /** Retransmission continues until we send the next message or `stop` ends the exchange. */
  received(datagram: Uint8Array, options: { alreadyAnswered?: boolean } = {}): void {
    this.#lastReceived = datagram;
    this.#answered = options.alreadyAnswered ?? false;
  }

  /**
   * What to send again for a repeated message: our answer to it, if we gave one. Answering
   * repeats of a final message (which we did not answer) would make duplicates ping-pong.
   */
  answerToRepeat(): Uint8Array | undefined {
    return this.#answered ? this.lastSent : undefined;
  }

  /** `awaitReply`: arm the retransmission timer (false for an exchange's last message). */
  sent(data: Uint8Array, now: number, policy: RetransmitPolicy, awaitReply: boolean): void {
    this.lastSent = data;
    this.#answered = this.#lastReceived !== undefined;
    this.#retransmission = awaitReply ? new Retransmission(policy, now) : undefined;
  }

  get dueAt(): number | undefined {
    return this.#retransmission?.dueAt;
  }

  get resends(): number {
    return this.#retransmission?.resends ?? 0;
  }

  poll(now: number): 'wait' | 'resend' | 'give-up' {
    return this.#retransmission?.poll(now) ?? 'wait';
  }

  stop(): void {
    this.#retransmission = undefined;
  }

  /**
   * The exchange is over and lingers a while for repeats. A flight whose last word was the
   * peer's keeps nothing: there is no answer to give again, and what is kept for 30 s ends up in
   * the old generation of the heap.
   */
  linger(): void {
    this.stop();
    if (!this.#answered) this.forget();
  }

  /** Drops the messages kept for repeats: nothing is answered again after this. */
  forget(): void {
    this.stop();
    this.lastSent = undefined;
    this.#lastReceived = undefined;
    this.#answered = false;
  }
}
