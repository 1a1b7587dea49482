/**
 * A decoding failure: where in the datagram, what was wrong, and which notify the protocol
 * prescribes as the answer (the numbering is the caller's: ISAKMP or IKEv2).
 */
export class DecodeError extends Error {
  constructor(
    message: string,
    readonly offset: number,
    readonly notify: number,
  ) {
    super(`${message} (at byte ${offset})`);
    this.name = 'DecodeError';
  }
}
