import { DecodeError } from '../wire/errors.js';

/** The notify an error answers with: PAYLOAD_MALFORMED and friends for the typed ones, else none. */
export function notifyOf(error: unknown): number | undefined {
  return error instanceof ExchangeError || error instanceof DecodeError ? error.notify : undefined;
}

/** A message we cannot accept, with the notify RFC 2408 section 3.14.1 answers it with. */
export class ExchangeError extends Error {
  override readonly name = 'ExchangeError';

  constructor(
    message: string,
    readonly notify: number,
    /** The connections the failure concerns, when no SA records it (a refused first message). */
    readonly connections: readonly string[] = [],
  ) {
    super(message);
  }
}
