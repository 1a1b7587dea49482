import type { Action, EngineEvent, LogLevel } from './actions.js';
import {
  appended,
  CountBuckets,
  EMPTY,
  GroupIndex,
  isMember,
  join,
  leave,
  type Members,
  membersOf,
  without,
} from './collections.js';
import { type Connection, diffConnections, formatIdentity, type Identity } from './connection.js';
import { ConnectionIndex } from './connection-index.js';
import { CommandError } from './command-error.js';
import { Deadlines } from './deadlines.js';
import { type Endpoint, formatEndpoint, sameEndpoint } from './endpoint.js';
import type { Failure } from './failure.js';
import type { ChildEntry, ChildNegotiation, IkeSa } from './ike-sa.js';
import type { KernelEvent } from './kernel-event.js';
import { schedule } from './lifetime.js';
import { sharedSuite } from './proposal.js';
import type { ChildSaSpec, EngineSettings, IkeProtocol, ProtocolContext } from './protocol.js';
import { heldBack, RateLimitedLog } from './rate-limited-log.js';
import { DEFAULT_RETRANSMIT, type RetransmitPolicy } from './retransmit.js';
import type { ChildSa } from './sa.js';
import { childSaStatus, type ConnectionState, type ConnectionStatus, ikeSaStatus } from './status.js';
import {
  parseTrafficSelector,
  sameTrafficSelector,
  sharedTrafficSelector,
  type TrafficSelector,
} from './traffic-selector.js';
import { type DhJob, type DhJobResult, runDhJob } from '../crypto/dh-job.js';
import type { CryptoProvider } from '../crypto/provider.js';
import { peekIkeHeader } from '../wire/ike-header.js';
import { readU32be, toHex } from '../wire/bytes.js';

/**
 * The IKE engine both versions stand on, sans-I/O: datagrams, timer ticks, kernel events and
 * commands in (each with `now` in seconds), actions out. It owns what IKEv1 and IKEv2 share: the
 * SA table with its indexes (one id space for IKE SAs, child SAs and negotiations), dispatch by
 * the header's version, the child SA lifecycle (schedule, install, rekey, expiry, the kernel's
 * events), liveness checks and NAT-T keepalives, half-open limits, INITIAL-CONTACT, status and
 * reconfiguration. The protocol modules (IkeProtocol) do the exchanges.
 *
 * Nothing one input does walks every SA: timers are deadlines in a heap, lookups go through
 * indexes, and a connection's status is kept up to date as its SAs change.
 */

export interface IkeEngineOptions {
  readonly crypto: CryptoProvider;
  readonly connections: readonly Connection[];
  /** The protocol modules, one per IKE version (src/protocols.ts has the usual set). */
  readonly protocols: readonly IkeProtocol[];
  /** Our IKE ports (500 and 4500 in production; anything in tests). */
  readonly port?: number;
  readonly natPort?: number;
  /** Source address for connections that name no local address. */
  readonly defaultLocalAddress?: string;
  readonly retransmit?: RetransmitPolicy;
  /** Uniform in [0, 1): rekey jitter. */
  readonly random?: () => number;
  /**
   * Responder SAs not yet authenticated, at most, in all (default 1024) and per peer address
   * (default an eighth of that: a few sources cannot take every slot, a NAT in front of many
   * clients still can serve a hundred at once).
   */
  readonly maxHalfOpen?: number;
  readonly maxHalfOpenPerAddress?: number;
  readonly halfOpenTimeout?: number;
  /** Child SA negotiations a peer may have under way on one IKE SA. */
  readonly maxChildNegotiations?: number;
  /** RFC 3948 section 4: keepalives every 20 s from behind a NAT. */
  readonly keepaliveInterval?: number;
  /** Emit 'ike-keys' events with the keys that protect IKE messages, for a Wireshark key log. */
  readonly exportKeys?: boolean;
  /** Claim a NAT so that ESP goes in UDP (the userspace data plane sends nothing else). */
  readonly forceEncapsulation?: boolean;
  /** The largest IP datagram of an IKE message before it is fragmented (default 1280, RFC 7383). */
  readonly fragmentSize?: number;
  /** Inbound SPIs from a synchronous source of the embedder's; absent (and not reserveSpis), random ones. */
  readonly allocateSpi?: (local: string, remote: string) => number | undefined;
  /**
   * Inbound SPIs are reserved by the runtime's kernel backend (XFRM_MSG_ALLOCSPI, SADB_GETSPI):
   * the engine emits `reserve-spi` actions and continues on `spiReserved()`, so that no input
   * waits on a kernel round trip.
   */
  readonly reserveSpis?: boolean;
  /** The most verbose log events to emit (default debug: all); the runtime's filter, applied early. */
  readonly logLevel?: LogLevel;
  /**
   * Where Diffie-Hellman runs: 'inline' (default) computes at once with `crypto`; 'deferred'
   * emits `compute` actions for the runtime (a worker pool) and continues on `computed()`.
   */
  readonly compute?: 'inline' | 'deferred';
}

/** What a connection's status is made of, kept current as its SAs change. */
interface ConnectionRecord {
  ikeSas: Members<IkeSa>;
  children: Members<ChildEntry>;
  /** IKE SAs of this connection not yet up. */
  pendingIke: number;
  /** Child negotiations under way. */
  negotiations: number;
  /** Waiting for another connection's IKE SA (an IKEv1 sibling) to come up. */
  waitingOn: IkeSa | undefined;
  /** Established responder IKE SAs waiting for the peer's first child negotiation (IkeSa.awaitingChild). */
  awaitingChild: number;
  error: Failure | undefined;
  /** The status last reported in a 'connection' event. */
  reported: ConnectionState;
}

/** Core timer names; anything else belongs to the SA's protocol. */
const HALF_OPEN = '#half-open';
/** How long a responder's new IKE SA counts as its connection coming up without a child negotiation. */
const FIRST_CHILD = '#first-child';
const REKEY = '#rekey';
const EXPIRE = '#expire';
const LIVENESS = '#liveness';
const KEEPALIVE = '#keepalive';
/** How long a Delete of ours may wait for its answer before the SA is forgotten anyway. */
const CLOSE = '#close';
const CLOSE_WAIT = 60;
/** Seconds before a failed child SA rekey is tried again. */
const REKEY_RETRY = 10;
/**
 * A child SA we replaced keeps its inbound SA this long (seconds): the peer sends on it until our
 * Delete reaches it (strongSwan installs its new outbound SA only then), and what it sent meanwhile
 * is still on the way. Our outbound traffic takes the newer SA at once (backends prefer the newest).
 */
const RETIRE = '#retire';
const RETIRE_WAIT = 5;
/**
 * Child SAs the peer replaced (a rekey we answered) that it has not deleted yet, kept per IKE SA,
 * connection and selector pair: one is the normal case, a second a Delete still in flight.
 */
const MAX_REPLACED_PER_PAIR = 2;

const LOG_RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** Log lines about unauthenticated input: one per cause per interval, each at most this long. */
const UNAUTHENTICATED_LOG_INTERVAL = 5;
const MAX_LOG_LINE = 400;

/** IkeEngine.stats: counters of refusals and internal errors since the engine was made. */
export type EngineStats = Readonly<{
  refusedHalfOpen: number;
  evictedHalfOpen: number;
  refusedNegotiations: number;
  internalErrors: number;
}>;

export class IkeEngine {
  #connections: ConnectionIndex;
  readonly #protocols = new Map<number, IkeProtocol>();
  #settings: EngineSettings;
  readonly #crypto: CryptoProvider;
  /** The key of #pskTag, made when first needed. */
  #pskSalt: Uint8Array | undefined;
  readonly #random: () => number;
  readonly #defaultLocalAddress: string | undefined;
  readonly #limits: {
    maxHalfOpen: number;
    maxHalfOpenPerAddress: number;
    halfOpenTimeout: number;
    maxChildNegotiations: number;
    keepaliveInterval: number;
  };
  readonly #allocateSpi: IkeEngineOptions['allocateSpi'];
  #reserveSpis: boolean;
  readonly #reservations = new Map<number, { sa: IkeSa; then: (spi: number) => void }>();
  readonly #deferCompute: boolean;
  /** Log events above this rank (LOG_RANK) are not emitted. */
  readonly #logRank: number;

  readonly #sas = new Map<number, IkeSa>();
  readonly #keys = new Map<string, IkeSa>();
  readonly #children = new Map<number, ChildEntry>();
  /** Child SAs gone from status whose inbound SA still takes the peer's last packets (RETIRE_WAIT). */
  readonly #retiring = new Set<ChildEntry>();
  /** Children by the SPI the peer knows them by (its Deletes name it). */
  readonly #bySpiOut = new GroupIndex<number, ChildEntry>();
  /** Children by connection and peer address: the IKEv1 adoption of orphans looks here. */
  readonly #byPeer = new GroupIndex<string, ChildEntry>();
  /** Negotiations by the id of the child whose inbound SA went in ahead. */
  readonly #inbound = new Map<number, ChildNegotiation>();
  /** IKE SAs by share group (ProtocolContext: siblings carried by one SA) and by authenticated identity. */
  readonly #groups = new GroupIndex<string, IkeSa>();
  readonly #identities = new GroupIndex<string, IkeSa>();
  readonly #records = new Map<string, ConnectionRecord>();
  readonly #dirty = new Set<string>();
  #halfOpen = 0;
  /** Half-open SAs by peer address, oldest first (insertion order): what a full table drops first. */
  readonly #halfOpenByAddress = new Map<string, Set<IkeSa>>();
  /** The addresses by how many half-open SAs each holds: the busiest without a walk. */
  readonly #halfOpenCounts = new CountBuckets<string>();
  readonly #deadlines = new Deadlines<IkeSa | ChildEntry>();
  readonly #computes = new Map<number, { sa: IkeSa; then: (result: DhJobResult | Error) => void }>();
  readonly #unauthenticatedLog: RateLimitedLog;
  /** Protocol work that an outcome asks for, run after the protocol call that reported it. */
  readonly #after: (() => void)[] = [];
  #out: Action[] = [];
  #now = 0;
  #nextId = 1;
  readonly #ctx: ProtocolContext;
  readonly #stats = { refusedHalfOpen: 0, evictedHalfOpen: 0, refusedNegotiations: 0, internalErrors: 0 };

  constructor(options: IkeEngineOptions) {
    this.#crypto = options.crypto;
    this.#random = options.random ?? Math.random;
    this.#defaultLocalAddress = options.defaultLocalAddress;
    this.#allocateSpi = options.allocateSpi;
    this.#reserveSpis = options.reserveSpis ?? false;
    this.#deferCompute = options.compute === 'deferred';
    this.#logRank = LOG_RANK[options.logLevel ?? 'debug'];
    this.#settings = {
      port: options.port ?? 500,
      natPort: options.natPort ?? 4500,
      retransmit: options.retransmit ?? DEFAULT_RETRANSMIT,
      exportKeys: options.exportKeys ?? false,
      forceEncapsulation: options.forceEncapsulation ?? false,
      fragmentSize: options.fragmentSize ?? 1280,
    };
    const maxHalfOpen = options.maxHalfOpen ?? 1024;
    this.#limits = {
      maxHalfOpen,
      maxHalfOpenPerAddress: Math.min(
        maxHalfOpen,
        options.maxHalfOpenPerAddress ?? Math.ceil(maxHalfOpen / 8),
      ),
      halfOpenTimeout: options.halfOpenTimeout ?? 30,
      maxChildNegotiations: options.maxChildNegotiations ?? 16,
      keepaliveInterval: options.keepaliveInterval ?? 20,
    };
    for (const protocol of options.protocols) this.#protocols.set(protocol.version, protocol);
    this.#connections = this.#index(options.connections);
    for (const connection of options.connections) this.#record(connection.name);
    this.#unauthenticatedLog = new RateLimitedLog(
      UNAUTHENTICATED_LOG_INTERVAL * 1000,
      () => this.#now * 1000,
    );
    this.#ctx = this.#makeContext();
  }

  get connections(): readonly Connection[] {
    return this.#connections.list;
  }

  /**
   * What the runtime's kernel backend is, known once it is open: whether ESP must go in UDP
   * whatever the path (a data plane that sends nothing else), and whether it reserves inbound
   * SPIs (`reserve-spi` actions). Applies to negotiations from now on.
   */
  useKernel(kernel: { readonly forceEncapsulation: boolean; readonly reservesSpis: boolean }): void {
    this.#settings = { ...this.#settings, forceEncapsulation: kernel.forceEncapsulation };
    this.#reserveSpis = kernel.reservesSpis;
  }

  /**
   * Counters of refusals and internal errors (metrics, tests): first messages dropped at a
   * half-open limit, half-open SAs dropped to make room for a quieter source, refused child SA
   * negotiations.
   */
  get stats(): EngineStats {
    return { ...this.#stats };
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  receive(datagram: Uint8Array, local: Endpoint, remote: Endpoint, now: number): Action[] {
    return this.#run(now, () => {
      if (datagram.length === 1 && datagram[0] === 0xff) return; // NAT-T keepalive
      const header = peekIkeHeader(datagram);
      if (!header) {
        this.#logUnauthenticated(
          'debug',
          'short',
          `dropped ${datagram.length} bytes from ${formatEndpoint(remote)}: shorter than an IKE header`,
        );
        return;
      }
      const protocol = this.#protocols.get(header.majorVersion);
      if (!protocol) {
        this.#logUnauthenticated(
          header.majorVersion === 2 ? 'info' : 'debug',
          `version ${header.majorVersion}`,
          `dropped an IKE version ${header.majorVersion} message from ${formatEndpoint(remote)}: ` +
            (header.majorVersion === 2 ? 'IKEv2 is not supported yet' : 'no such IKE version'),
        );
        return;
      }
      protocol.receive(this.#ctx, datagram, header, local, remote);
    });
  }

  /** Throws CommandError for an unknown name or a connection that cannot initiate. */
  initiate(name: string, now: number): Action[] {
    const connection = this.#connectionNamed(name);
    const problem = this.#cannotInitiate(connection);
    if (problem) throw new CommandError(problem);
    return this.#run(now, () => this.#initiate(connection));
  }

  /** Throws CommandError for an unknown name. */
  terminate(name: string, now: number): Action[] {
    this.#connectionNamed(name);
    return this.#run(now, () => this.#terminate(name, 'terminated'));
  }

  /**
   * Deletes one IKE SA (its child SAs with it) or one child SA, telling the peer: one client of a
   * gateway, where terminate(name) would drop them all. Throws CommandError for an unknown id.
   */
  terminateSa(kind: 'ike' | 'child', id: number, now: number): Action[] {
    if (kind === 'ike') {
      const sa = this.#sas.get(id);
      if (!sa || sa.closing || sa.deleted) throw new CommandError(`no IKE SA #${id}`);
      return this.#run(now, () => this.#deleteIkeSa(sa, 'terminated', true));
    }
    const entry = this.#children.get(id);
    if (!entry) throw new CommandError(`no child SA #${id}`);
    return this.#run(now, () => this.#removeChild(entry, 'terminated', true));
  }

  /**
   * The kernel's events: traffic on a trap policy (ACQUIRE) starts its connection unless it is up or
   * under way; a soft expiry (bytes or packets) rekeys the child SA now, a hard one deletes it.
   */
  kernelEvent(event: KernelEvent, now: number): Action[] {
    return this.#run(now, () => {
      switch (event.type) {
        case 'acquire': {
          const connection = this.#connections.get(event.connection);
          if (!connection || this.#busy(connection)) return;
          this.#log(
            'info',
            'traffic for the connection (kernel ACQUIRE): initiating',
            undefined,
            connection.name,
          );
          this.#initiate(connection);
          return;
        }
        case 'expire': {
          const entry = this.#children.get(event.child);
          if (!entry) return;
          if (event.hard) this.#removeChild(entry, 'hard lifetime reached (kernel)', true);
          else if (!entry.rekeying) this.#rekeyChild(entry, 'soft lifetime reached (kernel)');
          return;
        }
        case 'mapping': {
          const entry = this.#children.get(event.child);
          if (!entry || sameEndpoint(entry.child.remote, event.remote)) return;
          this.#followPeer(entry.sa, entry.sa.local, event.remote);
          return;
        }
        case 'install-failed':
          this.#installFailed(event.child, `the kernel refused the child SA: ${event.reason}`);
          return;
      }
    });
  }

  /** The answer to a `reserve-spi` action: the SPI the kernel reserved, or why it did not. */
  spiReserved(id: number, result: number | Error, now: number): Action[] {
    return this.#run(now, () => {
      const pending = this.#reservations.get(id);
      if (!pending) return;
      this.#reservations.delete(id);
      if (pending.sa.deleted) return;
      pending.then(result instanceof Error ? this.#spiRefused(pending.sa, result) : result);
    });
  }

  /** The result of a `compute` action (the deferred Diffie-Hellman of IkeEngineOptions.compute). */
  computed(id: number, result: DhJobResult | Error, now: number): Action[] {
    return this.#run(now, () => {
      const pending = this.#computes.get(id);
      if (!pending) return;
      this.#computes.delete(id);
      if (!pending.sa.deleted) pending.then(result);
    });
  }

  /**
   * Replaces the connections (a configuration reload). Unchanged connections keep their SAs
   * untouched; removed and changed ones are torn down with Deletes; changed and added ones whose
   * start is "initiate" are initiated.
   */
  reconfigure(connections: readonly Connection[], now: number): Action[] {
    return this.#run(now, () => {
      const { changed, removed, unchanged } = diffConnections(this.#connections.list, connections);
      for (const name of removed) this.#terminate(name, 'removed from the configuration');
      for (const name of changed) this.#terminate(name, 'configuration changed');
      // Unchanged connections keep their objects: their SAs refer to them.
      const kept = new Map(unchanged.map((name) => [name, this.#connections.get(name)!]));
      this.#connections = this.#index(connections.map((c) => kept.get(c.name) ?? c));
      for (const name of removed) {
        this.#records.delete(name);
        this.#dirty.delete(name);
      }
      for (const connection of this.#connections.list) {
        this.#record(connection.name);
        if (!kept.has(connection.name) && connection.start === 'initiate') this.#initiate(connection);
      }
    });
  }

  /** Deletes everything, telling the peers: for shutdown. */
  shutdown(now: number): Action[] {
    return this.#run(now, () => {
      for (const sa of [...this.#sas.values()]) this.#deleteIkeSa(sa, 'shutting down', true);
      for (const entry of [...this.#children.values()]) this.#removeChild(entry, 'shutting down', false);
      for (const entry of [...this.#retiring]) this.#retired(entry);
    });
  }

  /** Runs what is due at `now`: only that, whatever the number of SAs. */
  tick(now: number): Action[] {
    return this.#run(now, () => {
      for (let due = this.#deadlines.pop(now); due; due = this.#deadlines.pop(now)) {
        const { owner, name } = due;
        this.#guard(() => ('child' in owner ? this.#fireChild(owner, name) : this.#fireSa(owner, name)));
      }
    });
  }

  /** When the engine next needs a tick, or undefined when nothing is pending. */
  nextTimeout(): number | undefined {
    return this.#deadlines.next();
  }

  /**
   * Per connection: its status, IKE SAs and child SAs. With a name, that connection alone, at the
   * cost of its own SAs. Throws CommandError for an unknown name.
   */
  status(name?: string): ConnectionStatus[] {
    const connections = name === undefined ? this.#connections.list : [this.#connectionNamed(name)];
    return connections.map((connection) => {
      const record = this.#record(connection.name);
      const status = this.#stateOf(record);
      return {
        name: connection.name,
        peer: connection.peer.address,
        status,
        // A failure is news until something comes up: not shown beside Active (another
        // client of the same connection may have failed long ago).
        ...(record.error && status !== 'Active' && { error: record.error.reason, cause: record.error.cause }),
        ikeSas: membersOf(record.ikeSas).map((sa) => ikeSaStatus(sa.info())),
        childSas: membersOf(record.children).map((entry) => childSaStatus(entry.child)),
      };
    });
  }

  /** An installed child SA by id, keys included (the kernel backend's counters ask with it). */
  child(id: number): ChildSa | undefined {
    return this.#children.get(id)?.child;
  }

  /** Installed child SAs, keys included: for the kernel backend and for tests. */
  children(): ChildSa[] {
    return [...this.#children.values()].map((entry) => entry.child);
  }

  // ---------------------------------------------------------------------------------------------
  // Running an input

  #run(now: number, body: () => void): Action[] {
    this.#now = now;
    this.#guard(body);
    // Work an outcome asked for runs after the protocol call that reported it, never inside it.
    for (let job = this.#after.shift(); job; job = this.#after.shift()) this.#guard(job);
    this.#reportStates();
    const out = this.#out;
    this.#out = [];
    return out;
  }

  /** A bug of ours must not take the engine down with it: it is logged and counted (tests assert none). */
  #guard(body: () => void): void {
    try {
      body();
    } catch (error) {
      this.#stats.internalErrors++;
      this.#log('error', `internal error: ${(error as Error).stack ?? String(error)}`);
    }
  }

  #connectionNamed(name: string): Connection {
    const connection = this.#connections.get(name);
    if (!connection) throw new CommandError(`no connection named '${name}'`);
    return connection;
  }

  // ---------------------------------------------------------------------------------------------
  // Timers

  #fireSa(sa: IkeSa, name: string): void {
    if (sa.deleted) return;
    switch (name) {
      case CLOSE:
        this.#removeSa(sa);
        return;
      case HALF_OPEN: {
        if (sa.established) return;
        // The protocol may know why it got no further (messages that failed their integrity check).
        const stalled = this.#protocol(sa).stalled?.(sa);
        if (stalled) {
          this.#ikeFailed(sa, stalled);
          return;
        }
        this.#log('info', 'half-open SA timed out', sa);
        // A negotiation that started and never finished: counted as failed (no status Error: the
        // first message may have been anyone's).
        this.#event({
          type: 'failed',
          kind: 'ike',
          cause: 'timeout',
          reason: 'half-open SA timed out',
          ...(sa.connection && { connection: sa.connection.name }),
        });
        this.#removeSa(sa);
        return;
      }
      case FIRST_CHILD:
        this.#childAwaited(sa);
        return;
      case EXPIRE:
        // A client we never rekey towards (peer "any") may keep its IPsec SAs past its IKE SA.
        this.#deleteIkeSa(sa, 'lifetime expired', true, 'keep');
        return;
      case REKEY:
        if (sa.rekeying || !this.#mayRekey(sa.connection) || this.#superseded(sa)) return;
        sa.rekeying = true;
        this.#log('info', `rekeying the ${saKind(sa)}`, sa);
        this.#protocol(sa).rekeyIke(this.#ctx, sa);
        return;
      case LIVENESS:
        this.#liveness(sa);
        return;
      case KEEPALIVE:
        this.#out.push({ type: 'keepalive', from: sa.local, to: sa.remote });
        this.#deadlines.set(sa, KEEPALIVE, this.#now + this.#limits.keepaliveInterval);
        return;
      default:
        this.#protocol(sa).timer(this.#ctx, sa, name);
    }
  }

  #fireChild(entry: ChildEntry, name: string): void {
    if (name === RETIRE) return this.#retired(entry);
    if (this.#children.get(entry.id) !== entry) return;
    if (name === EXPIRE) this.#removeChild(entry, 'lifetime expired', true);
    else if (name === REKEY && !entry.rekeying) this.#rekeyChild(entry, 'rekey time');
  }

  /** Liveness (RFC 3706 DPD, RFC 7296 2.4): probe a silent peer, give it up when probes go unanswered. */
  #liveness(sa: IkeSa): void {
    const connection = sa.connection;
    const dpd = connection?.ike.dpd;
    if (!connection || !dpd || !sa.probes) return;
    const silent = this.#now - sa.lastHeard;
    // Compared as deadlines, not as `silent >= delay`: in floating point lastHeard + delay may equal
    // now while now - lastHeard falls short of delay, and a deadline re-armed at now fires forever.
    const quietUntil = sa.lastHeard + dpd.delay;
    if (sa.probing && this.#now >= sa.lastHeard + dpd.timeout) {
      this.#log('warn', `dead peer: no answer for ${Math.round(silent)} s, action ${dpd.action}`, sa);
      this.#deleteIkeSa(sa, 'dead peer', false);
      this.#setError(connection.name, { cause: 'dead-peer', reason: 'dead peer detected' });
      if (dpd.action === 'restart' && connection.peer.address !== 'any') this.#initiate(connection);
      return;
    }
    if (this.#now >= quietUntil) {
      sa.probing = true;
      this.#protocol(sa).probe(this.#ctx, sa);
      this.#deadlines.set(sa, LIVENESS, this.#now + Math.min(dpd.delay, Math.max(1, dpd.timeout - silent)));
    } else {
      this.#deadlines.set(sa, LIVENESS, quietUntil);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // IKE SA lifecycle

  #protocol(sa: IkeSa): IkeProtocol {
    return this.#protocols.get(sa.version)!;
  }

  #cannotInitiate(connection: Connection): string | undefined {
    if (connection.peer.address === 'any')
      return `'${connection.name}' has peer address "any": it can only respond`;
    if (!this.#protocols.has(connection.ike.version))
      return `'${connection.name}' is IKEv${connection.ike.version}: not supported yet`;
    if (!(connection.local.address ?? this.#defaultLocalAddress))
      return `'${connection.name}' needs local.address to initiate (there is no single listen address to use)`;
    return undefined;
  }

  #initiate(connection: Connection): void {
    // Reached from timers too (rekey, DPD restart): a connection that cannot initiate is an Error status.
    const problem = this.#cannotInitiate(connection);
    if (problem) {
      this.#setError(connection.name, { cause: 'config', reason: problem });
      this.#log('error', problem, undefined, connection.name);
      return;
    }
    const live = this.#liveSaFor(connection);
    if (live) {
      this.#startChildren(live, connection);
      return;
    }
    // One IKE SA per share group: one under way carries this connection's children too.
    const record = this.#record(connection.name);
    const underWay = this.#underWay(connection);
    if (underWay) {
      if (underWay.connection !== connection && !record.waitingOn) {
        underWay.waiting = appended(underWay.waiting, connection);
        record.waitingOn = underWay;
        this.#touch(connection.name);
      }
      return;
    }
    this.#clearError(connection.name);
    this.#protocols
      .get(connection.ike.version)!
      .initiate(this.#ctx, connection, this.#initiatorEndpoint(connection), this.#peerEndpoint(connection));
  }

  /** Call only after #cannotInitiate said yes. */
  #initiatorEndpoint(connection: Connection): Endpoint {
    return { address: (connection.local.address ?? this.#defaultLocalAddress)!, port: this.#settings.port };
  }

  #peerEndpoint(connection: Connection, address = connection.peer.address): Endpoint {
    return { address, port: connection.peer.port };
  }

  #terminate(name: string, reason: string): void {
    const record = this.#records.get(name);
    if (!record) return;
    for (const sa of membersOf(record.ikeSas)) this.#deleteIkeSa(sa, reason, true);
    for (const entry of membersOf(record.children)) this.#removeChild(entry, reason, true);
    if (record.waitingOn) {
      const sa = record.waitingOn;
      const connection = sa.waiting.find((c) => c.name === name);
      if (connection) sa.waiting = without(sa.waiting, connection);
      record.waitingOn = undefined;
    }
    this.#clearError(name);
  }

  #index(connections: readonly Connection[]): ConnectionIndex {
    const tags = new Map<Uint8Array, string>();
    return new ConnectionIndex(connections, (connection) => {
      const shared = this.#protocols.get(connection.ike.version)?.shareKey?.(connection);
      if (shared === undefined) return flatKey('name', connection.name);
      let tag = tags.get(connection.psk);
      if (tag === undefined) tags.set(connection.psk, (tag = this.#pskTag(connection.psk)));
      return flatKey(connection.ike.version, shared, tag);
    });
  }

  /**
   * A pre-shared key as a share group's key may hold it: an HMAC under a secret of this engine's
   * own (128 bits of it), equal for equal keys, and nothing an observer of the heap could test
   * guesses of the key against.
   */
  #pskTag(psk: Uint8Array): string {
    this.#pskSalt ??= this.#crypto.randomBytes(32);
    return toHex(this.#crypto.hmac('sha256', this.#pskSalt, psk).subarray(0, 16));
  }

  /** The SAs whose connection shares `connection`'s group (IKEv1 siblings, else the connection's own). */
  #groupSas(connection: Connection): Iterable<IkeSa> {
    const key = this.#connections.groupKey(connection);
    return key === undefined ? [] : this.#groups.get(key);
  }

  /** Whether an SA can carry child SAs of `connection`: its own, or a sibling's. */
  #carries(sa: IkeSa, connection: Connection): boolean {
    return (
      sa.connection === connection ||
      (sa.groupKey !== undefined && sa.groupKey === this.#connections.groupKey(connection))
    );
  }

  /** The newest established IKE SA that can carry this connection's child SAs. */
  #liveSaFor(connection: Connection): IkeSa | undefined {
    let best: IkeSa | undefined;
    for (const sa of this.#groupSas(connection)) {
      if (sa.established && this.#carries(sa, connection) && (!best || sa.id > best.id)) best = sa;
    }
    return best;
  }

  #underWay(connection: Connection): IkeSa | undefined {
    for (const sa of this.#groupSas(connection)) {
      if (!sa.established && this.#carries(sa, connection)) return sa;
    }
    return undefined;
  }

  /** The peer rekeyed it already: a newer IKE SA with the same peer exists. */
  #superseded(sa: IkeSa): boolean {
    if (!sa.connection) return false;
    for (const other of this.#groupSas(sa.connection)) {
      if (other.established && other.id > sa.id && this.#samePeer(other, sa)) return true;
    }
    return false;
  }

  /** Another SA of the same connection with the same peer (address and, when known, identity). */
  #samePeer(other: IkeSa, sa: IkeSa): boolean {
    return (
      other !== sa &&
      other.connection === sa.connection &&
      other.remote.address === sa.remote.address &&
      (other.remoteId === undefined || other.remoteId === sa.remoteId)
    );
  }

  /** Peers at "any" address are clients: they rekey, we cannot reach them reliably. */
  #mayRekey(connection: Connection | undefined): boolean {
    return connection !== undefined && connection.peer.address !== 'any';
  }

  /** A child SA up, or a negotiation for the connection under way. */
  #busy(connection: Connection): boolean {
    const record = this.#record(connection.name);
    return (
      record.children !== undefined ||
      record.negotiations > 0 ||
      record.waitingOn !== undefined ||
      this.#underWay(connection) !== undefined
    );
  }

  #addSa(sa: IkeSa): void {
    this.#sas.set(sa.id, sa);
    if (sa.role === 'responder') {
      sa.halfOpen = true;
      this.#halfOpen++;
      const address = sa.remote.address;
      const fromAddress = this.#halfOpenByAddress.get(address);
      if (fromAddress) fromAddress.add(sa);
      else this.#halfOpenByAddress.set(address, new Set([sa]));
      const held = this.#halfOpenByAddress.get(address)!.size;
      this.#halfOpenCounts.moved(address, held - 1, held);
      this.#deadlines.set(sa, HALF_OPEN, sa.createdAt + this.#limits.halfOpenTimeout);
    }
    if (sa.connection) this.#attach(sa, sa.connection);
    this.#event({
      type: 'negotiation-started',
      kind: 'ike',
      ikeSa: sa.id,
      ...(sa.connection && { connection: sa.connection.name }),
    });
  }

  /** Puts an SA into its connection's indexes. */
  #attach(sa: IkeSa, connection: Connection): void {
    const record = this.#record(connection.name);
    record.ikeSas = join(record.ikeSas, sa);
    if (!sa.established) record.pendingIke++;
    if (sa.awaitingChild) record.awaitingChild++;
    sa.groupKey = this.#connections.groupKey(connection);
    if (sa.groupKey !== undefined) this.#groups.add(sa.groupKey, sa);
    this.#touch(connection.name);
  }

  #detach(sa: IkeSa, connection: Connection): void {
    const record = this.#records.get(connection.name);
    if (record && isMember(record.ikeSas, sa)) {
      record.ikeSas = leave(record.ikeSas, sa);
      if (!sa.established) record.pendingIke--;
      if (sa.awaitingChild) record.awaitingChild--;
    }
    if (sa.groupKey !== undefined) this.#groups.delete(sa.groupKey, sa);
    sa.groupKey = undefined;
    this.#touch(connection.name);
  }

  /** A responder found the connection an SA is for (by its identity): move it there. */
  #assign(sa: IkeSa, connection: Connection): void {
    if (sa.connection === connection) return;
    if (sa.connection && this.#sas.has(sa.id)) this.#detach(sa, sa.connection);
    sa.connection = connection;
    if (this.#sas.has(sa.id)) this.#attach(sa, connection);
  }

  #endHalfOpen(sa: IkeSa): void {
    if (!sa.halfOpen) return;
    sa.halfOpen = false;
    this.#halfOpen--;
    const address = sa.remote.address;
    const fromAddress = this.#halfOpenByAddress.get(address);
    if (fromAddress?.delete(sa)) this.#halfOpenCounts.moved(address, fromAddress.size + 1, fromAddress.size);
    if (fromAddress?.size === 0) this.#halfOpenByAddress.delete(address);
    this.#deadlines.clear(sa, HALF_OPEN);
  }

  /**
   * A first message from `remote` may make a half-open SA: within the bound per address, and
   * within the global one, or by dropping the oldest half-open SA of the address holding the most
   * when that is more than this one would hold. Spoofed floods come from few addresses or each
   * from many, and are the cheapest to forge: they go first, and a new initiator from a quiet
   * address is still answered while the table is full.
   */
  #admitHalfOpen(remote: Endpoint): boolean {
    const fromAddress = this.#halfOpenByAddress.get(remote.address)?.size ?? 0;
    if (fromAddress < this.#limits.maxHalfOpenPerAddress) {
      if (this.#halfOpen < this.#limits.maxHalfOpen) return true;
      const most = this.#halfOpenCounts.busiest();
      if (most && most.count > fromAddress + 1) {
        const [oldest] = this.#halfOpenByAddress.get(most.key)!;
        this.#stats.evictedHalfOpen++;
        this.#log('debug', `half-open SA dropped for a first message from ${remote.address}`, oldest);
        this.#removeSa(oldest!);
        return true;
      }
    }
    this.#stats.refusedHalfOpen++;
    this.#logUnauthenticated(
      'warn',
      'half-open',
      `dropped a first message from ${formatEndpoint(remote)}: ${this.#halfOpen} half-open SAs already` +
        ` (${fromAddress} from ${remote.address})`,
    );
    return false;
  }

  #ikeUp(sa: IkeSa): void {
    const connection = sa.connection!;
    this.#endHalfOpen(sa);
    const record = this.#record(connection.name);
    if (isMember(record.ikeSas, sa) && !sa.established) record.pendingIke--;
    sa.established = true;
    sa.establishedAt = this.#now;
    // Between the IKE SA and the peer's first child negotiation the connection is still coming up:
    // without this, a responder's status went Pending -> Down -> Pending -> Active.
    if (
      sa.role === 'responder' &&
      sa.replaces === undefined &&
      !sa.children.length &&
      !sa.negotiations.length
    ) {
      sa.awaitingChild = true;
      if (isMember(record.ikeSas, sa)) record.awaitingChild++;
      this.#deadlines.set(sa, FIRST_CHILD, this.#now + this.#limits.halfOpenTimeout);
    }
    this.#touch(connection.name);
    const { rekeyAt, expiresAt } = schedule(
      this.#now,
      connection.ike.lifetime,
      this.#random,
      sa.lifetimeSeconds,
    );
    sa.rekeyAt = rekeyAt;
    sa.expiresAt = expiresAt;
    this.#deadlines.set(sa, EXPIRE, expiresAt);
    if (this.#mayRekey(connection)) this.#deadlines.set(sa, REKEY, rekeyAt);
    if (sa.nat.local) this.#deadlines.set(sa, KEEPALIVE, this.#now + this.#limits.keepaliveInterval);
    if (connection.ike.dpd && sa.probes)
      this.#deadlines.set(sa, LIVENESS, this.#now + connection.ike.dpd.delay);
    this.#clearError(connection.name);
    this.#log('info', `${saKind(sa)} established: ${sa.describe()}, ${sa.localId} <-> ${sa.remoteId}`, sa);
    this.#event({
      type: 'ike-up',
      ikeSa: sa.info(),
      ...(sa.replaces !== undefined && { rekeyed: sa.replaces }),
    });
    const old = sa.replaces === undefined ? undefined : this.#sas.get(sa.replaces);
    if (this.#protocol(sa).adoptsChildren) this.#adoptChildren(sa);
    else if (old) this.#moveChildren(old, sa);
    const waiting = sa.waiting;
    sa.waiting = EMPTY;
    for (const other of waiting) {
      const otherRecord = this.#records.get(other.name);
      if (otherRecord?.waitingOn === sa) otherRecord.waitingOn = undefined;
      this.#touch(other.name);
      this.#after.push(() => this.#startChildren(sa, other));
    }
    if (sa.replaces !== undefined) {
      // The rekey's initiator deletes the old SA (RFC 7296 2.18); the responder waits for that.
      if (old && sa.role === 'initiator') this.#deleteIkeSa(old, `replaced by a rekeyed ${saKind(sa)}`, true);
      else if (old) this.#deadlines.clear(old, LIVENESS);
      return;
    }
    if (sa.role !== 'initiator') return;
    // A child SA that rides in the IKE SA's own exchange (IKEv2 IKE_AUTH) is not asked for again
    // here, whatever its answer: a refusal asked again at once is refused again.
    const riding = sa.negotiations;
    this.#after.push(() => this.#startChildren(sa, connection, riding));
  }

  /**
   * Child SAs outlive the IKE SA that made them in IKEv1 (RFC 2409): the newest IKE SA with the
   * same peer takes over those of older ones, live or deleted, whoever rekeyed. strongSwan, for
   * one, deletes its old ISAKMP SA before the new main mode completes.
   */
  #adoptChildren(sa: IkeSa): void {
    for (const entry of this.#byPeer.get(peerKey(sa.connection!.name, sa.remote.address))) {
      if (entry.sa === sa || !this.#samePeer(entry.sa, sa)) continue;
      this.#log('debug', `child SA ${entry.child.id} moves over from ${saKind(sa)} ${entry.sa.id}`, sa);
      entry.sa.children = without(entry.sa.children, entry);
      this.#handOver(entry, sa);
      // A rekey that was waiting for (or lost with) the old SA starts again on this one.
      entry.rekeying = false;
      if (this.#mayRekey(sa.connection))
        this.#deadlines.set(entry, REKEY, Math.max(this.#now, entry.child.rekeyAt));
    }
  }

  /** IKEv2: child SAs move to the IKE SA that rekeyed theirs, and are rekeyed from there. */
  #moveChildren(old: IkeSa, sa: IkeSa): void {
    const moving = old.children;
    old.children = EMPTY;
    for (const entry of moving) this.#handOver(entry, sa);
  }

  /** A child SA (already off its old IKE SA's list) now belongs to `sa`. */
  #handOver(entry: ChildEntry, sa: IkeSa): void {
    entry.sa = sa;
    sa.children = appended(sa.children, entry);
    entry.child = changedChild(entry.child, { ikeSaId: sa.id });
  }

  #ikeRekeyed(old: IkeSa, next: IkeSa): void {
    next.connection = old.connection;
    next.localId = old.localId;
    next.remoteId = old.remoteId;
    next.probes = old.probes;
    next.replaces = old.id;
    if (!this.#sas.has(next.id)) this.#addSa(next);
    if (old.identityKey) {
      next.identityKey = old.identityKey;
      this.#identities.add(old.identityKey, next);
    }
    this.#ikeUp(next);
  }

  #ikeFailed(sa: IkeSa, failure: Failure): void {
    this.#log('error', `negotiation failed: ${failure.reason}`, sa);
    this.#setError(sa.connection?.name, failure);
    this.#event({
      type: 'failed',
      kind: 'ike',
      cause: failure.cause,
      reason: failure.reason,
      ...(sa.connection && { connection: sa.connection.name }),
    });
    this.#removeSa(sa);
  }

  /** `children`: delete its child SAs too (teardown), or leave them to their own lifetimes. */
  #deleteIkeSa(sa: IkeSa, reason: string, notifyPeer: boolean, children: 'delete' | 'keep' = 'delete'): void {
    if (sa.deleted) return;
    if (sa.closing) {
      // Already out of status: the peer's Delete ends it, ours is under way already.
      if (!notifyPeer) this.#removeSa(sa);
      return;
    }
    // Where the IKE SA's Delete takes its children along, one Delete says it all.
    const independent = this.#protocol(sa).adoptsChildren;
    if (children === 'delete')
      for (const entry of sa.children) this.#removeChild(entry, reason, notifyPeer && independent);
    const awaiting = sa.established && notifyPeer && this.#protocol(sa).deleteIke(this.#ctx, sa);
    if (sa.established) {
      this.#log('info', `${saKind(sa)} deleted: ${reason}`, sa);
      this.#event({ type: 'ike-down', ikeSa: sa.info(), reason });
    }
    if (awaiting) this.#close(sa);
    else this.#removeSa(sa);
  }

  /**
   * Our Delete awaits its answer (IKEv2 resends it until then): the SA is gone from status, its
   * connection and every core timer, but the protocol still finds it by its SPIs, until it calls
   * discardIke or CLOSE_WAIT runs out.
   */
  #close(sa: IkeSa): void {
    sa.closing = true;
    this.#retire(sa);
    for (const name of [HALF_OPEN, FIRST_CHILD, REKEY, EXPIRE, LIVENESS, KEEPALIVE])
      this.#deadlines.clear(sa, name);
    this.#deadlines.set(sa, CLOSE, this.#now + CLOSE_WAIT);
  }

  /** Takes an SA out of every table; its unfinished negotiations take their inbound SAs along. */
  #removeSa(sa: IkeSa): void {
    if (sa.deleted) return;
    if (!sa.closing) this.#retire(sa);
    sa.deleted = true;
    this.#protocol(sa).forget?.(this.#ctx, sa);
    this.#sas.delete(sa.id);
    for (const key of sa.lookupKeys) if (this.#keys.get(key) === sa) this.#keys.delete(key);
    // Pending computations stay until their results come back, which then find the SA deleted.
    this.#deadlines.clearAll(sa);
  }

  /** Out of its connection and the core's indexes: what status and new negotiations see. */
  #retire(sa: IkeSa): void {
    for (const negotiation of sa.negotiations) this.#endNegotiation(negotiation);
    this.#endHalfOpen(sa);
    if (sa.connection) this.#detach(sa, sa.connection);
    if (sa.identityKey) this.#identities.delete(sa.identityKey, sa);
    for (const waiting of sa.waiting) {
      const record = this.#records.get(waiting.name);
      if (record?.waitingOn === sa) record.waitingOn = undefined;
      this.#touch(waiting.name);
    }
    sa.waiting = EMPTY;
  }

  /**
   * INITIAL-CONTACT (RFC 2407 4.6.3.3, RFC 7296 2.4): the peer has no state for us, so our older
   * SAs with the same authenticated identity are stale. SAs of other identities (other clients
   * behind the same NAT) and SAs still negotiating are not touched; child SAs whose IKE SA is
   * already gone stay for adoption (strongSwan sends INITIAL-CONTACT when it reauthenticates
   * after deleting its old ISAKMP SA, and keeps those IPsec SAs).
   */
  #initialContact(sa: IkeSa): void {
    if (!sa.identityKey) return;
    for (const other of [...this.#identities.get(sa.identityKey)]) {
      if (other === sa || other.id > sa.id) continue;
      this.#log('info', 'INITIAL-CONTACT: removing stale SAs', other);
      this.#deleteIkeSa(other, 'peer sent INITIAL-CONTACT', false);
    }
  }

  #authenticated(sa: IkeSa, identity: Identity): void {
    sa.remoteId = formatIdentity(identity);
    // An address identity says little behind a NAT (two clients may both be 192.168.1.10): the
    // address they come from is part of who they are. Names and key ids stand on their own.
    const byAddress = identity.type === 'ipv4' || identity.type === 'ipv6';
    const key = byAddress
      ? flatKey(sa.connection?.name ?? '', identity.type, sa.remoteId, sa.remote.address)
      : flatKey(sa.connection?.name ?? '', identity.type, sa.remoteId);
    if (sa.identityKey === key) return;
    if (sa.identityKey) this.#identities.delete(sa.identityKey, sa);
    sa.identityKey = key;
    this.#identities.add(key, sa);
  }

  #hasOtherSaWithPeer(sa: IkeSa): boolean {
    if (!sa.connection) return false;
    for (const other of this.#groupSas(sa.connection)) {
      if (other !== sa && other.established && other.remote.address === sa.remote.address) return true;
    }
    return false;
  }

  /** A NAT mapping changed under an SA (RFC 3947, RFC 7296 2.23): its child SAs in UDP follow. */
  #followPeer(sa: IkeSa, local: Endpoint, remote: Endpoint): void {
    if (!sa.floated || (sameEndpoint(sa.remote, remote) && sameEndpoint(sa.local, local))) return;
    this.#log('info', `peer moved from ${formatEndpoint(sa.remote)} to ${formatEndpoint(remote)}`, sa);
    sa.remote = remote;
    sa.local = local;
    // The SAs' UDP encapsulation names the old port: install them again with the new one.
    for (const entry of sa.children) {
      if (!entry.child.encapsulation) continue;
      this.#setChild(entry, changedChild(entry.child, { local, remote }));
      this.#out.push({ type: 'install-child', child: entry.child });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Child SA lifecycle

  /** Starts a child SA negotiation for every selector pair that has none yet. */
  /** `asked`: negotiations that count as under way even if they ended (see #ikeUp). */
  #startChildren(sa: IkeSa, connection: Connection, asked: readonly ChildNegotiation[] = []): void {
    if (sa.deleted || !sa.established) return;
    const locals = connection.local.trafficSelectors.length
      ? connection.local.trafficSelectors
      : [parseTrafficSelector(sa.local.address)];
    const peers = connection.peer.trafficSelectors.length
      ? connection.peer.trafficSelectors
      : [parseTrafficSelector(sa.remote.address)];
    const record = this.#record(connection.name);
    for (const localTs of locals) {
      for (const remoteTs of peers) {
        const covered = membersOf(record.children).some((e) => samePair(e, localTs, remoteTs));
        const pending = [...sa.negotiations, ...asked].some(
          (n) =>
            n.connection === connection &&
            sameTrafficSelector(n.localTs, localTs) &&
            sameTrafficSelector(n.remoteTs, remoteTs),
        );
        if (!covered && !pending)
          this.#protocol(sa).createChild(this.#ctx, sa, connection, localTs, remoteTs);
      }
    }
  }

  #rekeyChild(entry: ChildEntry, why: string): void {
    const { child } = entry;
    if (!this.#mayRekey(entry.sa.connection)) return;
    const connection = this.#connections.get(child.connection);
    if (!connection) return;
    entry.rekeying = true;
    const sa = this.#liveSaFor(connection);
    if (!sa) {
      this.#initiate(connection);
      return;
    }
    this.#log('info', `rekeying child SA ${child.id} (${why})`, sa, connection.name);
    this.#protocol(sa).createChild(this.#ctx, sa, connection, child.localTs[0]!, child.remoteTs[0]!, entry);
  }

  #beginChild(
    sa: IkeSa,
    connection: Connection,
    selectors: {
      localTs: TrafficSelector;
      remoteTs: TrafficSelector;
      peerStarted?: boolean;
      keepReplaced?: boolean;
      supersedes?: boolean;
    },
    rekeyOf?: number,
  ): ChildNegotiation | undefined {
    if (selectors.peerStarted) {
      // The peer's requests are bounded; our own (one per configured selector pair) are not.
      let underWay = 0;
      for (const n of sa.negotiations) if (n.peerStarted) underWay++;
      if (underWay >= this.#limits.maxChildNegotiations) {
        this.#stats.refusedNegotiations++;
        this.#logUnauthenticated(
          'warn',
          'negotiations',
          `${saKind(sa)} ${sa.id}: refused a child SA negotiation from ${formatEndpoint(sa.remote)}: ` +
            `${underWay} under way already`,
        );
        return undefined;
      }
    }
    const negotiation: ChildNegotiation = {
      id: this.#nextId++,
      sa,
      connection,
      localTs: selectors.localTs,
      remoteTs: selectors.remoteTs,
      peerStarted: selectors.peerStarted ?? false,
      keepReplaced: selectors.keepReplaced ?? false,
      supersedes: selectors.supersedes ?? false,
      ...(rekeyOf !== undefined && { rekeyOf }),
      open: true,
    };
    sa.negotiations = appended(sa.negotiations, negotiation);
    this.#childAwaited(sa);
    this.#record(connection.name).negotiations++;
    this.#touch(connection.name);
    this.#event({ type: 'negotiation-started', kind: 'child', ikeSa: sa.id, connection: connection.name });
    return negotiation;
  }

  /**
   * A child SA of a protocol that marks no rekey (IKEv1) is up: the others of `sa` for the same
   * connection and selector pair are replaced by it (whichever end started it, and whether the
   * two ends made theirs at once or a duplicated message made one more): not rekeyed again, gone
   * with the peer's Delete or their lifetime, and few kept.
   */
  #supersede(sa: IkeSa, latest: ChildEntry, except: number | undefined): void {
    for (const entry of pairSiblings(sa, latest))
      if (entry.id !== except && !entry.replaced) this.#markReplaced(entry);
    this.#boundReplaced(sa, latest);
  }

  /** Until the peer's Delete: carries what is still in flight, and is not rekeyed again. */
  #markReplaced(entry: ChildEntry): void {
    entry.rekeying = true;
    entry.replaced = true;
    this.#deadlines.clear(entry, REKEY);
  }

  /**
   * Child SAs replaced by the peer wait for its Delete, or expire: a peer whose Deletes are lost
   * (or that never sends them) leaves them behind with every rekey, so beyond a few per selector
   * pair the oldest go now.
   */
  #boundReplaced(sa: IkeSa, latest: ChildEntry): void {
    const replaced = pairSiblings(sa, latest).filter((entry) => entry.replaced);
    for (const entry of replaced.slice(0, Math.max(0, replaced.length - MAX_REPLACED_PER_PAIR)))
      this.#removeChild(entry, 'replaced by the peer, which did not delete it', true);
  }

  /** A responder's IKE SA got its first child negotiation, or waited long enough for one. */
  #childAwaited(sa: IkeSa): void {
    if (!sa.awaitingChild) return;
    sa.awaitingChild = false;
    this.#deadlines.clear(sa, FIRST_CHILD);
    if (!sa.connection) return;
    const record = this.#records.get(sa.connection.name);
    if (record && isMember(record.ikeSas, sa)) record.awaitingChild--;
    this.#touch(sa.connection.name);
  }

  /** Closes a negotiation; one that never produced its child takes its inbound SA away. */
  #endNegotiation(negotiation: ChildNegotiation, succeeded = false): void {
    if (!negotiation.open) return;
    negotiation.open = false;
    negotiation.sa.negotiations = without(negotiation.sa.negotiations, negotiation);
    const record = this.#records.get(negotiation.connection.name);
    if (record) record.negotiations--;
    this.#touch(negotiation.connection.name);
    const inbound = negotiation.inbound;
    if (!inbound) return;
    this.#inbound.delete(inbound.id);
    if (!succeeded && negotiation.refused === undefined) {
      this.#out.push({ type: 'delete-child', child: inbound });
      this.#log(
        'debug',
        `inbound SA ${inbound.spiIn.toString(16)} of an unfinished negotiation removed`,
        negotiation.sa,
        negotiation.connection.name,
      );
    }
  }

  #buildChild(negotiation: ChildNegotiation, spec: ChildSaSpec): ChildSa {
    const { sa, connection } = negotiation;
    const { rekeyAt, expiresAt } = schedule(
      this.#now,
      connection.ipsec.lifetime,
      this.#random,
      spec.lifetime.seconds,
    );
    return {
      id: this.#nextId++,
      connection: connection.name,
      ikeSaId: sa.id,
      protocol: 'esp',
      mode: spec.mode,
      encapsulation: spec.encapsulation,
      local: sa.local,
      remote: sa.remote,
      spiIn: spec.spiIn,
      spiOut: spec.spiOut,
      localTs: sharedSelectors(spec.localTs, connection.local.trafficSelectors),
      remoteTs: sharedSelectors(spec.remoteTs, connection.peer.trafficSelectors),
      suite: sharedSuite(connection.ipsec.proposals, spec.suite),
      keys: spec.keys,
      lifetime: spec.lifetime,
      installedAt: this.#now,
      rekeyAt,
      expiresAt,
    };
  }

  #childUp(negotiation: ChildNegotiation, child: ChildSa): void {
    this.#endNegotiation(negotiation, true);
    const { sa } = negotiation;
    const predecessor =
      negotiation.rekeyOf === undefined ? undefined : this.#children.get(negotiation.rekeyOf);
    const entry: ChildEntry = {
      id: child.id,
      child,
      sa,
      rekeying: false,
      replaced: false,
      requested: predecessor?.requested ?? {
        localTs: sharedTrafficSelector(negotiation.localTs, child.localTs),
        remoteTs: sharedTrafficSelector(negotiation.remoteTs, child.remoteTs),
      },
      timers: undefined,
    };
    this.#children.set(child.id, entry);
    sa.children = appended(sa.children, entry);
    const record = this.#record(child.connection);
    record.children = join(record.children, entry);
    this.#indexChild(entry);
    this.#clearError(child.connection);
    this.#deadlines.set(entry, EXPIRE, child.expiresAt);
    if (this.#mayRekey(sa.connection)) this.#deadlines.set(entry, REKEY, child.rekeyAt);
    this.#out.push({ type: 'install-child', child });
    this.#log(
      'info',
      `child SA installed: ${child.mode}${child.encapsulation ? ' (UDP-encapsulated)' : ''}, SPIs ${child.spiIn.toString(16)}/${child.spiOut.toString(16)}`,
      sa,
      child.connection,
    );
    this.#event({
      type: 'child-up',
      child,
      ...(negotiation.rekeyOf !== undefined && { rekeyed: negotiation.rekeyOf }),
    });
    this.#touch(child.connection);
    if (negotiation.supersedes) this.#supersede(sa, entry, negotiation.rekeyOf);
    if (negotiation.rekeyOf !== undefined) {
      const old = this.#children.get(negotiation.rekeyOf);
      if (!old) return;
      if (!negotiation.keepReplaced) this.#removeChild(old, 'rekeyed', true, true);
      else {
        this.#markReplaced(old);
        this.#boundReplaced(sa, entry);
      }
    }
  }

  #childFailed(negotiation: ChildNegotiation, failure: Failure): void {
    this.#endNegotiation(negotiation);
    const name = negotiation.connection.name;
    this.#setError(name, failure);
    this.#event({
      type: 'failed',
      kind: 'child',
      connection: name,
      cause: failure.cause,
      reason: failure.reason,
    });
    // The old child SA is still there: try again (through another IKE SA if this one goes), after
    // a pause: a peer that refuses at once would otherwise be asked again at once, over and over.
    this.#retryRekey(negotiation, this.#now + REKEY_RETRY);
  }

  /** A failed rekey is tried again at `at`, unless the peer replaced the child SA meanwhile. */
  #retryRekey(negotiation: ChildNegotiation, at: number): void {
    if (negotiation.rekeyOf === undefined) return;
    const old = this.#children.get(negotiation.rekeyOf);
    if (!old || old.replaced) return;
    old.rekeying = false;
    if (this.#mayRekey(old.sa.connection)) this.#deadlines.set(old, REKEY, at);
  }

  /** The peer is busy (TEMPORARY_FAILURE, RFC 7296 2.25): no error, the rekey again after `seconds`. */
  #childDeferred(negotiation: ChildNegotiation, seconds: number, reason: string): void {
    this.#endNegotiation(negotiation);
    this.#log(
      'info',
      `${reason}: trying again in ${seconds.toFixed(1)} s`,
      negotiation.sa,
      negotiation.connection.name,
    );
    this.#retryRekey(negotiation, this.#now + seconds);
  }

  #indexChild(entry: ChildEntry): void {
    this.#bySpiOut.add(entry.child.spiOut, entry);
    this.#byPeer.add(peerKey(entry.child.connection, entry.child.remote.address), entry);
  }

  #unindexChild(entry: ChildEntry): void {
    this.#bySpiOut.delete(entry.child.spiOut, entry);
    this.#byPeer.delete(peerKey(entry.child.connection, entry.child.remote.address), entry);
  }

  #setChild(entry: ChildEntry, child: ChildSa): void {
    this.#unindexChild(entry);
    entry.child = child;
    this.#indexChild(entry);
  }

  /** `retire`: the kernel keeps its SAs for RETIRE_WAIT more seconds (a rekey of ours replaced it). */
  #removeChild(entry: ChildEntry, reason: string, notifyPeer: boolean, retire = false): void {
    if (this.#children.get(entry.id) !== entry) return;
    this.#children.delete(entry.id);
    entry.sa.children = without(entry.sa.children, entry);
    const record = this.#records.get(entry.child.connection);
    if (record) record.children = leave(record.children, entry);
    this.#unindexChild(entry);
    this.#deadlines.clearAll(entry);
    // Its own IKE SA may be gone (the child outlived it): no SA, no Delete; the peer's expires too.
    if (notifyPeer && entry.sa.established && !entry.sa.deleted)
      this.#protocol(entry.sa).deleteChild(this.#ctx, entry.sa, entry.child);
    if (retire) {
      this.#retiring.add(entry);
      this.#deadlines.set(entry, RETIRE, this.#now + RETIRE_WAIT);
    } else this.#out.push({ type: 'delete-child', child: entry.child });
    this.#log(
      'info',
      `child SA ${entry.child.spiIn.toString(16)}/${entry.child.spiOut.toString(16)} deleted: ${reason}`,
      entry.sa,
      entry.child.connection,
    );
    this.#event({ type: 'child-down', child: entry.child, reason });
    this.#touch(entry.child.connection);
  }

  /** A retiring child SA's time is up: its SAs leave the kernel. */
  #retired(entry: ChildEntry): void {
    if (!this.#retiring.delete(entry)) return;
    this.#deadlines.clearAll(entry);
    this.#out.push({ type: 'delete-child', child: entry.child });
  }

  /** A Delete from the peer names its inbound SPIs: our outbound ones. */
  #childrenDeletedByPeer(sa: IkeSa, spisOut: readonly number[]): void {
    for (const spi of spisOut) {
      for (const entry of [...this.#bySpiOut.get(spi)]) {
        if (entry.child.remote.address === sa.remote.address)
          this.#removeChild(entry, 'deleted by the peer', false);
      }
    }
  }

  /** An installed child SA goes (with a Delete to the peer); a responder's unfinished one, its negotiation. */
  #installFailed(id: number, reason: string): void {
    const entry = this.#children.get(id);
    if (entry) {
      this.#log('error', reason, entry.sa, entry.child.connection);
      this.#setError(entry.child.connection, { cause: 'kernel', reason });
      this.#removeChild(entry, reason, true);
      return;
    }
    const negotiation = this.#inbound.get(id);
    if (!negotiation || !negotiation.open || negotiation.refused !== undefined) return;
    this.#log('error', reason, negotiation.sa, negotiation.connection.name);
    this.#setError(negotiation.connection.name, { cause: 'kernel', reason });
    // The protocol answers the rest of the exchange with a Delete instead of installing.
    negotiation.refused = reason;
    this.#out.push({ type: 'delete-child', child: negotiation.inbound! });
  }

  // ---------------------------------------------------------------------------------------------
  // Status

  #record(name: string): ConnectionRecord {
    let record = this.#records.get(name);
    if (!record) {
      record = {
        ikeSas: undefined,
        children: undefined,
        pendingIke: 0,
        negotiations: 0,
        waitingOn: undefined,
        awaitingChild: 0,
        error: undefined,
        reported: 'Down',
      };
      this.#records.set(name, record);
    }
    return record;
  }

  #stateOf(record: ConnectionRecord): ConnectionState {
    if (record.children !== undefined) return 'Active';
    if (record.pendingIke > 0 || record.negotiations > 0 || record.waitingOn) return 'Pending';
    if (record.error) return 'Error';
    return record.awaitingChild > 0 ? 'Pending' : 'Down';
  }

  /** The connection's status may have moved: reported at the end of the input, once. */
  #touch(name: string): void {
    this.#dirty.add(name);
  }

  #reportStates(): void {
    for (const name of this.#dirty) {
      const record = this.#records.get(name);
      if (!record) continue;
      const status = this.#stateOf(record);
      if (status === record.reported) continue;
      const previous = record.reported;
      record.reported = status;
      this.#event({
        type: 'connection',
        connection: name,
        status,
        previous,
        ...(status === 'Error' && record.error && { error: record.error.reason, cause: record.error.cause }),
      });
    }
    this.#dirty.clear();
  }

  #setError(connection: string | undefined, failure: Failure): void {
    if (!connection) return;
    const record = this.#records.get(connection);
    if (!record) return;
    record.error = failure;
    this.#touch(connection);
  }

  #clearError(connection: string): void {
    const record = this.#records.get(connection);
    if (!record?.error) return;
    record.error = undefined;
    this.#touch(connection);
  }

  // ---------------------------------------------------------------------------------------------
  // Output

  #log(level: LogLevel, message: string, sa?: IkeSa, connection?: string): void {
    if (LOG_RANK[level] > this.#logRank) return;
    const name = connection ?? sa?.connection?.name;
    this.#event({
      type: 'log',
      level,
      message,
      ...(name && { connection: name }),
      ...(sa && { ikeSa: sa.id }),
    });
  }

  #logUnauthenticated(level: LogLevel, cause: string, message: string, connection?: string): void {
    if (LOG_RANK[level] > this.#logRank) return;
    this.#unauthenticatedLog.log(cause, (suppressed) => {
      const text = message.length > MAX_LOG_LINE ? `${message.slice(0, MAX_LOG_LINE)}...` : message;
      this.#log(level, `${text}${heldBack(suppressed)}`, undefined, connection);
    });
  }

  #event(event: EngineEvent): void {
    this.#out.push({ type: 'event', event });
  }

  #makeContext(): ProtocolContext {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const engine = this;
    return {
      get now() {
        return engine.#now;
      },
      crypto: this.#crypto,
      get settings() {
        return engine.#settings;
      },
      random: () => this.#random(),
      nextId: () => this.#nextId++,
      emit: (action) => this.#out.push(action),
      event: (event) => this.#event(event),
      log: (level, message, sa, connection) => this.#log(level, message, sa, connection),
      logs: (level) => LOG_RANK[level] <= this.#logRank,
      logUnauthenticated: (level, cause, message, connection) =>
        this.#logUnauthenticated(level, cause, message, connection),
      get connections() {
        return engine.#connections.list;
      },
      get halfOpen() {
        return engine.#halfOpen;
      },
      responderCandidates: (version, local, remote) =>
        this.#connections.responderCandidates(version, local, remote),
      siblings: (connection) => this.#connections.siblings(connection),
      forPeerIdentity: (version, identity, local, remote) =>
        this.#connections.forPeerIdentity(version, identity, local, remote),
      lookup: (key) => this.#keys.get(key),
      index: (sa, key) => {
        this.#keys.set(key, sa);
        sa.lookupKeys = appended(sa.lookupKeys, key);
      },
      halfOpenFrom: (address) => this.#halfOpenByAddress.get(address)?.size ?? 0,
      maxHalfOpenPerAddress: this.#limits.maxHalfOpenPerAddress,
      admitHalfOpen: (remote) => this.#admitHalfOpen(remote),
      addSa: (sa) => this.#addSa(sa),
      assign: (sa, connection) => this.#assign(sa, connection),
      ikeUp: (sa) => this.#ikeUp(sa),
      ikeRekeyed: (old, next) => this.#ikeRekeyed(old, next),
      setAside: (sa) => {
        if (!sa.deleted && !sa.closing) this.#close(sa);
      },
      discardIke: (sa, reason) => {
        this.#log(sa.closing ? 'debug' : 'info', `${saKind(sa)} discarded: ${reason}`, sa);
        this.#removeSa(sa);
      },
      ikeFailed: (sa, failure) => this.#ikeFailed(sa, failure),
      refused: (connections, failure, kind) => {
        // A client's own mistake does not hide their Active tunnels: Active outranks Error.
        for (const name of connections) this.#setError(name, failure);
        this.#event({
          type: 'failed',
          kind,
          cause: failure.cause,
          reason: failure.reason,
          refused: true,
          ...(connections.length === 1 && { connection: connections[0]! }),
        });
      },
      ikeDeletedByPeer: (sa, children) => this.#deleteIkeSa(sa, 'deleted by the peer', false, children),
      authenticated: (sa, identity) => this.#authenticated(sa, identity),
      initialContact: (sa) => this.#initialContact(sa),
      hasOtherSaWithPeer: (sa) => this.#hasOtherSaWithPeer(sa),
      heard: (sa) => {
        sa.lastHeard = this.#now;
        sa.probing = false;
      },
      peerMoved: (sa, local, remote) => this.#followPeer(sa, local, remote),
      beginChild: (sa, connection, selectors, rekeyOf) =>
        this.#beginChild(sa, connection, selectors, rekeyOf),
      buildChild: (negotiation, spec) => this.#buildChild(negotiation, spec),
      installInbound: (negotiation, child) => {
        negotiation.inbound = child;
        this.#inbound.set(child.id, negotiation);
        this.#out.push({ type: 'install-inbound', child });
      },
      childUp: (negotiation, child) => this.#childUp(negotiation, child),
      childFailed: (negotiation, failure) => this.#childFailed(negotiation, failure),
      endChild: (negotiation) => this.#endNegotiation(negotiation),
      childDeferred: (negotiation, seconds, reason) => this.#childDeferred(negotiation, seconds, reason),
      deleteChild: (id, reason) => {
        const entry = this.#children.get(id);
        if (entry) this.#removeChild(entry, reason, true);
      },
      childrenDeletedByPeer: (sa, spisOut) => this.#childrenDeletedByPeer(sa, spisOut),
      arm: (sa, name, at) => this.#deadlines.set(sa, name, at),
      disarm: (sa, name) => this.#deadlines.clear(sa, name),
      allocateSpi: (sa, then) => this.#spi(sa, then),
      compute: (sa, job, then) => this.#compute(sa, job, then),
    };
  }

  /**
   * An inbound SPI: reserved by the kernel through a `reserve-spi` action, or from the embedder's
   * synchronous source, else random. A failed reservation falls back to a random one (the install
   * then adds the SA outright: the backends fall back from UPDATE to ADD).
   */
  #spi(sa: IkeSa, then: (spi: number) => void): void {
    if (this.#reserveSpis) {
      const id = this.#nextId++;
      this.#reservations.set(id, { sa, then });
      this.#out.push({ type: 'reserve-spi', id, local: sa.local.address, remote: sa.remote.address });
      return;
    }
    try {
      const allocated = this.#allocateSpi?.(sa.local.address, sa.remote.address);
      if (allocated !== undefined) {
        then(allocated);
        return;
      }
    } catch (error) {
      then(this.#spiRefused(sa, error as Error));
      return;
    }
    then(this.#randomSpi());
  }

  /** The kernel reserved no SPI: a random one instead, and a word in the log. */
  #spiRefused(sa: IkeSa, error: Error): number {
    this.#log('warn', `the kernel reserved no SPI (${error.message}): using a random one`, sa);
    return this.#randomSpi();
  }

  #randomSpi(): number {
    for (;;) {
      const bytes = this.#crypto.randomBytes(4);
      const spi = readU32be(bytes);
      // SPIs 1-255 are reserved by IANA (RFC 4303 section 2.1); 0 is invalid.
      if (spi > 255) return spi;
    }
  }

  #compute(sa: IkeSa, job: DhJob, then: (result: DhJobResult | Error) => void): void {
    if (!this.#deferCompute) {
      let result: DhJobResult | Error;
      try {
        result = runDhJob(this.#crypto, job);
      } catch (error) {
        result = error as Error;
      }
      then(result);
      return;
    }
    const id = this.#nextId++;
    this.#computes.set(id, { sa, then });
    this.#out.push({ type: 'compute', id, job });
  }
}

/** "ISAKMP SA" in IKEv1's words, "IKE SA" in IKEv2's. */
function saKind(sa: IkeSa): string {
  return sa.version === 1 ? 'ISAKMP SA' : 'IKE SA';
}

/**
 * A child SA's selectors: the connection's own list itself when they are all the configured ones
 * (a gateway's side of every client's child SA), else each shared or compactly copied.
 */
function sharedSelectors(
  selectors: readonly TrafficSelector[],
  configured: readonly TrafficSelector[],
): readonly TrafficSelector[] {
  const shared = selectors.map((ts) => sharedTrafficSelector(ts, configured));
  return shared.length === configured.length && shared.every((ts, i) => ts === configured[i])
    ? configured
    : shared;
}

/** Whether a child SA was negotiated for this selector pair (what a rekey keeps). */
function samePair(entry: ChildEntry, localTs: TrafficSelector, remoteTs: TrafficSelector): boolean {
  return (
    sameTrafficSelector(entry.requested.localTs, localTs) &&
    sameTrafficSelector(entry.requested.remoteTs, remoteTs)
  );
}

/** The other child SAs of `sa` for `latest`'s connection and selector pair. */
function pairSiblings(sa: IkeSa, latest: ChildEntry): ChildEntry[] {
  const { localTs, remoteTs } = latest.requested;
  return sa.children.filter(
    (entry) =>
      entry !== latest &&
      entry.child.connection === latest.child.connection &&
      samePair(entry, localTs, remoteTs),
  );
}

function peerKey(connection: string, address: string): string {
  return flatKey(connection, address);
}

/**
 * A key of several parts, joined by NUL, for a Map. Joined, not a template literal: V8 builds a
 * template of n parts as a tree of n - 1 cons strings (32 bytes each) that lives as long as the
 * key, which for an SA's keys is hundreds of bytes per SA; join makes one flat string.
 */
function flatKey(...parts: (string | number)[]): string {
  return parts.join('\0');
}

/**
 * A copy of a child SA with some fields changed. Not `{ ...child, ...changes }`: in V8 a literal
 * that begins with a spread gets a hidden class of its own, hundreds of bytes for each of a
 * gateway's hundred thousand child SAs; copies made by Object.assign share theirs.
 */
function changedChild(child: ChildSa, changes: Partial<ChildSa>): ChildSa {
  return Object.assign({}, child, changes);
}
