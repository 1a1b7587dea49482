import type { Action, EngineEvent, LogLevel } from './actions.js';
import type { Connection, Identity } from './connection.js';
import type { Endpoint } from './endpoint.js';
import type { Failure } from './failure.js';
import type { ChildEntry, ChildNegotiation, IkeSa } from './ike-sa.js';
import type { RetransmitPolicy } from './retransmit.js';
import type { ChildSa } from './sa.js';
import type { TrafficSelector } from './traffic-selector.js';
import type { CryptoProvider } from '../crypto/provider.js';
import type { DhJob, DhJobResult } from '../crypto/dh-job.js';
import type { IkeHeaderPeek } from '../wire/ike-header.js';

/**
 * The seam between the core (src/core/engine.ts) and a protocol module (src/ikev1, src/ikev2).
 * The core owns what both IKE versions share: the SA table and its indexes, timers, the child SA
 * lifecycle, liveness and keepalives, half-open limits, status. A protocol module owns its codec
 * and exchanges: it is handed datagrams and jobs (`IkeProtocol`) and reports what happened
 * through the `ProtocolContext` (an SA is up, failed with a typed cause, a child SA is ready...),
 * which the core turns into actions. Neither does I/O.
 */

export interface EngineSettings {
  /** Our IKE ports (500 and 4500 in production; anything in tests). */
  readonly port: number;
  readonly natPort: number;
  readonly retransmit: RetransmitPolicy;
  /** Emit 'ike-keys' events (a Wireshark key log): off unless asked for. */
  readonly exportKeys: boolean;
  /** Claim a NAT in NAT-D (as strongSwan's encap=yes does) so that both ends send ESP in UDP. */
  readonly forceEncapsulation: boolean;
  /** The largest IP datagram an IKE message may fill; bigger ones are fragmented (RFC 7383). */
  readonly fragmentSize: number;
}

/** What a protocol module negotiated for a child SA; the core adds its id, endpoints and schedule. */
export type ChildSaSpec = Pick<
  ChildSa,
  'mode' | 'encapsulation' | 'spiIn' | 'spiOut' | 'localTs' | 'remoteTs' | 'suite' | 'keys' | 'lifetime'
>;

export interface ProtocolContext {
  readonly now: number;
  readonly crypto: CryptoProvider;
  readonly settings: EngineSettings;
  /** Uniform in [0, 1). */
  random(): number;
  /** A fresh id in the one id space of IKE SAs, child SAs and negotiations. */
  nextId(): number;

  emit(action: Action): void;
  event(event: EngineEvent): void;
  log(level: LogLevel, message: string, sa?: IkeSa, connection?: string): void;
  /** Whether a line at this level is kept: text that costs to build (debug) is built only then. */
  logs(level: LogLevel): boolean;
  /**
   * A line about input nobody has authenticated: at most one per cause per interval (the rest
   * counted into the next one), the message cut to a bounded length, so a flood of bad packets
   * cannot become a flood of log lines.
   */
  logUnauthenticated(level: LogLevel, cause: string, message: string, connection?: string): void;

  readonly connections: readonly Connection[];
  /** Responder IKE SAs not yet authenticated, now (a protocol may ask for cookies above a count). */
  readonly halfOpen: number;
  /** Those of them from one peer address, and the most one address may hold. */
  halfOpenFrom(address: string): number;
  readonly maxHalfOpenPerAddress: number;
  /** Connections that may answer a first message from `remote` at `local`: exact address first. */
  responderCandidates(version: 1 | 2, local: Endpoint, remote: Endpoint): readonly Connection[];
  /** Connections configured for exactly this peer identity that may serve `remote` at `local`. */
  forPeerIdentity(
    version: 1 | 2,
    identity: Identity,
    local: Endpoint,
    remote: Endpoint,
  ): readonly Connection[];
  /** The connections one IKE SA of `connection` can carry child SAs for (IkeProtocol.shareKey), itself first. */
  siblings(connection: Connection): readonly Connection[];

  /** The SA registered under a lookup key (the protocol chooses its keys). */
  lookup(key: string): IkeSa | undefined;
  index(sa: IkeSa, key: string): void;

  /**
   * A responder may create one more half-open SA for `remote`; false (and a rate-limited line)
   * when a limit is reached. Ask before any expensive work.
   */
  admitHalfOpen(remote: Endpoint): boolean;
  /** A new IKE SA, either role: registered, indexed, counted; a responder's is half-open. */
  addSa(sa: IkeSa): void;
  /** A responder found which connection the SA is for (by the peer's identity): re-indexed. */
  assign(sa: IkeSa, connection: Connection): void;
  /** The IKE SA is authenticated and up: schedules, events, children waiting for it. */
  ikeUp(sa: IkeSa): void;
  /**
   * An IKE SA rekeyed in place (IKEv2 CREATE_CHILD_SA, RFC 7296 section 2.18): `next` is
   * registered and up, with the old SA's connection, authenticated identities and child SAs. The
   * old SA stays until it is deleted: at once when `next.role` is initiator (the rekey's
   * initiator deletes it), else when the peer's Delete comes or it expires.
   */
  ikeRekeyed(old: IkeSa, next: IkeSa): void;
  /**
   * An IKE SA kept only to answer the peer, which will delete it (the peer's redundant SA after
   * simultaneous rekeys): out of status and connections, forgotten after a while if it does not.
   */
  setAside(sa: IkeSa): void;
  /**
   * An IKE SA is done with: one that never came up and is not wanted (a redundant rekey), or one
   * whose Delete was answered. Gone from every table, no failure.
   */
  discardIke(sa: IkeSa, reason: string): void;
  /** The negotiation failed for good; the SA goes (without a Delete: it never was up). */
  ikeFailed(sa: IkeSa, failure: Failure): void;
  /**
   * A negotiation refused before any SA or child negotiation was made for it (a first message or
   * a quick mode that matches nothing): the connections it was meant for show why.
   */
  refused(connections: readonly string[], failure: Failure, kind: 'ike' | 'child'): void;
  /** The peer deleted the IKE SA. `children`: IKEv1 keeps them (phases are independent). */
  ikeDeletedByPeer(sa: IkeSa, children: 'keep' | 'delete'): void;
  /** The peer's identity is authenticated: recorded and indexed (INITIAL-CONTACT looks it up). */
  authenticated(sa: IkeSa, identity: Identity): void;
  /** INITIAL-CONTACT: the peer has no state for us, so its older SAs with the same identity go. */
  initialContact(sa: IkeSa): void;
  /** Whether another established IKE SA with this SA's connection and peer exists. */
  hasOtherSaWithPeer(sa: IkeSa): boolean;
  /** An authenticated message arrived: the peer is alive. */
  heard(sa: IkeSa): void;
  /** An authenticated message came from new addresses (a NAT mapping changed): follow it. */
  peerMoved(sa: IkeSa, local: Endpoint, remote: Endpoint): void;

  /**
   * A child SA negotiation starts; undefined when the IKE SA has too many under way (the peer
   * gets no answer; the refusal is counted and logged at a bounded rate). `supersedes`: a
   * protocol whose rekeys are not marked (IKEv1 quick mode) says that the child SA it makes
   * replaces the others of this IKE SA with the same connection and selector pair: they are not
   * rekeyed again and go with the peer's Delete or their lifetime, and the core keeps few such.
   */
  beginChild(
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
  ): ChildNegotiation | undefined;
  /** The child SA the negotiation produced, with its schedule. */
  buildChild(negotiation: ChildNegotiation, spec: ChildSaSpec): ChildSa;
  /** Install the inbound half now (the peer may send before the negotiation is over). */
  installInbound(negotiation: ChildNegotiation, child: ChildSa): void;
  /** The negotiation succeeded: install, report, and delete the SA it replaces. */
  childUp(negotiation: ChildNegotiation, child: ChildSa): void;
  childFailed(negotiation: ChildNegotiation, failure: Failure): void;
  /** The negotiation is over without an outcome of its own (its failure was reported already). */
  endChild(negotiation: ChildNegotiation): void;
  /** The peer is busy (TEMPORARY_FAILURE): no failure; a rekey is tried again after `seconds`. */
  childDeferred(negotiation: ChildNegotiation, seconds: number, reason: string): void;
  /** One of our child SAs is not wanted (the loser of simultaneous rekeys): deleted, the peer told. */
  deleteChild(id: number, reason: string): void;
  /** The peer deleted child SAs, named by their SPIs as it knows them (our outbound SPIs). */
  childrenDeletedByPeer(sa: IkeSa, spisOut: readonly number[]): void;

  /** Arm (or re-arm) a timer of the protocol's own; `IkeProtocol.timer` gets it when due. */
  arm(sa: IkeSa, name: string, at: number): void;
  disarm(sa: IkeSa, name: string): void;

  /**
   * An inbound SPI for a child SA: reserved by the kernel backend when it does (possibly in a
   * later input: `then` is not run if the SA is gone by then), else random (never below 256).
   */
  allocateSpi(sa: IkeSa, then: (spi: number) => void): void;
  /**
   * A Diffie-Hellman computation, possibly on another thread: `then` runs with the result (or the
   * error) inside a later input of the engine, or at once with a synchronous executor. It is not
   * run if the SA is gone by then.
   */
  compute(sa: IkeSa, job: DhJob, then: (result: DhJobResult | Error) => void): void;
}

/** What the core asks of a protocol module. */
export interface IkeProtocol {
  readonly version: 1 | 2;
  /**
   * Child SAs of an IKE SA that is gone wait for the next IKE SA with the same peer, which takes
   * them over, and each is deleted on its own (IKEv1). Otherwise they belong to their IKE SA
   * alone, and deleting it deletes them at both ends (IKEv2, RFC 7296 section 1.4.1).
   */
  readonly adoptsChildren: boolean;
  /** A datagram of this version (NAT-T keepalives and marker already gone). */
  receive(
    ctx: ProtocolContext,
    datagram: Uint8Array,
    header: IkeHeaderPeek,
    local: Endpoint,
    remote: Endpoint,
  ): void;
  /** Start an IKE SA for `connection`; `replaces`: an IKE SA rekey by a new negotiation (IKEv1). */
  initiate(
    ctx: ProtocolContext,
    connection: Connection,
    local: Endpoint,
    remote: Endpoint,
    replaces?: IkeSa,
  ): void;
  /** Negotiate a child SA over an established IKE SA (a new one, or a rekey of `rekeyOf`). */
  createChild(
    ctx: ProtocolContext,
    sa: IkeSa,
    connection: Connection,
    localTs: TrafficSelector,
    remoteTs: TrafficSelector,
    rekeyOf?: ChildEntry,
  ): void;
  /** Replace the IKE SA before it expires. */
  rekeyIke(ctx: ProtocolContext, sa: IkeSa): void;
  /** Tell the peer the IKE SA is going (the core removes it). */
  /**
   * Tell the peer the IKE SA is deleted. True when the protocol waits for the answer (resending
   * the Delete meanwhile) and calls ProtocolContext.discardIke once it has it or gives up.
   */
  deleteIke(ctx: ProtocolContext, sa: IkeSa): boolean;
  /** Tell the peer a child SA is going (the core removes it). */
  deleteChild(ctx: ProtocolContext, sa: IkeSa, child: ChildSa): void;
  /** Send a liveness check (DPD R-U-THERE, an empty INFORMATIONAL). */
  probe(ctx: ProtocolContext, sa: IkeSa): void;
  /** A timer armed through the context is due. */
  timer(ctx: ProtocolContext, sa: IkeSa, name: string): void;
  /** The IKE SA is gone from the core's tables: drop what the protocol keeps beside it. */
  forget?(ctx: ProtocolContext, sa: IkeSa): void;
  /**
   * A half-open SA ran out of time: why it got no further, when the protocol knows better than a
   * timeout (its peer's messages failed their integrity check). It then fails with that cause.
   */
  stalled?(sa: IkeSa): Failure | undefined;
  /**
   * Connections with the same key share one IKE SA for their child SAs (IKEv1: main mode picks the
   * pre-shared key by address, so one ISAKMP SA authenticates siblings with the same ends,
   * identities and key). The core adds the pre-shared key to it (a tag, never the key itself).
   * Absent or undefined: each connection has its own IKE SAs.
   */
  shareKey?(connection: Connection): string | undefined;
}
