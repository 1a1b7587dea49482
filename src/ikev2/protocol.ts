import { type Connection, sameAuthenticationKey } from '../core/connection.js';
import { type Endpoint, formatEndpoint } from '../core/endpoint.js';
import type { ChildEntry, IkeSa } from '../core/ike-sa.js';
import type { IkeProtocol, ProtocolContext } from '../core/protocol.js';
import type { ChildSa } from '../core/sa.js';
import type { TrafficSelector } from '../core/traffic-selector.js';
import { DecodeError } from '../wire/errors.js';
import type { IkeHeaderPeek } from '../wire/ike-header.js';
import { CriticalPayloadError, type DecodedMessage, decodeMessage, find } from './codec.js';
import { exchangeName, ExchangeType, HeaderFlag, NotifyType, ProtocolId } from './constants.js';
import { AWAITING_DELETE_TIMER, settleAwaitingDelete } from './child-handover.js';
import { respondToCreateChild, startCreateChild } from './create-child.js';
import { failureOf, isTyped } from './errors.js';
import { startIkeAuth, respondToAuth } from './ike-auth.js';
import { initKey, initiatorKey, pairKey, respondToInit, startIkeSaInit } from './ike-init.js';
import type { Ikev2Sa } from './ike-sa.js';
import { IKE_REKEY_RETRY, respondToIkeRekey, startIkeRekey } from './ike-rekey.js';
import {
  respondToInformational,
  sendDeleteChild,
  sendDeleteIke,
  sendLivenessCheck,
} from './informational.js';
import {
  openMessage,
  REQUEST_TIMER,
  requestTimeout,
  resendResponse,
  responseArrived,
  sendStateless,
} from './messages.js';
import { IntegrityFailure } from './protection.js';

/**
 * IKEv2 as a protocol module of the engine (RFC 7296): the codec, the message window, and the
 * exchanges (IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL). What to do with an SA once
 * it is up, when to rekey it, probe its peer or let it expire is the core's.
 */

/** When IKE_SA_INIT must carry a cookie (section 2.6). */
export interface CookiePolicy {
  /** Always ask for cookies (a test, or a responder under attack by configuration). */
  readonly always?: boolean;
  /** Ask once this many IKE SAs are half-open (default 100). */
  readonly threshold?: number;
}

export class Ikev2Protocol implements IkeProtocol {
  readonly version = 2;
  /** Child SAs belong to their IKE SA (RFC 7296 2.8: rekeys move them explicitly). */
  readonly adoptsChildren = false;
  /** The secret behind our cookies (section 2.6), made on first use. */
  #cookieSecret: Uint8Array | undefined;
  readonly #cookies: CookiePolicy;

  constructor(options: { cookies?: CookiePolicy } = {}) {
    this.#cookies = options.cookies ?? {};
  }

  receive(
    ctx: ProtocolContext,
    datagram: Uint8Array,
    header: IkeHeaderPeek,
    local: Endpoint,
    remote: Endpoint,
  ): void {
    let message: DecodedMessage;
    try {
      message = decodeMessage(datagram);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      ctx.logUnauthenticated(
        'debug',
        'ikev2-malformed',
        `dropped ${datagram.length} bytes from ${formatEndpoint(remote)}: ${error.message}`,
      );
      // A first request with a critical payload we do not know is answered (section 2.5).
      if (error instanceof CriticalPayloadError && header.initial && !(header.flags & HeaderFlag.RESPONSE))
        sendStateless(
          ctx,
          local,
          remote,
          header,
          NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
          Uint8Array.of(error.payloadType),
        );
      return;
    }
    const { exchangeType, flags, messageId } = message.header;
    const response = (flags & HeaderFlag.RESPONSE) !== 0;
    if (exchangeType === ExchangeType.IKE_SA_INIT && !response) {
      if (!header.initial || messageId !== 0) return;
      const known = ctx.lookup(initKey(header.spiI, remote)) as Ikev2Sa | undefined;
      if (known) {
        if (!known.computing) resendResponse(ctx, known);
        return;
      }
      respondToInit(ctx, message, datagram, local, remote, {
        required: (from) => this.#cookiesRequired(ctx, from),
        make: (spiI, Ni, from) => this.#cookie(ctx, spiI, Ni, from),
      });
      return;
    }
    if (exchangeType === ExchangeType.IKE_SA_INIT) {
      const sa = ctx.lookup(initiatorKey(header.spiI)) as Ikev2Sa | undefined;
      if (!sa || sa.state !== 'IKE_SA_INIT_I' || sa.pending?.messageId !== 0 || sa.computing) return;
      // A COOKIE or INVALID_KE_PAYLOAD answer carries no responder SPI yet.
      if (header.spiR.some((b) => b !== 0)) {
        sa.spiR.set(message.header.spiR);
        ctx.index(sa, pairKey(sa.spiI, sa.spiR));
      }
      sa.initResponse = datagram; // what the responder's AUTH signs
      this.#guarded(ctx, sa, () => responseArrived(ctx, sa, message.payloads));
      return;
    }
    const sa = ctx.lookup(pairKey(header.spiI, header.spiR)) as Ikev2Sa | undefined;
    if (!sa || sa.deleted) {
      ctx.logUnauthenticated(
        'debug',
        'ikev2-unknown-spi',
        `dropped ${exchangeName(exchangeType)} from ${formatEndpoint(remote)}: unknown SPIs`,
      );
      return;
    }
    if (sa.computing) return; // the peer will retransmit
    if (response) this.#response(ctx, sa, datagram, message);
    else this.#request(ctx, sa, datagram, message, local, remote);
  }

  #response(ctx: ProtocolContext, sa: Ikev2Sa, datagram: Uint8Array, message: DecodedMessage): void {
    if (sa.pending?.messageId !== message.header.messageId) return; // late or forged: nothing pending
    const payloads = this.#open(ctx, sa, datagram, message);
    if (!payloads) return;
    ctx.heard(sa);
    this.#guarded(ctx, sa, () => responseArrived(ctx, sa, payloads));
  }

  #request(
    ctx: ProtocolContext,
    sa: Ikev2Sa,
    datagram: Uint8Array,
    message: DecodedMessage,
    local: Endpoint,
    remote: Endpoint,
  ): void {
    const { messageId, exchangeType } = message.header;
    if (messageId === sa.peerNextId - 1) {
      // Section 2.3: a retransmitted request gets the same response again (once it is verified).
      if (sa.lastResponse?.messageId === messageId && this.#open(ctx, sa, datagram, message))
        resendResponse(ctx, sa);
      return;
    }
    if (messageId !== sa.peerNextId) return; // outside our window of one
    const payloads = this.#open(ctx, sa, datagram, message);
    if (!payloads) return;
    sa.peerNextId++;
    ctx.heard(sa);
    if (sa.state === 'ESTABLISHED') ctx.peerMoved(sa, local, remote);
    this.#guarded(ctx, sa, () => {
      // Deleting it (our Delete awaits its answer): only the peer's own Delete still matters.
      if (sa.closing && exchangeType !== ExchangeType.INFORMATIONAL) return;
      switch (exchangeType) {
        case ExchangeType.IKE_AUTH:
          if (sa.state === 'IKE_AUTH_R') respondToAuth(ctx, sa, messageId, payloads, local, remote);
          return;
        case ExchangeType.CREATE_CHILD_SA:
          if (sa.state !== 'ESTABLISHED') return;
          if (find(payloads, 'sa')?.proposals.some((p) => p.protocolId === ProtocolId.IKE))
            respondToIkeRekey(ctx, sa, messageId, payloads);
          else respondToCreateChild(ctx, sa, messageId, payloads);
          return;
        case ExchangeType.INFORMATIONAL:
          respondToInformational(ctx, sa, messageId, payloads);
          return;
        default:
          ctx.log('warn', `${exchangeName(exchangeType)} from ${formatEndpoint(remote)} ignored`, sa);
      }
    });
  }

  /** The verified payloads of a protected message; undefined (logged at a bounded rate) when it does not verify. */
  #open(
    ctx: ProtocolContext,
    sa: Ikev2Sa,
    datagram: Uint8Array,
    message: DecodedMessage,
  ): ReturnType<typeof openMessage> {
    try {
      return openMessage(sa, datagram, message);
    } catch (error) {
      if (!(error instanceof IntegrityFailure) && !(error instanceof DecodeError)) throw error;
      ctx.logUnauthenticated(
        'warn',
        'ikev2-unverified',
        `${exchangeName(message.header.exchangeType)} from ${formatEndpoint(sa.remote)} ignored: ${error.message}`,
      );
      return undefined;
    }
  }

  /** Typed errors in an exchange before the IKE SA is up end it; later ones are the exchange's own. */
  #guarded(ctx: ProtocolContext, sa: Ikev2Sa, body: () => void): void {
    try {
      body();
    } catch (error) {
      if (!isTyped(error)) throw error;
      if (sa.state === 'ESTABLISHED') ctx.log('warn', failureOf(error).reason, sa);
      else ctx.ikeFailed(sa, failureOf(error));
    }
  }

  initiate(ctx: ProtocolContext, connection: Connection, local: Endpoint, remote: Endpoint): void {
    const sa = startIkeSaInit(ctx, connection, local, remote, {
      authenticate: (ready) => startIkeAuth(ctx, ready),
    });
    ctx.addSa(sa);
  }

  createChild(
    ctx: ProtocolContext,
    sa: IkeSa,
    connection: Connection,
    localTs: TrafficSelector,
    remoteTs: TrafficSelector,
    rekeyOf?: ChildEntry,
  ): void {
    startCreateChild(ctx, sa as Ikev2Sa, connection, localTs, remoteTs, rekeyOf);
  }

  rekeyIke(ctx: ProtocolContext, sa: IkeSa): void {
    startIkeRekey(ctx, sa as Ikev2Sa);
  }

  /** Resent until answered (section 1.4.1); the SA is forgotten once it is, or on giving up. */
  deleteIke(ctx: ProtocolContext, sa: IkeSa): boolean {
    sendDeleteIke(ctx, sa as Ikev2Sa, () => ctx.discardIke(sa, 'its Delete is done'));
    return true;
  }

  deleteChild(ctx: ProtocolContext, sa: IkeSa, child: ChildSa): void {
    sendDeleteChild(ctx, sa as Ikev2Sa, child);
  }

  probe(ctx: ProtocolContext, sa: IkeSa): void {
    sendLivenessCheck(ctx, sa as Ikev2Sa);
  }

  timer(ctx: ProtocolContext, sa: IkeSa, name: string): void {
    if (name === REQUEST_TIMER) requestTimeout(ctx, sa as Ikev2Sa);
    else if (name === IKE_REKEY_RETRY) startIkeRekey(ctx, sa as Ikev2Sa);
    else if (name === AWAITING_DELETE_TIMER) settleAwaitingDelete(ctx, sa as Ikev2Sa);
  }

  forget(_ctx: ProtocolContext, sa: IkeSa): void {
    (sa as Ikev2Sa).state = 'DELETED';
  }

  /**
   * Connections to the same peer with the same identities, key and IKE policy share one IKE SA
   * (a tunnel and an L2TP transport connection to one gateway): its CREATE_CHILD_SA exchanges
   * carry each one's child SAs, and the responder picks among them by selectors and mode.
   */
  shareKey(connection: Connection): string {
    return `${connection.ike.name}\0${sameAuthenticationKey(connection)}`;
  }

  /**
   * Cookies above the threshold of half-open SAs in all, and from an address that already holds
   * half of what one address may: its last slots go to initiators that prove they receive at it,
   * not to a flood spoofing it (RFC 7296 2.6 leaves the policy to the responder).
   */
  #cookiesRequired(ctx: ProtocolContext, from: Endpoint): boolean {
    if (this.#cookies.always === true || ctx.halfOpen >= (this.#cookies.threshold ?? 100)) return true;
    return ctx.halfOpenFrom(from.address) >= Math.ceil(ctx.maxHalfOpenPerAddress / 2);
  }

  /** Cookie = prf(secret, Ni | IPi | SPIi), section 2.6 (its version byte left out: one secret). */
  #cookie(ctx: ProtocolContext, spiI: Uint8Array, Ni: Uint8Array, from: Endpoint): Uint8Array {
    this.#cookieSecret ??= ctx.crypto.randomBytes(32);
    return ctx.crypto.hmac('sha256', this.#cookieSecret, Ni, new TextEncoder().encode(from.address), spiI);
  }
}
