import { heldBack, RateLimitedLog } from '../../core/rate-limited-log.js';
import { formatAddress, parseAddress } from '../../core/address.js';
import type { Endpoint } from '../../core/endpoint.js';
import { formatSuite } from '../../core/proposal.js';
import { type ChildSa, formatSpi } from '../../core/sa.js';
import type { TrafficCounters } from '../../core/status.js';
import { formatTrafficSelector, type TrafficSelector } from '../../core/traffic-selector.js';
import type { KernelBackend, KernelBackendHost, KernelEvent, TrapPolicy } from '../backend.js';
import {
  type NetlinkChannel,
  type NetlinkMessage,
  type NetlinkSubscription,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
} from '../netlink/message.js';
import {
  describeKernelAlgorithms,
  algorithmAttributes,
  type KernelAlgorithms,
  kernelAlgorithms,
  XfrmAlgorithmError,
} from './algorithms.js';
import {
  AF_INET,
  AF_INET6,
  IP_XFRM_POLICY,
  IPPROTO_ESP,
  IPV6_XFRM_POLICY,
  SOL_IP,
  SOL_IPV6,
  SOL_UDP,
  UDP_ENCAP,
  UDP_ENCAP_ESPINUDP,
  XFRM_MODE_TRANSPORT,
  XFRM_MODE_TUNNEL,
  XFRM_MSG_ALLOCSPI,
  XFRM_MSG_DELPOLICY,
  XFRM_MSG_DELSA,
  XFRM_MSG_GETPOLICY,
  XFRM_MSG_GETSA,
  XFRM_MSG_NEWPOLICY,
  XFRM_MSG_NEWSA,
  XFRM_MSG_UPDPOLICY,
  XFRM_MSG_UPDSA,
  XFRM_POLICY_FWD,
  XFRM_POLICY_IN,
  XFRM_POLICY_MAX,
  XFRM_POLICY_OUT,
  XFRM_SHARE_ANY,
  xfrmMessageName,
} from './constants.js';
import { leftoversRemoved } from '../leftovers.js';
import { isExists, isGone, XfrmError, xfrmError } from './errors.js';
import {
  buildAllocSpi,
  buildPolicy,
  buildPolicyId,
  buildSa,
  buildSaId,
  buildSocketBypass,
  decodePolicyMessage,
  decodeSaMessage,
  decodeXfrmEvent,
  lifetimeCfg,
  type PolicyMessage,
  type SaMessage,
  type XfrmEvent,
} from './messages.js';
import { selectorSpecificity, selectorsFor, XfrmSelectorError } from './selectors.js';
import {
  addressBytes,
  anySelector,
  encodeSelector,
  familyOf,
  type XfrmSelector,
  type XfrmUserTmpl,
} from './structs.js';

/**
 * The Linux XFRM backend: SAs and policies through NETLINK_XFRM, events from its multicast groups.
 *
 * What it installs is recognisable: every SA and policy template carries a reqid from
 * [reqidBase, reqidBase + reqidCount) (reqidBase itself marks larval SAs from SPI allocation, the
 * rest go one per connection and selector set, shared by rekeyed child SAs), and every policy has a
 * priority in [priorityBase, priorityBase + POLICY_PRIORITY_BAND). `cleanup()` removes only what
 * carries such a reqid, never anyone else's entries.
 *
 * Policies are reference-counted per kernel key (direction and selector): a child SA and a trap of
 * the same connection share them, and rekeyed child SAs share them with their predecessor. The
 * kernel holds the template of the preferred user (the newest child SA, else the trap); when the
 * last user goes, so does the policy.
 *
 * A quick mode responder installs a child SA's inbound SA ahead (installInbound), before it sends
 * message 2: it carries the reqid the child's policies will carry, so that ESP the initiator sends
 * before we have read message 3 passes the kernel's inbound policy check where policies exist (a
 * rekey, a trap). `install` of the same child then adds only the outbound SA and the policies.
 */

export interface XfrmBackendOptions {
  /** setsockopt(2) (the native shim's): needed by configureSocket. */
  readonly setsockopt?: (fd: number, level: number, name: number, value: Uint8Array) => void;
  /** First reqid of ours (default 0x1ce00000). */
  readonly reqidBase?: number;
  /** How many reqids are ours (default 0x10000). */
  readonly reqidCount?: number;
  /** Lowest (most preferred) policy priority of ours (default 0x1ce000). */
  readonly priorityBase?: number;
  /** Anti-replay window in packets (default 32; above 32 uses the bitmap attribute, up to 4096). */
  readonly replayWindow?: number;
  /** Range for allocateSpi (default 0xc0000000..0xcfffffff). */
  readonly spiMin?: number;
  readonly spiMax?: number;
  /** Seconds the kernel's hard lifetime runs past the engine's expiry, as a safety net (default 30). */
  readonly hardLifetimeMargin?: number;
  /** Clock in milliseconds, for rate-limiting logs (default Date.now). */
  readonly now?: () => number;
  /** Milliseconds between two log lines for the same cause (default 60 000). */
  readonly logInterval?: number;
}

/** Width of our policy priority band: trap policies take the upper half. */
export const POLICY_PRIORITY_BAND = 2048;
export const DEFAULT_REQID_BASE = 0x1ce00000;
export const DEFAULT_REQID_COUNT = 0x10000;
export const DEFAULT_PRIORITY_BASE = 0x1ce000;
export const DEFAULT_SPI_MIN = 0xc0000000;
export const DEFAULT_SPI_MAX = 0xcfffffff;

/** What the backend has counted since it started (for status and tests). */
export interface XfrmBackendStats {
  acquires: number;
  expires: number;
  mappings: number;
  /** Events that were well-formed but not for anything of ours. */
  ignored: number;
  /** Events that did not parse. */
  malformed: number;
  /** ENOBUFS on the subscription: the kernel dropped events. */
  overruns: number;
  /** Subscription errors other than ENOBUFS. */
  errors: number;
  /** Child SAs the kernel (or we, before asking it) refused: an algorithm it lacks, a bad selector... */
  refused: number;
}

const ALL_ALGORITHMS = 0xffffffff;
const ACK = NLM_F_REQUEST | NLM_F_ACK;
const DUMP = NLM_F_REQUEST | NLM_F_DUMP;
const DIRECTION_NAMES = ['in', 'out', 'fwd'];
const EMPTY = new Uint8Array(0);
const ZERO_ADDRESS = new Uint8Array(16);

interface ReqidEntry {
  readonly reqid: number;
  readonly connection: string;
  users: number;
}

interface PolicyUser {
  /** "child:7" or "trap:office". */
  readonly owner: string;
  readonly trap: boolean;
  readonly reqid: number;
  readonly payload: Uint8Array;
  readonly describe: string;
}

interface PolicyEntry {
  readonly key: string;
  readonly selector: XfrmSelector;
  readonly dir: number;
  readonly describe: string;
  users: PolicyUser[];
  /** The payload the kernel holds now (undefined: nothing installed). */
  installed?: Uint8Array;
}

interface PolicyWant {
  readonly key: string;
  readonly selector: XfrmSelector;
  readonly dir: number;
  readonly describe: string;
  readonly user: PolicyUser;
}

/** An inbound SA installed ahead of its child SA (installInbound); it holds a reqid reference. */
interface InboundRecord {
  readonly child: ChildSa;
  readonly reqKey: string;
  readonly reqid: number;
  readonly local: Uint8Array;
  readonly remote: Uint8Array;
}

interface ChildRecord extends InboundRecord {
  readonly policyKeys: readonly string[];
}

/** What installing a child SA sends, built and checked before the kernel is asked. */
interface InstallPlan {
  readonly record: ChildRecord;
  readonly label: string;
  /** The kernel's names of the algorithms, for errors. */
  readonly describe: string;
  readonly inbound: Uint8Array;
  readonly outbound: Uint8Array;
  readonly wants: PolicyWant[];
}

interface TrapRecord {
  readonly trap: TrapPolicy;
  readonly reqKey: string;
  readonly reqid: number;
  readonly policyKeys: readonly string[];
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && hex(a) === hex(b);
}

/** Whether the inbound SA installed ahead for `pending` is the one `child` needs. */
function sameInbound(pending: ChildSa, child: ChildSa): boolean {
  const same = (a: Endpoint, b: Endpoint) => a.address === b.address && a.port === b.port;
  return (
    pending.spiIn === child.spiIn &&
    pending.encapsulation === child.encapsulation &&
    same(pending.local, child.local) &&
    same(pending.remote, child.remote)
  );
}

function describeSelector(sel: XfrmSelector): string {
  const side = (address: Uint8Array, prefix: number, port: number, mask: number) =>
    `${formatAddress(addressBytes(address, sel.family))}/${prefix}${mask ? `[${port}${mask === 0xffff ? '' : `/${mask.toString(16)}`}]` : ''}`;
  const proto = sel.proto ? ` proto ${sel.proto}` : '';
  return `${side(sel.saddr, sel.prefixlenS, sel.sport, sel.sportMask)} -> ${side(sel.daddr, sel.prefixlenD, sel.dport, sel.dportMask)}${proto}`;
}

/** A request refused before the kernel was asked (or an answer that makes no sense). */
function refused(operation: string, explanation: string, options?: { cause?: unknown }): XfrmError {
  return new XfrmError(operation, undefined, undefined, explanation, options);
}

function parseHost(address: string, what: string): Uint8Array {
  try {
    return parseAddress(address);
  } catch (error) {
    throw refused(what, `'${address}' is not an IP address`, { cause: error });
  }
}

export class XfrmBackend implements KernelBackend {
  readonly name = 'xfrm';
  readonly stats: XfrmBackendStats = {
    acquires: 0,
    expires: 0,
    mappings: 0,
    ignored: 0,
    malformed: 0,
    overruns: 0,
    errors: 0,
    refused: 0,
  };

  problems(): Readonly<Record<string, number>> {
    const { ignored, malformed, overruns, errors, refused } = this.stats;
    return {
      'ignored-event': ignored,
      'malformed-message': malformed,
      'event-overrun': overruns,
      error: errors,
      'install-refused': refused,
    };
  }

  readonly #channel: NetlinkChannel;
  readonly #subscription: NetlinkSubscription | undefined;
  readonly #host: KernelBackendHost;
  readonly #setsockopt: XfrmBackendOptions['setsockopt'];
  readonly #reqidBase: number;
  readonly #reqidCount: number;
  readonly #priorityBase: number;
  readonly #replayWindow: number;
  readonly #spiMin: number;
  readonly #spiMax: number;
  readonly #hardMargin: number;
  readonly #now: () => number;

  readonly #children = new Map<number, ChildRecord>();
  /** Inbound SAs installed ahead of their child SA, by child id (not in installed()). */
  readonly #pending = new Map<number, InboundRecord>();
  readonly #traps = new Map<string, TrapRecord>();
  readonly #policies = new Map<string, PolicyEntry>();
  readonly #reqids = new Map<string, ReqidEntry>();
  readonly #byReqid = new Map<number, ReqidEntry>();
  /** SPIs from allocateSpi whose larval SA install completes with UPDSA: spi -> destination. */
  readonly #allocated = new Map<number, Uint8Array>();
  /** Expire events already passed on, "child:hard", so the pair's second SA does not repeat them. */
  readonly #expired = new Set<string>();
  readonly #logged: RateLimitedLog;
  #nextReqid: number;
  #queue: Promise<unknown> = Promise.resolve();
  #resyncing = false;
  #closed = false;

  constructor(
    channel: NetlinkChannel,
    subscription: NetlinkSubscription | undefined,
    host: KernelBackendHost,
    options: XfrmBackendOptions = {},
  ) {
    this.#channel = channel;
    this.#subscription = subscription;
    this.#host = host;
    this.#setsockopt = options.setsockopt;
    this.#reqidBase = options.reqidBase ?? DEFAULT_REQID_BASE;
    this.#reqidCount = options.reqidCount ?? DEFAULT_REQID_COUNT;
    this.#priorityBase = options.priorityBase ?? DEFAULT_PRIORITY_BASE;
    this.#replayWindow = options.replayWindow ?? 32;
    this.#spiMin = options.spiMin ?? DEFAULT_SPI_MIN;
    this.#spiMax = options.spiMax ?? DEFAULT_SPI_MAX;
    this.#hardMargin = options.hardLifetimeMargin ?? 30;
    this.#now = options.now ?? Date.now;
    this.#logged = new RateLimitedLog(options.logInterval ?? 60_000, this.#now);
    if (this.#reqidCount < 2 || this.#reqidBase < 1 || this.#reqidBase + this.#reqidCount > 0x1_0000_0000)
      throw new RangeError(`reqid range ${this.#reqidBase}+${this.#reqidCount} does not fit 1..2^32-1`);
    if (this.#priorityBase < 0 || this.#priorityBase + POLICY_PRIORITY_BAND > 0x1_0000_0000)
      throw new RangeError(`policy priority base ${this.#priorityBase} does not fit a u32 with its band`);
    if (!Number.isInteger(this.#replayWindow) || this.#replayWindow < 0 || this.#replayWindow > 4096)
      throw new RangeError(`replay window ${this.#replayWindow} is not 0..4096 packets`);
    if (this.#spiMin < 0x100 || this.#spiMin > this.#spiMax || this.#spiMax > 0xffffffff)
      throw new RangeError(`SPI range ${formatSpi(this.#spiMin)}-${formatSpi(this.#spiMax)} is not valid`);
    this.#nextReqid = this.#reqidBase + 1;
    subscription?.onMessages((messages) => {
      for (const message of messages) this.#onEvent(message);
    });
    subscription?.onError((error) => this.#onSubscriptionError(error));
  }

  /** A backend that has first removed what an earlier run left behind (see cleanup). */
  static async open(
    channel: NetlinkChannel,
    subscription: NetlinkSubscription | undefined,
    host: KernelBackendHost,
    options: XfrmBackendOptions = {},
  ): Promise<XfrmBackend> {
    const backend = new XfrmBackend(channel, subscription, host, options);
    const left = await backend.cleanup();
    if (left.sas || left.policies) host.log('info', leftoversRemoved(left.spis, left.policies));
    return backend;
  }

  /** The larval-SA reqid: SPI allocations carry it, so cleanup() recognises them too. */
  get larvalReqid(): number {
    return this.#reqidBase;
  }

  isOurReqid(reqid: number): boolean {
    return reqid >= this.#reqidBase && reqid < this.#reqidBase + this.#reqidCount;
  }

  isOurPriority(priority: number): boolean {
    return priority >= this.#priorityBase && priority < this.#priorityBase + POLICY_PRIORITY_BAND;
  }

  /** The reqid a connection's selector set uses now, if any (for tests and status). */
  reqidOf(connection: string): number[] {
    return [...this.#reqids.values()].filter((e) => e.connection === connection).map((e) => e.reqid);
  }

  // --- SPI allocation ----------------------------------------------------------------------------

  allocateSpi(local: string, remote: string): number {
    const { what, dst, payload } = this.#allocSpiRequest(local, remote);
    let answers: NetlinkMessage[];
    try {
      answers = this.#channel.requestSync(XFRM_MSG_ALLOCSPI, ACK, payload, what);
    } catch (error) {
      throw xfrmError(error, what, { object: 'SA' });
    }
    return this.#allocatedSpi(answers, what, dst, local, remote);
  }

  async reserveSpi(local: string, remote: string): Promise<number> {
    const { what, dst, payload } = this.#allocSpiRequest(local, remote);
    let answers: NetlinkMessage[];
    try {
      answers = await this.#channel.request(XFRM_MSG_ALLOCSPI, ACK, payload, what);
    } catch (error) {
      throw xfrmError(error, what, { object: 'SA' });
    }
    return this.#allocatedSpi(answers, what, dst, local, remote);
  }

  #allocSpiRequest(local: string, remote: string): { what: string; dst: Uint8Array; payload: Uint8Array } {
    this.#assertOpen();
    const what = `allocate SPI for ${remote}->${local}`;
    const dst = parseHost(local, what);
    const src = parseHost(remote, what);
    const payload = buildAllocSpi({
      src,
      dst,
      reqid: this.#reqidBase,
      mode: XFRM_MODE_TUNNEL,
      min: this.#spiMin,
      max: this.#spiMax,
    });
    return { what, dst, payload };
  }

  /** The SPI of an ALLOCSPI answer, remembered so that the install completes the larval SA. */
  #allocatedSpi(
    answers: NetlinkMessage[],
    what: string,
    dst: Uint8Array,
    local: string,
    remote: string,
  ): number {
    const answer = answers.find((m) => m.type === XFRM_MSG_NEWSA);
    if (!answer) throw refused(what, 'the kernel answered without an SA');
    const spi = decodeSaMessage(answer).info.id.spi;
    if (spi < this.#spiMin || spi > this.#spiMax)
      throw refused(what, `the kernel gave SPI ${formatSpi(spi)}, outside the range asked`);
    this.#allocated.set(spi, dst);
    this.#host.log('debug', `allocated SPI ${formatSpi(spi)} for ${remote}->${local}`);
    return spi;
  }

  // --- child SAs ---------------------------------------------------------------------------------

  install(child: ChildSa): Promise<void> {
    return this.#counted(this.#exclusive(() => this.#install(child)));
  }

  installInbound(child: ChildSa): Promise<void> {
    return this.#counted(this.#exclusive(() => this.#installInbound(child)));
  }

  /** Refusals are counted here; the caller (the daemon) logs each one and tells the engine. */
  async #counted(installing: Promise<void>): Promise<void> {
    try {
      await installing;
    } catch (error) {
      this.stats.refused++;
      throw error;
    }
  }

  remove(child: ChildSa): Promise<void> {
    return this.#exclusive(() => this.#remove(child.id));
  }

  installed(): readonly ChildSa[] {
    return [...this.#children.values()].map((record) => record.child);
  }

  /**
   * Checks a child SA and builds its SAs and policies, all before the kernel is asked. Takes the
   * reqid of the child's selector set: the caller releases it if the kernel refuses.
   */
  #plan(child: ChildSa, operation: string): InstallPlan {
    const label = `child SA ${child.id} of '${child.connection}'`;
    let algorithms: KernelAlgorithms;
    try {
      algorithms = kernelAlgorithms(child.suite);
    } catch (error) {
      if (error instanceof XfrmAlgorithmError) throw refused(operation, error.message, { cause: error });
      throw error;
    }
    const local = parseHost(child.local.address, operation);
    const remote = parseHost(child.remote.address, operation);
    if (local.length !== remote.length)
      throw refused(operation, 'local and remote addresses mix IPv4 and IPv6');
    const mode = child.mode === 'tunnel' ? XFRM_MODE_TUNNEL : XFRM_MODE_TRANSPORT;
    const reqKey = this.#reqKey(child.connection, child.mode, child.localTs, child.remoteTs);
    const reqid = this.#takeReqid(reqKey, child.connection);
    try {
      const lifetime = this.#saLifetime(child);
      const transport = mode === XFRM_MODE_TRANSPORT;
      const inbound = buildSa({
        src: remote,
        dst: local,
        spi: child.spiIn,
        mode,
        reqid,
        selector: transport ? this.#transportSelector(child.remoteTs, child.localTs) : anySelector(),
        lifetime,
        replayWindow: this.#replayWindow,
        algorithms: algorithmAttributes(algorithms, child.keys.encrIn, child.keys.integIn),
        ...(child.encapsulation && { encap: { sport: child.remote.port, dport: child.local.port } }),
      });
      const outbound = buildSa({
        src: local,
        dst: remote,
        spi: child.spiOut,
        mode,
        reqid,
        selector: transport ? this.#transportSelector(child.localTs, child.remoteTs) : anySelector(),
        lifetime,
        replayWindow: 0,
        algorithms: algorithmAttributes(algorithms, child.keys.encrOut, child.keys.integOut),
        ...(child.encapsulation && { encap: { sport: child.local.port, dport: child.remote.port } }),
      });
      const wants = this.#policyWants({
        owner: `child:${child.id}`,
        trap: false,
        mode,
        reqid,
        local,
        remote,
        localTs: child.localTs,
        remoteTs: child.remoteTs,
      });
      const policyKeys = [...new Set(wants.map((w) => w.key))];
      return {
        record: { child, reqKey, reqid, local, remote, policyKeys },
        label,
        describe: describeKernelAlgorithms(algorithms),
        inbound,
        outbound,
        wants,
      };
    } catch (error) {
      this.#releaseReqid(reqKey);
      if (
        error instanceof XfrmAlgorithmError ||
        error instanceof XfrmSelectorError ||
        error instanceof RangeError
      )
        throw refused(operation, error.message, { cause: error });
      throw error;
    }
  }

  async #install(child: ChildSa): Promise<void> {
    const plan = this.#plan(child, `install child SA ${child.id} of '${child.connection}'`);
    const { record, label, describe } = plan;
    const { local, remote, reqKey, reqid } = record;
    const previous = this.#children.get(child.id);
    const ahead = await this.#takePending(record);
    const abandon = async () => {
      this.#releaseReqid(reqKey);
      if (previous) await this.#releasePolicies(`child:${child.id}`, previous.policyKeys, previous.reqKey);
    };

    if (previous) {
      // Re-installation (new addresses after a NAT mapping change...): the old SAs go, the policies stay.
      await this.#deleteSas(previous);
      this.#children.delete(child.id);
    }

    if (!ahead) {
      try {
        await this.#addInbound(plan);
      } catch (error) {
        await abandon();
        throw error;
      }
    }
    const outWhat = `add outbound SA ${formatAddress(local)}->${formatAddress(remote)} spi ${formatSpi(child.spiOut)} (${label}, ${formatSuite(child.suite)})`;
    try {
      await this.#channel.request(XFRM_MSG_NEWSA, ACK, plan.outbound, outWhat);
    } catch (error) {
      await this.#deleteSa(local, child.spiIn, `delete inbound SA spi ${formatSpi(child.spiIn)} (${label})`);
      await abandon();
      throw xfrmError(error, outWhat, { algorithms: describe, object: 'SA' });
    }
    try {
      await this.#addPolicyUsers(plan.wants);
    } catch (error) {
      await this.#deleteSas(record);
      await abandon();
      throw error;
    }
    this.#children.set(child.id, record);
    this.#expired.delete(`${child.id}:true`);
    this.#expired.delete(`${child.id}:false`);
    if (previous) {
      const kept = new Set(record.policyKeys);
      await this.#releasePolicies(
        `child:${child.id}`,
        previous.policyKeys.filter((key) => !kept.has(key)),
        previous.reqKey,
      );
    }
    this.#host.log(
      'debug',
      `installed ${label}: SPIs in ${formatSpi(child.spiIn)} out ${formatSpi(child.spiOut)}, reqid ${reqid}${ahead ? ' (inbound SA ahead)' : ''}, ${record.policyKeys.length} policy(ies)`,
    );
  }

  async #installInbound(child: ChildSa): Promise<void> {
    const operation = `install the inbound SA of child SA ${child.id} of '${child.connection}'`;
    if (this.#children.has(child.id) || this.#pending.has(child.id))
      throw refused(operation, 'the child SA is installed already');
    const plan = this.#plan(child, operation);
    try {
      await this.#addInbound(plan);
    } catch (error) {
      this.#releaseReqid(plan.record.reqKey);
      throw error;
    }
    this.#pending.set(child.id, plan.record);
    this.#host.log(
      'debug',
      `installed the inbound SA of ${plan.label} ahead: SPI ${formatSpi(child.spiIn)}, reqid ${plan.record.reqid}`,
    );
  }

  /** UPDSA completes the larval SA of an SPI from allocateSpi; any other SPI is a NEWSA. */
  async #addInbound({ record, label, describe, inbound }: InstallPlan): Promise<void> {
    const { child, local, remote } = record;
    const what = `add inbound SA ${formatAddress(remote)}->${formatAddress(local)} spi ${formatSpi(child.spiIn)} (${label}, ${formatSuite(child.suite)})`;
    const larval = sameBytes(this.#allocated.get(child.spiIn), local);
    try {
      await this.#channel.request(larval ? XFRM_MSG_UPDSA : XFRM_MSG_NEWSA, ACK, inbound, what);
      this.#allocated.delete(child.spiIn);
    } catch (error) {
      throw xfrmError(error, what, { algorithms: describe, object: 'SA' });
    }
  }

  /**
   * True if installInbound put in the inbound SA this install wants (same SPI, endpoints and
   * reqid): the plan's reqid reference replaces the pending one. A different one is deleted.
   */
  async #takePending(record: ChildRecord): Promise<boolean> {
    const pending = this.#pending.get(record.child.id);
    if (!pending) return false;
    if (pending.reqid !== record.reqid || !sameInbound(pending.child, record.child)) {
      await this.#dropPending(pending); // failures are logged; a full install follows
      return false;
    }
    this.#pending.delete(record.child.id);
    this.#releaseReqid(pending.reqKey);
    return true;
  }

  /** Deletes an inbound SA installed ahead and releases its reqid; returns errors instead of throwing. */
  async #dropPending(pending: InboundRecord): Promise<unknown[]> {
    this.#pending.delete(pending.child.id);
    const errors = await this.#deleteSas(pending, false);
    this.#releaseReqid(pending.reqKey);
    return errors;
  }

  async #remove(id: number): Promise<void> {
    const pending = this.#pending.get(id);
    if (pending) {
      const errors = await this.#dropPending(pending);
      if (errors.length) throw errors[0];
      return;
    }
    const record = this.#children.get(id);
    if (!record) {
      this.#host.log('debug', `remove child SA ${id}: not installed`);
      return;
    }
    this.#children.delete(id);
    const errors = await this.#deleteSas(record);
    errors.push(...(await this.#releasePolicies(`child:${id}`, record.policyKeys, record.reqKey)));
    this.#expired.delete(`${id}:true`);
    this.#expired.delete(`${id}:false`);
    if (errors.length) throw errors[0];
  }

  /** Deletes a child's SAs (or its inbound SA alone); already gone is fine. Returns the other errors. */
  async #deleteSas(record: InboundRecord, outbound = true): Promise<unknown[]> {
    const label = `child SA ${record.child.id} of '${record.child.connection}'`;
    const errors: unknown[] = [];
    const sas: [Uint8Array, number, string][] = [[record.local, record.child.spiIn, 'inbound']];
    if (outbound) sas.push([record.remote, record.child.spiOut, 'outbound']);
    for (const [dst, spi, direction] of sas) {
      try {
        await this.#deleteSa(dst, spi, `delete ${direction} SA spi ${formatSpi(spi)} (${label})`);
      } catch (error) {
        this.#host.log('warn', (error as Error).message);
        errors.push(error);
      }
    }
    return errors;
  }

  async #deleteSa(dst: Uint8Array, spi: number, what: string): Promise<void> {
    try {
      await this.#channel.request(XFRM_MSG_DELSA, ACK, buildSaId(dst, spi), what);
    } catch (error) {
      if (isGone(error)) {
        this.#host.log('debug', `${what}: already gone`);
        return;
      }
      throw xfrmError(error, what, { object: 'SA' });
    }
  }

  async counters(child: ChildSa): Promise<TrafficCounters | undefined> {
    const record = this.#children.get(child.id);
    if (!record) return undefined;
    const read = async (dst: Uint8Array, spi: number) => {
      const what = `read SA spi ${formatSpi(spi)} (child SA ${child.id})`;
      try {
        const answers = await this.#channel.request(XFRM_MSG_GETSA, ACK, buildSaId(dst, spi), what);
        const answer = answers.find((m) => m.type === XFRM_MSG_NEWSA);
        return answer ? decodeSaMessage(answer).info.curlft : undefined;
      } catch (error) {
        if (isGone(error)) return undefined;
        throw xfrmError(error, what, { object: 'SA' });
      }
    };
    const inbound = await read(record.local, child.spiIn);
    const outbound = await read(record.remote, child.spiOut);
    if (!inbound || !outbound) return undefined;
    return {
      bytesIn: Number(inbound.bytes),
      packetsIn: Number(inbound.packets),
      bytesOut: Number(outbound.bytes),
      packetsOut: Number(outbound.packets),
    };
  }

  // --- traps -------------------------------------------------------------------------------------

  trap(trap: TrapPolicy): Promise<void> {
    return this.#exclusive(() => this.#trap(trap));
  }

  untrap(connection: string): Promise<void> {
    return this.#exclusive(async () => {
      const record = this.#traps.get(connection);
      if (!record) return;
      this.#traps.delete(connection);
      const errors = await this.#releasePolicies(`trap:${connection}`, record.policyKeys, record.reqKey);
      if (errors.length) throw errors[0];
    });
  }

  async #trap(trap: TrapPolicy): Promise<void> {
    const what = `trap '${trap.connection}'`;
    const local = parseHost(trap.local, what);
    const remote = parseHost(trap.remote, what);
    if (local.length !== remote.length) throw refused(what, 'local and remote addresses mix IPv4 and IPv6');
    const mode = trap.mode === 'tunnel' ? XFRM_MODE_TUNNEL : XFRM_MODE_TRANSPORT;
    const reqKey = this.#reqKey(trap.connection, trap.mode, trap.localTs, trap.remoteTs);
    const previous = this.#traps.get(trap.connection);
    const owner = `trap:${trap.connection}`;
    const reqid = this.#takeReqid(reqKey, trap.connection);
    let wants: PolicyWant[];
    try {
      wants = this.#policyWants({
        owner,
        trap: true,
        mode,
        reqid,
        local,
        remote,
        localTs: trap.localTs,
        remoteTs: trap.remoteTs,
      });
    } catch (error) {
      this.#releaseReqid(reqKey);
      if (error instanceof XfrmSelectorError) throw refused(what, error.message, { cause: error });
      throw error;
    }
    try {
      await this.#addPolicyUsers(wants);
    } catch (error) {
      this.#releaseReqid(reqKey);
      throw error;
    }
    const record: TrapRecord = { trap, reqKey, reqid, policyKeys: [...new Set(wants.map((w) => w.key))] };
    this.#traps.set(trap.connection, record);
    if (previous) {
      const kept = new Set(record.policyKeys);
      await this.#releasePolicies(
        owner,
        previous.policyKeys.filter((key) => !kept.has(key)),
        previous.reqKey,
      );
    }
    this.#host.log(
      'debug',
      `trapped '${trap.connection}': reqid ${reqid}, ${record.policyKeys.length} policy(ies)`,
    );
  }

  // --- policies ----------------------------------------------------------------------------------

  #policyWants(spec: {
    owner: string;
    trap: boolean;
    mode: number;
    reqid: number;
    local: Uint8Array;
    remote: Uint8Array;
    localTs: readonly TrafficSelector[];
    remoteTs: readonly TrafficSelector[];
  }): PolicyWant[] {
    const wants: PolicyWant[] = [];
    const add = (selector: XfrmSelector, dir: number, src: Uint8Array, dst: Uint8Array) => {
      const tunnel = spec.mode === XFRM_MODE_TUNNEL;
      const template: XfrmUserTmpl = {
        id: { daddr: tunnel ? dst : ZERO_ADDRESS, spi: 0, proto: IPPROTO_ESP },
        family: tunnel ? familyOf(dst) : selector.family,
        saddr: tunnel ? src : ZERO_ADDRESS,
        reqid: spec.reqid,
        mode: spec.mode,
        share: XFRM_SHARE_ANY,
        optional: 0,
        aalgos: ALL_ALGORITHMS,
        ealgos: ALL_ALGORITHMS,
        calgos: ALL_ALGORITHMS,
      };
      const priority =
        this.#priorityBase +
        (spec.trap ? POLICY_PRIORITY_BAND / 2 : 0) +
        (1023 - selectorSpecificity(selector));
      const describe = `${DIRECTION_NAMES[dir]} policy ${describeSelector(selector)}`;
      wants.push({
        key: `${dir}:${hex(encodeSelector(selector))}`,
        selector,
        dir,
        describe,
        user: {
          owner: spec.owner,
          trap: spec.trap,
          reqid: spec.reqid,
          payload: buildPolicy({ selector, dir, priority, templates: [template] }),
          describe: `${describe} (reqid ${spec.reqid}, priority ${priority})`,
        },
      });
    };
    // In and fwd first, so that the way back exists before traffic is sent out.
    for (const l of spec.localTs)
      for (const r of spec.remoteTs)
        for (const selector of selectorsFor(r, l)) {
          add(selector, XFRM_POLICY_IN, spec.remote, spec.local);
          if (spec.mode === XFRM_MODE_TUNNEL) add(selector, XFRM_POLICY_FWD, spec.remote, spec.local);
        }
    for (const l of spec.localTs)
      for (const r of spec.remoteTs)
        for (const selector of selectorsFor(l, r)) add(selector, XFRM_POLICY_OUT, spec.local, spec.remote);
    if (wants.length === 0)
      throw new XfrmSelectorError(
        `no policy: local ${spec.localTs.map(formatTrafficSelector).join(', ') || '(none)'} and remote ` +
          `${spec.remoteTs.map(formatTrafficSelector).join(', ') || '(none)'} have no pair of the same family and protocol`,
      );
    return wants;
  }

  /** Adds one user per wanted policy; on failure, takes the ones added back out. */
  async #addPolicyUsers(wants: readonly PolicyWant[]): Promise<void> {
    const done: { want: PolicyWant; replaced: PolicyUser | undefined }[] = [];
    try {
      for (const want of wants) {
        let entry = this.#policies.get(want.key);
        if (!entry) {
          entry = {
            key: want.key,
            selector: want.selector,
            dir: want.dir,
            describe: want.describe,
            users: [],
          };
          this.#policies.set(want.key, entry);
        }
        const index = entry.users.findIndex((u) => u.owner === want.user.owner);
        const replaced = index >= 0 ? entry.users[index] : undefined;
        if (index >= 0) entry.users.splice(index, 1);
        entry.users.push(want.user);
        try {
          await this.#sync(entry);
        } catch (error) {
          entry.users = entry.users.filter((u) => u !== want.user);
          if (replaced) entry.users.push(replaced);
          if (entry.users.length === 0 && !entry.installed) this.#policies.delete(entry.key);
          throw error;
        }
        done.push({ want, replaced });
      }
    } catch (error) {
      for (const { want, replaced } of done.reverse()) {
        const entry = this.#policies.get(want.key);
        if (!entry) continue;
        entry.users = entry.users.filter((u) => u !== want.user);
        if (replaced) entry.users.push(replaced);
        try {
          await this.#sync(entry);
        } catch (undo) {
          this.#host.log('warn', `undoing ${entry.describe}: ${(undo as Error).message}`);
        }
      }
      throw error;
    }
  }

  /** Drops an owner from policies and releases its reqid; returns errors instead of throwing. */
  async #releasePolicies(owner: string, keys: readonly string[], reqKey: string): Promise<unknown[]> {
    const errors: unknown[] = [];
    for (const key of keys) {
      const entry = this.#policies.get(key);
      if (!entry) continue;
      entry.users = entry.users.filter((u) => u.owner !== owner);
      try {
        await this.#sync(entry);
      } catch (error) {
        this.#host.log('warn', (error as Error).message);
        errors.push(error);
      }
    }
    this.#releaseReqid(reqKey);
    return errors;
  }

  /** Makes the kernel hold what the entry's preferred user wants (or nothing). */
  async #sync(entry: PolicyEntry): Promise<void> {
    const children = entry.users.filter((u) => !u.trap);
    const want = children[children.length - 1] ?? entry.users[entry.users.length - 1];
    if (!want) {
      if (entry.installed) {
        const what = `delete ${entry.describe}`;
        try {
          await this.#channel.request(
            XFRM_MSG_DELPOLICY,
            ACK,
            buildPolicyId(entry.selector, entry.dir),
            what,
          );
        } catch (error) {
          if (!isGone(error)) throw xfrmError(error, what, { object: 'policy' });
          this.#host.log('debug', `${what}: already gone`);
        }
      }
      this.#policies.delete(entry.key);
      return;
    }
    if (sameBytes(entry.installed, want.payload)) return;
    if (entry.installed) {
      const what = `update ${want.describe}`;
      try {
        await this.#channel.request(XFRM_MSG_UPDPOLICY, ACK, want.payload, what);
      } catch (error) {
        throw xfrmError(error, what, { object: 'policy' });
      }
      entry.installed = want.payload;
      return;
    }
    const what = `add ${want.describe}`;
    try {
      await this.#channel.request(XFRM_MSG_NEWPOLICY, ACK, want.payload, what);
    } catch (error) {
      if (!isExists(error)) throw xfrmError(error, what, { object: 'policy' });
      await this.#replaceLeftover(entry, want, what, error);
    }
    entry.installed = want.payload;
  }

  /** NEWPOLICY said EEXIST: replace the policy if a crashed run of ours left it, else refuse. */
  async #replaceLeftover(entry: PolicyEntry, want: PolicyUser, what: string, cause: unknown): Promise<void> {
    let existing: PolicyMessage | undefined;
    try {
      const answers = await this.#channel.request(
        XFRM_MSG_GETPOLICY,
        ACK,
        buildPolicyId(entry.selector, entry.dir),
        `read ${entry.describe}`,
      );
      const answer = answers.find((m) => m.type === XFRM_MSG_NEWPOLICY);
      existing = answer && decodePolicyMessage(answer);
    } catch (error) {
      if (!isGone(error)) throw xfrmError(error, `read ${entry.describe}`, { object: 'policy' });
    }
    if (existing && !this.#isOurPolicy(existing)) {
      const reqids = existing.templates.map((t) => t.reqid).join(', ') || 'none';
      throw new XfrmError(
        what,
        'EEXIST',
        17,
        `another policy for this selector is installed and is not ours (priority ${existing.info.priority}, ` +
          `template reqid ${reqids}); remove it or change the traffic selectors`,
        { cause },
      );
    }
    try {
      await this.#channel.request(XFRM_MSG_UPDPOLICY, ACK, want.payload, what);
    } catch (error) {
      throw xfrmError(error, what, { object: 'policy' });
    }
    this.#host.log('info', `${what}: replaced a policy an earlier run left behind`);
  }

  #isOurPolicy(policy: PolicyMessage): boolean {
    return policy.templates.length > 0 && policy.templates.every((t) => this.isOurReqid(t.reqid));
  }

  // --- reqids ------------------------------------------------------------------------------------

  #reqKey(
    connection: string,
    mode: string,
    localTs: readonly TrafficSelector[],
    remoteTs: readonly TrafficSelector[],
  ): string {
    const list = (ts: readonly TrafficSelector[]) => ts.map(formatTrafficSelector).sort().join(',');
    return JSON.stringify([connection, mode, list(localTs), list(remoteTs)]);
  }

  #takeReqid(reqKey: string, connection: string): number {
    const existing = this.#reqids.get(reqKey);
    if (existing) {
      existing.users++;
      return existing.reqid;
    }
    const span = this.#reqidCount - 1;
    for (let i = 0; i < span; i++) {
      const reqid = this.#reqidBase + 1 + ((this.#nextReqid - this.#reqidBase - 1 + i) % span);
      if (this.#byReqid.has(reqid)) continue;
      this.#nextReqid = reqid + 1 >= this.#reqidBase + this.#reqidCount ? this.#reqidBase + 1 : reqid + 1;
      const entry: ReqidEntry = { reqid, connection, users: 1 };
      this.#reqids.set(reqKey, entry);
      this.#byReqid.set(reqid, entry);
      return reqid;
    }
    throw refused(`reqid for '${connection}'`, `all ${span} reqids are in use`);
  }

  #releaseReqid(reqKey: string): void {
    const entry = this.#reqids.get(reqKey);
    if (!entry) return;
    if (--entry.users > 0) return;
    this.#reqids.delete(reqKey);
    this.#byReqid.delete(entry.reqid);
  }

  // --- lifetimes and selectors ---------------------------------------------------------------------

  #saLifetime(child: ChildSa) {
    const life = child.expiresAt - child.installedAt;
    const hardAddSeconds = life > 0 ? Math.ceil(life) + this.#hardMargin : 0;
    const kilobytes = child.lifetime.kilobytes;
    if (kilobytes === undefined || kilobytes <= 0) return lifetimeCfg({ hardAddSeconds });
    const hardBytes = BigInt(Math.floor(kilobytes)) * 1024n;
    // Soft at 90%: the kernel's soft EXPIRE is the engine's cue to rekey before the hard limit.
    return lifetimeCfg({ hardAddSeconds, hardBytes, softBytes: (hardBytes * 9n) / 10n });
  }

  /** A transport-mode SA's selector: the one pair when it is one kernel selector, else any. */
  #transportSelector(src: readonly TrafficSelector[], dst: readonly TrafficSelector[]): XfrmSelector {
    if (src.length !== 1 || dst.length !== 1) return anySelector();
    const selectors = selectorsFor(src[0]!, dst[0]!);
    return selectors.length === 1 ? selectors[0]! : anySelector();
  }

  // --- sockets -----------------------------------------------------------------------------------

  configureSocket(fd: number, family: 4 | 6, natPort: boolean): void {
    const setsockopt = this.#setsockopt;
    if (!setsockopt) throw new Error('xfrm backend: configureSocket needs the setsockopt option');
    const level = family === 4 ? SOL_IP : SOL_IPV6;
    const name = family === 4 ? IP_XFRM_POLICY : IPV6_XFRM_POLICY;
    const af = family === 4 ? AF_INET : AF_INET6;
    for (const dir of [XFRM_POLICY_IN, XFRM_POLICY_OUT])
      setsockopt(fd, level, name, buildSocketBypass(af, dir));
    if (natPort) {
      const value = new Uint8Array(4);
      new DataView(value.buffer).setInt32(0, UDP_ENCAP_ESPINUDP, true);
      setsockopt(fd, SOL_UDP, UDP_ENCAP, value);
    }
  }

  // --- cleanup and close -------------------------------------------------------------------------

  /**
   * Removes SAs and policies that carry one of our reqids but are not in this backend's tables:
   * what a crashed or killed run left behind. Entries of anyone else (other reqids, socket
   * policies, policies without templates) are never touched. `spis`: the SAs removed, by SPI.
   */
  cleanup(): Promise<{ sas: number; policies: number; spis: number[] }> {
    return this.#exclusive(async () => {
      const spis: number[] = [];
      let policies = 0;
      const ownSpis = new Set<string>();
      for (const record of this.#children.values())
        ownSpis.add(`${hex(record.remote)}:${record.child.spiOut}`);
      for (const record of [...this.#children.values(), ...this.#pending.values()])
        ownSpis.add(`${hex(record.local)}:${record.child.spiIn}`);
      for (const sa of await this.#dumpSas()) {
        const { info } = sa;
        if (!this.isOurReqid(info.reqid) || info.id.spi === 0) continue;
        const dst = addressBytes(info.id.daddr, info.family);
        if (ownSpis.has(`${hex(dst)}:${info.id.spi}`) || this.#allocated.has(info.id.spi)) continue;
        const what = `delete leftover SA ${formatAddress(addressBytes(info.saddr, info.family))}->${formatAddress(dst)} spi ${formatSpi(info.id.spi)} reqid ${info.reqid}`;
        try {
          await this.#channel.request(XFRM_MSG_DELSA, ACK, buildSaId(dst, info.id.spi), what);
          spis.push(info.id.spi);
        } catch (error) {
          if (!isGone(error)) throw xfrmError(error, what, { object: 'SA' });
        }
      }
      for (const policy of await this.#dumpPolicies()) {
        const { info } = policy;
        if (info.dir >= XFRM_POLICY_MAX || !this.#isOurPolicy(policy)) continue;
        if (this.#policies.has(`${info.dir}:${hex(encodeSelector(info.sel))}`)) continue;
        const what = `delete leftover ${DIRECTION_NAMES[info.dir]} policy ${describeSelector(info.sel)} priority ${info.priority}`;
        try {
          await this.#channel.request(
            XFRM_MSG_DELPOLICY,
            ACK,
            buildPolicyId(info.sel, info.dir, info.index),
            what,
          );
          policies++;
        } catch (error) {
          if (!isGone(error)) throw xfrmError(error, what, { object: 'policy' });
        }
      }
      return { sas: spis.length, policies, spis };
    });
  }

  async #dumpSas(): Promise<SaMessage[]> {
    let answers: NetlinkMessage[];
    try {
      answers = await this.#channel.request(XFRM_MSG_GETSA, DUMP, EMPTY, 'dump SAs');
    } catch (error) {
      throw xfrmError(error, 'dump SAs', { object: 'SA' });
    }
    return answers.filter((m) => m.type === XFRM_MSG_NEWSA).map(decodeSaMessage);
  }

  async #dumpPolicies(): Promise<PolicyMessage[]> {
    let answers: NetlinkMessage[];
    try {
      answers = await this.#channel.request(XFRM_MSG_GETPOLICY, DUMP, EMPTY, 'dump policies');
    } catch (error) {
      throw xfrmError(error, 'dump policies', { object: 'policy' });
    }
    return answers.filter((m) => m.type === XFRM_MSG_NEWPOLICY).map(decodePolicyMessage);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return this.#exclusive(async () => {
      const errors: unknown[] = [];
      for (const id of [...this.#children.keys()]) {
        const record = this.#children.get(id)!;
        this.#children.delete(id);
        errors.push(...(await this.#deleteSas(record)));
        errors.push(...(await this.#releasePolicies(`child:${id}`, record.policyKeys, record.reqKey)));
      }
      for (const pending of [...this.#pending.values()]) errors.push(...(await this.#dropPending(pending)));
      for (const [connection, record] of [...this.#traps]) {
        this.#traps.delete(connection);
        errors.push(...(await this.#releasePolicies(`trap:${connection}`, record.policyKeys, record.reqKey)));
      }
      // Larval SAs of SPIs allocated for negotiations that never installed.
      for (const [spi, dst] of [...this.#allocated]) {
        this.#allocated.delete(spi);
        try {
          await this.#deleteSa(dst, spi, `delete larval SA spi ${formatSpi(spi)}`);
        } catch (error) {
          this.#host.log('warn', (error as Error).message);
          errors.push(error);
        }
      }
      this.#closed = true;
      this.#subscription?.close();
      this.#channel.close();
      if (errors.length)
        this.#host.log(
          'warn',
          `closing: ${errors.length} entry(ies) could not be removed; see the warnings above`,
        );
    });
  }

  // --- events ------------------------------------------------------------------------------------

  #onEvent(message: NetlinkMessage): void {
    let event: XfrmEvent;
    try {
      event = decodeXfrmEvent(message);
    } catch (error) {
      this.stats.malformed++;
      this.#logLimited(
        `malformed:${message.type}`,
        'warn',
        `ignoring a garbled ${xfrmMessageName(message.type)}: ${(error as Error).message}`,
      );
      return;
    }
    switch (event.kind) {
      case 'acquire': {
        const reqid = event.templates[0]?.reqid ?? 0;
        const entry = this.#byReqid.get(reqid);
        if (!entry) {
          this.stats.ignored++;
          this.#logLimited(`acquire:${reqid}`, 'debug', `ACQUIRE for reqid ${reqid}: not one of ours`);
          return;
        }
        this.stats.acquires++;
        this.#emit({ type: 'acquire', connection: entry.connection });
        return;
      }
      case 'expire': {
        const { state, hard } = event.expire;
        const spi = state.id.spi;
        const dst = hex(addressBytes(state.id.daddr, state.family));
        const record = [...this.#children.values()].find(
          (r) =>
            (r.child.spiIn === spi && hex(r.local) === dst) ||
            (r.child.spiOut === spi && hex(r.remote) === dst),
        );
        if (!record) {
          const larval = this.#allocated.get(spi);
          if (larval && hex(larval) === dst) {
            this.#allocated.delete(spi);
            this.#host.log('debug', `SPI ${formatSpi(spi)} expired unused (larval SA)`);
          } else {
            this.stats.ignored++;
            this.#logLimited(
              `expire:${spi}`,
              'debug',
              `EXPIRE for SPI ${formatSpi(spi)}: not an installed child SA of ours`,
            );
          }
          return;
        }
        const key = `${record.child.id}:${hard}`;
        if (this.#expired.has(key)) return;
        this.#expired.add(key);
        this.stats.expires++;
        this.#emit({ type: 'expire', child: record.child.id, hard });
        return;
      }
      case 'mapping': {
        const { id, newSaddr, newSport } = event.mapping;
        const dst = hex(addressBytes(id.daddr, id.family));
        const record = [...this.#children.values()].find(
          (r) => r.child.spiIn === id.spi && hex(r.local) === dst,
        );
        if (!record) {
          this.stats.ignored++;
          this.#logLimited(
            `mapping:${id.spi}`,
            'debug',
            `MAPPING for SPI ${formatSpi(id.spi)}: not an installed child SA of ours`,
          );
          return;
        }
        this.stats.mappings++;
        this.#emit({
          type: 'mapping',
          child: record.child.id,
          remote: { address: formatAddress(addressBytes(newSaddr, id.family)), port: newSport },
        });
        return;
      }
      case 'polexpire':
        this.stats.ignored++;
        return;
      case 'other':
        this.stats.ignored++;
        this.#logLimited(
          `other:${event.type}`,
          'debug',
          `ignoring ${xfrmMessageName(event.type)} from the kernel`,
        );
        return;
    }
  }

  #emit(event: KernelEvent): void {
    try {
      this.#host.onEvent(event);
    } catch (error) {
      this.#host.log('error', `handling the kernel's ${event.type} event: ${(error as Error).message}`);
    }
  }

  #onSubscriptionError(error: Error & { code?: string }): void {
    if (error.code === 'ENOBUFS') {
      this.stats.overruns++;
      this.#logLimited(
        'enobufs',
        'warn',
        'the kernel dropped XFRM events (ENOBUFS): checking the installed SAs',
      );
      void this.#resync();
      return;
    }
    this.stats.errors++;
    this.#logLimited(`error:${error.code ?? error.message}`, 'error', `XFRM event socket: ${error.message}`);
  }

  /** After lost events: a child SA whose SA is gone from the kernel has hard-expired. */
  async #resync(): Promise<void> {
    if (this.#resyncing || this.#closed) return;
    this.#resyncing = true;
    try {
      await this.#exclusive(async () => {
        const present = new Set(
          (await this.#dumpSas()).map(
            (sa) => `${hex(addressBytes(sa.info.id.daddr, sa.info.family))}:${sa.info.id.spi}`,
          ),
        );
        for (const record of this.#children.values()) {
          const inbound = present.has(`${hex(record.local)}:${record.child.spiIn}`);
          const outbound = present.has(`${hex(record.remote)}:${record.child.spiOut}`);
          const key = `${record.child.id}:true`;
          if ((!inbound || !outbound) && !this.#expired.has(key)) {
            this.#expired.add(key);
            this.stats.expires++;
            this.#emit({ type: 'expire', child: record.child.id, hard: true });
          }
        }
      });
    } catch (error) {
      this.#logLimited('resync', 'warn', `checking SAs after lost events: ${(error as Error).message}`);
    } finally {
      this.#resyncing = false;
    }
  }

  // --- plumbing ----------------------------------------------------------------------------------

  #logLimited(cause: string, level: 'error' | 'warn' | 'info' | 'debug', message: string): void {
    this.#logged.log(cause, (suppressed) => this.#host.log(level, `${message}${heldBack(suppressed)}`));
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('xfrm backend is closed');
  }

  /** Runs `task` after every task before it: policy reference counts never interleave. */
  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('xfrm backend is closed'));
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
