import { readFileSync } from 'node:fs';
import {
  spawn as spawnChild,
  execFile,
  execFileSync,
  type ChildProcess,
  type SpawnOptions,
} from 'node:child_process';

/**
 * Network namespaces for interop tests: two IPsec peers, optionally behind a NAT router, with
 * addresses only from the documentation ranges (RFC 5737). Everything a topology creates (the
 * namespaces and every process started through it) is removed by `destroy()`, and by a synchronous
 * safety net when the process exits or is killed by SIGINT/SIGTERM/SIGHUP.
 *
 * Interfaces: left and right each have `eth0`; the NAT router has `eth0` (towards left) and `eth1`
 * (towards right, where it masquerades). The relay topology has the same router namespace and
 * addresses, but the router neither forwards nor translates: each side talks to the router's face
 * towards it, where a userspace relay (impair-relay.ts) carries UDP 500/4500 across.
 *
 * Namespace names carry the process id and a counter (`ikn<pid>x<n>-left`), so test files that tap
 * runs in parallel never collide. Interfaces are created directly inside their namespaces, so their
 * names never touch the host's namespace.
 */

export type TopologyKind = 'direct' | 'nat' | 'relay';
export type Role = 'left' | 'right' | 'router' | 'hub' | 'spoke';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Resolve with the non-zero status instead of rejecting. */
  allowFail?: boolean;
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** A network namespace of a topology. */
export interface Ns {
  readonly name: string;
  readonly role: Role;
  /** Runs a command inside the namespace (`ip netns exec`); rejects on failure unless `allowFail`. */
  exec(cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a long-running command inside the namespace; it is killed by `destroy()`. */
  spawn(cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Runs before the topology kills remaining processes and deletes its namespaces. */
  onDestroy(fn: () => Promise<void> | void): void;
}

export interface Topology {
  readonly kind: TopologyKind;
  /** Prefix of every namespace name of this topology. */
  readonly prefix: string;
  readonly left: Ns;
  readonly right: Ns;
  readonly router?: Ns;
  /** Left's outer (IKE) address. */
  readonly leftAddress: string;
  /** Right's outer (IKE) address. */
  readonly rightAddress: string;
  /** The address right sees for left: left itself when direct, the router's address otherwise. */
  readonly leftSeenAs: string;
  /** The address left sees for right: right itself, or the relay's face towards left. */
  readonly rightSeenAs: string;
  /** The interface of each side that carries IKE/ESP. */
  readonly leftIface: string;
  readonly rightIface: string;
  /** Protected subnets (tunnel-mode traffic selectors) and the address each side has in its own. */
  readonly leftSubnet: string;
  readonly rightSubnet: string;
  readonly leftInner: string;
  readonly rightInner: string;
  exec(ns: Ns, cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  spawn(ns: Ns, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
  destroy(): Promise<void>;
}

export const LEFT_SUBNET = '198.51.100.0/24';
export const RIGHT_SUBNET = '203.0.113.0/24';
export const LEFT_INNER = '198.51.100.1';
export const RIGHT_INNER = '203.0.113.1';

/** Prefix shared by every namespace this process creates. */
export const runPrefix = `ikn${process.pid}x`;

let counter = 0;
const live = new Set<NamespaceGroup>();

export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        encoding: 'utf8',
        timeout: opts.timeoutMs ?? 20_000,
        env: opts.env ?? process.env,
        maxBuffer: 64 << 20,
        ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 255) : 0;
        if (code !== 0 && !opts.allowFail) {
          reject(new Error(`${cmd} ${args.join(' ')} failed (${error?.message.split('\n')[0]}): ${stderr}`));
        } else {
          resolve({ code, stdout, stderr });
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Lists the names of all network namespaces (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

class NsImpl implements Ns {
  readonly hooks: (() => Promise<void> | void)[] = [];
  constructor(
    readonly name: string,
    readonly role: Role,
    private readonly topology: NamespaceGroup,
  ) {}

  exec(cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  spawn(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    if (this.topology.destroyed) throw new Error(`topology ${this.topology.prefix} is destroyed`);
    // `ip netns exec` execs the command, so the child's PID is the command's own.
    const child = spawnChild('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
    this.topology.track(child);
    return child;
  }

  onDestroy(fn: () => Promise<void> | void): void {
    this.hooks.push(fn);
  }
}

/**
 * Namespaces created together and removed together: the processes started in them, the hooks
 * that run before they go, and the exit safety net. Topologies build on it.
 */
abstract class NamespaceGroup {
  readonly prefix: string;
  destroyed = false;
  readonly created: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private destroying?: Promise<void>;

  constructor() {
    this.prefix = `${runPrefix}${++counter}-`;
  }

  abstract get namespaces(): NsImpl[];
  abstract build(): Promise<void>;

  /** Adds the namespace (loopback up) and records it for removal. */
  protected async addNamespace(ns: NsImpl): Promise<void> {
    await run('ip', ['netns', 'add', ns.name]);
    this.created.push(ns.name);
    await run('ip', ['-n', ns.name, 'link', 'set', 'lo', 'up']);
  }

  track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    // A failed spawn emits 'error' (and maybe no 'exit'); never let it crash the test process.
    child.once('error', () => this.children.delete(child));
  }

  exec(ns: Ns, cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return ns.exec(cmd, args, opts);
  }

  spawn(ns: Ns, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess {
    return ns.spawn(cmd, args, opts);
  }

  destroy(): Promise<void> {
    this.destroying ??= this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    this.destroyed = true;
    try {
      for (const ns of this.namespaces) {
        for (const hook of ns.hooks.splice(0).reverse()) {
          try {
            await hook();
          } catch {
            // cleanup continues regardless
          }
        }
      }
      // Whatever is still running: SIGTERM, then SIGKILL after a grace period.
      const pending = [...this.children].filter((c) => c.exitCode === null && c.signalCode === null);
      for (const child of pending) signal(child.pid, 'SIGTERM');
      await Promise.race([Promise.all(pending.map(exited)), delay(2000)]);
      for (const child of pending)
        if (child.exitCode === null && child.signalCode === null) signal(child.pid, 'SIGKILL');
      await Promise.race([Promise.all(pending.map(exited)), delay(1000)]);
      // Processes started inside our namespaces by what we spawned (none expected).
      for (const name of this.created) {
        const { stdout } = await run('ip', ['netns', 'pids', name], { allowFail: true });
        for (const pid of stdout.split('\n').filter(Boolean)) signal(Number(pid), 'SIGKILL');
      }
      for (const name of this.created.splice(0).reverse()) {
        await run('ip', ['netns', 'del', name], { allowFail: true });
      }
    } finally {
      live.delete(this);
    }
  }

  /** The exit safety net: synchronous, best effort. */
  destroySync(): void {
    this.destroyed = true;
    for (const child of this.children) signal(child.pid, 'SIGKILL');
    for (const name of this.created.splice(0).reverse()) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', stdio: 'pipe' });
        for (const pid of pids.split('\n').filter(Boolean)) signal(Number(pid), 'SIGKILL');
      } catch {
        // namespace already gone
      }
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      } catch {
        // best effort
      }
    }
    live.delete(this);
  }
}

class TopologyImpl extends NamespaceGroup implements Topology {
  readonly left: NsImpl;
  readonly right: NsImpl;
  readonly router?: NsImpl;
  readonly leftAddress: string;
  readonly rightAddress: string;
  readonly leftSeenAs: string;
  readonly rightSeenAs: string;
  readonly leftIface = 'eth0';
  readonly rightIface = 'eth0';
  readonly leftSubnet = LEFT_SUBNET;
  readonly rightSubnet = RIGHT_SUBNET;
  readonly leftInner = LEFT_INNER;
  readonly rightInner = RIGHT_INNER;

  constructor(readonly kind: TopologyKind) {
    super();
    this.left = new NsImpl(`${this.prefix}left`, 'left', this);
    this.right = new NsImpl(`${this.prefix}right`, 'right', this);
    if (kind !== 'direct') {
      this.router = new NsImpl(`${this.prefix}router`, 'router', this);
      this.leftAddress = '192.0.2.130';
      this.rightAddress = '192.0.2.2';
      this.leftSeenAs = '192.0.2.1';
      this.rightSeenAs = kind === 'relay' ? '192.0.2.129' : '192.0.2.2';
    } else {
      this.leftAddress = '192.0.2.1';
      this.rightAddress = '192.0.2.2';
      this.leftSeenAs = '192.0.2.1';
      this.rightSeenAs = '192.0.2.2';
    }
  }

  get namespaces(): NsImpl[] {
    return this.router ? [this.left, this.router, this.right] : [this.left, this.right];
  }

  async build(): Promise<void> {
    const ip = (...args: string[]) => run('ip', args);
    for (const ns of this.namespaces) await this.addNamespace(ns);
    const L = this.left.name;
    const R = this.right.name;
    if (this.kind === 'direct') {
      await ip('link', 'add', 'name', 'eth0', 'netns', L, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', R);
      await ip('-n', L, 'addr', 'add', '192.0.2.1/24', 'dev', 'eth0');
      await ip('-n', R, 'addr', 'add', '192.0.2.2/24', 'dev', 'eth0');
      await ip('-n', L, 'link', 'set', 'eth0', 'up');
      await ip('-n', R, 'link', 'set', 'eth0', 'up');
    } else {
      const N = this.router!.name;
      await ip('link', 'add', 'name', 'eth0', 'netns', L, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', N);
      await ip('link', 'add', 'name', 'eth1', 'netns', N, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', R);
      await ip('-n', L, 'addr', 'add', '192.0.2.130/25', 'dev', 'eth0');
      await ip('-n', N, 'addr', 'add', '192.0.2.129/25', 'dev', 'eth0');
      await ip('-n', N, 'addr', 'add', '192.0.2.1/25', 'dev', 'eth1');
      await ip('-n', R, 'addr', 'add', '192.0.2.2/25', 'dev', 'eth0');
      for (const [ns, dev] of [
        [L, 'eth0'],
        [N, 'eth0'],
        [N, 'eth1'],
        [R, 'eth0'],
      ] as const) {
        await ip('-n', ns, 'link', 'set', dev, 'up');
      }
      await ip('-n', L, 'route', 'add', 'default', 'via', '192.0.2.129');
    }
    if (this.kind === 'nat') {
      await this.router!.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      const ruleset = [
        'table ip nat {',
        '  chain postrouting {',
        '    type nat hook postrouting priority srcnat; policy accept;',
        '    oifname "eth1" masquerade random',
        '  }',
        '}',
        '',
      ].join('\n');
      await this.router!.exec('nft', ['-f', '-'], { input: ruleset });
    }
    // Protected subnets: one address per side on lo, and a route to the other side's subnet via
    // the peer, so that policies and (with kernel-libipsec) the routes in table 220 have a source.
    const leftGateway = this.kind === 'direct' ? '192.0.2.2' : '192.0.2.129';
    const rightGateway = '192.0.2.1';
    await ip('-n', L, 'addr', 'add', `${LEFT_INNER}/32`, 'dev', 'lo');
    await ip('-n', R, 'addr', 'add', `${RIGHT_INNER}/32`, 'dev', 'lo');
    await ip('-n', L, 'route', 'add', RIGHT_SUBNET, 'via', leftGateway, 'src', LEFT_INNER);
    await ip('-n', R, 'route', 'add', LEFT_SUBNET, 'via', rightGateway, 'src', RIGHT_INNER);
  }
}

/**
 * A hub namespace with spokes, each joined to the hub by its own veth pair: a responder in the
 * middle and the parties that reach it (peers, a flooder) each in a namespace of their own.
 * Spoke i (from 0) is on 192.0.2.16(i+1)/28: the hub's end `eth<i+1>` has .16(i+1)+1, the
 * spoke's `eth0` .16(i+1)+2 and a default route through the hub. 192.0.2.0/28 stays free for
 * the hub's own addresses (on its lo). At most 14 spokes.
 */
export interface Star {
  readonly prefix: string;
  readonly hub: Ns;
  readonly spokes: readonly Spoke[];
  /** Routes `prefix` (addresses the spoke holds, on its lo) from the hub to the spoke. */
  route(spoke: Spoke, prefix: string): Promise<void>;
  destroy(): Promise<void>;
}

export interface Spoke {
  readonly ns: Ns;
  /** The spoke's address on its link, and the hub's (its next hop). */
  readonly address: string;
  readonly hubAddress: string;
}

class StarImpl extends NamespaceGroup implements Star {
  readonly hub: NsImpl;
  readonly spokes: (Spoke & { ns: NsImpl })[];

  constructor(names: readonly string[]) {
    super();
    if (names.length > 14) throw new Error('createStar: at most 14 spokes');
    this.hub = new NsImpl(`${this.prefix}hub`, 'hub', this);
    this.spokes = names.map((name, i) => ({
      ns: new NsImpl(`${this.prefix}${name}`, 'spoke', this),
      address: `192.0.2.${16 * (i + 1) + 2}`,
      hubAddress: `192.0.2.${16 * (i + 1) + 1}`,
    }));
  }

  get namespaces(): NsImpl[] {
    return [this.hub, ...this.spokes.map((spoke) => spoke.ns)];
  }

  async build(): Promise<void> {
    const ip = (...args: string[]) => run('ip', args);
    for (const ns of this.namespaces) await this.addNamespace(ns);
    const H = this.hub.name;
    for (const [i, spoke] of this.spokes.entries()) {
      const S = spoke.ns.name;
      const hubIface = `eth${i + 1}`;
      await ip(
        'link',
        'add',
        'name',
        hubIface,
        'netns',
        H,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        S,
      );
      await ip('-n', H, 'addr', 'add', `${spoke.hubAddress}/28`, 'dev', hubIface);
      await ip('-n', S, 'addr', 'add', `${spoke.address}/28`, 'dev', 'eth0');
      await ip('-n', H, 'link', 'set', hubIface, 'up');
      await ip('-n', S, 'link', 'set', 'eth0', 'up');
      await ip('-n', S, 'route', 'add', 'default', 'via', spoke.hubAddress);
    }
  }

  async route(spoke: Spoke, prefix: string): Promise<void> {
    await run('ip', ['-n', this.hub.name, 'route', 'add', prefix, 'via', spoke.address]);
  }
}

/**
 * The end of a process we spawned: its exit code (128 + signal when killed, 255 when it could not
 * start) and a stop that sends SIGTERM, then SIGKILL after `graceMs`; stop is idempotent.
 */
export function processEnd(
  child: ChildProcess,
  graceMs: number,
): { exit: Promise<number>; exitCode(): number | null; stop(): Promise<number> } {
  let exitCode: number | null = null;
  const exit = new Promise<number>((resolve) => {
    child.once('exit', (code, sig) => resolve((exitCode = code ?? 128 + signalNumber(sig))));
    child.once('error', () => resolve((exitCode = 255)));
  });
  let stopping: Promise<number> | undefined;
  const stop = (): Promise<number> => {
    stopping ??= (async () => {
      if (exitCode !== null) return exitCode;
      signal(child.pid, 'SIGTERM');
      const timer = setTimeout(() => signal(child.pid, 'SIGKILL'), graceMs);
      const code = await exit;
      clearTimeout(timer);
      return code;
    })();
    return stopping;
  };
  return { exit, exitCode: () => exitCode, stop };
}

function signalNumber(sig: NodeJS.Signals | null): number {
  return sig === 'SIGKILL' ? 9 : sig === 'SIGTERM' ? 15 : sig === 'SIGINT' ? 2 : 0;
}

export function signal(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined || pid <= 0) return;
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** A log or state file the peer writes, or '' while it does not exist yet. */
export function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let safetyNetInstalled = false;
function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  const cleanupAll = () => {
    for (const topology of [...live]) topology.destroySync();
  };
  process.on('exit', cleanupAll);
  // SIGALRM is how tap ends a test file that ran past its timeout.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGALRM'] as const) {
    const onSignal = () => {
      cleanupAll();
      process.removeListener(sig, onSignal);
      // Re-raise, so that the default action (or another handler) still ends the process.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/**
 * Builds a topology.
 * - direct: left 192.0.2.1/24 ↔ right 192.0.2.2/24 over one veth pair.
 * - nat: left 192.0.2.130/25 → router 192.0.2.129/25 | 192.0.2.1/25 (nft masquerade) → right
 *   192.0.2.2/25; right sees left as 192.0.2.1.
 * - relay: the same addresses, no forwarding and no NAT: left talks to 192.0.2.129, right to
 *   192.0.2.1, and a relay in the router namespace (startRelay) carries the datagrams across.
 * Both: left has 198.51.100.1/32 on lo (subnet 198.51.100.0/24), right 203.0.113.1/32 (subnet
 * 203.0.113.0/24), each with a route to the other's subnet via its next hop.
 */
export function createTopology(kind: TopologyKind): Promise<Topology> {
  return built(new TopologyImpl(kind));
}

/** A hub and one spoke per name (namespaces `<prefix>hub`, `<prefix><name>`); see Star. */
export function createStar(spokes: readonly string[]): Promise<Star> {
  return built(new StarImpl(spokes));
}

/** Builds a group under the safety net; a failed build removes what it had made. */
async function built<T extends NamespaceGroup>(group: T): Promise<T> {
  installSafetyNet();
  live.add(group);
  try {
    await group.build();
  } catch (error) {
    await group.destroy();
    throw error;
  }
  return group;
}
