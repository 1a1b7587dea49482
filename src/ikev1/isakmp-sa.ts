import { appended, EMPTY } from '../core/collections.js';
import type { Endpoint } from '../core/endpoint.js';
import { IkeSa } from '../core/ike-sa.js';
import type { Suite } from '../core/proposal.js';
import type { ProtocolContext } from '../core/protocol.js';
import type { Role } from '../core/sa.js';
import type { DhJobResult } from '../crypto/dh-job.js';
import type { Phase1Keys } from '../crypto/kdf-ikev1.js';
import type { Prf } from '../crypto/transforms.js';
import { concat, readU32be, toHex } from '../wire/bytes.js';
import { keptBytes } from '../wire/kept-bytes.js';
import {
  type DecodedMessage,
  decodePayloads,
  encodePayloads,
  encodeWithBody,
  type Payload,
  payloadChainLength,
  payloadType,
} from './codec.js';
import { HeaderFlag, NotifyType } from './constants.js';
import { ExchangeError } from './errors.js';
import { Flight } from './flight.js';
import { type Phase1Protection, UndecryptableMessage } from './protection.js';
import type { NatTVariant } from './vendor-ids.js';
import type { QuickModeExchange } from './quick-mode.js';

export type IsakmpState =
  | 'MM_SA_I' // sent message 1, awaiting 2
  | 'MM_KE_I' // sent 3, awaiting 4
  | 'MM_AUTH_I' // sent 5, awaiting 6
  | 'MM_SA_R' // sent 2, awaiting 3
  | 'MM_KE_R' // sent 4, awaiting 5
  | 'ESTABLISHED'
  | 'DELETED';

/** Informational message IDs remembered per SA, against replays. */
const RECENT_INFORMATIONAL = 32;
/**
 * Quick mode message IDs remembered per SA, against replays: a finished quick mode's exchange is
 * kept for a while only (the initiator's, DONE_EXCHANGE_LINGER) or not at all (the responder's),
 * and a copy of its message 1 after that verifies again. An
 * ISAKMP SA sees a few per child SA and lifetime; a peer that runs more than this may find its
 * oldest IDs forgotten.
 */
const RECENT_QUICK_MODES = 256;

/** A phase 1 SA and everything its exchanges share. */
export class IsakmpSa extends IkeSa {
  state: IsakmpState;
  readonly CKY_I: Uint8Array;
  /** Zeros until the responder's cookie is known (then set in place). */
  readonly CKY_R: Uint8Array;
  /** The NAT-T flavour both sides announced, if any. */
  natT: NatTVariant | undefined;
  /** Initiator: what we offered; responder: what we accepted. */
  offered: readonly Suite[] = [];
  SAi_b: Uint8Array | undefined;
  /** Our Diffie-Hellman key pair (sealed), until the keys are derived. */
  dh: DhJobResult | undefined;
  /** A Diffie-Hellman computation is under way: the peer's messages wait for their retransmission. */
  computing = false;
  gxi: Uint8Array | undefined;
  gxr: Uint8Array | undefined;
  Ni_b: Uint8Array | undefined;
  Nr_b: Uint8Array | undefined;
  prf: Prf | undefined;
  /** All of them during main mode; SKEYID_d and SKEYID_a (what later exchanges use) once it is over. */
  keys: (Pick<Phase1Keys, 'SKEYID_d' | 'SKEYID_a'> & Partial<Phase1Keys>) | undefined;
  protection: Phase1Protection | undefined;
  readonly mainMode = new Flight('mm');
  /** Created with the first quick mode and dropped with the last: most SAs sit idle with none. */
  exchanges: Map<number, QuickModeExchange> | undefined;
  /** RFC 3706: the sequence number of our last R-U-THERE. */
  dpdSeq = 0;
  /** Main mode messages that failed their integrity check: how many, and the last one's reason. */
  unverified: { count: number; reason: string } | undefined;
  /** Message IDs of the last informational exchanges received. */
  #informational: readonly number[] = EMPTY;
  /** Message IDs of the last quick modes, either role. */
  #quickModes: readonly number[] = EMPTY;

  constructor(
    id: number,
    role: Role,
    CKY_I: Uint8Array,
    local: Endpoint,
    remote: Endpoint,
    createdAt: number,
  ) {
    super(id, 1, role, local, remote, createdAt);
    // Both cookies copied into kept bytes (wire/kept-bytes.ts; CKY_R is filled in place when it is
    // known): the responder's CKY_I would otherwise be a view that keeps the whole first datagram
    // alive.
    const cookies = keptBytes(16);
    cookies.set(CKY_I);
    this.CKY_I = cookies.subarray(0, 8);
    this.CKY_R = cookies.subarray(8);
    this.state = role === 'initiator' ? 'MM_SA_I' : 'MM_SA_R';
  }

  get spiIHex(): string {
    return toHex(this.CKY_I);
  }

  get spiRHex(): string {
    return toHex(this.CKY_R);
  }

  get cookies(): string {
    return `${toHex(this.CKY_I)}_${toHex(this.CKY_R)}`;
  }

  /**
   * Builds, sends and remembers a message. Encrypted when the phase 1 keys exist and the
   * exchange is past main mode's clear part.
   */
  send(
    ctx: ProtocolContext,
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
      if (!this.protection) throw new ExchangeError('encrypting before keys exist', NotifyType.INVALID_FLAGS);
      data = encodeWithBody(
        { ...fields, flags: HeaderFlag.ENCRYPTION },
        first,
        this.protection.encrypt(messageId, chain),
      );
    } else {
      data = encodeWithBody({ ...fields, flags: 0 }, first, chain);
    }
    const { flight } = options;
    if (flight) {
      flight.sent(data, ctx.now, ctx.settings.retransmit, options.awaitReply ?? false);
      if (flight.dueAt !== undefined) ctx.arm(this, flight.timer, flight.dueAt);
    }
    this.transmit(ctx, data);
    return data;
  }

  /**
   * Whether a verified informational message is new: IKEv1 has no replay window, so a copy of an
   * old one (replayed, perhaps from another port, or with its padding garbled, which HASH(1) does
   * not cover) verifies again. The last few message IDs are remembered.
   */
  firstInformational(messageId: number): boolean {
    if (this.#informational.includes(messageId)) return false;
    this.#informational = remember(this.#informational, messageId, RECENT_INFORMATIONAL);
    return true;
  }

  /**
   * Whether a quick mode message ID was used under this SA: a message 1 with it and no exchange
   * of ours to answer it from is a replay (RFC 2408 section 3.1: a message ID is unique to its
   * exchange), and our own new exchanges never take one.
   */
  usedQuickMode(messageId: number): boolean {
    return this.#quickModes.includes(messageId);
  }

  /** A quick mode took this message ID (ours, or the peer's once its message 1 verified). */
  quickModeUsed(messageId: number): void {
    this.#quickModes = remember(this.#quickModes, messageId, RECENT_QUICK_MODES);
  }

  transmit(ctx: ProtocolContext, data: Uint8Array): void {
    ctx.emit({ type: 'send', from: this.local, to: this.remote, data, nonEspMarker: this.floated });
  }

  /**
   * The payloads of a received message, decrypted when it is encrypted. `chain` is the payload
   * chain without padding (what HASH(1..3) cover); `accept` advances the IV chain.
   */
  open(message: DecodedMessage): { payloads: readonly Payload[]; chain: Uint8Array; accept(): void } {
    const { header } = message;
    if (message.payloads) return { payloads: message.payloads, chain: message.body, accept: () => {} };
    // The encryption flag before keys exist: a forged or confused message, not a bug of ours.
    if (!this.protection)
      throw new ExchangeError('encrypted message before keys exist', NotifyType.INVALID_FLAGS);
    let decrypted: ReturnType<Phase1Protection['decrypt']>;
    try {
      decrypted = this.protection.decrypt(header.messageId, message.body);
    } catch (error) {
      // Forged or garbled: the same answer as a body that decrypts to garbage.
      if (error instanceof UndecryptableMessage)
        throw new ExchangeError(error.message, NotifyType.PAYLOAD_MALFORMED);
      throw error;
    }
    const { plaintext, accept } = decrypted;
    const payloads = decodePayloads(plaintext, header.nextPayload, { offset: 28, allowTrailing: true });
    const chain = plaintext.subarray(0, payloads.length ? payloadChainLength(plaintext) : 0);
    return { payloads, chain, accept };
  }
}

/** A fresh message ID for a new exchange on `sa` (never 0, never one in use). */
export function newMessageId(ctx: ProtocolContext, sa: IsakmpSa): number {
  for (;;) {
    const bytes = ctx.crypto.randomBytes(4);
    const id = readU32be(bytes);
    if (id !== 0 && !sa.exchanges?.has(id) && !sa.usedQuickMode(id)) return id;
  }
}

/** Adds an ID to a short list of recent ones, the oldest going beyond `max`. */
function remember(list: readonly number[], id: number, max: number): readonly number[] {
  const ids = appended(list, id);
  return ids.length > max ? ids.slice(1) : ids;
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
