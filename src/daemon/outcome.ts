import type { Failure } from '../core/failure.js';
import type { ConnectionStatus } from '../core/status.js';
import type { DaemonEvent } from './events.js';

/**
 * What became of an initiate or a terminate: the one waiter the library (IkeNode.initiate and
 * terminate) and the command line (`ike-node initiate NAME`, through the control socket) share.
 * Built from the daemon's events: the connection's status moving to Active (up), to Error (failed,
 * with the typed cause and reason of the failure), to Down (down), or nothing within the time
 * allowed (timeout).
 */

export type OutcomeState = 'up' | 'down' | 'failed' | 'timeout';

export interface Outcome {
  readonly connection: string;
  readonly state: OutcomeState;
  /** Present when the state is 'failed' or 'timeout'. */
  readonly failure?: Failure;
}

/** What an initiate or terminate waits for. */
export type Goal = 'up' | 'down';

export interface OutcomeOptions {
  /** Seconds to wait for the outcome (default DEFAULT_OUTCOME_TIMEOUT). */
  readonly timeout?: number;
  /** Stops waiting: the promise rejects with the signal's reason (what was started goes on). */
  readonly signal?: AbortSignal;
}

/**
 * Long enough for an IKE SA and its child SA with the default retransmissions (2 s, x1.8, 5 tries:
 * about 40 s before the engine itself gives up with a 'timeout' failure).
 */
export const DEFAULT_OUTCOME_TIMEOUT = 60;

/** What the waiter reads: a Daemon, or anything with its events and status. */
export interface OutcomeSource {
  on(event: 'event', listener: (event: DaemonEvent) => void): unknown;
  off(event: 'event', listener: (event: DaemonEvent) => void): unknown;
  status(name: string): ConnectionStatus[];
}

/**
 * Runs `command` (an initiate or a terminate of connection `name`) and resolves with its outcome.
 * Listening starts before the command, so that what it settles at once is seen too; a command that
 * throws (an unknown name) rejects.
 */
export function awaitOutcome(
  source: OutcomeSource,
  name: string,
  goal: Goal,
  command: () => void,
  options: OutcomeOptions & {
    /** The node stopped: what still waits settles as 'down'. */
    stopped?: AbortSignal;
  } = {},
): Promise<Outcome> {
  const { signal, stopped } = options;
  const timeout = options.timeout ?? DEFAULT_OUTCOME_TIMEOUT;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<Outcome>((resolve, reject) => {
    let done = false;
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      source.off('event', listener);
      signal?.removeEventListener('abort', abort);
      stopped?.removeEventListener('abort', stop);
      clearTimeout(timer);
      settle();
    };
    const settled = (outcome: Outcome) => finish(() => resolve(outcome));
    const abort = () => finish(() => reject(signal!.reason));
    const stop = () => settled({ connection: name, state: 'down' });
    const listener = (event: DaemonEvent) => {
      if (!concerns(event, name)) return;
      const outcome = decide(event, name, goal);
      if (outcome) settled(outcome);
    };
    const timer = setTimeout(() => {
      const reason = `no outcome within ${timeout} s`;
      settled({ connection: name, state: 'timeout', failure: { cause: 'timeout', reason } });
    }, timeout * 1000);
    source.on('event', listener);
    signal?.addEventListener('abort', abort, { once: true });
    stopped?.addEventListener('abort', stop, { once: true });
    try {
      command();
    } catch (error) {
      finish(() => reject(error as Error));
      return;
    }
    if (done) return; // an event the command caused settled it
    // Settled by the command itself without an event (already up, or down, or still refused)?
    const now = stopped?.aborted
      ? { connection: name, state: 'down' as const }
      : settledBy(source.status(name)[0], goal);
    if (now) settled(now);
  });
}

function concerns(event: DaemonEvent, name: string): boolean {
  return 'connection' in event && event.connection === name;
}

/** The outcome an event brings, if it settles the wait. */
function decide(event: DaemonEvent, name: string, goal: Goal): Outcome | undefined {
  if (event.type === 'negotiation-failed' && goal === 'up')
    return { connection: name, state: 'failed', failure: { cause: event.cause, reason: event.reason } };
  if (event.type !== 'connection') return undefined;
  if (event.status === 'Active') return goal === 'up' ? { connection: name, state: 'up' } : undefined;
  if (event.status === 'Error' && goal === 'up')
    return {
      connection: name,
      state: 'failed',
      failure: { cause: event.cause ?? 'peer-notify', reason: event.error ?? 'failed' },
    };
  if (event.status === 'Down' || event.status === 'Error') return { connection: name, state: 'down' };
  return undefined;
}

/** The outcome the status right after the command shows, if it is final already. */
function settledBy(status: ConnectionStatus | undefined, goal: Goal): Outcome | undefined {
  if (!status) return undefined;
  const { name } = status;
  if (goal === 'down')
    return status.status === 'Down' || status.status === 'Error'
      ? { connection: name, state: 'down' }
      : undefined;
  if (status.status === 'Active') return { connection: name, state: 'up' };
  if (status.status === 'Error')
    return {
      connection: name,
      state: 'failed',
      failure: { cause: status.cause ?? 'peer-notify', reason: status.error ?? 'failed' },
    };
  return undefined;
}
