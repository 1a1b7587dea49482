/**
 * Retransmission timing: the n-th resend waits timeout * backoff^n seconds (strongSwan's and the
 * RFCs' exponential backoff), and after `tries` resends the exchange is given up.
 */
export interface RetransmitPolicy {
  readonly timeout: number;
  readonly backoff: number;
  readonly tries: number;
}

export const DEFAULT_RETRANSMIT: RetransmitPolicy = { timeout: 2, backoff: 1.8, tries: 5 };

export class Retransmission {
  #sent = 0;
  #dueAt: number;

  constructor(
    readonly policy: RetransmitPolicy,
    now: number,
  ) {
    this.#dueAt = now + policy.timeout;
  }

  get dueAt(): number {
    return this.#dueAt;
  }

  get resends(): number {
    return this.#sent;
  }

  /** At `now`: 'wait', 'resend' (and the next due time is armed), or 'give-up'. */
  poll(now: number): 'wait' | 'resend' | 'give-up' {
    if (now < this.#dueAt) return 'wait';
    if (this.#sent >= this.policy.tries) return 'give-up';
    this.#sent++;
    this.#dueAt = now + this.policy.timeout * this.policy.backoff ** this.#sent;
    return 'resend';
  }
}
