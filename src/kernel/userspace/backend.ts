import { isIPv4 } from 'node:net';
import { formatAddress, parseAddress } from '../../core/address.js';
import { type Endpoint, formatEndpoint } from '../../core/endpoint.js';
import { formatSuite } from '../../core/proposal.js';
import { type ChildSa, formatSpi } from '../../core/sa.js';
import type { TrafficCounters } from '../../core/status.js';
import type { TrafficSelector } from '../../core/traffic-selector.js';
import type { CryptoProvider } from '../../crypto/provider.js';
import { equalBytes, readU32be } from '../../wire/bytes.js';
import type { KernelBackend, KernelBackendHost, KernelEvent, TrapPolicy } from '../backend.js';
import { type EspDropCause, EspInbound, EspOutbound } from './esp.js';
import type { EspTransformImplementation } from './esp-crypto.js';
import { buildPacket, type Flow, IPPROTO_IPIP, IPPROTO_IPV6, parsePacket, upperLayer } from './packet.js';
import { SEQUENCE_MAX } from './replay.js';
import {
  type CompiledSelector,
  compileSelector,
  flowMatchesAny,
  PolicyTable,
  selectorContains,
  selectorPrefixes,
} from './spd.js';

/**
 * The userspace data plane: ESP in Node for kernels without it, as strongSwan's kernel-libipsec
 * does. Packets the kernel routes into a TUN device are matched against the installed child
 * SAs' selectors, encrypted and sent as ESP in UDP (RFC 3948) from the daemon's NAT-T socket;
 * ESP arriving on that socket is handed to receiveEsp, decrypted, checked against the SA's
 * selectors and written to the TUN device. Routes for the remote selectors lead traffic into the
 * TUN device while a child SA or a trap needs them.
 *
 * Nothing here throws at the network: bad input is counted per cause (drops()), and logged at
 * most once per cause per interval with the count of what was suppressed in between.
 */

/** The TUN device, as the runtime opens it (the native shim's TUN descriptor and uv_poll). */
export interface UserspaceTun {
  /** Writes packets into the kernel, one IP packet each (IFF_TUN | IFF_NO_PI). */
  write(packets: readonly Uint8Array[]): void;
  /** Calls `listener` with the packets read from the device, a batch per wakeup. */
  onPackets(listener: (packets: readonly Uint8Array[]) => void): void;
  close(): void | Promise<void>;
}

/** Routes through the TUN device (rtnetlink), reference-counted by the backend. */
export interface UserspaceRoutes {
  /** A route for `prefix` (CIDR: "10.1.0.0/16", "2001:db8::/32") through the TUN device. */
  add(prefix: string): Promise<void>;
  remove(prefix: string): Promise<void>;
  /**
   * Keeps packets for the peer's own address off the TUN device, when a tunnel's remote
   * selectors cover it (kernel-libipsec's "exclude route": without it ESP in UDP to the peer
   * would be routed into the tunnel). Optional; called once per address while needed.
   */
  exclude?(address: string): Promise<void>;
  unexclude?(address: string): Promise<void>;
}

export interface UserspaceIo {
  readonly tun: UserspaceTun;
  readonly routes: UserspaceRoutes;
  /**
   * ESP datagrams from one of the daemon's sockets to one peer, as a batch (sendmmsg). Optional:
   * without it each goes through KernelBackendHost.sendDatagram.
   */
  sendDatagrams?(from: Endpoint, to: Endpoint, datagrams: readonly Uint8Array[]): void;
  /** Prepares one of the daemon's sockets for ESP (KernelBackend.configureSocket). Optional. */
  configureSocket?(fd: number, family: 4 | 6, natPort: boolean): void;
}

/** Soft (rekey) and hard (gone) limits on the traffic through one direction of a child SA. */
export interface TrafficLimits {
  readonly bytes?: { readonly soft: number; readonly hard: number };
  readonly packets?: { readonly soft: number; readonly hard: number };
}

export interface UserspaceBackendOptions {
  /** Anti-replay window in packets: a multiple of 32 (default 64). */
  readonly replayWindow?: number;
  /**
   * Limits per child SA; default: the hard limit is `lifetime.kilobytes`, the soft one
   * `softFraction` of it, and no packet limit.
   */
  readonly limits?: (child: ChildSa) => TrafficLimits;
  /** Soft byte limit as a fraction of the hard one, for the default limits (0.9). */
  readonly softFraction?: number;
  /** Outbound sequence number from which a soft expire asks for a rekey (2^32 - 2^24). */
  readonly sequenceSoftLimit?: number;
  /** At most one log line per drop cause per this many ms (10 000). */
  readonly logInterval?: number;
  /** At most one ACQUIRE per trapped connection per this many ms (10 000). */
  readonly acquireInterval?: number;
  /** Milliseconds, for the rate limits (Date.now). */
  readonly now?: () => number;
  /** Force the generic provider path even for the node provider (tests, benchmarks). */
  readonly implementation?: EspTransformImplementation;
}

/** Why a packet was dropped. */
export type DropCause =
  | EspDropCause
  /** ESP for an SPI no installed child SA has. */
  | 'unknown-spi'
  /** A decrypted packet outside the selectors of the SA it came through (RFC 4301 5.2). */
  | 'selector'
  /** An outgoing packet no child SA's selectors cover. */
  | 'no-policy'
  /** An outgoing packet that hit a trap: an ACQUIRE went to the engine instead. */
  | 'acquire'
  /** Not a well-formed IP packet (from the TUN device, or decrypted), or an IPv4 fragment in transport mode. */
  | 'bad-packet'
  /** The child SA hit a hard limit or ran out of sequence numbers and awaits removal. */
  | 'expired'
  /** Anything unexpected (a bug): logged with its message. */
  | 'error';

export const DROP_CAUSES: readonly DropCause[] = [
  'unknown-spi',
  'replay',
  'icv',
  'padding',
  'truncated',
  'next-header',
  'dummy',
  'selector',
  'no-policy',
  'acquire',
  'bad-packet',
  'expired',
  'error',
];

const DESCRIPTIONS: Readonly<Record<DropCause, string>> = {
  'unknown-spi': 'ESP for an unknown SPI',
  replay: 'replayed ESP (duplicate or left of the window)',
  icv: 'ESP failing its integrity check',
  padding: 'ESP with bad padding',
  truncated: 'truncated ESP',
  'next-header': 'ESP with a next header the SA cannot carry',
  dummy: 'dummy ESP',
  selector: 'decrypted packets outside the SA selectors',
  'no-policy': 'packets from the TUN device matching no child SA',
  acquire: 'packets hitting a trap (ACQUIRE sent)',
  'bad-packet': 'malformed IP packets',
  expired: 'packets for an expired child SA',
  error: 'packets after an internal error',
};

/** Causes worth less than a warning: the kernel sends odd packets into any new TUN device. */
const QUIET: ReadonlySet<DropCause> = new Set(['no-policy', 'acquire']);

/** What a child SA's policies, routes and endpoints are made of. */
interface PolicyParts {
  local: Endpoint;
  /** Where ESP goes: the negotiated endpoint until an authenticated packet moves it. */
  remote: Endpoint;
  localAddress: Uint8Array;
  remoteAddress: Uint8Array;
  localTs: CompiledSelector[];
  remoteTs: CompiledSelector[];
  /** Route keys: "route:<prefix>" and "exclude:<address>". */
  routeKeys: string[];
}

interface ChildState extends PolicyParts {
  child: ChildSa;
  routes: RouteHold;
  readonly outbound: EspOutbound;
  readonly inbound: EspInbound;
  readonly limits: TrafficLimits;
  soft: boolean;
  hard: boolean;
}

function sameSas(a: ChildSa, b: ChildSa): boolean {
  return (
    a.spiIn === b.spiIn &&
    a.spiOut === b.spiOut &&
    a.mode === b.mode &&
    a.suite.encr === b.suite.encr &&
    a.suite.integ === b.suite.integ &&
    equalBytes(a.keys.encrIn, b.keys.encrIn) &&
    equalBytes(a.keys.encrOut, b.keys.encrOut) &&
    equalBytes(a.keys.integIn, b.keys.integIn) &&
    equalBytes(a.keys.integOut, b.keys.integOut)
  );
}

/** Routes for the remote selectors, and the exclusion of the peer's address when they cover it. */
function routeKeys(
  mode: 'tunnel' | 'transport',
  remoteTs: readonly TrafficSelector[],
  peer: string,
): string[] {
  const keys = [...new Set(remoteTs.flatMap(selectorPrefixes))].map((prefix) => `route:${prefix}`);
  const address = endpointAddress(peer);
  if (mode === 'tunnel' && remoteTs.some((ts) => selectorContains(compileSelector(ts), address))) {
    keys.push(`exclude:${peer}`);
  }
  return keys;
}

function policyParts(child: ChildSa): PolicyParts {
  return {
    local: child.local,
    remote: child.remote,
    localAddress: endpointAddress(child.local.address),
    remoteAddress: endpointAddress(child.remote.address),
    localTs: child.localTs.map(compileSelector),
    remoteTs: child.remoteTs.map(compileSelector),
    routeKeys: routeKeys(child.mode, child.remoteTs, child.remote.address),
  };
}

interface Trap {
  readonly policy: TrapPolicy;
  readonly routes: RouteHold;
}

type Target = ChildState | Trap;

interface RouteRef {
  count: number;
  readonly ready: Promise<void>;
}

/**
 * The route references one child SA or trap holds: all taken at once (synchronously), released
 * exactly once by whoever gets there first (remove, or install rolling back).
 */
interface RouteHold {
  readonly keys: readonly string[];
  held: boolean;
  /** Settles when every route is in place; rejects when one could not be added. */
  readonly ready: Promise<unknown>;
}

/** The address bytes of an endpoint; IPv4-mapped IPv6 (dual-stack sockets) as IPv4. */
function endpointAddress(address: string): Uint8Array {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return parseAddress(mapped && isIPv4(mapped[1]!) ? mapped[1]! : address);
}

export class UserspaceBackend implements KernelBackend {
  readonly name = 'userspace';
  readonly forcesUdpEncapsulation = true;

  readonly #provider: CryptoProvider;
  readonly #host: KernelBackendHost;
  readonly #io: UserspaceIo;
  readonly #options: UserspaceBackendOptions;
  readonly #now: () => number;
  readonly #logInterval: number;
  readonly #sequenceSoftLimit: number;

  readonly #children = new Map<number, ChildState>();
  readonly #sad = new Map<number, ChildState>();
  readonly #spd = new PolicyTable<Target>();
  readonly #traps = new Map<string, Trap>();
  readonly #acquired = new Map<string, number>();
  readonly #reserved = new Set<number>();
  readonly #routes = new Map<string, RouteRef>();
  readonly #drops = Object.fromEntries(DROP_CAUSES.map((cause) => [cause, 0])) as Record<DropCause, number>;
  readonly #logged = new Map<DropCause, { at: number; suppressed: number }>();
  #pendingWrites: Uint8Array[] = [];
  #closed = false;

  constructor(
    provider: CryptoProvider,
    host: KernelBackendHost,
    io: UserspaceIo,
    options: UserspaceBackendOptions = {},
  ) {
    if (!io.sendDatagrams && !host.sendDatagram) {
      throw new TypeError('the userspace backend needs host.sendDatagram or io.sendDatagrams to send ESP');
    }
    this.#provider = provider;
    this.#host = host;
    this.#io = io;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#logInterval = options.logInterval ?? 10_000;
    this.#sequenceSoftLimit = options.sequenceSoftLimit ?? SEQUENCE_MAX + 1 - 2 ** 24;
    io.tun.onPackets((packets) => this.#fromTun(packets));
  }

  /** A random inbound SPI (>= 256) that no installed or recently allocated child SA uses. */
  allocateSpi(_local: string, _remote: string): number {
    for (;;) {
      const bytes = this.#provider.randomBytes(4);
      const spi = readU32be(bytes);
      if (spi < 256 || this.#sad.has(spi) || this.#reserved.has(spi)) continue;
      this.#reserved.add(spi);
      // Forget the oldest reservations of negotiations that never completed.
      if (this.#reserved.size > 4096) this.#reserved.delete(this.#reserved.values().next().value!);
      return spi;
    }
  }

  async install(child: ChildSa): Promise<void> {
    if (this.#closed) throw new Error('the userspace backend is closed');
    if (!child.encapsulation) {
      throw new Error(
        `child SA ${child.id} (${child.connection}) was negotiated without UDP encapsulation; ` +
          'the userspace backend sends ESP only in UDP (forcesUdpEncapsulation)',
      );
    }
    const existing = this.#children.get(child.id);
    if (existing && sameSas(existing.child, child)) {
      await this.#update(existing, child);
      return;
    }
    if (existing) await this.remove(existing.child);
    const other = this.#sad.get(child.spiIn);
    if (other) {
      throw new Error(`inbound SPI ${formatSpi(child.spiIn)} is already used by child SA ${other.child.id}`);
    }
    const state = this.#createState(child);
    this.#reserved.delete(child.spiIn);
    // Inbound first: the peer may send as soon as it has installed its side.
    this.#sad.set(child.spiIn, state);
    this.#children.set(child.id, state);
    try {
      await state.routes.ready;
    } catch (error) {
      if (this.#children.get(child.id) === state) {
        this.#children.delete(child.id);
        this.#sad.delete(child.spiIn);
      }
      await this.#release(state.routes);
      throw error;
    }
    // Removed while the routes were being added: remove() released them.
    if (this.#children.get(child.id) !== state) return;
    this.#spd.add(state.localTs, state.remoteTs, state);
    this.#acquired.delete(child.connection);
    this.#host.log(
      'debug',
      `userspace: installed child SA ${child.id} (${child.connection}) ${child.mode}, ` +
        `SPIs ${formatSpi(child.spiIn)} in / ${formatSpi(child.spiOut)} out, ${formatSuite(child.suite)}, ` +
        `ESP in UDP to ${formatEndpoint(child.remote)}`,
    );
  }

  #createState(child: ChildSa): ChildState {
    const { implementation } = this.#options;
    const espOptions = { ...(implementation && { implementation }) };
    const outbound = new EspOutbound(
      this.#provider,
      {
        spi: child.spiOut,
        suite: child.suite,
        keys: { encryption: child.keys.encrOut, integrity: child.suite.integ && child.keys.integOut },
      },
      espOptions,
    );
    const inbound = new EspInbound(
      this.#provider,
      {
        spi: child.spiIn,
        suite: child.suite,
        keys: { encryption: child.keys.encrIn, integrity: child.suite.integ && child.keys.integIn },
      },
      {
        mode: child.mode,
        ...(this.#options.replayWindow !== undefined && { replayWindow: this.#options.replayWindow }),
        ...espOptions,
      },
    );
    const parts = policyParts(child);
    return {
      child,
      outbound,
      inbound,
      ...parts,
      routes: this.#hold(parts.routeKeys),
      limits: (this.#options.limits ?? ((c) => this.#defaultLimits(c)))(child),
      soft: false,
      hard: false,
    };
  }

  /**
   * The same SAs installed again (new endpoints or selectors): the ESP state stays, so sequence
   * numbers go on and the peer's replay window keeps accepting them.
   */
  async #update(state: ChildState, child: ChildSa): Promise<void> {
    const parts = policyParts(child);
    const routes = this.#hold(parts.routeKeys);
    try {
      await routes.ready;
    } catch (error) {
      await this.#release(routes);
      throw error;
    }
    if (this.#children.get(child.id) !== state) {
      await this.#release(routes); // removed meanwhile
      return;
    }
    const old = state.routes;
    Object.assign(state, parts, { child, routes });
    this.#spd.replace(state.localTs, state.remoteTs, state);
    await this.#release(old);
  }

  #defaultLimits(child: ChildSa): TrafficLimits {
    const kilobytes = child.lifetime.kilobytes;
    if (!kilobytes) return {};
    const hard = kilobytes * 1024;
    return { bytes: { soft: Math.floor(hard * (this.#options.softFraction ?? 0.9)), hard } };
  }

  async remove(child: ChildSa): Promise<void> {
    const state = this.#children.get(child.id);
    if (!state) return;
    this.#children.delete(child.id);
    if (this.#sad.get(state.child.spiIn) === state) this.#sad.delete(state.child.spiIn);
    this.#spd.remove(state);
    state.hard = true;
    await this.#release(state.routes);
  }

  async trap(policy: TrapPolicy): Promise<void> {
    if (this.#closed) throw new Error('the userspace backend is closed');
    await this.untrap(policy.connection);
    const trap: Trap = { policy, routes: this.#hold(routeKeys(policy.mode, policy.remoteTs, policy.remote)) };
    this.#traps.set(policy.connection, trap);
    try {
      await trap.routes.ready;
    } catch (error) {
      if (this.#traps.get(policy.connection) === trap) this.#traps.delete(policy.connection);
      await this.#release(trap.routes);
      throw error;
    }
    // Untrapped meanwhile: untrap() released the routes.
    if (this.#traps.get(policy.connection) !== trap) return;
    this.#spd.add(policy.localTs.map(compileSelector), policy.remoteTs.map(compileSelector), trap, 'trap');
  }

  async untrap(connection: string): Promise<void> {
    const trap = this.#traps.get(connection);
    if (!trap) return;
    this.#traps.delete(connection);
    this.#spd.remove(trap);
    this.#acquired.delete(connection);
    await this.#release(trap.routes);
  }

  async counters(child: ChildSa): Promise<TrafficCounters | undefined> {
    const state = this.#children.get(child.id);
    if (!state) return undefined;
    return {
      bytesIn: state.inbound.bytes,
      packetsIn: state.inbound.packets,
      bytesOut: state.outbound.bytes,
      packetsOut: state.outbound.packets,
    };
  }

  /** Packets dropped so far, per cause (a copy). */
  drops(): Readonly<Record<DropCause, number>> {
    return { ...this.#drops };
  }

  installed(): readonly ChildSa[] {
    return [...this.#children.values()].map((state) => state.child);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const removals = [...this.#children.values()].map((state) => this.remove(state.child));
    const untraps = [...this.#traps.keys()].map((connection) => this.untrap(connection));
    await Promise.all([...removals, ...untraps]);
    this.#flushWrites();
    for (const [cause, entry] of this.#logged) {
      if (entry.suppressed > 0) this.#logDrops(cause, entry.suppressed, this.#now() - entry.at, undefined);
    }
    await this.#io.tun.close();
  }

  problems(): Readonly<Record<string, number>> {
    return this.drops();
  }

  configureSocket(fd: number, family: 4 | 6, natPort: boolean): void {
    this.#io.configureSocket?.(fd, family, natPort);
  }

  /** ESP in UDP from the daemon's NAT-T socket. Never throws. */
  receiveEsp(datagram: Uint8Array, _local: Endpoint, remote: Endpoint): void {
    try {
      this.#receive(datagram, remote);
    } catch (error) {
      this.#drop('error', () => `receiving from ${formatEndpoint(remote)}: ${String(error)}`);
    }
  }

  #receive(datagram: Uint8Array, remote: Endpoint): void {
    if (this.#closed) return;
    // A NAT-keepalive (RFC 3948 section 2.3) is no ESP: nothing to count.
    if (datagram.length === 1 && datagram[0] === 0xff) return;
    if (datagram.length < 8) {
      this.#drop('truncated', () => `${datagram.length} bytes from ${formatEndpoint(remote)}`);
      return;
    }
    const spi = readU32be(datagram);
    const state = this.#sad.get(spi);
    if (!state) {
      this.#drop('unknown-spi', () => `SPI ${formatSpi(spi)} from ${formatEndpoint(remote)}`);
      return;
    }
    if (state.hard) {
      this.#drop('expired', () => `SPI ${formatSpi(spi)} (child SA ${state.child.id})`);
      return;
    }
    const result = state.inbound.open(datagram);
    if (!result.ok) {
      this.#drop(result.cause, () => `SPI ${formatSpi(spi)} from ${formatEndpoint(remote)}`);
      return;
    }
    // Authenticated: the peer's NAT mapping may have moved.
    if (remote.port !== state.remote.port || remote.address !== state.remote.address) {
      this.#moveMapping(state, remote);
    }
    const packet = this.#decapsulate(state, result.nextHeader, result.payload);
    if (packet) {
      // Written once this round of I/O is through (the check phase), all together: a microtask
      // would run after each datagram node:dgram hands over, and coalesce nothing (tun-gro.ts).
      if (this.#pendingWrites.length === 0) setImmediate(() => this.#flushWrites());
      this.#pendingWrites.push(packet);
    }
    this.#checkLimits(state);
  }

  /** The packet to write into the TUN device, or undefined (counted) when it must not go there. */
  #decapsulate(state: ChildState, nextHeader: number, payload: Buffer): Uint8Array | undefined {
    let packet: Uint8Array;
    if (state.child.mode === 'tunnel') {
      const flow = parsePacket(payload);
      if (!flow) {
        this.#drop(
          'bad-packet',
          () => `decrypted from SPI ${formatSpi(state.inbound.spi)}: not an IP packet`,
        );
        return undefined;
      }
      if ((flow.version === 4) !== (nextHeader === IPPROTO_IPIP)) {
        this.#drop(
          'next-header',
          () => `SPI ${formatSpi(state.inbound.spi)}: IPv${flow.version} in next header ${nextHeader}`,
        );
        return undefined;
      }
      // Anything after the inner packet's own length is TFC padding (RFC 4303 section 2.7).
      packet = payload.subarray(0, flow.totalLength);
      if (!this.#inboundAllowed(state, flow)) return undefined;
    } else {
      try {
        packet = buildPacket(state.remoteAddress, state.localAddress, nextHeader, payload);
      } catch {
        this.#drop(
          'bad-packet',
          () => `SPI ${formatSpi(state.inbound.spi)}: ${payload.length} bytes too long`,
        );
        return undefined;
      }
      if (!this.#inboundAllowed(state, parsePacket(packet)!)) return undefined;
    }
    return packet;
  }

  #inboundAllowed(state: ChildState, flow: Flow): boolean {
    if (flowMatchesAny(flow, state.remoteTs, state.localTs)) return true;
    this.#drop('selector', () => `SPI ${formatSpi(state.inbound.spi)} (child SA ${state.child.id})`);
    return false;
  }

  #moveMapping(state: ChildState, remote: Endpoint): void {
    const from = state.remote;
    state.remote = { address: remote.address, port: remote.port };
    state.remoteAddress = endpointAddress(remote.address);
    this.#host.log(
      'info',
      `userspace: child SA ${state.child.id}: ESP now comes from ${formatEndpoint(remote)} ` +
        `(was ${formatEndpoint(from)}); the NAT mapping moved`,
    );
    this.#emit({ type: 'mapping', child: state.child.id, remote: state.remote });
  }

  #flushWrites(): void {
    if (this.#pendingWrites.length === 0) return;
    const packets = this.#pendingWrites;
    this.#pendingWrites = [];
    try {
      this.#io.tun.write(packets);
    } catch (error) {
      this.#drops.error += packets.length;
      this.#host.log(
        'error',
        `userspace: writing ${packets.length} packets to the TUN device: ${String(error)}`,
      );
    }
  }

  #fromTun(packets: readonly Uint8Array[]): void {
    if (this.#closed) return;
    const batches = new Map<ChildState, Uint8Array[]>();
    for (const packet of packets) {
      try {
        this.#outbound(packet, batches);
      } catch (error) {
        this.#drop('error', () => `sending: ${String(error)}`);
      }
    }
    for (const [state, datagrams] of batches) {
      try {
        if (this.#io.sendDatagrams) this.#io.sendDatagrams(state.local, state.remote, datagrams);
        else for (const datagram of datagrams) this.#host.sendDatagram!(state.local, state.remote, datagram);
      } catch (error) {
        this.#drops.error += datagrams.length;
        this.#host.log(
          'error',
          `userspace: sending ESP to ${formatEndpoint(state.remote)}: ${String(error)}`,
        );
      }
    }
  }

  #outbound(packet: Uint8Array, batches: Map<ChildState, Uint8Array[]>): void {
    const flow = parsePacket(packet);
    if (!flow) {
      this.#drop('bad-packet', () => `${packet.length} bytes from the TUN device, not an IP packet`);
      return;
    }
    const target = this.#spd.lookup(flow);
    if (!target) {
      this.#drop('no-policy', () => describeFlow(flow));
      return;
    }
    if ('policy' in target) {
      this.#acquire(target.policy.connection);
      this.#drop('acquire', () => `${describeFlow(flow)} (connection ${target.policy.connection})`);
      return;
    }
    const state = target;
    if (state.hard || state.outbound.exhausted) {
      this.#drop('expired', () => `child SA ${state.child.id}`);
      return;
    }
    let payload: Uint8Array;
    let nextHeader: number;
    if (state.child.mode === 'tunnel') {
      payload = packet.length === flow.totalLength ? packet : packet.subarray(0, flow.totalLength);
      nextHeader = flow.version === 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
    } else {
      if (flow.fragment) {
        this.#drop('bad-packet', () => `${describeFlow(flow)}: a fragment cannot go in transport mode`);
        return;
      }
      payload = upperLayer(packet, flow);
      nextHeader = flow.protocol;
    }
    const esp = state.outbound.seal(payload, nextHeader);
    let batch = batches.get(state);
    if (!batch) batches.set(state, (batch = []));
    batch.push(esp);
    this.#checkLimits(state);
  }

  #acquire(connection: string): void {
    const now = this.#now();
    const last = this.#acquired.get(connection);
    if (last !== undefined && now - last < (this.#options.acquireInterval ?? 10_000)) return;
    this.#acquired.set(connection, now);
    this.#emit({ type: 'acquire', connection });
  }

  /** Soft and hard expiry by bytes, packets and sequence numbers, each reported once. */
  #checkLimits(state: ChildState): void {
    const { bytes, packets } = state.limits;
    const out = state.outbound;
    const inb = state.inbound;
    if (!state.soft) {
      const soft =
        out.nextSequence > this.#sequenceSoftLimit ||
        (bytes !== undefined && (out.bytes >= bytes.soft || inb.bytes >= bytes.soft)) ||
        (packets !== undefined && (out.packets >= packets.soft || inb.packets >= packets.soft));
      if (soft) {
        state.soft = true;
        this.#emit({ type: 'expire', child: state.child.id, hard: false });
      }
    }
    if (!state.hard) {
      const hard =
        out.exhausted ||
        (bytes !== undefined && (out.bytes >= bytes.hard || inb.bytes >= bytes.hard)) ||
        (packets !== undefined && (out.packets >= packets.hard || inb.packets >= packets.hard));
      if (hard) {
        state.hard = true;
        this.#host.log('info', `userspace: child SA ${state.child.id} reached its hard limit`);
        this.#emit({ type: 'expire', child: state.child.id, hard: true });
      }
    }
  }

  #emit(event: KernelEvent): void {
    try {
      this.#host.onEvent(event);
    } catch (error) {
      this.#host.log('error', `userspace: event handler failed on ${event.type}: ${String(error)}`);
    }
  }

  /** Counts a drop; logs the first of a cause at once, then at most one summary per interval. */
  #drop(cause: DropCause, detail: () => string): void {
    this.#drops[cause]++;
    if (cause === 'dummy') return; // RFC 4303 section 2.6: discarded silently.
    const now = this.#now();
    const entry = this.#logged.get(cause);
    if (!entry) {
      this.#logged.set(cause, { at: now, suppressed: 0 });
      this.#logDrops(cause, undefined, 0, detail);
    } else if (now - entry.at >= this.#logInterval) {
      this.#logDrops(cause, entry.suppressed + 1, now - entry.at, detail);
      entry.at = now;
      entry.suppressed = 0;
    } else {
      entry.suppressed++;
    }
  }

  /** The first drop of a cause (`count` undefined) with its detail, or a summary of `count` drops. */
  #logDrops(
    cause: DropCause,
    count: number | undefined,
    elapsed: number,
    detail: (() => string) | undefined,
  ): void {
    const what = DESCRIPTIONS[cause];
    const text =
      count === undefined
        ? `userspace: dropped ${what}${detail ? `: ${detail()}` : ''}`
        : `userspace: dropped ${count} ${what} in the last ${Math.max(1, Math.round(elapsed / 1000))} s` +
          (detail ? ` (latest: ${detail()})` : '');
    this.#host.log(QUIET.has(cause) ? 'debug' : 'warn', text);
  }

  /** Takes a reference on each route now; the first reference of a route adds it. */
  #hold(keys: readonly string[]): RouteHold {
    const refs = keys.map((key) => {
      let ref = this.#routes.get(key);
      if (!ref) {
        const created: RouteRef = { count: 0, ready: this.#routeCall(key, 'add') };
        this.#routes.set(key, created);
        // A route that could not be added is forgotten: the next hold tries again.
        created.ready.catch(() => {
          if (this.#routes.get(key) === created) this.#routes.delete(key);
        });
        ref = created;
      }
      ref.count++;
      return ref;
    });
    const ready = Promise.all(refs.map((ref) => ref.ready));
    ready.catch(() => {}); // awaited by the holder; this only keeps it from being "unhandled"
    return { keys, held: true, ready };
  }

  /** Drops a hold's references (once); the last reference of a route removes it. */
  async #release(hold: RouteHold): Promise<void> {
    if (!hold.held) return;
    hold.held = false;
    await Promise.all(hold.keys.map((key) => this.#releaseRoute(key)));
  }

  async #releaseRoute(key: string): Promise<void> {
    const ref = this.#routes.get(key);
    if (!ref || --ref.count > 0) return;
    this.#routes.delete(key);
    try {
      await ref.ready;
    } catch {
      return; // never added
    }
    try {
      await this.#routeCall(key, 'remove');
    } catch (error) {
      this.#host.log('warn', `userspace: removing ${key.replace(':', ' ')}: ${String(error)}`);
    }
  }

  #routeCall(key: string, what: 'add' | 'remove'): Promise<void> {
    const split = key.indexOf(':');
    const kind = key.slice(0, split);
    const value = key.slice(split + 1);
    const routes = this.#io.routes;
    try {
      if (kind === 'route') return what === 'add' ? routes.add(value) : routes.remove(value);
      const call = what === 'add' ? routes.exclude : routes.unexclude;
      return call ? call.call(routes, value) : Promise.resolve();
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

function describeFlow(flow: Flow): string {
  const port = (p: number): string =>
    p >= 0 && flow.protocol !== 1 && flow.protocol !== 58 ? ` port ${p}` : '';
  return (
    `protocol ${flow.protocol} from ${formatAddress(flow.src)}${port(flow.srcPort)} ` +
    `to ${formatAddress(flow.dst)}${port(flow.dstPort)}`
  );
}
