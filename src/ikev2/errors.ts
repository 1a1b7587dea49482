import type { Failure, FailureCause } from '../core/failure.js';
import { DecodeError } from '../wire/errors.js';
import { notifyName, NotifyType } from './constants.js';

/**
 * An IKEv2 message we cannot accept, with the notify RFC 7296 answers it with; `from: 'peer'`
 * when it is the peer's own error notify we are reporting.
 */
export class Ikev2Error extends Error {
  override readonly name = 'Ikev2Error';

  constructor(
    message: string,
    readonly notify: number,
    readonly from: 'ours' | 'peer' = 'ours',
    readonly failureCause?: FailureCause,
  ) {
    super(message);
  }
}

export function isTyped(error: unknown): error is Ikev2Error | DecodeError {
  return error instanceof Ikev2Error || error instanceof DecodeError;
}

/** The failure cause an IKEv2 error notify stands for. */
export function causeOfNotify(notify: number, from: 'ours' | 'peer' = 'ours'): FailureCause {
  switch (notify) {
    case NotifyType.NO_PROPOSAL_CHOSEN:
    case NotifyType.INVALID_KE_PAYLOAD:
      return 'no-proposal';
    case NotifyType.AUTHENTICATION_FAILED:
      return 'authentication';
    case NotifyType.TS_UNACCEPTABLE:
    case NotifyType.INVALID_SELECTORS:
      return 'selectors';
    default:
      return from === 'peer' ? 'peer-notify' : 'malformed';
  }
}

export function failureOf(error: Ikev2Error | DecodeError): Failure {
  const from = error instanceof Ikev2Error ? error.from : 'ours';
  return {
    cause: (error instanceof Ikev2Error && error.failureCause) || causeOfNotify(error.notify, from),
    reason: from === 'peer' ? error.message : `${error.message} (${notifyName(error.notify)})`,
  };
}
