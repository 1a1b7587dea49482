import type { Failure, FailureCause } from '../core/failure.js';
import { DecodeError } from '../wire/errors.js';
import { notifyName, NotifyType } from './constants.js';

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
    /** When the notify alone does not say it (selectors refused under NO_PROPOSAL_CHOSEN). */
    readonly failureCause?: FailureCause,
  ) {
    super(message);
  }
}

/** Whether an error is one of the typed ones a message can cause (anything else is a bug of ours). */
export function isTyped(error: unknown): error is ExchangeError | DecodeError {
  return error instanceof ExchangeError || error instanceof DecodeError;
}

/** A typed failure from an error a message caused, the notify named in its reason. */
export function failureOf(error: ExchangeError | DecodeError): Failure {
  const reason =
    error instanceof DecodeError
      ? `${error.message} at offset ${error.offset} (${notifyName(error.notify)})`
      : `${error.message} (${notifyName(error.notify)})`;
  return {
    cause: (error instanceof ExchangeError && error.failureCause) || causeOfNotify(error.notify),
    reason,
  };
}

/** The failure cause an ISAKMP notify (ours or the peer's) stands for. */
export function causeOfNotify(notify: number): FailureCause {
  switch (notify) {
    case NotifyType.NO_PROPOSAL_CHOSEN:
      return 'no-proposal';
    case NotifyType.AUTHENTICATION_FAILED:
    case NotifyType.INVALID_HASH_INFORMATION:
    case NotifyType.INVALID_SIGNATURE:
      return 'authentication';
    case NotifyType.INVALID_ID_INFORMATION:
      return 'identity';
    default:
      return 'malformed';
  }
}

/**
 * A protected message that failed before its integrity was verified (it does not decrypt, its
 * HASH is wrong, it does not parse): it may be forged or garbled, so it changes nothing and is
 * logged at a bounded rate only.
 */
export class UnverifiedMessage extends ExchangeError {
  constructor(readonly error: ExchangeError | DecodeError) {
    super(error.message, error.notify);
  }
}

/** Runs the steps up to a message's integrity check: their typed errors become UnverifiedMessage. */
export function beforeVerification<T>(steps: () => T): T {
  try {
    return steps();
  } catch (error) {
    if (isTyped(error) && !(error instanceof UnverifiedMessage)) throw new UnverifiedMessage(error);
    throw error;
  }
}
