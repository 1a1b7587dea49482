import type { IkeSa } from '../core/ike-sa.js';
import type { ProtocolContext } from '../core/protocol.js';
import type { DhJob, DhJobResult } from '../crypto/dh-job.js';
import { InvalidPublicValueError } from '../crypto/errors.js';
import type { DecodeError } from '../wire/errors.js';
import { NotifyType } from './constants.js';
import { ExchangeError, isTyped } from './errors.js';

/**
 * A Diffie-Hellman step of an exchange, through ProtocolContext.compute (maybe on another thread).
 * `then` continues the exchange with the result; a peer value that fails validation (RFC 6989),
 * and any typed error the continuation throws, go to `fail`, as they would have had the whole
 * message been handled at once.
 */
export function computeDh(
  ctx: ProtocolContext,
  sa: IkeSa,
  job: DhJob,
  fail: (error: ExchangeError | DecodeError) => void,
  then: (result: DhJobResult) => void,
): void {
  ctx.compute(sa, job, (result) => {
    if (result instanceof InvalidPublicValueError) {
      fail(new ExchangeError(result.message, NotifyType.INVALID_KEY_INFORMATION));
      return;
    }
    if (result instanceof Error) throw result;
    try {
      then(result);
    } catch (error) {
      if (!isTyped(error)) throw error;
      fail(error);
    }
  });
}
