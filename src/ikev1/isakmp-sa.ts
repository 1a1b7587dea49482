import type { Action, LogLevel } from '../core/actions.js';
import type { Connection } from '../core/connection.js';
import { type Endpoint, formatEndpoint } from '../core/endpoint.js';
import type { Suite } from '../core/proposal.js';
import type { RetransmitPolicy } from '../core/retransmit.js';
import type { ChildSa, IkeSaInfo, NatState, Role } from '../core/sa.js';
import type { KeyExchange } from '../crypto/dh.js';
import type { Phase1Keys } from '../crypto/kdf-ikev1.js';
import type { CryptoProvider } from '../crypto/provider.js';
import type { Prf } from '../crypto/transforms.js';
import { concat, toHex } from '../wire/bytes.js';
import {
  type DecodedMessage,
  decodePayloads,
  encodePayloads,
  encodeWithBody,
  type Payload,
  payloadChainLength,
  payloadType,
} from './codec.js';
import { HeaderFlag } from './constants.js';
import { Flight } from './flight.js';
import type { Phase1Protection } from './protection.js';
import type { NatTVariant, PeerVendorIds } from './vendor-ids.js';
import type { QuickModeExchange } from './quick-mode.js';

/** What the exchange modules need from the engine that runs them. */
export interface Host {
  readonly crypto: CryptoProvider;
  readonly now: number;
  readonly retransmit: RetransmitPolicy;
  readonly natPort: number;
  /** Emit 'ike-keys' events (the debug key log): off unless asked for. */
  readonly exportKeys: boolean;
  readonly connections: readonly Connection[];
  /** Claim a NAT in NAT-D (as strongSwan's encap=yes does) so both ends send ESP in UDP. */
  readonly forceEncapsulation: boolean;
  /** An inbound SPI reserved by the kernel backend; absent, SPIs are random. */
  allocateSpi?(local: string, remote: string): number | undefined;
  emit(action: Action): void;
  log(level: LogLevel, message: string, sa?: IsakmpSa, connection?: string): void;
  nextId(): number;
  random(): number;
  /** Register an SA under a lookup key (see SaTable). */
  index(sa: IsakmpSa, key: string): void;
  established(sa: IsakmpSa): void;
  fail(sa: IsakmpSa, reason: string): void;
  installChild(child: ChildSa, exchange: QuickModeExchange): void;
  deleteChildren(sa: IsakmpSa, spis: readonly Uint8Array[]): void;
  /** The peer deleted this ISAKMP SA; its IPsec SAs live on (RFC 2409 keeps the phases apart). */
  isakmpSaDeletedByPeer(sa: IsakmpSa): void;
  initialContact(sa: IsakmpSa): void;
  /** Whether another established ISAKMP SA with this SA's peer exists (else INITIAL-CONTACT). */
  hasOtherSaWith(sa: IsakmpSa): boolean;
}

export type IsakmpState =
  | 'MM_SA_I' // sent message 1, awaiting 2
  | 'MM_KE_I' // sent 3, awaiting 4
  | 'MM_AUTH_I' // sent 5, awaiting 6
  | 'MM_SA_R' // sent 2, awaiting 3
  | 'MM_KE_R' // sent 4, awaiting 5
  | 'ESTABLISHED'
  | 'DELETED';

/** A phase 1 SA and everything its exchanges share. */
export class IsakmpSa {
  state: IsakmpState;
  CKY_R: Uint8Array;
  connection: Connection | undefined;
  peerVendorIds: PeerVendorIds | undefined;
  /** The NAT-T flavour both sides announced, if any. */
  natT: NatTVariant | undefined;
  nat: NatState = { local: false, remote: false };
  /** IKE moved to the NAT-T port: messages carry the non-ESP marker. */
  floated = false;
  /** Initiator: what we offered; responder: what we accepted. */
  offered: readonly Suite[] = [];
  suite: Suite | undefined;
  lifetimeSeconds = 0;
  SAi_b: Uint8Array | undefined;
  ke: KeyExchange | undefined;
  gxi: Uint8Array | undefined;
  gxr: Uint8Array | undefined;
  Ni_b: Uint8Array | undefined;
  Nr_b: Uint8Array | undefined;
  prf: Prf | undefined;
  keys: Phase1Keys | undefined;
  protection: Phase1Protection | undefined;
  remoteId: string | undefined;
  localId: string | undefined;
  readonly mainMode = new Flight();
  readonly exchanges = new Map<number, QuickModeExchange>();
  establishedAt: number | undefined;
  rekeyAt: number | undefined;
  expiresAt: number | undefined;
  lastHeard: number;
  dpd: { seq: number; outstanding?: number; sentAt?: number; dueAt?: number } = { seq: 0 };
  keepaliveAt: number | undefined;
  /** The SA this one replaces (ISAKMP SA rekey): deleted once this one is up. */
  replaces: number | undefined;
  /** Set once a rekey replacement has been started, so it is started once. */
  rekeying = false;
  /** Sibling connections (same peer and key) that wait for this SA to run their quick modes. */
  readonly alsoFor = new Set<Connection>();

  constructor(
    readonly id: number,
    readonly role: Role,
    readonly CKY_I: Uint8Array,
    public local: Endpoint,
    public remote: Endpoint,
    readonly createdAt: number,
  ) {
    this.CKY_R = new Uint8Array(8);
    this.state = role === 'initiator' ? 'MM_SA_I' : 'MM_SA_R';
    this.lastHeard = createdAt;
  }

  get cookies(): string {
    return `${toHex(this.CKY_I)}_${toHex(this.CKY_R)}`;
  }

  get label(): string {
    return `${this.connection?.name ?? '?'}[${this.id}]`;
  }

  info(): IkeSaInfo {
    return {
      id: this.id,
      connection: this.connection?.name ?? '',
      version: 1,
      role: this.role,
      state: this.state,
      spiI: toHex(this.CKY_I),
      spiR: toHex(this.CKY_R),
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

  describe(): string {
    return `${formatEndpoint(this.local)} <-> ${formatEndpoint(this.remote)}`;
  }

  /**
   * Builds, sends and remembers a message. Encrypted when the phase 1 keys exist and the
   * exchange is past main mode's clear part.
   */
  send(
    host: Host,
    exchangeType: number,
    messageId: number,
    payloads: readonly Payload[],
    options: { encrypt: boolean; flight?: Flight; awaitReply?: boolean },
  ): Uint8Array {
    const chain = encodePayloads(payloads);
    const first = payloads.length ? payloadType(payloads[0]!) : 0;
    const fields = { CKY_I: this.CKY_I, CKY_R: this.CKY_R, exchangeType, messageId };
    let data: Uint8Array;
    if (options.encrypt) {
      if (!this.protection) throw new Error('encrypting before keys exist');
      data = encodeWithBody(
        { ...fields, flags: HeaderFlag.ENCRYPTION },
        first,
        this.protection.encrypt(messageId, chain),
      );
    } else {
      data = encodeWithBody({ ...fields, flags: 0 }, first, chain);
    }
    options.flight?.sent(data, host.now, host.retransmit, options.awaitReply ?? false);
    this.transmit(host, data);
    return data;
  }

  transmit(host: Host, data: Uint8Array): void {
    host.emit({ type: 'send', from: this.local, to: this.remote, data, nonEspMarker: this.floated });
  }

  /**
   * The payloads of a received message, decrypted when it is encrypted. `chain` is the payload
   * chain without padding (what HASH(1..3) cover); `accept` advances the IV chain.
   */
  open(message: DecodedMessage): { payloads: readonly Payload[]; chain: Uint8Array; accept(): void } {
    const { header } = message;
    if (message.payloads) return { payloads: message.payloads, chain: message.body, accept: () => {} };
    if (!this.protection) throw new Error('encrypted message before keys exist');
    const { plaintext, accept } = this.protection.decrypt(header.messageId, message.body);
    const payloads = decodePayloads(plaintext, header.nextPayload, { offset: 28, allowTrailing: true });
    const chain = plaintext.subarray(0, payloads.length ? payloadChainLength(plaintext) : 0);
    return { payloads, chain, accept };
  }
}

/** The ISAKMP SA's SPI in notifies and deletes: CKY-I | CKY-R (RFC 2408 section 3.14). */
export function isakmpSpi(sa: IsakmpSa): Uint8Array {
  return concat(sa.CKY_I, sa.CKY_R);
}

/** The first payload of a kind, or undefined. */
export function find<K extends Payload['kind']>(
  payloads: readonly Payload[],
  kind: K,
): Extract<Payload, { kind: K }> | undefined {
  return payloads.find((p): p is Extract<Payload, { kind: K }> => p.kind === kind);
}

export function findAll<K extends Payload['kind']>(
  payloads: readonly Payload[],
  kind: K,
): Extract<Payload, { kind: K }>[] {
  return payloads.filter((p): p is Extract<Payload, { kind: K }> => p.kind === kind);
}
