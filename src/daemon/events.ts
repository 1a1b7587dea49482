import type { EngineEvent } from '../core/actions.js';
import type { FailureCause } from '../core/failure.js';
import {
  childSaStatus,
  type ChildSaStatus,
  type ConnectionState,
  ikeSaStatus,
  type IkeSaStatus,
} from '../core/status.js';

/**
 * What the daemon tells its subscribers (the library's typed events, the control socket's event
 * stream, metrics): connections going up and down, SAs added, rekeyed and deleted, failed
 * negotiations, reloads. Built from the engine's events and from status changes; keys never
 * appear (SAs are given in their status form).
 */

export type SaChange = 'added' | 'rekeyed' | 'deleted';

interface Stamped {
  /** Seconds (the daemon's clock: Unix time unless a test gives another). */
  readonly time: number;
}

export type DaemonEvent = Stamped &
  (
    | {
        readonly type: 'connection';
        readonly connection: string;
        readonly status: ConnectionState;
        readonly previous: ConnectionState;
        readonly error?: string;
        readonly cause?: FailureCause;
      }
    | {
        readonly type: 'ike-sa';
        readonly change: SaChange;
        readonly connection: string;
        readonly ikeSa: IkeSaStatus;
        /** For 'rekeyed': the id of the SA this one replaces. */
        readonly replaces?: number;
        readonly reason?: string;
      }
    | {
        readonly type: 'child-sa';
        readonly change: SaChange;
        readonly connection: string;
        readonly childSa: ChildSaStatus;
        readonly replaces?: number;
        readonly reason?: string;
      }
    | {
        readonly type: 'negotiation-started';
        readonly kind: 'ike' | 'child';
        readonly ikeSa: number;
        readonly connection?: string;
      }
    | {
        readonly type: 'negotiation-failed';
        /** An IKE SA or a child SA (quick mode, CREATE_CHILD_SA) negotiation. */
        readonly kind: 'ike' | 'child';
        readonly connection?: string;
        readonly cause: FailureCause;
        readonly reason: string;
        /** Refused at its first message: no 'negotiation-started' came before it. */
        readonly refused?: true;
      }
    | { readonly type: 'retransmit'; readonly ikeSa: number; readonly connection?: string }
    | {
        readonly type: 'reload';
        readonly added: readonly string[];
        readonly changed: readonly string[];
        readonly removed: readonly string[];
      }
  );

export type DaemonEventType = DaemonEvent['type'];

/** For a typed EventEmitter: each event under its own type, and all of them under 'event'. */
export type DaemonEventMap = { [K in DaemonEventType]: [Extract<DaemonEvent, { type: K }>] } & {
  event: [DaemonEvent];
};

/** Distributive Omit, so that each member of the union keeps its own fields. */
type Unstamped<T> = T extends unknown ? Omit<T, 'time'> : never;
export type DaemonEventBody = Unstamped<DaemonEvent>;

/** The daemon event an engine event becomes, if any. */
export function fromEngineEvent(event: EngineEvent): DaemonEventBody | undefined {
  switch (event.type) {
    case 'ike-up':
      return {
        type: 'ike-sa',
        change: event.rekeyed === undefined ? 'added' : 'rekeyed',
        connection: event.ikeSa.connection,
        ikeSa: ikeSaStatus(event.ikeSa),
        ...(event.rekeyed !== undefined && { replaces: event.rekeyed }),
      };
    case 'ike-down':
      return {
        type: 'ike-sa',
        change: 'deleted',
        connection: event.ikeSa.connection,
        ikeSa: ikeSaStatus(event.ikeSa),
        reason: event.reason,
      };
    case 'child-up':
      return {
        type: 'child-sa',
        change: event.rekeyed === undefined ? 'added' : 'rekeyed',
        connection: event.child.connection,
        childSa: childSaStatus(event.child),
        ...(event.rekeyed !== undefined && { replaces: event.rekeyed }),
      };
    case 'child-down':
      return {
        type: 'child-sa',
        change: 'deleted',
        connection: event.child.connection,
        childSa: childSaStatus(event.child),
        reason: event.reason,
      };
    case 'failed':
      return {
        type: 'negotiation-failed',
        kind: event.kind,
        cause: event.cause,
        reason: event.reason,
        ...(event.connection && { connection: event.connection }),
        ...(event.refused && { refused: true }),
      };
    case 'connection':
      return {
        type: 'connection',
        connection: event.connection,
        status: event.status,
        previous: event.previous,
        ...(event.error && { error: event.error }),
        ...(event.cause && { cause: event.cause }),
      };
    case 'negotiation-started':
    case 'retransmit':
      return event;
    case 'log':
    case 'ike-keys':
      return undefined;
  }
}

/** One readable line per event (`ike-node events`). */
export function describeEvent(event: DaemonEvent): string {
  const time = new Date(event.time * 1000).toISOString();
  const body = (() => {
    switch (event.type) {
      case 'connection':
        return `${event.connection}: ${event.previous} -> ${event.status}${event.error ? ` (${event.error})` : ''}`;
      case 'ike-sa':
        return (
          `${event.connection}: IKE SA #${event.ikeSa.id} ${event.change}` +
          `${event.replaces !== undefined ? ` (replaces #${event.replaces})` : ''}` +
          `${event.reason ? `: ${event.reason}` : ''}, ${event.ikeSa.local} <-> ${event.ikeSa.remote}`
        );
      case 'child-sa':
        return (
          `${event.connection}: child SA #${event.childSa.id} ${event.change}` +
          `${event.replaces !== undefined ? ` (replaces #${event.replaces})` : ''}` +
          `${event.reason ? `: ${event.reason}` : ''}, SPIs ${event.childSa.spiIn}_i ${event.childSa.spiOut}_o`
        );
      case 'negotiation-started':
        return `${event.connection ?? '(unknown connection)'}: ${event.kind === 'ike' ? 'IKE' : 'child'} SA negotiation started (IKE SA #${event.ikeSa})`;
      case 'negotiation-failed':
        return `${event.connection ?? '(unknown connection)'}: negotiation failed: ${event.reason}`;
      case 'retransmit':
        return `${event.connection ?? '(unknown connection)'}: retransmitted (IKE SA #${event.ikeSa})`;
      case 'reload':
        return `reload: added ${list(event.added)}, changed ${list(event.changed)}, removed ${list(event.removed)}`;
    }
  })();
  return `${time} ${event.type} ${body}`;
}

function list(names: readonly string[]): string {
  return names.length ? names.join(' ') : '-';
}
