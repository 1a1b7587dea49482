/**
 * npm run bench:esp [-- --seconds 5 --runs 3 --ciphers aes128gcm16,aes128-sha256 --scenarios A,B,C]
 *
 * Throughput of the userspace ESP data plane through a real tunnel between two network namespaces,
 * next to strongSwan's kernel-libipsec (its own userspace ESP over TUN) measured in the same run
 * with the same traffic: one single-stream TCP connection (iperf3) between the inner addresses,
 * left to right, for each ESP suite:
 *
 *   A  strongSwan (libipsec) ↔ strongSwan (libipsec)   the reference
 *   B  ike-node (userspace)  ↔ ike-node (userspace)
 *   C  ike-node (userspace)  ↔ strongSwan (libipsec)   interop; bounded by the slower end
 *
 * Every scenario has a topology of its own (conformance/lib/netns.ts: addresses from RFC 5737
 * only), all set up before the first measurement and removed at the end. Runs go round-robin
 * (A B C, A B C, ...), so a burst of load from elsewhere on the machine hits every scenario
 * alike; the table shows the median, the spread (min-max) and the CPU seconds the two ESP
 * processes used per gigabyte carried. The ratio ike-node / libipsec is B / A per round, then
 * its median. A benchmark, never a test: nothing here asserts a number.
 *
 * Needs root, iperf3 and strongSwan (bench/setup.sh installs what is missing) and a built
 * ike-node (`npm run build`). --profile DIR has every ike-node write a V8 CPU profile there.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../conformance/lib/ike-node.js';
import { startIperfServer, tcpStream } from './lib/iperf.js';
import { cpuSeconds, machineBusySeconds, openTunnel, type PeerKind, type Tunnel } from './lib/tunnels.js';

const { values: options } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    ciphers: { type: 'string', default: 'aes128gcm16,aes128-sha256' },
    scenarios: { type: 'string', default: 'A,B,C' },
    profile: { type: 'string' },
    out: { type: 'string', default: 'bench/results/esp.json' },
  },
});
const SECONDS = Number(options.seconds);
const RUNS = Number(options.runs);
// Absolute: the daemons run with their own working directory (a temporary one, removed at the end).
const profileDir = options.profile === undefined ? undefined : resolve(options.profile);
if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });

interface Scenario {
  readonly id: string;
  readonly label: string;
  readonly left: PeerKind;
  readonly right: PeerKind;
}

const SCENARIOS: readonly Scenario[] = [
  { id: 'A', label: 'libipsec <-> libipsec', left: 'libipsec', right: 'libipsec' },
  { id: 'B', label: 'ike-node <-> ike-node', left: 'ike-node', right: 'ike-node' },
  { id: 'C', label: 'ike-node <-> libipsec', left: 'ike-node', right: 'libipsec' },
];
const chosen = SCENARIOS.filter((s) => options.scenarios!.split(',').includes(s.id));
const ciphers = options.ciphers!.split(',').filter(Boolean);

function setup(): void {
  if (process.getuid?.() !== 0) {
    console.error('bench:esp needs root (network namespaces)');
    process.exit(1);
  }
  // Installs iperf3 and strongSwan when missing; quiet and quick when everything is there.
  execFileSync('bash', [join(REPO_ROOT, 'bench', 'setup.sh')], { stdio: 'inherit' });
}

interface Run {
  mbps: number;
  retransmits: number;
  /** CPU seconds of both ESP processes per GB of payload carried. */
  cpuPerGB: number;
  /** How busy the machine was during the run: 1 = every CPU all the time. */
  busy: number;
}

async function measure(tunnel: Tunnel): Promise<Run> {
  const { topology, pids } = tunnel;
  const cpu = () => cpuSeconds(pids.left) + cpuSeconds(pids.right);
  const before = cpu();
  const busyBefore = machineBusySeconds();
  const start = performance.now();
  const stream = await tcpStream(topology.left, topology.leftInner, topology.rightInner, SECONDS);
  const busy = (machineBusySeconds() - busyBefore) / ((performance.now() - start) / 1000) / cpus().length;
  const used = cpu() - before;
  // CPU is counted over the omitted second too: scale the bytes to the whole time.
  const gigabytes = (stream.mbps * 1e6 * (stream.seconds + 1)) / 8 / 1e9;
  return { mbps: stream.mbps, retransmits: stream.retransmits, cpuPerGB: used / gigabytes, busy };
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function table(header: string[], rows: string[][]): string {
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((r) => r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '))
    .join('\n');
}

interface CipherResult {
  esp: string;
  scenarios: Record<string, { label: string; runs: Run[] }>;
  /** B / A per round. */
  ratios: number[];
}

async function benchCipher(esp: string): Promise<CipherResult> {
  const tunnels = new Map<Scenario, Tunnel>();
  const result: CipherResult = { esp, scenarios: {}, ratios: [] };
  try {
    for (const scenario of chosen) {
      const tunnel = await openTunnel({
        left: scenario.left,
        right: scenario.right,
        esp,
        ...(profileDir !== undefined && { profileDir }),
      });
      tunnels.set(scenario, tunnel);
      startIperfServer(tunnel.topology.right, tunnel.topology.rightInner);
      result.scenarios[scenario.id] = { label: scenario.label, runs: [] };
    }
    for (let round = 1; round <= RUNS; round++) {
      const line: string[] = [];
      for (const [scenario, tunnel] of tunnels) {
        const run = await measure(tunnel);
        result.scenarios[scenario.id]!.runs.push(run);
        line.push(`${scenario.id} ${run.mbps.toFixed(0)}`);
      }
      const a = result.scenarios.A?.runs.at(-1)?.mbps;
      const b = result.scenarios.B?.runs.at(-1)?.mbps;
      if (a && b) result.ratios.push(b / a);
      console.log(`  ${esp} round ${round}/${RUNS}: ${line.join(', ')} Mbit/s`);
    }
  } finally {
    for (const tunnel of tunnels.values()) await tunnel.close();
  }
  return result;
}

function report(results: readonly CipherResult[]): void {
  const rows: string[][] = [];
  for (const result of results) {
    for (const [id, { label, runs }] of Object.entries(result.scenarios)) {
      const mbps = runs.map((r) => r.mbps);
      const mid = median(mbps);
      const spread = ((Math.max(...mbps) - Math.min(...mbps)) / mid) * 100;
      rows.push([
        result.esp,
        `${id} ${label}`,
        mid.toFixed(0),
        `${Math.min(...mbps).toFixed(0)}-${Math.max(...mbps).toFixed(0)}`,
        `${spread.toFixed(0)}%`,
        median(runs.map((r) => r.cpuPerGB)).toFixed(1),
        median(runs.map((r) => r.retransmits)).toFixed(0),
        `${(median(runs.map((r) => r.busy)) * 100).toFixed(0)}%`,
      ]);
    }
  }
  console.log(
    `\nSingle TCP stream through the tunnel, ${SECONDS} s per run, ${RUNS} runs, Mbit/s (10^6 bit/s)`,
  );
  console.log(
    table(
      ['suite', 'scenario', 'median', 'min-max', 'spread', 'cpu s/GB', 'retransmits', 'machine busy'],
      rows,
    ),
  );
  console.log('\nike-node / libipsec (B / A, per round; target >= 2)');
  for (const result of results) {
    if (result.ratios.length === 0) continue;
    const ratios = result.ratios.map((r) => r.toFixed(2)).join(' ');
    console.log(`  ${result.esp.padEnd(14)} median ${median(result.ratios).toFixed(2)}  (rounds: ${ratios})`);
  }
}

setup();
console.log(
  `bench:esp: ${cpus().length} CPUs, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; scenarios ${chosen.map((s) => s.id).join(',')}; suites ${ciphers.join(', ')}`,
);
const results: CipherResult[] = [];
for (const esp of ciphers) results.push(await benchCipher(esp));
report(results);
mkdirSync(dirname(options.out!), { recursive: true });
writeFileSync(
  options.out!,
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, seconds: SECONDS, results }, null, 2)}\n`,
);
console.log(`\nresults written to ${options.out}`);
