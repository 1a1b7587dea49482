import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startIkeNode, type IkeNode } from '../../conformance/lib/ike-node.js';
import { createTopology, delay, type Topology } from '../../conformance/lib/netns.js';
import {
  ends,
  ikeNodeTunnel,
  swanctlTunnel,
  type End,
  type TunnelSpec,
} from '../../conformance/lib/scenario.js';
import { startCharon, swanctlConnection, type Charon } from '../../conformance/lib/strongswan.js';

/**
 * A tunnel between two peers in a `direct` topology of their own, for throughput measurements:
 * left initiates IKEv1 (PSK, tunnel mode) to right, with one ESP suite, then the tunnel is proven
 * by a ping between the inner addresses. Either end is strongSwan with kernel-libipsec or
 * ike-node with the userspace backend; both force ESP in UDP, so every scenario carries the same
 * packets on the wire.
 */

export type PeerKind = 'libipsec' | 'ike-node';

export interface TunnelOptions {
  readonly left: PeerKind;
  readonly right: PeerKind;
  /** ESP proposal in strongSwan's syntax (also ike-node's): "aes128gcm16", "aes128-sha256". */
  readonly esp: string;
  /** Where ike-node writes V8 CPU profiles (--cpu-prof), when profiling. */
  readonly profileDir?: string;
}

export interface Tunnel {
  readonly topology: Topology;
  /** The processes doing ESP: charon or ike-node on each side (for CPU accounting). */
  readonly pids: { readonly left: number; readonly right: number };
  /** Log tails of both peers, for an error message. */
  logs(): string;
  close(): Promise<void>;
}

/** Preloaded into ike-node when profiling (see the file). */
const PROFILER = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), 'cpu-profile.mjs')).href;

const IKE_PROPOSAL = 'aes128-sha256-modp2048';
const PSK = 'bench-esp-psk-7c41d9';

type Peer = { kind: 'libipsec'; charon: Charon } | { kind: 'ike-node'; node: IkeNode };

export async function openTunnel(options: TunnelOptions): Promise<Tunnel> {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-bench-esp-'));
  const topology = await createTopology('direct');
  const peers: Peer[] = [];
  const logs = () =>
    peers
      .map((peer) => {
        const text = peer.kind === 'libipsec' ? peer.charon.log() : peer.node.log();
        return `--- ${peer.kind}\n${text.split('\n').slice(-30).join('\n')}`;
      })
      .join('\n');
  const close = async () => {
    await topology.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const { ours: left, theirs: right } = ends(topology, 'left');
    const spec = (ours: End, theirs: End, role: TunnelSpec['role']): TunnelSpec => ({
      dir: join(dir, ours === left ? 'left' : 'right'),
      ours,
      theirs,
      psk: PSK,
      role,
      ike: IKE_PROPOSAL,
      esp: options.esp,
    });
    // The responder first, so that it listens when the initiator starts.
    const rightPeer = await startPeer(options.right, spec(right, left, 'responder'), options.profileDir);
    peers.push(rightPeer);
    const leftPeer = await startPeer(options.left, spec(left, right, 'initiator'), options.profileDir);
    peers.push(leftPeer);
    if (leftPeer.kind === 'libipsec') {
      const result = await leftPeer.charon.initiate('net', 'net', 15);
      if (!result.ok) throw new Error(`strongSwan could not initiate: ${result.stdout}${result.stderr}`);
    }
    await waitForPing(topology);
    const pid = (peer: Peer) => (peer.kind === 'libipsec' ? peer.charon.pid : peer.node.pid);
    return { topology, pids: { left: pid(leftPeer), right: pid(rightPeer) }, logs, close };
  } catch (error) {
    const text = logs();
    await close();
    throw new Error(`${(error as Error).message}\n${text}`);
  }
}

async function startPeer(kind: PeerKind, spec: TunnelSpec, profileDir: string | undefined): Promise<Peer> {
  const name = spec.ours.ns.role;
  if (kind === 'libipsec') {
    const charon = await startCharon(spec.ours.ns, {
      name: `bench-${name}`,
      dir: join(spec.dir, 'strongswan'),
      logLevels: { ike: 1, knl: 1, cfg: 1 },
    });
    // In swanctlTunnel's words strongSwan is `theirs`: swap the ends.
    await charon.load(swanctlConnection(swanctlTunnel({ ...spec, ours: spec.theirs, theirs: spec.ours })));
    return { kind, charon };
  }
  const config = {
    ...ikeNodeTunnel(spec),
    log: { level: 'info' },
    kernel: 'userspace',
    dataPlane: { tun: 'ike-node0', mtu: 1400, replayWindow: 64 },
  };
  // startIkeNode spawns synchronously, before its first await: only the daemon gets the preload.
  const saved = { ...process.env };
  if (profileDir !== undefined) {
    process.env.NODE_OPTIONS = `${saved.NODE_OPTIONS ?? ''} --import ${PROFILER}`.trim();
    process.env.IKE_NODE_CPU_PROFILE_DIR = profileDir;
  }
  const started = startIkeNode(spec.ours.ns, config, { dir: spec.dir, logLevel: 'info' });
  for (const key of ['NODE_OPTIONS', 'IKE_NODE_CPU_PROFILE_DIR']) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
  return { kind, node: await started };
}

async function waitForPing(topology: Topology, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ping = await topology.left.exec(
      'ping',
      ['-c', '1', '-W', '1', '-I', topology.leftInner, topology.rightInner],
      { allowFail: true },
    );
    if (ping.code === 0) return;
    if (Date.now() > end) throw new Error(`no ping through the tunnel after ${timeoutMs} ms`);
    await delay(200);
  }
}

/** CPU seconds (user + system, all threads) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return ticks / CLOCK_TICKS;
}

/** CPU seconds the whole machine has spent busy (all CPUs, everything but idle and iowait). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const ticks = line.split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((sum, t) => sum + t, 0);
  return (total - ticks[3]! - ticks[4]!) / CLOCK_TICKS;
}

/** sysconf(_SC_CLK_TCK): 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;
