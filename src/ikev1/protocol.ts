import { type Connection, sameAuthenticationKey } from '../core/connection.js';
import { type Endpoint, formatEndpoint } from '../core/endpoint.js';
import type { Failure } from '../core/failure.js';
import type { ChildEntry, IkeSa } from '../core/ike-sa.js';
import type { IkeProtocol, ProtocolContext } from '../core/protocol.js';
import type { ChildSa } from '../core/sa.js';
import type { TrafficSelector } from '../core/traffic-selector.js';
import { u32be } from '../wire/bytes.js';
import { DecodeError } from '../wire/errors.js';
import type { IkeHeaderPeek } from '../wire/ike-header.js';
import { type DecodedMessage, decodeMessage } from './codec.js';
import { ExchangeType, NotifyType, ProtocolId } from './constants.js';
import { ExchangeError, failureOf, isTyped, notifyOf, UnverifiedMessage } from './errors.js';
import {
  clearNotify,
  deletePayload,
  dpdNotify,
  receiveInformational,
  sendInformational,
} from './informational.js';
import { IsakmpSa, isakmpSpi } from './isakmp-sa.js';
import {
  continueMainMode,
  failMainMode,
  firstMessageKey,
  initiatorKey,
  mainModeTimeout,
  pairKey,
  respondToMessage1,
  startMainMode,
  unverifiedMainMode,
} from './main-mode.js';
import {
  continueQuickMode,
  dropExchange,
  failQuickMode,
  quickModeTimeout,
  quickModeTimer,
  respondToQuickMode,
  startQuickMode,
} from './quick-mode.js';

/**
 * IKEv1 as a protocol module of the engine (src/core/engine.ts): the ISAKMP codec, main mode,
 * quick mode and informational exchanges, phase 1 protection, NAT-D and key derivation. What to
 * do with an SA once it is up, when to rekey it, probe its peer or let it expire is the core's.
 */
export class Ikev1Protocol implements IkeProtocol {
  readonly version = 1;
  /** IPsec SAs outlive their ISAKMP SA; the next one with the same peer takes them over (RFC 2409). */
  readonly adoptsChildren = true;

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
        'malformed',
        `dropped ${datagram.length} bytes from ${formatEndpoint(remote)}: ${error.message} at offset ${error.offset}`,
      );
      return;
    }
    const nonEspMarker = local.port === ctx.settings.natPort;
    const { exchangeType } = message.header;
    if (exchangeType === ExchangeType.IDENTITY_PROTECTION && header.initial) {
      this.#mainMode1(ctx, message, datagram, local, remote, nonEspMarker);
      return;
    }
    if (header.initial && refusedPhase1(message)) {
      // Aggressive mode (and base/auth-only) would otherwise time out silently at the client; RFC 2408
      // section 5.2 asks for a notify instead. Stateless, and only for a real offer (an SA payload
      // first), so a bare header cannot make us reflect anything bigger than itself.
      const name = exchangeName(exchangeType);
      ctx.logUnauthenticated(
        'info',
        'refused-phase1',
        `refused ${name} from ${formatEndpoint(remote)}: only main mode is supported`,
      );
      ctx.refused([], { cause: 'no-proposal', reason: `${name} is not supported` }, 'ike');
      ctx.emit(
        clearNotify(
          message.header.CKY_I,
          ctx.crypto.randomBytes(8),
          NotifyType.UNSUPPORTED_EXCHANGE_TYPE,
          local,
          remote,
          nonEspMarker,
        ),
      );
      return;
    }
    const sa = (ctx.lookup(pairKey(header.spiI, header.spiR)) ?? this.#awaitingCookie(ctx, header)) as
      IsakmpSa | undefined;
    if (!sa) {
      ctx.logUnauthenticated(
        'debug',
        'unknown-cookies',
        `dropped ${exchangeName(exchangeType)} from ${formatEndpoint(remote)}: unknown cookies`,
      );
      return;
    }
    if (sa.state === 'MM_SA_I' && exchangeType === ExchangeType.IDENTITY_PROTECTION && !sa.computing) {
      sa.CKY_R.set(message.header.CKY_R);
      ctx.index(sa, pairKey(sa.CKY_I, sa.CKY_R));
    }
    try {
      this.#dispatch(ctx, sa, message, datagram, local, remote);
    } catch (error) {
      if (!isTyped(error)) throw error;
      this.#failed(ctx, sa, message, error);
    }
  }

  initiate(
    ctx: ProtocolContext,
    connection: Connection,
    local: Endpoint,
    remote: Endpoint,
    replaces?: IkeSa,
  ): void {
    const old = replaces as IsakmpSa | undefined;
    const sa = startMainMode(ctx, connection, local, remote, {
      floated: old?.floated === true && local.port === ctx.settings.natPort,
      // A rekey asks for no more than the SA it replaces had (a peer that imposed a shorter
      // lifetime would otherwise enforce it in silence).
      ...(old && old.lifetimeSeconds > 0 && { maxLifetime: old.lifetimeSeconds }),
    });
    if (replaces) sa.replaces = replaces.id;
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
    startQuickMode(ctx, sa as IsakmpSa, connection, localTs, remoteTs, rekeyOf);
  }

  /**
   * An ISAKMP SA is rekeyed by a new main mode; its IPsec SAs move over when that is done. One
   * that floated to the NAT-T port starts its successor there, to the address and port the NAT
   * mapped (RFC 3947 section 4 lets the initiator begin on 4500): a peer behind a NAT may have no
   * mapping for port 500 any more, and its port 500 is not ours to guess.
   */
  rekeyIke(ctx: ProtocolContext, sa: IkeSa): void {
    const isakmp = sa as IsakmpSa;
    const connection = sa.connection!;
    if (isakmp.floated) {
      this.initiate(ctx, connection, sa.local, sa.remote, sa);
      return;
    }
    this.initiate(
      ctx,
      connection,
      sa.local.port === ctx.settings.port ? sa.local : { address: sa.local.address, port: ctx.settings.port },
      { address: sa.remote.address, port: connection.peer.port },
      sa,
    );
  }

  /** An IKEv1 Delete is never answered (RFC 2408 4.8): sent once, the SA goes at once. */
  deleteIke(ctx: ProtocolContext, sa: IkeSa): boolean {
    const isakmp = sa as IsakmpSa;
    sendInformational(ctx, isakmp, deletePayload(ProtocolId.ISAKMP, [isakmpSpi(isakmp)]));
    return false;
  }

  deleteChild(ctx: ProtocolContext, sa: IkeSa, child: ChildSa): void {
    sendInformational(ctx, sa as IsakmpSa, deletePayload(ProtocolId.IPSEC_ESP, [u32be(child.spiIn)]));
  }

  /** RFC 3706: R-U-THERE with the next sequence number; any authenticated answer will do. */
  probe(ctx: ProtocolContext, sa: IkeSa): void {
    const isakmp = sa as IsakmpSa;
    isakmp.dpdSeq = (isakmp.dpdSeq + 1) >>> 0;
    sendInformational(ctx, isakmp, dpdNotify(isakmp, NotifyType.R_U_THERE, isakmp.dpdSeq));
  }

  timer(ctx: ProtocolContext, sa: IkeSa, name: string): void {
    const isakmp = sa as IsakmpSa;
    const messageId = quickModeTimer(name);
    if (messageId !== undefined) {
      quickModeTimeout(ctx, isakmp, messageId);
      return;
    }
    if (name !== isakmp.mainMode.timer) return;
    if (isakmp.state === 'ESTABLISHED') {
      isakmp.mainMode.forget(); // the linger is over: repeats of message 5 are not answered now
      return;
    }
    const verdict = isakmp.mainMode.poll(ctx.now);
    if (verdict === 'resend' && isakmp.mainMode.lastSent) {
      ctx.log('debug', `retransmitting main mode message (${isakmp.mainMode.resends})`, sa);
      ctx.event({
        type: 'retransmit',
        ikeSa: sa.id,
        ...(sa.connection && { connection: sa.connection.name }),
      });
      isakmp.transmit(ctx, isakmp.mainMode.lastSent);
    } else if (verdict === 'give-up') {
      ctx.ikeFailed(sa, mainModeTimeout(isakmp));
      return;
    }
    if (isakmp.mainMode.dueAt !== undefined) ctx.arm(sa, isakmp.mainMode.timer, isakmp.mainMode.dueAt);
  }

  forget(ctx: ProtocolContext, sa: IkeSa): void {
    const isakmp = sa as IsakmpSa;
    for (const exchange of [...(isakmp.exchanges?.values() ?? [])]) dropExchange(ctx, isakmp, exchange);
    isakmp.state = 'DELETED';
  }

  /** A responder's main mode whose messages 5 failed their integrity check: a PSK mismatch, likely. */
  stalled(sa: IkeSa): Failure | undefined {
    const isakmp = sa as IsakmpSa;
    return isakmp.unverified && mainModeTimeout(isakmp);
  }

  /** Main mode picks the pre-shared key by address: one ISAKMP SA serves every such sibling. */
  shareKey(connection: Connection): string {
    return sameAuthenticationKey(connection);
  }

  // -------------------------------------------------------------------------------------------

  /** Main mode message 1: a repeat of one we answered, or a new responder SA (within the limits). */
  #mainMode1(
    ctx: ProtocolContext,
    message: DecodedMessage,
    datagram: Uint8Array,
    local: Endpoint,
    remote: Endpoint,
    nonEspMarker: boolean,
  ): void {
    const { CKY_I } = message.header;
    const known = ctx.lookup(firstMessageKey(CKY_I, remote)) as IsakmpSa | undefined;
    if (known) {
      const answer = known.mainMode.isRepeat(datagram) ? known.mainMode.answerToRepeat() : undefined;
      if (answer) known.transmit(ctx, answer);
      return;
    }
    if (!ctx.admitHalfOpen(remote)) return;
    let sa: IsakmpSa;
    try {
      sa = respondToMessage1(ctx, message, local, remote);
    } catch (error) {
      if (!isTyped(error)) throw error;
      const failure = failureOf(error);
      const concerned = error instanceof ExchangeError ? error.connections : [];
      ctx.logUnauthenticated(
        'warn',
        `main-mode-refused ${concerned.join(' ')}`,
        `main mode from ${formatEndpoint(remote)} refused: ${failure.reason}`,
        concerned.length === 1 ? concerned[0] : undefined,
      );
      // The connections it was meant for show why in status (a client's own mistake does not
      // hide their Active tunnels: Active outranks Error).
      ctx.refused(concerned, failure, 'ike');
      const notify = notifyOf(error) ?? NotifyType.PAYLOAD_MALFORMED;
      ctx.emit(clearNotify(CKY_I, ctx.crypto.randomBytes(8), notify, local, remote, nonEspMarker));
      return;
    }
    sa.floated = nonEspMarker;
    sa.mainMode.received(datagram, { alreadyAnswered: true });
    ctx.addSa(sa);
  }

  /** An initiator's SA before the responder's cookie is known (main mode message 2). */
  #awaitingCookie(ctx: ProtocolContext, header: IkeHeaderPeek): IsakmpSa | undefined {
    const sa = ctx.lookup(initiatorKey(header.spiI)) as IsakmpSa | undefined;
    return sa?.state === 'MM_SA_I' ? sa : undefined;
  }

  #dispatch(
    ctx: ProtocolContext,
    sa: IsakmpSa,
    message: DecodedMessage,
    datagram: Uint8Array,
    local: Endpoint,
    remote: Endpoint,
  ): void {
    const { header } = message;
    switch (header.exchangeType) {
      case ExchangeType.IDENTITY_PROTECTION: {
        if (sa.mainMode.isRepeat(datagram)) {
          const answer = sa.mainMode.answerToRepeat();
          if (answer) sa.transmit(ctx, answer);
          return;
        }
        // Up, gone, or computing its keys (the peer retransmits what we have not answered yet).
        if (sa.state === 'ESTABLISHED' || sa.state === 'DELETED' || sa.computing) return;
        continueMainMode(ctx, sa, message, datagram, local, remote);
        return;
      }
      case ExchangeType.QUICK_MODE: {
        if (sa.state !== 'ESTABLISHED')
          throw new ExchangeError('quick mode before main mode completed', NotifyType.INVALID_EXCHANGE_TYPE);
        const exchange = sa.exchanges?.get(header.messageId);
        if (exchange?.flight.isRepeat(datagram)) {
          const answer = exchange.flight.answerToRepeat();
          if (answer) sa.transmit(ctx, answer);
          return;
        }
        if (exchange) {
          continueQuickMode(ctx, sa, exchange, message, datagram, local, remote);
        } else if (sa.usedQuickMode(header.messageId)) {
          // An old message 1 whose exchange is over: it would verify again, move the peer to
          // wherever the copy came from and make another child SA.
          ctx.logUnauthenticated(
            'debug',
            'quick-mode-replay',
            `quick mode ${header.messageId.toString(16).padStart(8, '0')} from ${formatEndpoint(remote)} again: dropped as a replay`,
            sa.connection?.name,
          );
        } else {
          respondToQuickMode(ctx, sa, message, datagram, local, remote);
        }
        return;
      }
      case ExchangeType.INFORMATIONAL:
        receiveInformational(ctx, sa, message, local, remote);
        return;
      default:
        throw new ExchangeError(
          `${exchangeName(header.exchangeType)} exchanges are not supported`,
          NotifyType.UNSUPPORTED_EXCHANGE_TYPE,
        );
    }
  }

  #failed(
    ctx: ProtocolContext,
    sa: IsakmpSa,
    message: DecodedMessage,
    error: ExchangeError | DecodeError,
  ): void {
    const { exchangeType, messageId } = message.header;
    if (exchangeType === ExchangeType.QUICK_MODE && sa.state === 'ESTABLISHED') {
      failQuickMode(ctx, sa, messageId, error);
      return;
    }
    if (sa.state === 'ESTABLISHED') {
      // A garbled or forged message under an established SA: log (at a bounded rate) and keep the SA.
      const failure = failureOf(error instanceof UnverifiedMessage ? error.error : error);
      ctx.logUnauthenticated(
        'warn',
        'ignored-message',
        `${exchangeName(exchangeType)} from ${formatEndpoint(sa.remote)} ignored: ${failure.reason}`,
      );
      return;
    }
    // Forged or garbled, or the keys differ: dropped, and named if main mode then times out.
    if (error instanceof UnverifiedMessage) unverifiedMainMode(ctx, sa, error);
    else failMainMode(ctx, sa, error);
  }
}

/** Phase 1 exchanges other than main mode, opened with an SA payload: answered UNSUPPORTED_EXCHANGE_TYPE. */
function refusedPhase1({ header, payloads }: DecodedMessage): boolean {
  const phase1 = [ExchangeType.BASE, ExchangeType.AUTHENTICATION_ONLY, ExchangeType.AGGRESSIVE] as number[];
  return phase1.includes(header.exchangeType) && payloads?.[0]?.kind === 'sa';
}

function exchangeName(type: number): string {
  const name = Object.entries(ExchangeType).find(([, value]) => value === type)?.[0];
  return name ?? `exchange type ${type}`;
}
