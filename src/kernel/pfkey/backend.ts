import { heldBack, RateLimitedLog } from '../../core/rate-limited-log.js';
import { type ChildSa, formatSpi } from '../../core/sa.js';
import type { TrafficCounters } from '../../core/status.js';
import type { Native } from '../../native/types.js';
import type { KernelBackend, KernelBackendHost, KernelEvent, TrapPolicy } from '../backend.js';
import { leftoversRemoved } from '../leftovers.js';
import { type SadbAlgorithms, sadbAlgorithms } from './algorithms.js';
import { PfkeyChannel } from './channel.js';
import { PfkeyParseError, type SadbMessage } from './codec.js';
import {
  IPPROTO_ESP,
  IPSEC_LEVEL_UNIQUE,
  IPSEC_MANUAL_REQID_MAX,
  IPSEC_MODE_TRANSPORT,
  IPSEC_MODE_TUNNEL,
  LINUX_IP_IPSEC_POLICY,
  LINUX_IPV6_IPSEC_POLICY,
  LINUX_SADB_X_NAT_T_NEW_MAPPING,
  LINUX_UDP_ENCAP,
  OPENBSD_IP_LEVELS,
  OPENBSD_IPSEC_LEVEL_BYPASS,
  OPENBSD_IPV6_LEVELS,
  OPENBSD_PF_TAG_NAME_SIZE,
  type PfkeyFlavour,
  SADB_ACQUIRE,
  SADB_EXPIRE,
  SADB_X_FLOW_TYPE_REQUIRE,
  SADB_X_FLOW_TYPE_USE,
  SATYPE,
  SOL_IP,
  SOL_IPV6,
  SOL_UDP,
  UDP_ENCAP_ESPINUDP,
} from './constants.js';
import { PfkeyError, PfkeyUnsupportedError } from './errors.js';
import {
  type SadbRequest,
  buildAddFlow,
  buildAddSa,
  buildAskPolicy,
  buildDelFlow,
  buildDump,
  buildGetSpi,
  buildRegister,
  buildSaQuery,
  buildSpdAdd,
  buildSpdDelete,
  buildSpdDelete2,
  buildSpdDump,
  bypassPolicyOption,
  type LinuxPolicySpec,
  type OpenbsdFlowSpec,
  readAcquire,
  readCounters,
  readDumpedSa,
  readExpire,
  readFlow,
  readNewMapping,
  readPolicy,
  readSpi,
  readSupported,
  type SaMode,
  type SaSpec,
} from './messages.js';
import { formatPair, type SelectorPair, selectorPairs } from './selectors.js';

/**
 * The PF_KEY v2 kernel backend, for Linux af_key and OpenBSD.
 *
 * What it installs for a child SA: the inbound SA (SADB_UPDATE of the larval SA that allocateSpi's
 * SADB_GETSPI made, SADB_ADD otherwise) and the outbound SA (SADB_ADD), then the policies that
 * lead traffic to them unless the child's policy group already has them (a rekey, or a trap):
 *  - Linux: SADB_X_SPDADD out, in (and fwd in tunnel mode) per selector pair, each with one
 *    sadb_x_ipsecrequest of level unique and the group's reqid, which the SAs carry in sadb_x_sa2;
 *  - OpenBSD: SADB_X_ADDFLOW out and in per selector pair, of flow type require (or use).
 * A policy group is a connection's selectors, mode and endpoints; it goes when its last child SA
 * goes and no trap holds it.
 *
 * A quick mode responder installs the inbound SA alone first (installInbound), before it sends
 * message 2: in the group that install will use, so with the reqid of its policies, so that ESP
 * the initiator sends before we have read message 3 passes the kernel's policy check where the
 * policies exist (a rekey, a trap). The child counts in its group from then on; install of it
 * adds the outbound SA and the policies only.
 *
 * What is ours: on Linux, every SA and policy carries a reqid from our range (default
 * 0x3c00-0x3fff: policies only keep reqids up to IPSEC_MANUAL_REQID_MAX, af_key.c
 * parse_ipsecrequest); on OpenBSD every SA carries our SADB_X_EXT_TAG (flows cannot be tagged,
 * so they are remembered). close() removes what this instance installed; open() first removes
 * what an earlier run left (SAs and Linux policies with our mark).
 *
 * Kernel messages: ACQUIRE (Linux: mapped by the policy index the kernel gave our SPDADD;
 * OpenBSD: SADB_X_ASKPOLICY for the flow, then mapped by flow) becomes an `acquire` event;
 * EXPIRE a soft or hard `expire`; Linux SADB_X_NAT_T_NEW_MAPPING a `mapping`. Failures in event
 * handling are logged, rate-limited per cause, never thrown.
 */

/** The PF_KEY flavour of this operating system, if it has one the backend speaks. */
export function pfkeyFlavourOf(platform: string = process.platform): PfkeyFlavour | undefined {
  if (platform === 'linux') return 'linux';
  if (platform === 'openbsd') return 'openbsd';
  return undefined;
}

export interface PfkeyBackendOptions {
  readonly flavour: PfkeyFlavour;
  readonly native: Native;
  readonly host: KernelBackendHost;
  /** sadb_msg_pid of our requests (default process.pid). */
  readonly pid?: number;
  /** Time allowed for an answer (default 2000 ms). */
  readonly timeoutMs?: number;
  /** Time allowed for the first SADB_REGISTER answer (Linux loads every algorithm: ~10 s in a VM). */
  readonly registerTimeoutMs?: number;
  /** Inbound SPIs are reserved in this range (default 0xc0000000-0xcfffffff). */
  readonly spiRange?: { readonly min: number; readonly max: number };
  /** Linux: the reqids that mark our SAs and policies (default 0x3c00-0x3fff, at most 0x3fff). */
  readonly reqids?: { readonly first: number; readonly last: number };
  /** sadb_sa_replay in packets (default 32 on Linux, whose af_key caps it at 32; 64 on OpenBSD, at most 255). */
  readonly replayWindow?: number;
  /** OpenBSD: the SADB_X_EXT_TAG that marks our SAs (a pf tag; default 'ike-node'; false: none). */
  readonly tag?: string | false;
  /** OpenBSD: the flow type of installed and trap flows (default 'require'). */
  readonly flowType?: 'require' | 'use';
  /** Remove SAs and policies with our mark left by an earlier run, at open (default true). */
  readonly cleanup?: boolean;
  /** Linux: the base of our policies' priorities; more specific selectors get lower values. */
  readonly policyPriority?: number;
  readonly littleEndian?: boolean;
}

interface InstalledLinuxPolicy {
  readonly spec: LinuxPolicySpec;
  id?: number;
}

interface PolicyGroup {
  readonly key: string;
  readonly connection: string;
  readonly mode: SaMode;
  readonly local: string;
  readonly remote: string;
  /** Linux: the reqid of its policies and SAs; 0 on OpenBSD. */
  readonly reqid: number;
  readonly pairs: readonly SelectorPair[];
  /** Child SAs that use it, installed or with their inbound SA alone (installInbound). */
  readonly children: Set<number>;
  trapped: boolean;
  readonly linuxPolicies: InstalledLinuxPolicy[];
  readonly openbsdFlows: OpenbsdFlowSpec[];
}

interface InstalledChild {
  readonly child: ChildSa;
  readonly group: PolicyGroup;
}

interface Larval {
  readonly src: string;
  readonly dst: string;
  readonly at: number;
}

const DEFAULT_SPI_RANGE = { min: 0xc0000000, max: 0xcfffffff };
const DEFAULT_REQIDS = { first: 0x3c00, last: IPSEC_MANUAL_REQID_MAX };
/** Larval SAs expire in the kernel (Linux xfrm acq_expires, 30 s): forget ours after this. */
const LARVAL_MEMORY_MS = 10 * 60 * 1000;
/** A cause is logged at most once per this window; the repeats are counted. */
const PROBLEM_WINDOW_MS = 60 * 1000;

/** errno values that say "no such SA or policy", the same on Linux and OpenBSD. */
const ENOENT = 2;
const ESRCH = 3;

function isMissing(error: unknown): boolean {
  return error instanceof PfkeyError && (error.errno === ESRCH || error.errno === ENOENT);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What makes two failures "the same cause" for rate-limited logging (never a sequence number). */
function causeOf(error: unknown): string {
  if (error instanceof PfkeyError) return error.code;
  if (error instanceof PfkeyUnsupportedError) return error.message;
  return error instanceof Error ? error.name : 'unknown';
}

function spiWhat(local: string, remote: string): string {
  return `reserve an inbound SPI from ${remote} to ${local}`;
}

export class PfkeyBackend implements KernelBackend {
  readonly name = 'pfkey';
  readonly flavour: PfkeyFlavour;
  readonly #native: Native;
  readonly #host: KernelBackendHost;
  readonly #channel: PfkeyChannel;
  readonly #options: PfkeyBackendOptions;
  readonly #spiRange: { readonly min: number; readonly max: number };
  readonly #reqids: { readonly first: number; readonly last: number };
  readonly #replay: number;
  readonly #tag: string | undefined;
  readonly #children = new Map<number, InstalledChild>();
  /** Inbound SAs installed ahead of their child SA (installInbound), by child id. */
  readonly #pending = new Map<number, InstalledChild>();
  readonly #groups = new Map<string, PolicyGroup>();
  readonly #policyIds = new Map<number, PolicyGroup>();
  readonly #larval = new Map<number, Larval>();
  readonly #expired = new Set<string>();
  readonly #problems = new RateLimitedLog(PROBLEM_WINDOW_MS, Date.now, 256);
  #supported: { auth: number[]; encrypt: number[] } | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** Opens a PF_KEY socket, registers for ESP, and removes what an earlier run left. */
  static async open(options: PfkeyBackendOptions): Promise<PfkeyBackend> {
    const fd = options.native.openPfkey();
    const backend = new PfkeyBackend(options, fd);
    try {
      await backend.#start();
    } catch (error) {
      backend.#channel.close();
      throw error;
    }
    return backend;
  }

  private constructor(options: PfkeyBackendOptions, fd: number) {
    this.flavour = options.flavour;
    this.#options = options;
    this.#native = options.native;
    this.#host = options.host;
    this.#spiRange = options.spiRange ?? DEFAULT_SPI_RANGE;
    this.#reqids = options.reqids ?? DEFAULT_REQIDS;
    // sadb_sa_replay is a u8 of packets; Linux af_key.c further caps it at its 32-bit bitmap.
    const replayCap = options.flavour === 'linux' ? 32 : 255;
    this.#replay = Math.min(options.replayWindow ?? (options.flavour === 'linux' ? 32 : 64), replayCap);
    const tag = options.tag === undefined ? 'ike-node' : options.tag || undefined;
    this.#tag = options.flavour === 'openbsd' ? tag : undefined;
    if (
      this.#spiRange.min < 0x100 ||
      this.#spiRange.max > 0xffffffff ||
      this.#spiRange.min > this.#spiRange.max
    )
      throw new RangeError('PF_KEY spiRange must lie within 0x100-0xffffffff');
    if (
      this.#reqids.first < 1 ||
      this.#reqids.last > IPSEC_MANUAL_REQID_MAX ||
      this.#reqids.first > this.#reqids.last
    )
      throw new RangeError(
        `PF_KEY reqids must lie within 1-${IPSEC_MANUAL_REQID_MAX} (ipsec.h IPSEC_MANUAL_REQID_MAX)`,
      );
    if (this.#tag !== undefined && (this.#tag.length === 0 || this.#tag.length >= OPENBSD_PF_TAG_NAME_SIZE))
      throw new RangeError(`an OpenBSD SA tag has 1-${OPENBSD_PF_TAG_NAME_SIZE - 1} characters`);
    this.#channel = new PfkeyChannel(options.native, fd, {
      flavour: options.flavour,
      ...(options.pid !== undefined && { pid: options.pid }),
      ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
      ...(options.littleEndian !== undefined && { littleEndian: options.littleEndian }),
      onMessage: (received) => this.#onMessage(received),
      onError: (error) => this.#problem(`channel:${error.name}`, 'warn', `PF_KEY socket: ${error.message}`),
    });
  }

  async #start(): Promise<void> {
    this.#channel.start();
    const answer = await this.#channel.request(
      buildRegister(this.flavour),
      'register for ESP ACQUIREs',
      this.#options.registerTimeoutMs ?? 30_000,
    );
    this.#supported = readSupported(answer);
    this.#host.log(
      'debug',
      `PF_KEY (${this.flavour}): registered; encryption ids ${this.#supported.encrypt.join(',') || 'none'}, ` +
        `integrity ids ${this.#supported.auth.join(',') || 'none'}`,
    );
    if (this.#options.cleanup ?? true) await this.#cleanup();
  }

  /** Runs kernel work one operation at a time, so that groups and rollbacks never interleave. */
  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #problem(cause: string, level: 'error' | 'warn' | 'info' | 'debug', text: string): void {
    this.#problems.log(cause, (suppressed) => {
      try {
        this.#host.log(level, `${text}${heldBack(suppressed)}`);
      } catch {
        // A failing logger must not take the backend down.
      }
    });
  }

  #emit(event: KernelEvent): void {
    try {
      this.#host.onEvent(event);
    } catch (error) {
      this.#problem(
        `event:${event.type}`,
        'error',
        `PF_KEY: the ${event.type} event handler failed: ${message(error)}`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // SPIs.

  allocateSpi(local: string, remote: string): number {
    let answer: SadbMessage;
    try {
      answer = this.#channel.requestSync(this.#getSpi(local, remote), spiWhat(local, remote));
    } catch (error) {
      this.#spiFailed(error);
    }
    return this.#larvalSpi(answer, local, remote);
  }

  async reserveSpi(local: string, remote: string): Promise<number> {
    const answer = await this.#channel
      .request(this.#getSpi(local, remote), spiWhat(local, remote))
      .catch((error: unknown) => this.#spiFailed(error));
    return this.#larvalSpi(answer, local, remote);
  }

  #getSpi(local: string, remote: string): SadbRequest {
    return buildGetSpi(this.flavour, { src: remote, dst: local, ...this.#spiRange });
  }

  /** The SPI of a GETSPI answer, remembered so that the install completes the larval SA. */
  #larvalSpi(answer: SadbMessage, local: string, remote: string): number {
    this.#forgetOldLarval();
    const spi = readSpi(answer);
    this.#larval.set(spi, { src: remote, dst: local, at: Date.now() });
    return spi;
  }

  #spiFailed(error: unknown): never {
    this.#problem(
      `getspi:${error instanceof PfkeyError ? error.code : 'error'}`,
      'error',
      `PF_KEY: ${message(error)}`,
    );
    throw error;
  }

  #forgetOldLarval(): void {
    const now = Date.now();
    for (const [spi, larval] of this.#larval)
      if (now - larval.at > LARVAL_MEMORY_MS) this.#larval.delete(spi);
  }

  // -------------------------------------------------------------------------------------------
  // Child SAs.

  #algorithms(child: ChildSa): SadbAlgorithms {
    const ids = sadbAlgorithms(child.suite, this.flavour);
    const supported = this.#supported;
    if (supported && supported.encrypt.length > 0 && !supported.encrypt.includes(ids.encrypt))
      throw new PfkeyUnsupportedError(
        `${child.suite.encr.name} (sadb encryption id ${ids.encrypt}) is not in the kernel's SADB_REGISTER answer`,
      );
    if (supported && ids.auth !== 0 && supported.auth.length > 0 && !supported.auth.includes(ids.auth))
      throw new PfkeyUnsupportedError(
        `${child.suite.integ?.name} (sadb auth id ${ids.auth}) is not in the kernel's SADB_REGISTER answer`,
      );
    return ids;
  }

  #lifetime(child: ChildSa): SaSpec['lifetime'] {
    const span = child.expiresAt - child.installedAt;
    const hardSeconds = span > 0 ? span : child.lifetime.seconds;
    const rekey = child.rekeyAt - child.installedAt;
    const softSeconds = rekey > 0 && rekey < hardSeconds ? rekey : Math.floor(hardSeconds * 0.9);
    const hardBytes = child.lifetime.kilobytes ? BigInt(child.lifetime.kilobytes) * 1024n : 0n;
    if (hardSeconds <= 0 && hardBytes === 0n) return undefined;
    return {
      hard: { seconds: BigInt(Math.max(0, Math.floor(hardSeconds))), bytes: hardBytes },
      soft: { seconds: BigInt(Math.max(0, Math.floor(softSeconds))), bytes: (hardBytes * 9n) / 10n },
    };
  }

  #saSpec(child: ChildSa, direction: 'in' | 'out', ids: SadbAlgorithms, reqid: number): SaSpec {
    const inbound = direction === 'in';
    const from = inbound ? child.remote : child.local;
    const to = inbound ? child.local : child.remote;
    const lifetime = this.#lifetime(child);
    const authKey = child.suite.integ ? (inbound ? child.keys.integIn : child.keys.integOut) : undefined;
    return {
      direction,
      spi: inbound ? child.spiIn : child.spiOut,
      src: from.address,
      dst: to.address,
      auth: ids.auth,
      encrypt: ids.encrypt,
      ...(authKey && { authKey }),
      encryptKey: inbound ? child.keys.encrIn : child.keys.encrOut,
      replay: this.#replay,
      mode: child.mode,
      ...(this.flavour === 'linux' && { reqid }),
      ...(lifetime && { lifetime }),
      ...(child.encapsulation && { udpEncap: { sport: from.port, dport: to.port } }),
      ...(this.#tag !== undefined && { tag: this.#tag }),
    };
  }

  install(child: ChildSa): Promise<void> {
    return this.#serial(() => this.#install(child));
  }

  installInbound(child: ChildSa): Promise<void> {
    return this.#serial(() => this.#installInbound(child));
  }

  /** Checks a child SA before anything is sent, and finds or makes its policy group. */
  #prepare(child: ChildSa, name: string): { ids: SadbAlgorithms; group: PolicyGroup } {
    this.#assertOpen(name);
    if (this.#children.has(child.id)) throw new Error(`${name}: child SA ${child.id} is installed already`);
    try {
      const ids = this.#algorithms(child);
      const pairs = selectorPairs(child.localTs, child.remoteTs);
      if (pairs.length === 0) throw new PfkeyUnsupportedError('no pair of local and remote selectors meets');
      const { local, remote } = child;
      const { group } = this.#group(child.connection, child.mode, local.address, remote.address, pairs);
      return { ids, group };
    } catch (error) {
      this.#problem(`unsupported:${causeOf(error)}`, 'error', `PF_KEY: ${name}: ${message(error)}`);
      throw new Error(`${name}: ${message(error)}`, { cause: error });
    }
  }

  /** Logs a failed step, rate-limited per cause, and makes the error the caller rejects with. */
  #failed(name: string, step: string, error: unknown): Error {
    this.#problem(
      `install:${step}:${causeOf(error)}`,
      'error',
      `PF_KEY: ${name}: ${step}: ${message(error)}`,
    );
    return new Error(`${name}: ${step}: ${message(error)}`, { cause: error });
  }

  async #install(child: ChildSa): Promise<void> {
    const name = `install child SA ${child.id} of ${child.connection} (SPIs in ${formatSpi(child.spiIn)}, out ${formatSpi(child.spiOut)})`;
    const { ids, group } = this.#prepare(child, name);
    const ahead = await this.#takePending(child, group);
    const done: (() => Promise<void>)[] = [];
    let step = 'inbound SA';
    try {
      if (!ahead) await this.#addInbound(child, ids, group.reqid);
      done.push(() => this.#deleteSa(child.spiIn, child.remote.address, child.local.address));
      step = 'outbound SA';
      await this.#channel.request(
        buildAddSa(this.flavour, 'add', this.#saSpec(child, 'out', ids, group.reqid)),
        `add the outbound SA ${formatSpi(child.spiOut)} of child SA ${child.id}`,
      );
      done.push(() => this.#deleteSa(child.spiOut, child.local.address, child.remote.address));
      step = 'policies';
      if (!this.#hasPolicies(group)) await this.#addPolicies(group);
    } catch (error) {
      for (const undo of done.reverse()) await undo().catch(() => undefined);
      await this.#leaveGroup(group, child.id).catch(() => undefined);
      throw this.#failed(name, step, error);
    }
    group.children.add(child.id);
    this.#children.set(child.id, { child, group });
    this.#expired.delete(`${child.id}:soft`);
    this.#expired.delete(`${child.id}:hard`);
  }

  /** The inbound SA alone, in the group (and so with the reqid) that install will use. */
  async #installInbound(child: ChildSa): Promise<void> {
    const name = `install the inbound SA ${formatSpi(child.spiIn)} of child SA ${child.id} of ${child.connection}`;
    if (this.#pending.has(child.id)) throw new Error(`${name}: child SA ${child.id} is installed already`);
    const { ids, group } = this.#prepare(child, name);
    try {
      await this.#addInbound(child, ids, group.reqid);
    } catch (error) {
      await this.#leaveGroup(group, child.id).catch(() => undefined);
      throw this.#failed(name, 'inbound SA', error);
    }
    // Membership keeps the group, and its reqid, until install takes it over or remove ends it.
    group.children.add(child.id);
    this.#pending.set(child.id, { child, group });
  }

  /**
   * True if installInbound put in the inbound SA this install wants (same group, SPI and ports):
   * its group membership carries over. Any other is deleted first, and leaves its group unless
   * that is this install's group, which the child stays in.
   */
  async #takePending(child: ChildSa, group: PolicyGroup): Promise<boolean> {
    const pending = this.#pending.get(child.id);
    if (!pending) return false;
    this.#pending.delete(child.id);
    const ahead = pending.child;
    if (
      pending.group === group &&
      ahead.spiIn === child.spiIn &&
      ahead.encapsulation === child.encapsulation &&
      ahead.local.port === child.local.port &&
      ahead.remote.port === child.remote.port
    )
      return true;
    // Failures are only logged: the full install that follows matters more.
    const report = (error: unknown) =>
      this.#problem(
        `install:pending:${causeOf(error)}`,
        'warn',
        `PF_KEY: the inbound SA ${formatSpi(ahead.spiIn)} installed ahead for child SA ${child.id}: ${message(error)}`,
      );
    await this.#deleteSa(ahead.spiIn, ahead.remote.address, ahead.local.address).catch(report);
    if (pending.group !== group) await this.#leaveGroup(pending.group, child.id).catch(report);
    return false;
  }

  async #addInbound(child: ChildSa, ids: SadbAlgorithms, reqid: number): Promise<void> {
    const spec = this.#saSpec(child, 'in', ids, reqid);
    const larval = this.#larval.get(child.spiIn);
    const what = `the inbound SA ${formatSpi(child.spiIn)} of child SA ${child.id}`;
    if (larval && larval.src === spec.src && larval.dst === spec.dst) {
      this.#larval.delete(child.spiIn);
      try {
        await this.#channel.request(buildAddSa(this.flavour, 'update', spec), `update ${what}`);
        return;
      } catch (error) {
        // The larval SA expired meanwhile (Linux acq_expires, 30 s): add it instead, as iked does.
        if (!isMissing(error)) throw error;
      }
    }
    await this.#channel.request(buildAddSa(this.flavour, 'add', spec), `add ${what}`);
  }

  async #deleteSa(spi: number, src: string, dst: string): Promise<void> {
    try {
      await this.#channel.request(
        buildSaQuery(this.flavour, 'delete', { spi, src, dst }),
        `delete the SA ${formatSpi(spi)} ${src} -> ${dst}`,
      );
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }

  remove(child: ChildSa): Promise<void> {
    return this.#serial(() => this.#remove(child));
  }

  async #remove(child: ChildSa): Promise<void> {
    const name = `remove child SA ${child.id} of ${child.connection}`;
    const installed = this.#children.get(child.id) ?? this.#pending.get(child.id);
    if (!installed) return;
    // A child SA still being negotiated (installInbound) has its inbound SA only.
    const whole = this.#children.delete(child.id);
    this.#pending.delete(child.id);
    this.#expired.delete(`${child.id}:soft`);
    this.#expired.delete(`${child.id}:hard`);
    const { child: sa, group } = installed;
    const failures: string[] = [];
    const causes: string[] = [];
    const attempt = async (what: string, work: () => Promise<void>) => {
      try {
        await work();
      } catch (error) {
        failures.push(`${what}: ${message(error)}`);
        causes.push(`${what}:${causeOf(error)}`);
      }
    };
    await attempt('inbound SA', () => this.#deleteSa(sa.spiIn, sa.remote.address, sa.local.address));
    if (whole)
      await attempt('outbound SA', () => this.#deleteSa(sa.spiOut, sa.local.address, sa.remote.address));
    await attempt('policies', () => this.#leaveGroup(group, child.id));
    if (failures.length > 0) {
      const text = `${name}: ${failures.join('; ')}`;
      this.#problem(`remove:${causes.join(';')}`, 'error', `PF_KEY: ${text}`);
      throw new Error(text);
    }
  }

  installed(): readonly ChildSa[] {
    return [...this.#children.values()].map((entry) => entry.child);
  }

  // -------------------------------------------------------------------------------------------
  // Policy groups.

  #group(
    connection: string,
    mode: SaMode,
    local: string,
    remote: string,
    pairs: SelectorPair[],
  ): { group: PolicyGroup; created: boolean } {
    const key = [connection, mode, local, remote, ...pairs.map(formatPair).sort()].join('|');
    const existing = this.#groups.get(key);
    if (existing) return { group: existing, created: false };
    const group: PolicyGroup = {
      key,
      connection,
      mode,
      local,
      remote,
      reqid: this.flavour === 'linux' ? this.#allocateReqid() : 0,
      pairs,
      children: new Set(),
      trapped: false,
      linuxPolicies: [],
      openbsdFlows: [],
    };
    this.#groups.set(key, group);
    return { group, created: true };
  }

  #allocateReqid(): number {
    const used = new Set([...this.#groups.values()].map((group) => group.reqid));
    for (let reqid = this.#reqids.first; reqid <= this.#reqids.last; reqid++)
      if (!used.has(reqid)) return reqid;
    throw new PfkeyUnsupportedError(
      `all ${this.#reqids.last - this.#reqids.first + 1} reqids of the range ${this.#reqids.first}-${this.#reqids.last} are in use`,
    );
  }

  /** Takes a child SA out of its group: the group and its policies go with its last user. */
  async #leaveGroup(group: PolicyGroup, id: number): Promise<void> {
    group.children.delete(id);
    if (group.children.size > 0 || group.trapped) return;
    try {
      await this.#removePolicies(group);
    } finally {
      this.#dropGroup(group);
    }
  }

  #dropGroup(group: PolicyGroup): void {
    this.#groups.delete(group.key);
    for (const policy of group.linuxPolicies) if (policy.id !== undefined) this.#policyIds.delete(policy.id);
  }

  #hasPolicies(group: PolicyGroup): boolean {
    return group.linuxPolicies.length > 0 || group.openbsdFlows.length > 0;
  }

  /** The policies (Linux) of a group: out, in, and fwd in tunnel mode, per selector pair. */
  linuxPolicies(
    group: Pick<PolicyGroup, 'mode' | 'local' | 'remote' | 'reqid' | 'pairs'>,
  ): LinuxPolicySpec[] {
    const base = this.#options.policyPriority ?? 2000;
    const policies: LinuxPolicySpec[] = [];
    for (const pair of group.pairs) {
      const bits = pair.family === 4 ? 32 : 128;
      const priority =
        base +
        (2 * bits - pair.local.prefix - pair.remote.prefix) * 4 +
        (pair.proto ? 0 : 2) +
        (pair.localPort || pair.remotePort ? 0 : 1);
      const local = { address: pair.local.address, prefixlen: pair.local.prefix, port: pair.localPort };
      const remote = { address: pair.remote.address, prefixlen: pair.remote.prefix, port: pair.remotePort };
      const request = (src: string, dst: string) => ({
        proto: IPPROTO_ESP,
        mode: group.mode === 'tunnel' ? IPSEC_MODE_TUNNEL : IPSEC_MODE_TRANSPORT,
        level: IPSEC_LEVEL_UNIQUE,
        reqid: group.reqid,
        ...(group.mode === 'tunnel' && { tunnel: { src, dst } }),
      });
      policies.push({
        src: local,
        dst: remote,
        proto: pair.proto,
        dir: 'out',
        priority,
        requests: [request(group.local, group.remote)],
      });
      policies.push({
        src: remote,
        dst: local,
        proto: pair.proto,
        dir: 'in',
        priority,
        requests: [request(group.remote, group.local)],
      });
      if (group.mode === 'tunnel') {
        policies.push({
          src: remote,
          dst: local,
          proto: pair.proto,
          dir: 'fwd',
          priority,
          requests: [request(group.remote, group.local)],
        });
      }
    }
    return policies;
  }

  /** The flows (OpenBSD) of a group: out and in per selector pair. */
  openbsdFlows(group: Pick<PolicyGroup, 'local' | 'remote' | 'pairs'>): OpenbsdFlowSpec[] {
    const flowType = this.#options.flowType === 'use' ? SADB_X_FLOW_TYPE_USE : SADB_X_FLOW_TYPE_REQUIRE;
    const flows: OpenbsdFlowSpec[] = [];
    for (const pair of group.pairs) {
      const local = { address: pair.local.address, mask: pair.local.mask, port: pair.localPort };
      const remote = { address: pair.remote.address, mask: pair.remote.mask, port: pair.remotePort };
      const common = { proto: pair.proto, flowType, local: group.local, peer: group.remote };
      flows.push({ ...common, src: local, dst: remote, direction: 'out' });
      flows.push({ ...common, src: remote, dst: local, direction: 'in' });
    }
    return flows;
  }

  async #addPolicies(group: PolicyGroup): Promise<void> {
    try {
      if (this.flavour === 'linux') {
        for (const spec of this.linuxPolicies(group)) {
          const answer = await this.#channel.request(
            buildSpdAdd(spec),
            `add the ${spec.dir} policy ${spec.src.address}/${spec.src.prefixlen} -> ${spec.dst.address}/${spec.dst.prefixlen} of ${group.connection}`,
          );
          const entry: InstalledLinuxPolicy = { spec };
          try {
            entry.id = readPolicy(answer).id;
            this.#policyIds.set(entry.id, group);
          } catch {
            // An answer without the policy: ACQUIREs will be matched by address instead.
          }
          group.linuxPolicies.push(entry);
        }
      } else {
        for (const flow of this.openbsdFlows(group)) {
          await this.#channel.request(
            buildAddFlow(flow),
            `add the ${flow.direction} flow ${flow.src.address}/${flow.src.mask} -> ${flow.dst.address}/${flow.dst.mask} of ${group.connection}`,
          );
          group.openbsdFlows.push(flow);
        }
      }
    } catch (error) {
      await this.#removePolicies(group).catch(() => undefined);
      throw error;
    }
  }

  /** Removes every policy the group added; tolerates those already gone; throws the first failure. */
  async #removePolicies(group: PolicyGroup): Promise<void> {
    let first: unknown;
    while (group.linuxPolicies.length > 0) {
      const policy = group.linuxPolicies.pop()!;
      if (policy.id !== undefined) this.#policyIds.delete(policy.id);
      try {
        await this.#channel.request(
          buildSpdDelete(policy.spec),
          `delete the ${policy.spec.dir} policy of ${group.connection}`,
        );
      } catch (error) {
        if (!isMissing(error)) first ??= error;
      }
    }
    while (group.openbsdFlows.length > 0) {
      const flow = group.openbsdFlows.pop()!;
      try {
        await this.#channel.request(
          buildDelFlow(flow),
          `delete the ${flow.direction} flow of ${group.connection}`,
        );
      } catch (error) {
        if (!isMissing(error)) first ??= error;
      }
    }
    if (first !== undefined) throw first;
  }

  // -------------------------------------------------------------------------------------------
  // Traps.

  trap(trap: TrapPolicy): Promise<void> {
    return this.#serial(async () => {
      const name = `trap ${trap.connection}`;
      this.#assertOpen(name);
      let group: PolicyGroup;
      let created: boolean;
      try {
        const pairs = selectorPairs(trap.localTs, trap.remoteTs);
        if (pairs.length === 0)
          throw new PfkeyUnsupportedError('no pair of local and remote selectors meets');
        ({ group, created } = this.#group(trap.connection, trap.mode, trap.local, trap.remote, pairs));
      } catch (error) {
        this.#problem(`trap:${causeOf(error)}`, 'error', `PF_KEY: ${name}: ${message(error)}`);
        throw new Error(`${name}: ${message(error)}`, { cause: error });
      }
      if (group.trapped) return;
      try {
        if (!this.#hasPolicies(group)) await this.#addPolicies(group);
      } catch (error) {
        if (created) this.#dropGroup(group);
        this.#problem(`trap:${causeOf(error)}`, 'error', `PF_KEY: ${name}: ${message(error)}`);
        throw new Error(`${name}: ${message(error)}`, { cause: error });
      }
      group.trapped = true;
    });
  }

  untrap(connection: string): Promise<void> {
    return this.#serial(async () => {
      const failures: string[] = [];
      const causes: string[] = [];
      for (const group of [...this.#groups.values()]) {
        if (group.connection !== connection || !group.trapped) continue;
        group.trapped = false;
        if (group.children.size > 0) continue;
        try {
          await this.#removePolicies(group);
        } catch (error) {
          failures.push(message(error));
          causes.push(causeOf(error));
        }
        this.#dropGroup(group);
      }
      if (failures.length > 0) {
        const text = `untrap ${connection}: ${failures.join('; ')}`;
        this.#problem(`untrap:${causes.join(';')}`, 'error', `PF_KEY: ${text}`);
        throw new Error(text);
      }
    });
  }

  // -------------------------------------------------------------------------------------------
  // Kernel messages.

  #onMessage(received: SadbMessage): void {
    try {
      if (received.satype !== SATYPE[this.flavour].esp) return;
      if (received.type === SADB_ACQUIRE) this.#onAcquire(received);
      else if (received.type === SADB_EXPIRE) this.#onExpire(received);
      else if (this.flavour === 'linux' && received.type === LINUX_SADB_X_NAT_T_NEW_MAPPING)
        this.#onMapping(received);
    } catch (error) {
      this.#problem(
        `message:${received.type}:${causeOf(error)}:${error instanceof PfkeyParseError ? error.reason : ''}`,
        'warn',
        `PF_KEY: kernel message type ${received.type}: ${message(error)}`,
      );
    }
  }

  #onAcquire(received: SadbMessage): void {
    const acquire = readAcquire(received);
    if (this.flavour === 'linux') {
      const group = acquire.policyId === undefined ? undefined : this.#policyIds.get(acquire.policyId);
      const found = group ?? this.#groupByEndpoints(acquire.dst, acquire.src);
      if (found) this.#emit({ type: 'acquire', connection: found.connection });
      else
        this.#problem(
          `acquire:unknown:${acquire.policyId}`,
          'debug',
          `PF_KEY: ACQUIRE for ${acquire.src ?? '?'} -> ${acquire.dst} (policy ${acquire.policyId ?? '?'}) is not ours`,
        );
      return;
    }
    // OpenBSD's ACQUIRE names only the peer: ask for the flow that triggered it (as iked does).
    this.#channel
      .request(buildAskPolicy(acquire.seq), `ask the flow of ACQUIRE seq ${acquire.seq}`)
      .then(
        (answer) => {
          const flow = readFlow(answer);
          const group =
            [...this.#groups.values()].find((candidate) =>
              candidate.openbsdFlows.some(
                (mine) =>
                  mine.src.address === flow.srcFlow &&
                  mine.src.mask === flow.srcMask &&
                  mine.dst.address === flow.dstFlow &&
                  mine.dst.mask === flow.dstMask &&
                  mine.proto === flow.proto,
              ),
            ) ?? this.#groupByEndpoints(acquire.dst, acquire.src);
          if (group) this.#emit({ type: 'acquire', connection: group.connection });
          else
            this.#problem(
              `acquire:unknown:${flow.srcFlow}:${flow.dstFlow}`,
              'debug',
              `PF_KEY: ACQUIRE for flow ${flow.srcFlow}/${flow.srcMask} -> ${flow.dstFlow}/${flow.dstMask} is not ours`,
            );
        },
        (error: unknown) => {
          const group = this.#groupByEndpoints(acquire.dst, acquire.src);
          if (group) this.#emit({ type: 'acquire', connection: group.connection });
          else
            this.#problem(
              'acquire:askpolicy',
              'warn',
              `PF_KEY: ACQUIRE seq ${acquire.seq}: ${message(error)}`,
            );
        },
      )
      .catch((error: unknown) =>
        this.#problem('acquire:handler', 'error', `PF_KEY: ACQUIRE: ${message(error)}`),
      );
  }

  /** The one connection whose trapped group goes to `remote` (and from `local`, if known). */
  #groupByEndpoints(remote: string, local: string | undefined): PolicyGroup | undefined {
    const candidates = [...this.#groups.values()].filter(
      (group) => group.remote === remote && (local === undefined || group.local === local),
    );
    const connections = new Set(candidates.map((group) => group.connection));
    if (connections.size !== 1) return undefined;
    return candidates.find((group) => group.trapped) ?? candidates[0];
  }

  #onExpire(received: SadbMessage): void {
    const expire = readExpire(received);
    for (const { child } of this.#children.values()) {
      const inbound = expire.spi === child.spiIn && expire.dst === child.local.address;
      const outbound = expire.spi === child.spiOut && expire.dst === child.remote.address;
      if (!inbound && !outbound) continue;
      const key = `${child.id}:${expire.hard ? 'hard' : 'soft'}`;
      if (this.#expired.has(key)) return;
      this.#expired.add(key);
      this.#emit({ type: 'expire', child: child.id, hard: expire.hard });
      return;
    }
  }

  #onMapping(received: SadbMessage): void {
    const mapping = readNewMapping(received);
    for (const { child } of this.#children.values()) {
      if (mapping.spi !== child.spiIn) continue;
      this.#emit({
        type: 'mapping',
        child: child.id,
        remote: { address: mapping.newAddress, port: mapping.newPort },
      });
      return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Counters and sockets.

  /**
   * Bytes and packets of both SAs (SADB_GET). Linux: the current lifetime's bytes, and af_key.c
   * puts the packet count in its allocations field; OpenBSD: SADB_X_EXT_COUNTER.
   */
  async counters(child: ChildSa): Promise<TrafficCounters | undefined> {
    if (!this.#children.has(child.id) || this.#closed) return undefined;
    try {
      const [inbound, outbound] = await Promise.all([
        this.#channel.request(
          buildSaQuery(this.flavour, 'get', {
            spi: child.spiIn,
            src: child.remote.address,
            dst: child.local.address,
          }),
          `read the inbound SA ${formatSpi(child.spiIn)}`,
        ),
        this.#channel.request(
          buildSaQuery(this.flavour, 'get', {
            spi: child.spiOut,
            src: child.local.address,
            dst: child.remote.address,
          }),
          `read the outbound SA ${formatSpi(child.spiOut)}`,
        ),
      ]);
      const a = readCounters(inbound, this.flavour, 'in');
      const b = readCounters(outbound, this.flavour, 'out');
      return {
        bytesIn: Number(a.bytes),
        packetsIn: Number(a.packets ?? 0n),
        bytesOut: Number(b.bytes),
        packetsOut: Number(b.packets ?? 0n),
      };
    } catch (error) {
      this.#problem(
        `counters:${causeOf(error)}`,
        isMissing(error) ? 'debug' : 'warn',
        `PF_KEY: counters of child SA ${child.id}: ${message(error)}`,
      );
      return undefined;
    }
  }

  /**
   * Linux: a per-socket policy of type IPSEC_POLICY_BYPASS for in and out (IP_IPSEC_POLICY /
   * IPV6_IPSEC_POLICY), so that IKE never goes through our own policies; on the NAT-T port,
   * UDP_ENCAP = UDP_ENCAP_ESPINUDP so that the kernel takes ESP in UDP (RFC 3948) off it.
   * OpenBSD: IP_AUTH_LEVEL, IP_ESP_TRANS_LEVEL, IP_ESP_NETWORK_LEVEL and IP_IPCOMP_LEVEL (IPv6:
   * IPV6_*_LEVEL) set to IPSEC_LEVEL_BYPASS, as iked does; ESP in UDP needs no socket option
   * there: the kernel decapsulates on the port of sysctl net.inet.esp.udpencap_port (default 4500)
   * while net.inet.esp.udpencap is 1 (the default).
   */
  configureSocket(fd: number, family: 4 | 6, natPort: boolean): void {
    const le = this.#options.littleEndian ?? new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
    const int = (value: number) => {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setInt32(0, value, le);
      return bytes;
    };
    const set = (level: number, option: number, value: Uint8Array, what: string) => {
      try {
        this.#native.setsockopt(fd, level, option, value);
      } catch (error) {
        this.#problem(`setsockopt:${what}`, 'error', `PF_KEY: socket ${fd}: ${what}: ${message(error)}`);
        throw new Error(`configure IKE socket ${fd}: ${what}: ${message(error)}`, { cause: error });
      }
    };
    if (this.flavour === 'linux') {
      const level = family === 4 ? SOL_IP : SOL_IPV6;
      const option = family === 4 ? LINUX_IP_IPSEC_POLICY : LINUX_IPV6_IPSEC_POLICY;
      const name = family === 4 ? 'IP_IPSEC_POLICY' : 'IPV6_IPSEC_POLICY';
      set(level, option, bypassPolicyOption('in', le), `${name} bypass in`);
      set(level, option, bypassPolicyOption('out', le), `${name} bypass out`);
      if (natPort) set(SOL_UDP, LINUX_UDP_ENCAP, int(UDP_ENCAP_ESPINUDP), 'UDP_ENCAP ESPINUDP');
    } else {
      const level = family === 4 ? SOL_IP : SOL_IPV6;
      for (const option of family === 4 ? OPENBSD_IP_LEVELS : OPENBSD_IPV6_LEVELS)
        set(level, option, int(OPENBSD_IPSEC_LEVEL_BYPASS), `IPsec level ${option} bypass`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Startup cleanup and close.

  #ours(sa: { reqid?: number; tag?: string }): boolean {
    if (this.flavour === 'linux')
      return sa.reqid !== undefined && sa.reqid >= this.#reqids.first && sa.reqid <= this.#reqids.last;
    return this.#tag !== undefined && sa.tag === this.#tag;
  }

  async #cleanup(): Promise<void> {
    const spis: number[] = [];
    let policies = 0;
    try {
      for (const entry of await this.#channel.dump(buildDump(this.flavour), 'dump ESP SAs')) {
        const sa = readDumpedSa(entry);
        if (!this.#ours(sa)) continue;
        await this.#deleteSa(sa.spi, sa.src, sa.dst);
        spis.push(sa.spi);
      }
      if (this.flavour === 'linux') {
        for (const entry of await this.#channel.dump(buildSpdDump(), 'dump policies')) {
          const policy = readPolicy(entry);
          if (!policy.reqids.some((reqid) => this.#ours({ reqid }))) continue;
          try {
            await this.#channel.request(buildSpdDelete2(policy.id), `delete policy ${policy.id}`);
          } catch (error) {
            if (!isMissing(error)) throw error;
          }
          policies++;
        }
      }
    } catch (error) {
      this.#problem('cleanup', 'warn', `PF_KEY: removing what an earlier run left: ${message(error)}`);
    }
    if (spis.length + policies > 0) this.#host.log('info', `PF_KEY: ${leftoversRemoved(spis, policies)}`);
  }

  #assertOpen(what: string): void {
    if (this.#closed) throw new Error(`${what}: the PF_KEY backend is closed`);
  }

  /** Removes every SA, policy and larval SA this instance installed, then closes the socket. */
  close(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      for (const { child } of [...this.#children.values(), ...this.#pending.values()]) {
        await this.#remove(child).catch(() => undefined);
      }
      for (const group of [...this.#groups.values()]) {
        await this.#removePolicies(group).catch((error: unknown) =>
          this.#problem('close:policies', 'warn', `PF_KEY: close: ${message(error)}`),
        );
        this.#dropGroup(group);
      }
      for (const [spi, larval] of this.#larval) {
        await this.#deleteSa(spi, larval.src, larval.dst).catch(() => undefined);
      }
      this.#larval.clear();
      this.#closed = true;
      this.#channel.close();
    });
  }
}
