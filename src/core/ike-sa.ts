import { EMPTY } from './collections.js';
import type { Connection } from './connection.js';
import type { DeadlineEntry } from './deadlines.js';
import { type Endpoint, formatEndpoint } from './endpoint.js';
import type { Suite } from './proposal.js';
import type { ChildSa, IkeSaInfo, NatState, Role } from './sa.js';
import type { TrafficSelector } from './traffic-selector.js';

/**
 * What the core keeps of every IKE SA, whatever its version: addresses, identities, schedule,
 * liveness, and its place in the core's indexes. A protocol module extends it with the state of
 * its exchanges (IKEv1: the ISAKMP SA with its cookies and IV chains; IKEv2: SPIs, the message
 * window, SK_* keys). Fields the core owns are written by the core alone; the protocol reports
 * what happens through its ProtocolContext.
 */
export abstract class IkeSa {
  /** Set when the SA is made, or later through ProtocolContext.assign (the core indexes by it). */
  connection: Connection | undefined;
  nat: NatState = { local: false, remote: false };
  /** IKE moved to the NAT-T port: messages carry the non-ESP marker (RFC 3948 section 2.2). */
  floated = false;
  suite: Suite | undefined;
  localId: string | undefined;
  /** The peer's identity as authenticated (formatted), once it is. */
  remoteId: string | undefined;
  /** The IKE SA lifetime both sides agreed on (seconds); 0 until negotiated. */
  lifetimeSeconds = 0;
  /** Whether the peer answers liveness checks (IKEv1: the DPD vendor ID; IKEv2: always). */
  probes = false;
  /** The SA this one replaces (an IKE SA rekey): its children come over when this one is up. */
  replaces: number | undefined;

  // --- owned by the core -------------------------------------------------------------------------
  established = false;
  deleted = false;
  /** A Delete of ours awaits its answer: out of status and connections, still found by its SPIs. */
  closing = false;
  establishedAt: number | undefined;
  rekeyAt: number | undefined;
  expiresAt: number | undefined;
  lastHeard: number;
  /** A liveness probe went out and nothing authenticated came back since. */
  probing = false;
  /** A replacement (rekey) was started: started once. */
  rekeying = false;
  /**
   * A responder's new IKE SA with no child SA yet: the peer's child negotiation (IKEv1 quick mode)
   * follows in its own exchange, so its connection is still coming up (Pending, not Down).
   */
  awaitingChild = false;
  // Short lists (a few entries at most), replaced on change (core/collections.ts, appended and
  // without): arrays of exactly their length, which cost far less than Sets per SA.
  /** Connections waiting for this SA to come up to negotiate their child SAs over it. */
  waiting: readonly Connection[] = EMPTY;
  /** Child SAs this IKE SA manages (installed; see ChildNegotiation for those under way). */
  children: readonly ChildEntry[] = EMPTY;
  negotiations: readonly ChildNegotiation[] = EMPTY;
  /** Lookup keys in the core's SA table, removed with the SA. */
  lookupKeys: readonly string[] = EMPTY;
  /** Counted as half-open by the core (a responder SA not yet authenticated). */
  halfOpen = false;
  /** The index key of its authenticated peer identity (INITIAL-CONTACT), once set. */
  identityKey: string | undefined;
  /** Its connection's share group (IkeProtocol.shareKey), while indexed under it. */
  groupKey: string | undefined;
  /** Its armed deadlines (core/deadlines.ts keeps them here). */
  timers: readonly DeadlineEntry[] | undefined;

  constructor(
    readonly id: number,
    readonly version: 1 | 2,
    readonly role: Role,
    public local: Endpoint,
    public remote: Endpoint,
    readonly createdAt: number,
  ) {
    this.lastHeard = createdAt;
  }

  /** The protocol's own state name (MM_SA_I, IKE_SA_INIT_R...; ESTABLISHED once up). */
  abstract get state(): string;
  /** The initiator's and responder's SPIs (IKEv1 cookies) in hex, as captures show them. */
  abstract get spiIHex(): string;
  abstract get spiRHex(): string;

  describe(): string {
    return `${formatEndpoint(this.local)} <-> ${formatEndpoint(this.remote)}`;
  }

  info(): IkeSaInfo {
    return {
      id: this.id,
      connection: this.connection?.name ?? '',
      version: this.version,
      role: this.role,
      state: this.state,
      spiI: this.spiIHex,
      spiR: this.spiRHex,
      local: this.local,
      remote: this.remote,
      ...(this.suite && { suite: this.suite }),
      nat: this.nat,
      ...(this.localId && { localId: this.localId }),
      ...(this.remoteId && { remoteId: this.remoteId }),
      ...(this.establishedAt !== undefined && { establishedAt: this.establishedAt }),
      ...(this.rekeyAt !== undefined && { rekeyAt: this.rekeyAt }),
      ...(this.expiresAt !== undefined && { expiresAt: this.expiresAt }),
    };
  }
}

/** An installed child SA and the IKE SA that manages it (which may be gone: IKEv1 children outlive it). */
export interface ChildEntry {
  readonly id: number;
  child: ChildSa;
  sa: IkeSa;
  /** A replacement is being negotiated. */
  rekeying: boolean;
  /** The peer replaced it (a rekey we answered): it waits for the peer's Delete, never rekeyed again. */
  replaced: boolean;
  /**
   * The selector pair it was negotiated for, which the answer may have narrowed (RFC 7296 2.9):
   * what a connection's configured pairs are checked against, kept across rekeys.
   */
  readonly requested: { readonly localTs: TrafficSelector; readonly remoteTs: TrafficSelector };
  /** Its armed deadlines (core/deadlines.ts keeps them here). */
  timers: readonly DeadlineEntry[] | undefined;
}

/**
 * A child SA negotiation under way (a quick mode, a CREATE_CHILD_SA or the child of IKE_AUTH):
 * the core counts them per IKE SA (bounded) and per connection (status Pending), and removes the
 * inbound SA a responder installed ahead if the negotiation does not finish.
 */
export interface ChildNegotiation {
  readonly id: number;
  readonly sa: IkeSa;
  readonly connection: Connection;
  readonly localTs: TrafficSelector;
  readonly remoteTs: TrafficSelector;
  /** The peer asked for it (we answer): such negotiations are bounded per IKE SA. */
  readonly peerStarted: boolean;
  /**
   * A rekey we answer whose old child SA stays until the peer deletes it (IKEv2: the rekey's
   * initiator deletes the old one, RFC 7296 2.8); IKEv1 replaces it at once.
   */
  readonly keepReplaced: boolean;
  /** Its child SA replaces the others of the IKE SA with the same selector pair (IKEv1). */
  readonly supersedes: boolean;
  /** The child SA this one replaces (a rekey). */
  readonly rekeyOf?: number;
  /** The child whose inbound SA went in ahead of the rest (ProtocolContext.installInbound). */
  inbound?: ChildSa;
  /** Why the kernel refused that inbound SA: the negotiation then ends in a Delete. */
  refused?: string;
  open: boolean;
}
