/** A message we cannot accept, with the notify RFC 2408 section 3.14.1 answers it with. */
export class ExchangeError extends Error {
  override readonly name = 'ExchangeError';

  constructor(
    message: string,
    readonly notify: number,
  ) {
    super(message);
  }
}
