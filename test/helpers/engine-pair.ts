import type { Action, EngineEvent } from '../../src/core/actions.js';
import type { Connection, Identity } from '../../src/core/connection.js';
import { type Endpoint, formatEndpoint } from '../../src/core/endpoint.js';
import { expandSuites, parseProposal } from '../../src/core/proposal.js';
import type { ChildSa } from '../../src/core/sa.js';
import { parseTrafficSelector, type TrafficSelector } from '../../src/core/traffic-selector.js';
import { createCryptoProvider } from '../../src/crypto/providers/index.js';
import type { CryptoProvider } from '../../src/crypto/provider.js';
import { algorithm } from '../../src/crypto/registry.js';
import type { IkeEngine } from '../../src/core/engine.js';
import { runDhJob } from '../../src/crypto/dh-job.js';
import { createEngine, type EngineOptions } from '../../src/engine.js';

/**
 * Engines wired back to back with a fake clock: what one sends, the other receives, through a
 * network the test can make lossy, duplicating or address-rewriting (a NAT). An engine made with
 * `compute: 'deferred'` gets its Diffie-Hellman results as later inputs, as from a worker pool.
 */

export interface ConnectionSpec {
  name?: string;
  /** IKE version (default 1). */
  version?: 1 | 2;
  ike?: string[];
  esp?: string[];
  pfs?: string;
  mode?: 'tunnel' | 'transport';
  localAddress?: string;
  peerAddress: string | 'any';
  peerPort?: number;
  peerNatPort?: number;
  localSubnets?: TrafficSelector[] | string[];
  peerSubnets?: TrafficSelector[] | string[];
  localId?: Identity;
  peerId?: Identity;
  psk?: string;
  start?: 'initiate' | 'respond' | 'on-traffic';
  ikeLifetime?: number;
  childLifetime?: number;
  /** The child SA's rekey margin (default a tenth of its lifetime, at most 540 s). */
  childRekeyMargin?: number;
  dpd?: Connection['ike']['dpd'];
}

export function ipv4(address: string): Identity {
  return { type: 'ipv4', address: Uint8Array.from(address.split('.').map(Number)) };
}

const selectors = (list: TrafficSelector[] | string[] | undefined): TrafficSelector[] =>
  (list ?? []).map((item) => (typeof item === 'string' ? parseTrafficSelector(item) : item));

export function connection(spec: ConnectionSpec): Connection {
  const lifetime = (seconds: number, margin = Math.min(540, seconds / 10)) => ({
    seconds,
    rekeyMargin: margin,
    rekeyFuzz: 0,
  });
  return {
    name: spec.name ?? 'test',
    ike: {
      name: 'ike',
      version: spec.version ?? 1,
      mode: 'main',
      proposals: (spec.ike ?? ['aes128-sha1-modp1024']).flatMap((p) =>
        expandSuites(parseProposal(p, 'ike'), 'ike'),
      ),
      lifetime: lifetime(spec.ikeLifetime ?? 10800),
      ...(spec.dpd && { dpd: spec.dpd }),
    },
    ipsec: {
      name: 'esp',
      protocol: 'esp',
      mode: spec.mode ?? 'tunnel',
      proposals: (spec.esp ?? ['aes128-sha1']).flatMap((p) => expandSuites(parseProposal(p, 'esp'), 'esp')),
      ...(spec.pfs && { pfs: algorithm('dh', spec.pfs) }),
      lifetime: lifetime(spec.childLifetime ?? 3600, spec.childRekeyMargin),
    },
    local: {
      ...(spec.localAddress && { address: spec.localAddress }),
      ...(spec.localId && { id: spec.localId }),
      trafficSelectors: selectors(spec.localSubnets),
    },
    peer: {
      address: spec.peerAddress,
      port: spec.peerPort ?? 500,
      ...(spec.peerNatPort && { natPort: spec.peerNatPort }),
      ...(spec.peerId && { id: spec.peerId }),
      trafficSelectors: selectors(spec.peerSubnets),
    },
    psk: new TextEncoder().encode(spec.psk ?? 'correct horse battery staple'),
    start: spec.start ?? 'respond',
  };
}

export interface Side {
  readonly name: string;
  readonly engine: IkeEngine;
  readonly address: string;
  readonly port: number;
  readonly natPort: number;
  readonly installed: Map<number, ChildSa>;
  /** Child SAs whose inbound SA alone is installed (a quick mode responder before message 3). */
  readonly inbound: Map<number, ChildSa>;
  readonly events: EngineEvent[];
  readonly logs: string[];
}

/** Rewrites or drops a datagram in flight; return undefined to drop it. */
export type Wire = (packet: Packet) => Packet | Packet[] | undefined;

export interface Packet {
  from: Endpoint;
  to: Endpoint;
  data: Uint8Array;
  nonEspMarker: boolean;
  keepalive?: boolean;
}

export class EnginePair {
  now = 1000;
  /** What the kernel answers a `reserve-spi` action with (engines made with reserveSpis). */
  reserveSpi: (side: Side, local: string, remote: string) => number | Error = () => 0xc0000000 + this.#spis++;
  #spis = 1;
  readonly sent: Packet[] = [];
  wire: Wire = (p) => p;
  readonly sides: Side[] = [];
  readonly crypto: CryptoProvider;

  constructor(crypto: CryptoProvider = createCryptoProvider('node')) {
    this.crypto = crypto;
  }

  add(name: string, address: string, connections: Connection[], options: Partial<EngineOptions> = {}): Side {
    const port = options.port ?? 500;
    const natPort = options.natPort ?? 4500;
    const side: Side = {
      name,
      address,
      port,
      natPort,
      engine: createEngine({
        crypto: this.crypto,
        connections,
        port,
        natPort,
        defaultLocalAddress: address,
        ...options,
      }),
      installed: new Map(),
      inbound: new Map(),
      events: [],
      logs: [],
    };
    this.sides.push(side);
    return side;
  }

  /** Applies actions of `side`, delivering datagrams until the network is quiet. */
  run(side: Side, actions: Action[]): void {
    this.runAll([[side, actions]]);
  }

  /** The same for several sides' actions at once: their messages interleave on the wire. */
  runAll(batches: readonly (readonly [Side, Action[]])[]): void {
    const queue: (
      | { to: Side; packet: Packet }
      | { to: Side; compute: Extract<Action, { type: 'compute' }> }
      | { to: Side; reserve: Extract<Action, { type: 'reserve-spi' }> }
    )[] = [];
    const apply = (from: Side, list: Action[]) => {
      for (const action of list) {
        switch (action.type) {
          case 'send':
          case 'keepalive': {
            const packet: Packet = {
              from: action.from,
              to: action.to,
              data: action.type === 'send' ? action.data : Uint8Array.of(0xff),
              nonEspMarker: action.type === 'send' && action.nonEspMarker,
              ...(action.type === 'keepalive' && { keepalive: true }),
            };
            if (packet.from.address !== from.address)
              throw new Error(`${from.name} sent from ${formatEndpoint(packet.from)}, not its own address`);
            const result = this.wire(packet);
            for (const p of result === undefined ? [] : Array.isArray(result) ? result : [result]) {
              this.sent.push(p);
              const to = this.sides.find((s) => s.address === p.to.address);
              if (to) queue.push({ to, packet: p });
            }
            break;
          }
          case 'install-inbound':
            from.inbound.set(action.child.id, action.child);
            break;
          case 'install-child':
            from.inbound.delete(action.child.id);
            from.installed.set(action.child.id, action.child);
            break;
          case 'delete-child':
            from.inbound.delete(action.child.id);
            from.installed.delete(action.child.id);
            break;
          case 'compute':
            queue.push({ to: from, compute: action });
            break;
          case 'reserve-spi':
            queue.push({ to: from, reserve: action });
            break;
          case 'event':
            from.events.push(action.event);
            if (action.event.type === 'log') from.logs.push(`${action.event.level}: ${action.event.message}`);
            break;
        }
      }
    };
    for (const [side, actions] of batches) apply(side, actions);
    let guard = 0;
    while (queue.length) {
      if (++guard > 1000 * batches.length) throw new Error('message loop');
      const next = queue.shift()!;
      if ('reserve' in next) {
        const { id, local, remote } = next.reserve;
        apply(next.to, next.to.engine.spiReserved(id, this.reserveSpi(next.to, local, remote), this.now));
        continue;
      }
      if ('compute' in next) {
        const { id, job } = next.compute;
        let result;
        try {
          result = runDhJob(this.crypto, job);
        } catch (error) {
          result = error as Error;
        }
        apply(next.to, next.to.engine.computed(id, result, this.now));
        continue;
      }
      const { to, packet } = next;
      if (packet.keepalive) continue;
      const local = { address: to.address, port: packet.to.port };
      apply(to, to.engine.receive(packet.data, local, packet.from, this.now));
    }
    // A bug of ours is caught and logged by the engine; no test may pass over one.
    for (const s of this.sides) {
      if (s.engine.stats.internalErrors)
        throw new Error(`${s.name}: ${s.logs.find((line) => line.includes('internal error'))}`);
    }
  }

  initiate(side: Side, name = 'test'): void {
    this.run(side, side.engine.initiate(name, this.now));
  }

  /**
   * Advances to just before `at`, then ticks `sides` at `at` together with what `also` makes
   * each do then: their messages cross on the wire (simultaneous rekeys, a Delete racing one).
   */
  tickTogether(at: number, sides: readonly Side[], also: readonly (readonly [Side, Action[]])[] = []): void {
    this.advance(at - this.now - 0.5);
    this.now = at;
    this.runAll([...sides.map((side) => [side, side.engine.tick(at)] as const), ...also]);
  }

  /** Advances the clock to `until`, ticking each engine at its own deadlines. */
  advance(seconds: number): void {
    const until = this.now + seconds;
    for (let guard = 0; ; guard++) {
      if (guard > 10000) throw new Error(`timers do not advance at ${this.now}`);
      const next = Math.min(...this.sides.map((s) => s.engine.nextTimeout() ?? Infinity));
      if (next > until) break;
      this.now = Math.max(this.now, next);
      for (const side of this.sides) {
        if ((side.engine.nextTimeout() ?? Infinity) <= this.now) this.run(side, side.engine.tick(this.now));
      }
    }
    this.now = until;
  }
}

export const SITE_A = '192.0.2.1';
export const SITE_B = '192.0.2.2';

/**
 * Two sites: a (SITE_A, 198.51.100.0/24) initiates to b (SITE_B, 203.0.113.0/24) unless `start`
 * says otherwise. `both` applies to both connections, `a` and `b` to one each, `engines` to
 * the engine options of a and b.
 */
export function sitePair(
  options: {
    both?: Partial<ConnectionSpec>;
    a?: Partial<ConnectionSpec>;
    b?: Partial<ConnectionSpec>;
    engines?: { a?: Partial<EngineOptions>; b?: Partial<EngineOptions> };
  } = {},
): { pair: EnginePair; a: Side; b: Side } {
  const pair = new EnginePair();
  const a = pair.add(
    'a',
    SITE_A,
    [
      connection({
        localAddress: SITE_A,
        peerAddress: SITE_B,
        localSubnets: ['198.51.100.0/24'],
        peerSubnets: ['203.0.113.0/24'],
        start: 'initiate',
        ...options.both,
        ...options.a,
      }),
    ],
    options.engines?.a,
  );
  const b = pair.add(
    'b',
    SITE_B,
    [
      connection({
        localAddress: SITE_B,
        peerAddress: SITE_A,
        localSubnets: ['203.0.113.0/24'],
        peerSubnets: ['198.51.100.0/24'],
        ...options.both,
        ...options.b,
      }),
    ],
    options.engines?.b,
  );
  return { pair, a, b };
}

/** A side's one installed child SA (throws when it has none or several). */
export function onlyChild(side: Side): ChildSa {
  const children = [...side.installed.values()];
  if (children.length !== 1) throw new Error(`${side.name} has ${children.length} child SAs`);
  return children[0]!;
}
