import type { Action, LogLevel } from '../core/actions.js';
import { CommandError } from '../core/command-error.js';
import { type Connection, diffConnections } from '../core/connection.js';
import { type Endpoint, formatEndpoint, sameEndpoint } from '../core/endpoint.js';
import { schedule } from '../core/lifetime.js';
import { DEFAULT_RETRANSMIT, type RetransmitPolicy } from '../core/retransmit.js';
import type { ChildSa } from '../core/sa.js';
import type { KernelEvent } from '../core/kernel-event.js';
import { SaTable } from '../core/sa-table.js';
import { childSaStatus, type ConnectionStatus, ikeSaStatus } from '../core/status.js';
import { parseTrafficSelector, sameTrafficSelector } from '../core/traffic-selector.js';
import type { CryptoProvider } from '../crypto/provider.js';
import { equalBytes, toHex, u32be } from '../wire/bytes.js';
import { DecodeError } from '../wire/errors.js';
import { type DecodedMessage, decodeMessage } from './codec.js';
import { ExchangeType, NotifyType, ProtocolId } from './constants.js';
import { ExchangeError, notifyOf } from './errors.js';
import {
  clearNotify,
  deletePayload,
  dpdNotify,
  isakmpNotify,
  notifyName,
  receiveInformational,
  sendInformational,
} from './informational.js';
import { type Host, IsakmpSa, isakmpSpi } from './isakmp-sa.js';
import { continueMainMode, respondToMessage1, startMainMode } from './main-mode.js';
import {
  continueQuickMode,
  type QuickModeExchange,
  respondToQuickMode,
  sharesIsakmpSa,
  startQuickMode,
} from './quick-mode.js';

/**
 * The IKEv1 engine: sans-I/O. Inputs are datagrams, timer ticks and commands, each with `now` in
 * seconds; outputs are actions for the runtime. Nothing here reads a clock or touches a socket.
 */

export interface Ikev1EngineOptions {
  readonly crypto: CryptoProvider;
  readonly connections: readonly Connection[];
  /** Our IKE ports (500 and 4500 in production; anything in tests). */
  readonly port?: number;
  readonly natPort?: number;
  /** Source address for connections that name no local address. */
  readonly defaultLocalAddress?: string;
  readonly retransmit?: RetransmitPolicy;
  /** Uniform in [0, 1): rekey jitter. */
  readonly random?: () => number;
  /** Responder SAs not yet authenticated, at most (cookie-less flood protection). */
  readonly maxHalfOpen?: number;
  readonly halfOpenTimeout?: number;
  /** RFC 3948 section 4: keepalives every 20 s from behind a NAT. */
  readonly keepaliveInterval?: number;
  /** Emit 'ike-keys' events with phase 1 encryption keys, for a Wireshark key log. */
  readonly exportKeys?: boolean;
  /** Claim a NAT so that ESP goes in UDP (the userspace data plane sends nothing else). */
  readonly forceEncapsulation?: boolean;
  /** Inbound SPIs from the kernel backend (XFRM_MSG_ALLOCSPI, SADB_GETSPI); absent, random ones. */
  readonly allocateSpi?: (local: string, remote: string) => number | undefined;
}

interface ChildEntry {
  child: ChildSa;
  sa: IsakmpSa;
  rekeying: boolean;
}

/** Quick mode exchanges are forgotten this long after they finish (answers to repeats until then). */
const DONE_EXCHANGE_LINGER = 30;

export class Ikev1Engine {
  #connections: readonly Connection[];
  readonly #options: Required<Omit<Ikev1EngineOptions, 'defaultLocalAddress' | 'allocateSpi'>> & {
    defaultLocalAddress?: string;
    allocateSpi?: (local: string, remote: string) => number | undefined;
  };
  readonly #sas = new SaTable<IsakmpSa>();
  readonly #children = new Map<number, ChildEntry>();
  readonly #errors = new Map<string, string>();
  #out: Action[] = [];
  #now = 0;
  #nextId = 1;
  readonly #host: Host;

  constructor(options: Ikev1EngineOptions) {
    this.#connections = options.connections;
    this.#options = {
      port: 500,
      natPort: 4500,
      retransmit: DEFAULT_RETRANSMIT,
      random: Math.random,
      maxHalfOpen: 1024,
      halfOpenTimeout: 30,
      keepaliveInterval: 20,
      exportKeys: false,
      forceEncapsulation: false,
      ...options,
    };
    this.#host = this.#makeHost();
  }

  get connections(): readonly Connection[] {
    return this.#connections;
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  receive(datagram: Uint8Array, local: Endpoint, remote: Endpoint, now: number): Action[] {
    return this.#run(now, () => this.#receive(datagram, local, remote));
  }

  /** Throws CommandError for an unknown name or a connection that cannot initiate. */
  initiate(name: string, now: number): Action[] {
    const connection = this.#connections.find((c) => c.name === name);
    if (!connection) throw new CommandError(`no connection named '${name}'`);
    const problem = this.#cannotInitiate(connection);
    if (problem) throw new CommandError(problem);
    return this.#run(now, () => this.#initiate(connection));
  }

  /** Throws CommandError for an unknown name. */
  terminate(name: string, now: number): Action[] {
    if (!this.#connections.some((c) => c.name === name))
      throw new CommandError(`no connection named '${name}'`);
    return this.#run(now, () => this.#terminate(name, 'terminated'));
  }

  /**
   * The kernel's events: traffic on a trap policy (ACQUIRE) starts its connection unless it is up or
   * under way; a soft expiry (bytes or packets) rekeys the child SA now, a hard one deletes it.
   */
  kernelEvent(event: KernelEvent, now: number): Action[] {
    return this.#run(now, () => {
      switch (event.type) {
        case 'acquire': {
          const connection = this.#connections.find((c) => c.name === event.connection);
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
          // The SAs' UDP encapsulation names the old port: install them again with the new one.
          for (const other of this.#children.values()) {
            if (other.sa !== entry.sa || !other.child.encapsulation) continue;
            other.child = { ...other.child, remote: event.remote };
            this.#out.push({ type: 'install-child', child: other.child });
          }
          return;
        }
        case 'install-failed':
          this.#installFailed(event.child, `the kernel refused the child SA: ${event.reason}`);
          return;
      }
    });
  }

  /**
   * Replaces the connections (a configuration reload). Unchanged connections keep their SAs
   * untouched; removed and changed ones are torn down with Deletes; changed and added ones whose
   * start is "initiate" are initiated.
   */
  reconfigure(connections: readonly Connection[], now: number): Action[] {
    return this.#run(now, () => {
      const { changed, removed, unchanged } = diffConnections(this.#connections, connections);
      for (const name of removed) this.#terminate(name, 'removed from the configuration');
      for (const name of changed) this.#terminate(name, 'configuration changed');
      // Unchanged connections keep their objects: their SAs refer to them.
      const kept = new Map(
        this.#connections.filter((c) => unchanged.includes(c.name)).map((c) => [c.name, c]),
      );
      this.#connections = connections.map((c) => kept.get(c.name) ?? c);
      for (const connection of this.#connections) {
        if (!kept.has(connection.name) && connection.start === 'initiate') this.#initiate(connection);
      }
    });
  }

  /** Deletes everything, telling the peers: for shutdown. */
  shutdown(now: number): Action[] {
    return this.#run(now, () => {
      for (const sa of [...this.#sas.values()]) this.#deleteIsakmpSa(sa, 'shutting down', true);
      for (const entry of [...this.#children.values()]) this.#removeChild(entry, 'shutting down', false);
    });
  }

  tick(now: number): Action[] {
    return this.#run(now, () => {
      for (const sa of [...this.#sas.values()]) this.#tickSa(sa);
      for (const entry of [...this.#children.values()]) this.#tickChild(entry);
    });
  }

  /** When the engine next needs a tick, or undefined when nothing is pending. */
  nextTimeout(): number | undefined {
    const times: (number | undefined)[] = [];
    for (const sa of this.#sas.values()) {
      times.push(sa.mainMode.dueAt, sa.keepaliveAt, sa.dpd.dueAt, sa.expiresAt);
      if (!sa.rekeying && this.#mayRekey(sa.connection)) times.push(sa.rekeyAt);
      if (sa.role === 'responder' && sa.state !== 'ESTABLISHED')
        times.push(sa.createdAt + this.#options.halfOpenTimeout);
      for (const exchange of sa.exchanges.values()) {
        times.push(
          exchange.flight.dueAt,
          exchange.doneAt === undefined ? undefined : exchange.doneAt + DONE_EXCHANGE_LINGER,
        );
      }
    }
    for (const entry of this.#children.values()) {
      times.push(entry.child.expiresAt);
      if (!entry.rekeying && this.#mayRekey(entry.sa.connection)) times.push(entry.child.rekeyAt);
    }
    const defined = times.filter((t): t is number => t !== undefined);
    return defined.length ? Math.min(...defined) : undefined;
  }

  status(): ConnectionStatus[] {
    return this.#connections.map((connection) => {
      const sas = [...this.#sas.values()].filter((sa) => sa.connection === connection);
      const children = [...this.#children.values()].filter((e) => e.child.connection === connection.name);
      const negotiating =
        sas.some((sa) => sa.state !== 'ESTABLISHED') ||
        [...this.#sas.values()].some((sa) => sa.alsoFor.has(connection)) ||
        sas.some((sa) =>
          [...sa.exchanges.values()].some((x) => x.state !== 'DONE' && x.connection === connection),
        );
      const error = this.#errors.get(connection.name);
      const status = children.length ? 'Active' : negotiating ? 'Pending' : error ? 'Error' : 'Down';
      return {
        name: connection.name,
        peer: connection.peer.address,
        status,
        ...(error && { error }),
        ikeSas: sas.map((sa) => ikeSaStatus(sa.info())),
        childSas: children.map((e) => childSaStatus(e.child)),
      };
    });
  }

  /** Installed child SAs, keys included: for the kernel backend and for tests. */
  children(): ChildSa[] {
    return [...this.#children.values()].map((e) => e.child);
  }

  // -------------------------------------------------------------------------------------------
  // Dispatch

  #run(now: number, body: () => void): Action[] {
    this.#now = now;
    try {
      body();
    } catch (error) {
      this.#log('error', `internal error: ${(error as Error).stack ?? String(error)}`);
    }
    const out = this.#out;
    this.#out = [];
    return out;
  }

  #receive(datagram: Uint8Array, local: Endpoint, remote: Endpoint): void {
    if (datagram.length === 1 && datagram[0] === 0xff) return; // NAT-T keepalive
    let message: DecodedMessage;
    try {
      message = decodeMessage(datagram);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.#log(
        'debug',
        `dropped ${datagram.length} bytes from ${formatEndpoint(remote)}: ${error.message} at offset ${error.offset}`,
      );
      return;
    }
    const { header } = message;
    const cookies = `${toHex(header.CKY_I)}_${toHex(header.CKY_R)}`;
    const firstMessage = header.CKY_R.every((byte) => byte === 0);
    const nonEspMarker = local.port === this.#options.natPort;

    if (header.exchangeType === ExchangeType.IDENTITY_PROTECTION && firstMessage) {
      const known = this.#sas.get(`h:${cookies.slice(0, 16)}@${remote.address}:${remote.port}`);
      if (known) {
        const answer = known.mainMode.isRepeat(datagram) ? known.mainMode.answerToRepeat() : undefined;
        if (answer) known.transmit(this.#host, answer);
        return;
      }
      const halfOpen = [...this.#sas.values()].filter(
        (sa) => sa.role === 'responder' && sa.state !== 'ESTABLISHED',
      ).length;
      if (halfOpen >= this.#options.maxHalfOpen) {
        this.#log(
          'warn',
          `dropped main mode from ${formatEndpoint(remote)}: ${halfOpen} half-open SAs already`,
        );
        return;
      }
      try {
        const sa = respondToMessage1(this.#host, message, local, remote);
        sa.floated = nonEspMarker;
        sa.mainMode.received(datagram, { alreadyAnswered: true });
        this.#addSa(sa);
      } catch (error) {
        const reason = errorText(error);
        const concerned = error instanceof ExchangeError ? error.connections : [];
        this.#log(
          'warn',
          `main mode from ${formatEndpoint(remote)} refused: ${reason}`,
          undefined,
          concerned.length === 1 ? concerned[0] : undefined,
        );
        // The connections it was meant for show why in status (a client's own mistake does not
        // hide their Active tunnels: Active outranks Error).
        for (const name of concerned) this.#setError(name, reason);
        this.#emitEvent({
          type: 'failed',
          reason,
          ...(concerned.length === 1 && { connection: concerned[0]! }),
        });
        const notify = notifyOf(error) ?? NotifyType.PAYLOAD_MALFORMED;
        this.#out.push(
          clearNotify(header.CKY_I, this.#host.crypto.randomBytes(8), notify, local, remote, nonEspMarker),
        );
      }
      return;
    }

    if (firstMessage && refusedPhase1(message)) {
      // Aggressive mode (and base/auth-only) would otherwise time out silently at the client; RFC 2408
      // section 5.2 asks for a notify instead. Stateless, and only for a real offer (an SA payload
      // first), so a bare header cannot make us reflect anything bigger than itself.
      this.#log(
        'info',
        `refused ${exchangeName(header.exchangeType)} from ${formatEndpoint(remote)}: only main mode is supported`,
      );
      this.#emitEvent({ type: 'failed', reason: `${exchangeName(header.exchangeType)} is not supported` });
      this.#out.push(
        clearNotify(
          header.CKY_I,
          this.#host.crypto.randomBytes(8),
          NotifyType.UNSUPPORTED_EXCHANGE_TYPE,
          local,
          remote,
          nonEspMarker,
        ),
      );
      return;
    }

    const sa =
      this.#sas.get(`p:${cookies}`) ?? (this.#initiatorAwaitingCookie(header.CKY_I) as IsakmpSa | undefined);
    if (!sa) {
      this.#log(
        'debug',
        `dropped ${exchangeName(header.exchangeType)} from ${formatEndpoint(remote)}: unknown cookies ${cookies}`,
      );
      return;
    }
    if (sa.state === 'MM_SA_I' && header.exchangeType === ExchangeType.IDENTITY_PROTECTION) {
      sa.CKY_R = header.CKY_R;
      this.#sas.index(sa, `p:${sa.cookies}`);
    }
    try {
      this.#dispatch(sa, message, datagram, local, remote);
    } catch (error) {
      this.#onExchangeError(sa, message, error);
    }
  }

  #initiatorAwaitingCookie(CKY_I: Uint8Array): IsakmpSa | undefined {
    const sa = this.#sas.get(`i:${toHex(CKY_I)}`);
    return sa?.state === 'MM_SA_I' ? sa : undefined;
  }

  #dispatch(
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
          if (answer) sa.transmit(this.#host, answer);
          return;
        }
        if (sa.state === 'ESTABLISHED' || sa.state === 'DELETED') return;
        // The initiator floats to the NAT-T port with message 5 (RFC 3947 section 4).
        if (sa.role === 'responder' && sa.state === 'MM_KE_R' && local.port === this.#options.natPort) {
          sa.floated = true;
          sa.local = local;
          sa.remote = remote;
        }
        sa.mainMode.received(datagram);
        continueMainMode(this.#host, sa, message);
        sa.lastHeard = this.#now;
        return;
      }
      case ExchangeType.QUICK_MODE: {
        if (sa.state !== 'ESTABLISHED')
          throw new ExchangeError('quick mode before main mode completed', NotifyType.INVALID_EXCHANGE_TYPE);
        const exchange = sa.exchanges.get(header.messageId);
        if (exchange?.flight.isRepeat(datagram)) {
          const answer = exchange.flight.answerToRepeat();
          if (answer) sa.transmit(this.#host, answer);
          return;
        }
        this.#followPeer(sa, local, remote);
        if (exchange) {
          exchange.flight.received(datagram);
          continueQuickMode(this.#host, sa, exchange, message);
        } else {
          respondToQuickMode(this.#host, sa, message);
          sa.exchanges.get(header.messageId)?.flight.received(datagram, { alreadyAnswered: true });
        }
        sa.lastHeard = this.#now;
        return;
      }
      case ExchangeType.INFORMATIONAL:
        receiveInformational(this.#host, sa, message);
        return;
      default:
        throw new ExchangeError(
          `${exchangeName(header.exchangeType)} exchanges are not supported`,
          NotifyType.UNSUPPORTED_EXCHANGE_TYPE,
        );
    }
  }

  /** A NAT mapping may change under an established SA: follow the peer's new address. */
  #followPeer(sa: IsakmpSa, local: Endpoint, remote: Endpoint): void {
    if (sa.floated && !sameEndpoint(sa.remote, remote)) {
      this.#log('info', `peer moved from ${formatEndpoint(sa.remote)} to ${formatEndpoint(remote)}`, sa);
      sa.remote = remote;
      sa.local = local;
    }
  }

  #onExchangeError(sa: IsakmpSa, message: DecodedMessage, error: unknown): void {
    const reason = errorText(error);
    const { exchangeType, messageId } = message.header;
    if (exchangeType === ExchangeType.QUICK_MODE && sa.state === 'ESTABLISHED') {
      const exchange = sa.exchanges.get(messageId);
      this.#log(
        'warn',
        `quick mode ${messageId.toString(16).padStart(8, '0')}: ${reason}`,
        sa,
        exchange?.connection.name,
      );
      this.#setError(exchange?.connection.name ?? sa.connection?.name, reason);
      if (exchange) this.#dropExchange(sa, exchange);
      else sa.protection?.forget(messageId);
      const notify = notifyOf(error);
      if (notify && notify !== NotifyType.INVALID_HASH_INFORMATION)
        sendInformational(this.#host, sa, isakmpNotify(sa, notify));
      return;
    }
    if (sa.state === 'ESTABLISHED') {
      // A garbled or forged informational: log and keep the SA.
      this.#log('warn', `${exchangeName(exchangeType)} ignored: ${reason}`, sa);
      return;
    }
    const notify = notifyOf(error);
    if (notify === NotifyType.AUTHENTICATION_FAILED || notify === NotifyType.PAYLOAD_MALFORMED) {
      this.#out.push(
        clearNotify(sa.CKY_I, sa.CKY_R, NotifyType.AUTHENTICATION_FAILED, sa.local, sa.remote, sa.floated),
      );
    }
    this.#fail(sa, reason);
  }

  // -------------------------------------------------------------------------------------------
  // Timers

  #tickSa(sa: IsakmpSa): void {
    const now = this.#now;
    if (sa.state !== 'ESTABLISHED') {
      if (sa.role === 'responder' && now >= sa.createdAt + this.#options.halfOpenTimeout) {
        this.#log('info', 'half-open SA timed out', sa);
        this.#remove(sa);
        return;
      }
      const verdict = sa.mainMode.poll(now);
      if (verdict === 'resend' && sa.mainMode.lastSent) {
        this.#log('debug', `retransmitting main mode message (${sa.mainMode.resends})`, sa);
        this.#retransmitted(sa, sa.connection?.name);
        sa.transmit(this.#host, sa.mainMode.lastSent);
      } else if (verdict === 'give-up') {
        this.#fail(sa, `no answer from ${formatEndpoint(sa.remote)} in main mode (state ${sa.state})`);
      }
      return;
    }
    for (const exchange of [...sa.exchanges.values()]) this.#tickExchange(sa, exchange);
    if (sa.expiresAt !== undefined && now >= sa.expiresAt) {
      // A client we never rekey towards (peer "any") may keep its IPsec SAs past its ISAKMP SA.
      this.#deleteIsakmpSa(sa, 'lifetime expired', true, 'keep');
      return;
    }
    if (
      sa.rekeyAt !== undefined &&
      now >= sa.rekeyAt &&
      !sa.rekeying &&
      this.#mayRekey(sa.connection) &&
      !this.#superseded(sa)
    ) {
      sa.rekeying = true;
      this.#log('info', 'rekeying the ISAKMP SA', sa);
      const replacement = startMainMode(this.#host, sa.connection!, this.#initiatorEndpoint(sa.connection!), {
        address: sa.remote.address,
        port: sa.connection!.peer.port,
      });
      replacement.replaces = sa.id;
      this.#addSa(replacement);
    }
    this.#tickDpd(sa);
    if (sa.keepaliveAt !== undefined && now >= sa.keepaliveAt) {
      this.#out.push({ type: 'keepalive', from: sa.local, to: sa.remote });
      sa.keepaliveAt = now + this.#options.keepaliveInterval;
    }
  }

  #tickExchange(sa: IsakmpSa, exchange: QuickModeExchange): void {
    if (exchange.doneAt !== undefined) {
      if (this.#now >= exchange.doneAt + DONE_EXCHANGE_LINGER) this.#dropExchange(sa, exchange);
      return;
    }
    const verdict = exchange.flight.poll(this.#now);
    if (verdict === 'resend' && exchange.flight.lastSent) {
      this.#log(
        'debug',
        `retransmitting quick mode message (${exchange.flight.resends})`,
        sa,
        exchange.connection.name,
      );
      this.#retransmitted(sa, exchange.connection.name);
      sa.transmit(this.#host, exchange.flight.lastSent);
    } else if (verdict === 'give-up') {
      const reason = `no answer from ${formatEndpoint(sa.remote)} in quick mode`;
      this.#log('warn', reason, sa, exchange.connection.name);
      this.#setError(exchange.connection.name, reason);
      this.#dropExchange(sa, exchange);
      if (exchange.rekeyOf !== undefined) {
        const old = this.#children.get(exchange.rekeyOf);
        if (old) old.rekeying = false;
      }
    }
  }

  #tickDpd(sa: IsakmpSa): void {
    const dpd = sa.connection?.ike.dpd;
    if (!dpd || !sa.peerVendorIds?.dpd || sa.dpd.dueAt === undefined || this.#now < sa.dpd.dueAt) return;
    const silent = this.#now - sa.lastHeard;
    if (sa.dpd.outstanding !== undefined && silent >= dpd.timeout) {
      this.#log('warn', `dead peer: no answer for ${Math.round(silent)} s, action ${dpd.action}`, sa);
      const connection = sa.connection!;
      this.#deleteIsakmpSa(sa, 'dead peer', false);
      this.#setError(connection.name, 'dead peer detected');
      if (dpd.action === 'restart' && connection.peer.address !== 'any') this.#initiate(connection);
      return;
    }
    if (silent >= dpd.delay) {
      sa.dpd.seq = (sa.dpd.seq + 1) >>> 0;
      sa.dpd.outstanding = sa.dpd.seq;
      sendInformational(this.#host, sa, dpdNotify(sa, NotifyType.R_U_THERE, sa.dpd.seq));
      sa.dpd.dueAt = this.#now + Math.min(dpd.delay, Math.max(1, dpd.timeout - silent));
    } else {
      sa.dpd.dueAt = sa.lastHeard + dpd.delay;
    }
  }

  #tickChild(entry: ChildEntry): void {
    const { child } = entry;
    if (this.#now >= child.expiresAt) {
      this.#removeChild(entry, 'lifetime expired', true);
      return;
    }
    if (this.#now < child.rekeyAt || entry.rekeying) return;
    this.#rekeyChild(entry, 'rekey time');
  }

  #rekeyChild(entry: ChildEntry, why: string): void {
    const { child } = entry;
    if (!this.#mayRekey(entry.sa.connection)) return;
    const connection = this.#connections.find((c) => c.name === child.connection);
    if (!connection) return;
    entry.rekeying = true;
    const sa = this.#liveSaFor(connection);
    if (!sa) {
      this.#initiate(connection);
      return;
    }
    this.#log('info', `rekeying child SA ${child.id} (${why})`, sa, connection.name);
    startQuickMode(this.#host, sa, connection, child.localTs[0]!, child.remoteTs[0]!, child.id);
  }

  /** A child SA up, or a negotiation for the connection under way. */
  #busy(connection: Connection): boolean {
    if ([...this.#children.values()].some((entry) => entry.child.connection === connection.name)) return true;
    return [...this.#sas.values()].some(
      (sa) =>
        (sa.state !== 'ESTABLISHED' &&
          sa.connection !== undefined &&
          this.#carries(sa.connection, connection)) ||
        [...sa.exchanges.values()].some((exchange) => exchange.connection === connection),
    );
  }

  /** Peers at 'any' address are clients: they rekey, we cannot reach them reliably. */
  #mayRekey(connection: Connection | undefined): boolean {
    return connection !== undefined && connection.peer.address !== 'any';
  }

  // -------------------------------------------------------------------------------------------
  // SA lifecycle

  #initiate(connection: Connection): void {
    // Reached from timers too (rekey, DPD restart): a connection that cannot initiate is an Error status.
    const problem = this.#cannotInitiate(connection);
    if (problem) {
      this.#errors.set(connection.name, problem);
      this.#log('error', problem, undefined, connection.name);
      return;
    }
    const sa = this.#liveSaFor(connection);
    if (sa) {
      this.#startQuickModes(sa, connection);
      return;
    }
    // One main mode per peer: a sibling's SA under way will carry this connection's quick modes.
    const underWay = [...this.#sas.values()].find(
      (s) => s.state !== 'ESTABLISHED' && s.connection && this.#carries(s.connection, connection),
    );
    if (underWay) {
      if (underWay.connection !== connection) underWay.alsoFor.add(connection);
      return;
    }
    this.#errors.delete(connection.name);
    const started = startMainMode(this.#host, connection, this.#initiatorEndpoint(connection), {
      address: connection.peer.address,
      port: connection.peer.port,
    });
    this.#addSa(started);
  }

  #terminate(name: string, reason: string): void {
    for (const sa of [...this.#sas.values()]) {
      if (sa.connection?.name === name) this.#deleteIsakmpSa(sa, reason, true);
    }
    for (const entry of [...this.#children.values()]) {
      if (entry.child.connection === name) this.#removeChild(entry, reason, true);
    }
    this.#errors.delete(name);
  }

  #cannotInitiate(connection: Connection): string | undefined {
    if (connection.peer.address === 'any')
      return `'${connection.name}' has peer address "any": it can only respond`;
    if (connection.ike.version !== 1)
      return `'${connection.name}' is IKEv${connection.ike.version}: not supported yet`;
    if (!(connection.local.address ?? this.#options.defaultLocalAddress))
      return `'${connection.name}' needs local.address to initiate (there is no single listen address to use)`;
    return undefined;
  }

  /** Call only after #cannotInitiate said yes. */
  #initiatorEndpoint(connection: Connection): Endpoint {
    return {
      address: (connection.local.address ?? this.#options.defaultLocalAddress)!,
      port: this.#options.port,
    };
  }

  /** The newest established ISAKMP SA that can carry this connection's quick modes. */
  #liveSaFor(connection: Connection): IsakmpSa | undefined {
    let best: IsakmpSa | undefined;
    for (const sa of this.#sas.values()) {
      if (
        sa.state === 'ESTABLISHED' &&
        sa.connection &&
        this.#carries(sa.connection, connection) &&
        (!best || sa.id > best.id)
      )
        best = sa;
    }
    return best;
  }

  /** Whether an ISAKMP SA of `own` can carry quick modes for `connection`. */
  #carries(own: Connection, connection: Connection): boolean {
    return own === connection || sharesIsakmpSa(own, connection);
  }

  /** Starts a quick mode for every selector pair that has no child SA yet. */
  #startQuickModes(sa: IsakmpSa, connection: Connection): void {
    const locals = connection.local.trafficSelectors.length
      ? connection.local.trafficSelectors
      : [parseTrafficSelector(sa.local.address)];
    const peers = connection.peer.trafficSelectors.length
      ? connection.peer.trafficSelectors
      : [parseTrafficSelector(sa.remote.address)];
    for (const localTs of locals) {
      for (const remoteTs of peers) {
        const covered = [...this.#children.values()].some(
          (e) =>
            e.child.connection === connection.name &&
            sameTrafficSelector(e.child.localTs[0]!, localTs) &&
            sameTrafficSelector(e.child.remoteTs[0]!, remoteTs),
        );
        const pending = [...sa.exchanges.values()].some(
          (x) =>
            x.state !== 'DONE' &&
            x.connection === connection &&
            sameTrafficSelector(x.localTs, localTs) &&
            sameTrafficSelector(x.remoteTs, remoteTs),
        );
        if (!covered && !pending) startQuickMode(this.#host, sa, connection, localTs, remoteTs);
      }
    }
  }

  #established(sa: IsakmpSa): void {
    const connection = sa.connection!;
    sa.state = 'ESTABLISHED';
    sa.establishedAt = this.#now;
    const { rekeyAt, expiresAt } = schedule(
      this.#now,
      connection.ike.lifetime,
      this.#options.random,
      sa.lifetimeSeconds,
    );
    sa.rekeyAt = rekeyAt;
    sa.expiresAt = expiresAt;
    if (sa.nat.local) sa.keepaliveAt = this.#now + this.#options.keepaliveInterval;
    if (connection.ike.dpd && sa.peerVendorIds?.dpd) sa.dpd.dueAt = this.#now + connection.ike.dpd.delay;
    this.#errors.delete(connection.name);
    this.#log('info', `ISAKMP SA established: ${sa.describe()}, ${sa.localId} <-> ${sa.remoteId}`, sa);
    this.#emitEvent({
      type: 'ike-up',
      ikeSa: sa.info(),
      ...(sa.replaces !== undefined && { rekeyed: sa.replaces }),
    });
    this.#adoptChildren(sa);
    for (const waiting of sa.alsoFor) this.#startQuickModes(sa, waiting);
    sa.alsoFor.clear();
    if (sa.replaces !== undefined) {
      const old = this.#sas.byId(sa.replaces);
      if (old) this.#deleteIsakmpSa(old, 'replaced by a rekeyed ISAKMP SA', true);
      return;
    }
    if (sa.role === 'initiator') this.#startQuickModes(sa, connection);
  }

  /**
   * IPsec SAs outlive the ISAKMP SA that made them (RFC 2409): the newest ISAKMP SA with the same
   * peer takes over those of older ones, live or deleted, whoever rekeyed. strongSwan, for one,
   * deletes its old ISAKMP SA before the new main mode completes.
   */
  #adoptChildren(sa: IsakmpSa): void {
    for (const entry of this.#children.values()) {
      if (entry.sa === sa || !this.#samePeer(entry.sa, sa)) continue;
      this.#log('debug', `child SA ${entry.child.id} moves over from ISAKMP SA ${entry.sa.id}`, sa);
      entry.sa = sa;
      entry.child = { ...entry.child, ikeSaId: sa.id };
      // A rekey that was waiting for (or lost with) the old SA starts again on this one.
      entry.rekeying = false;
    }
  }

  /** The peer rekeyed it already: a newer ISAKMP SA with the same peer exists. */
  #superseded(sa: IsakmpSa): boolean {
    return [...this.#sas.values()].some(
      (other) => other.state === 'ESTABLISHED' && other.id > sa.id && this.#samePeer(other, sa),
    );
  }

  /** Another SA of the same connection with the same peer (address and, when known, identity). */
  #samePeer(other: IsakmpSa, sa: IsakmpSa): boolean {
    return (
      other !== sa &&
      other.connection === sa.connection &&
      other.remote.address === sa.remote.address &&
      (other.remoteId === undefined || other.remoteId === sa.remoteId)
    );
  }

  #addSa(sa: IsakmpSa): void {
    this.#sas.add(sa);
    this.#emitEvent({
      type: 'negotiation-started',
      kind: 'ike',
      ikeSa: sa.id,
      ...(sa.connection && { connection: sa.connection.name }),
    });
  }

  #retransmitted(sa: IsakmpSa, connection: string | undefined): void {
    this.#emitEvent({ type: 'retransmit', ikeSa: sa.id, ...(connection && { connection }) });
  }

  #fail(sa: IsakmpSa, reason: string): void {
    this.#log('error', `negotiation failed: ${reason}`, sa);
    this.#setError(sa.connection?.name, reason);
    this.#emitEvent({ type: 'failed', ...(sa.connection && { connection: sa.connection.name }), reason });
    this.#remove(sa);
  }

  #remove(sa: IsakmpSa): void {
    for (const exchange of [...sa.exchanges.values()]) this.#dropExchange(sa, exchange);
    sa.state = 'DELETED';
    this.#sas.remove(sa);
  }

  /** An installed child SA goes (with a Delete to the peer); a responder's unfinished one, its exchange. */
  #installFailed(id: number, reason: string): void {
    const entry = this.#children.get(id);
    if (entry) {
      this.#log('error', reason, entry.sa, entry.child.connection);
      this.#setError(entry.child.connection, reason);
      this.#removeChild(entry, reason, true);
      return;
    }
    for (const sa of this.#sas.values()) {
      for (const exchange of sa.exchanges.values()) {
        if (exchange.child?.id !== id || exchange.state === 'DONE') continue;
        this.#log('error', reason, sa, exchange.connection.name);
        this.#setError(exchange.connection.name, reason);
        // The exchange stays to read message 3 (its IV chain is ours alone) and answer it with a Delete.
        exchange.refused = reason;
        this.#out.push({ type: 'delete-child', child: exchange.child });
        return;
      }
    }
  }

  /** Forgets a quick mode exchange; one that never finished takes its responder's inbound SA along. */
  #dropExchange(sa: IsakmpSa, exchange: QuickModeExchange): void {
    sa.exchanges.delete(exchange.messageId);
    sa.protection?.forget(exchange.messageId);
    if (exchange.child && exchange.state !== 'DONE' && exchange.refused === undefined) {
      this.#out.push({ type: 'delete-child', child: exchange.child });
      this.#log(
        'debug',
        `inbound SA ${exchange.child.spiIn.toString(16)} of an unfinished quick mode removed`,
        sa,
        exchange.connection.name,
      );
    }
  }

  /** `children`: delete its IPsec SAs too (teardown), or leave them to their own lifetimes. */
  #deleteIsakmpSa(
    sa: IsakmpSa,
    reason: string,
    notifyPeer: boolean,
    children: 'delete' | 'keep' = 'delete',
  ): void {
    if (sa.state === 'DELETED') return;
    const established = sa.state === 'ESTABLISHED';
    for (const entry of [...this.#children.values()]) {
      if (entry.sa === sa && children === 'delete') this.#removeChild(entry, reason, notifyPeer);
    }
    if (established && notifyPeer)
      sendInformational(this.#host, sa, deletePayload(ProtocolId.ISAKMP, [isakmpSpi(sa)]));
    if (established) {
      this.#log('info', `ISAKMP SA deleted: ${reason}`, sa);
      this.#emitEvent({ type: 'ike-down', ikeSa: sa.info(), reason });
    }
    this.#remove(sa);
  }

  #installChild(child: ChildSa, exchange: QuickModeExchange): void {
    const sa = this.#sas.byId(child.ikeSaId)!;
    if (exchange.refused !== undefined) {
      // The initiator installed its SAs when it sent message 3: the Delete takes them away again.
      sendInformational(this.#host, sa, deletePayload(ProtocolId.IPSEC_ESP, [u32be(child.spiIn)]));
      this.#log('warn', `quick mode done, child SA deleted: ${exchange.refused}`, sa, child.connection);
      return;
    }
    this.#children.set(child.id, { child, sa, rekeying: false });
    this.#errors.delete(child.connection);
    this.#out.push({ type: 'install-child', child });
    this.#log(
      'info',
      `child SA installed: ${child.mode}${child.encapsulation ? ' (UDP-encapsulated)' : ''}, SPIs ${child.spiIn.toString(16)}/${child.spiOut.toString(16)}`,
      sa,
      child.connection,
    );
    this.#emitEvent({
      type: 'child-up',
      child,
      ...(exchange.rekeyOf !== undefined && { rekeyed: exchange.rekeyOf }),
    });
    if (exchange.rekeyOf !== undefined) {
      const old = this.#children.get(exchange.rekeyOf);
      if (old) this.#removeChild(old, 'rekeyed', true);
    }
  }

  #removeChild(entry: ChildEntry, reason: string, notifyPeer: boolean): void {
    if (!this.#children.delete(entry.child.id)) return;
    // Its own ISAKMP SA may be gone (the child outlived it): no SA, no Delete; the peer's expires too.
    if (notifyPeer && entry.sa.state === 'ESTABLISHED')
      sendInformational(
        this.#host,
        entry.sa,
        deletePayload(ProtocolId.IPSEC_ESP, [u32be(entry.child.spiIn)]),
      );
    this.#out.push({ type: 'delete-child', child: entry.child });
    this.#log(
      'info',
      `child SA ${entry.child.spiIn.toString(16)}/${entry.child.spiOut.toString(16)} deleted: ${reason}`,
      entry.sa,
      entry.child.connection,
    );
    this.#emitEvent({ type: 'child-down', child: entry.child, reason });
  }

  /** A Delete from the peer names its inbound SPIs: our outbound ones. */
  #deleteChildren(sa: IsakmpSa, spis: readonly Uint8Array[]): void {
    for (const entry of [...this.#children.values()]) {
      if (entry.sa.remote.address !== sa.remote.address) continue;
      if (spis.some((spi) => spi.length === 4 && equalBytes(spi, u32be(entry.child.spiOut))))
        this.#removeChild(entry, 'deleted by the peer', false);
    }
  }

  /**
   * INITIAL-CONTACT: the peer rebooted, so its live older SAs are stale (RFC 2407 4.6.3.3). Child SAs
   * whose ISAKMP SA is already gone stay for adoption: strongSwan sends INITIAL-CONTACT when it
   * reauthenticates after deleting its old ISAKMP SA, and keeps those IPsec SAs.
   */
  #initialContact(sa: IsakmpSa): void {
    for (const other of [...this.#sas.values()]) {
      if (!this.#samePeer(other, sa)) continue;
      this.#log('info', 'INITIAL-CONTACT: removing stale SAs', other);
      this.#deleteIsakmpSa(other, 'peer sent INITIAL-CONTACT', false);
    }
  }

  #setError(connection: string | undefined, reason: string): void {
    if (connection) this.#errors.set(connection, reason);
  }

  #log(level: LogLevel, message: string, sa?: IsakmpSa, connection?: string): void {
    const name = connection ?? sa?.connection?.name;
    this.#emitEvent({
      type: 'log',
      level,
      message,
      ...(name && { connection: name }),
      ...(sa && { ikeSa: sa.id }),
    });
  }

  #emitEvent(event: Extract<Action, { type: 'event' }>['event']): void {
    this.#out.push({ type: 'event', event });
  }

  #makeHost(): Host {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const engine = this;
    return {
      crypto: this.#options.crypto,
      get now() {
        return engine.#now;
      },
      retransmit: this.#options.retransmit,
      natPort: this.#options.natPort,
      exportKeys: this.#options.exportKeys,
      forceEncapsulation: this.#options.forceEncapsulation,
      ...(this.#options.allocateSpi && { allocateSpi: this.#options.allocateSpi }),
      get connections() {
        return engine.#connections;
      },
      emit: (action) => this.#out.push(action),
      log: (level, message, sa, connection) => this.#log(level, message, sa, connection),
      nextId: () => this.#nextId++,
      random: () => this.#options.random(),
      index: (sa, key) => this.#sas.index(sa, key),
      established: (sa) => this.#established(sa),
      fail: (sa, reason) => this.#fail(sa, reason),
      installChild: (child, exchange) => this.#installChild(child, exchange),
      deleteChildren: (sa, spis) => this.#deleteChildren(sa, spis),
      isakmpSaDeletedByPeer: (sa) => this.#deleteIsakmpSa(sa, 'deleted by the peer', false, 'keep'),
      initialContact: (sa) => this.#initialContact(sa),
      hasOtherSaWith: (sa) =>
        [...this.#sas.values()].some(
          (other) =>
            other !== sa && other.state === 'ESTABLISHED' && other.remote.address === sa.remote.address,
        ),
    };
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

function errorText(error: unknown): string {
  if (error instanceof ExchangeError) return `${error.message} (${notifyName(error.notify)})`;
  if (error instanceof DecodeError)
    return `${error.message} at offset ${error.offset} (${notifyName(error.notify)})`;
  return error instanceof Error ? error.message : String(error);
}
