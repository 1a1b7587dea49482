import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CLI, REPO_ROOT } from '../conformance/lib/ike-node.js';
import { createTopology, delay, processEnd, type Ns, type Topology } from '../conformance/lib/netns.js';
import { startCharon, swanctlConnection, type Charon } from '../conformance/lib/strongswan.js';
import { runDhJob } from '../src/crypto/dh-job.js';
import { createCryptoProvider } from '../src/crypto/providers/index.js';
import { controlRequest } from '../src/daemon/control.js';
import { freeTcpPort } from '../src/net/free-ports.js';
import {
  clientId,
  clientName,
  clientSelector,
  type GeneratorResult,
  type GeneratorSpec,
  PROTECTED_SUBNET,
} from './lib/handshake-initiator.js';
import { Vici } from './lib/vici.js';

/**
 * Handshakes per second and what they cost the responder: ike-node's daemon against strongSwan's
 * charon, measured alternately in the same run, with the same proposals and the same load. The
 * load is either this project's own generator (bench/lib/handshake-initiator.ts: one engine with a
 * connection per client, each its own identity, over UDP from 200 TEST-NET addresses) or charon
 * with N connections from one address (its defaults: INITIAL-CONTACT on). Then a scale sweep of
 * the ike-node responder at 1k, 10k and 100k established SAs. As root: everything runs in network
 * namespaces made and removed here. Prints tables; asserts nothing.
 */

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '3000' },
    runs: { type: 'string', default: '3' },
    initiator: { type: 'string', default: 'both' },
    responders: { type: 'string', default: 'ike-node,charon-short,charon-default' },
    concurrency: { type: 'string', default: '100' },
    rate: { type: 'string', default: '0' },
    ike: { type: 'string', default: 'aes128-sha1-modp2048' },
    esp: { type: 'string', default: 'aes128-sha1' },
    sweep: { type: 'string', default: '1000,10000,100000' },
    parts: { type: 'string', default: 'compare,pinning,sweep' },
    timeout: { type: 'string', default: '300' },
    /** The sweep writes a heap snapshot of the responder at each size, once settled, into DIR. */
    'heap-snapshots': { type: 'string' },
    version: { type: 'string', default: '1' },
    /** Seconds the sweep waits after a burst before it reads the settled RSS. */
    settle: { type: 'string', default: '40' },
    /** Node or V8 flags for ike-node responders (space-separated: --trace-gc, say). */
    'responder-node-flags': { type: 'string', default: '' },
  },
});

const N = Number(values.n);
const RUNS = Number(values.runs);
const CONCURRENCY = Number(values.concurrency);
const RATE = Number(values.rate);
const IKE = values.ike!;
const ESP = values.esp!;
const TIMEOUT = Number(values.timeout);
const VERSION: 1 | 2 = values.version === '2' ? 2 : 1;
/** What one handshake is, in the version's words. */
const HANDSHAKE =
  VERSION === 1 ? 'IKEv1 main mode + quick mode' : 'IKEv2 IKE_SA_INIT + IKE_AUTH with one child SA';
const PSK = 'bench-handshake-psk-4be1';
const RESPONDER = '192.0.2.2';
const INITIATOR = '192.0.2.1';
/** The own generator's source addresses, on the initiator's link. */
const SOURCES = Array.from({ length: 200 }, (_, i) => `192.0.2.${10 + i}`);
const TICK = 100; // clock ticks per second (sysconf CLK_TCK on Linux)

/** Milliseconds of CPU per SA from clock ticks over `count` SAs (none counted: as if one). */
function msPerSa(ticks: number, count: number): number {
  return (ticks * 1000) / TICK / Math.max(1, count);
}

type ResponderKind = 'ike-node' | 'ike-node-userspace' | 'charon-short' | 'charon-default';
type InitiatorKind = 'own' | 'charon';

interface Responder {
  readonly kind: ResponderKind;
  readonly pid: number;
  readonly socket?: string;
  stop(): Promise<unknown>;
}

interface Measured {
  readonly responder: string;
  readonly initiator: InitiatorKind;
  readonly established: number;
  readonly seconds: number;
  readonly latencies: readonly number[];
  readonly retransmits: number;
  readonly cpuTicks: number;
  readonly mainTicks: number | undefined;
  readonly rssKb: number;
  readonly drops: number;
  readonly loadCpuMs?: number;
}

// ---------------------------------------------------------------------------------------------
// /proc readings

function cpuTicks(pid: number, task = pid, all = true): number {
  const stat = readFileSync(all ? `/proc/${pid}/stat` : `/proc/${pid}/task/${task}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the command's ')'.
  return Number(fields[11]) + Number(fields[12]);
}

function rssKb(pid: number): number {
  const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0);
}

/** The highest RSS the process has had (VmHWM). */
function peakRssKb(pid: number): number {
  const match = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0);
}

async function udpDrops(ns: Ns): Promise<number> {
  const { stdout } = await ns.exec('cat', ['/proc/net/snmp']);
  const lines = stdout.split('\n').filter((line) => line.startsWith('Udp:'));
  const [names, numbers] = lines.map((line) => line.split(/\s+/));
  return Number(numbers?.[names?.indexOf('RcvbufErrors') ?? -1] ?? 0);
}

// ---------------------------------------------------------------------------------------------
// Responders

function ikeNodeConfig(
  dir: string,
  count: number,
  kernel: 'memory' | 'userspace',
  workers: number | 'auto',
  metricsPort?: number,
) {
  const connections: Record<string, object> = {};
  for (let i = 0; i < count; i++) {
    connections[clientName(i)] = {
      ikePolicy: 'ike',
      ipsecPolicy: 'esp',
      local: { address: RESPONDER, subnets: [PROTECTED_SUBNET] },
      peer: { address: 'any', id: clientId(i) },
      psk: PSK,
    };
  }
  return {
    listen: { addresses: [RESPONDER] },
    kernel,
    workers,
    control: { socket: join(dir, 'ike-node.sock') },
    ...(metricsPort !== undefined && { metrics: { listen: `127.0.0.1:${metricsPort}` } }),
    ikePolicies: { ike: { version: VERSION, proposals: [IKE] } },
    ipsecPolicies: { esp: { proposals: [ESP] } },
    connections,
  };
}

async function startIkeNodeResponder(
  ns: Ns,
  kind: ResponderKind,
  count: number,
  options: { cpus?: string; workers?: number | 'auto'; metricsPort?: number } = {},
): Promise<Responder> {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-bench-hs-'));
  const config = ikeNodeConfig(
    dir,
    count,
    kind === 'ike-node-userspace' ? 'userspace' : 'memory',
    options.workers ?? 'auto',
    options.metricsPort,
  );
  const file = join(dir, 'peers.json');
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  chmodSync(file, 0o600);
  const log = join(dir, 'ike-node.log');
  const command = options.cpus ? 'taskset' : process.execPath;
  const snapshots = values['heap-snapshots'];
  const node = snapshots ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshots}`] : [];
  node.push(...values['responder-node-flags']!.split(' ').filter(Boolean));
  const args = [
    ...(options.cpus ? ['-c', options.cpus, process.execPath] : []),
    ...node,
    CLI,
    '--config',
    file,
  ];
  const child = ns.spawn('sh', ['-c', `exec "$@" >"${log}" 2>&1`, 'sh', command, ...args]);
  const { exitCode, stop } = processEnd(child, 10_000);
  const socket = config.control.socket;
  const deadline = Date.now() + 120_000;
  while (!existsSync(socket)) {
    if (exitCode() !== null || Date.now() > deadline) {
      await stop();
      const tail = readFileSync(log, 'utf8').slice(-2000);
      // Its configuration holds the pre-shared key: nothing of a failed start stays behind.
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`ike-node did not start:\n${tail}`);
    }
    await delay(50);
  }
  return {
    kind,
    pid: child.pid!,
    socket,
    stop: async () => {
      await stop();
      if (process.env.BENCH_KEEP) console.error(`kept ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** charon as responder: one connection for every client (any address, any identity), short or full exponents. */
async function startCharonResponder(ns: Ns, kind: ResponderKind): Promise<Responder> {
  const charon = await startCharon(ns, {
    name: kind,
    logLevels: { ike: 1, cfg: 1, knl: 1 },
    extraCharonConf: 'dos_protection = no\n  install_routes = no\n',
    extraConf: `libstrongswan {\n  dh_exponent_ansi_x9_42 = ${kind === 'charon-short' ? 'no' : 'yes'}\n}\n`,
  });
  await charon.load(
    swanctlConnection({
      name: 'clients',
      version: VERSION,
      local_addrs: RESPONDER,
      remote_addrs: '%any',
      proposals: IKE,
      psk: PSK,
      local_id: RESPONDER,
      remote_id: '%any',
      children: [
        {
          name: 'clients',
          mode: 'tunnel',
          local_ts: PROTECTED_SUBNET,
          esp_proposals: ESP,
          extra: { policies: 'no' },
        },
      ],
    }),
  );
  return { kind, pid: charon.pid, stop: () => charon.stop() };
}

function startResponder(ns: Ns, kind: ResponderKind, count: number): Promise<Responder> {
  return kind.startsWith('charon') ? startCharonResponder(ns, kind) : startIkeNodeResponder(ns, kind, count);
}

// ---------------------------------------------------------------------------------------------
// Initiators

interface Load {
  readonly established: number;
  readonly seconds: number;
  readonly latencies: readonly number[];
  readonly retransmits: number;
  readonly failures: readonly string[];
  /** The own generator's CPU (all its threads) for the run; charon as the load is not measured. */
  readonly loadCpuMs?: number;
}

async function addSources(topology: Topology): Promise<void> {
  for (const address of SOURCES)
    await topology.left.exec('ip', ['addr', 'add', `${address}/24`, 'dev', topology.leftIface]);
}

/** The own generator; `hold`: it keeps its SAs until told to exit (returns its result and that). */
async function ownLoad(
  ns: Ns,
  first: number,
  count: number,
  options: { hold?: boolean; port?: number; cpus?: string } = {},
): Promise<{ result: Load; release: () => Promise<void> }> {
  const port = options.port ?? 500;
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-bench-gen-'));
  const spec: GeneratorSpec = {
    responder: { address: RESPONDER, port: 500, natPort: 4500 },
    addresses: SOURCES,
    port,
    natPort: port + 4000,
    first,
    count,
    concurrency: CONCURRENCY,
    rate: RATE,
    version: VERSION,
    ike: [IKE],
    esp: [ESP],
    psk: PSK,
    hold: options.hold ?? false,
    timeout: TIMEOUT,
  };
  const file = join(dir, 'spec.json');
  writeFileSync(file, JSON.stringify(spec));
  const child = ns.spawn(
    process.execPath,
    [
      // IKE_NODE_CPU_PROFILE_DIR (bench/lib/cpu-profile.mjs) profiles the generator too.
      ...(process.env['IKE_NODE_CPU_PROFILE_DIR']
        ? ['--cpu-prof', '--cpu-prof-dir', process.env['IKE_NODE_CPU_PROFILE_DIR']]
        : []),
      '--import',
      'tsx',
      join(REPO_ROOT, 'bench/lib/handshake-initiator.ts'),
      file,
    ],
    {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const { exit, stop } = processEnd(child, 5000);
  const line = await new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const end = text.indexOf('\n');
      if (end >= 0) resolve(text.slice(0, end));
    });
    child.on('exit', (code) => reject(new Error(`the load generator exited (${code}) before its result`)));
  });
  const result = JSON.parse(line) as GeneratorResult;
  return {
    result: {
      established: result.established,
      seconds: result.elapsed,
      latencies: result.latencies,
      retransmits: result.retransmits,
      failures: result.failures,
      loadCpuMs: result.cpuMs,
    },
    release: async () => {
      // It exits by itself once told (or at once without `hold`); a signal only if it does not:
      // a SIGTERM would cut short its exit, and with it a CPU profile being written.
      child.stdin!.end('exit\n');
      await Promise.race([exit, delay(5000)]);
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * charon with N connections from one address, one identity each (INITIAL-CONTACT on, its
 * default), loaded first and then all started at once through VICI, so that the responder, not
 * the loading of a configuration, sets the pace. Its own Diffie-Hellman uses short exponents, so
 * that the load generator is cheaper than what it loads.
 */
async function charonLoad(ns: Ns, count: number): Promise<{ result: Load; release: () => Promise<unknown> }> {
  const charon: Charon = await startCharon(ns, {
    name: 'load',
    logLevels: { ike: 1, cfg: 0, knl: 0 },
    logMilliseconds: true,
    extraCharonConf: 'install_routes = no\n  retransmit_timeout = 2.0\n  retransmit_tries = 5\n',
    extraConf: 'libstrongswan {\n  dh_exponent_ansi_x9_42 = no\n}\n',
    readyTimeoutMs: 10_000,
  });
  try {
    const specs = Array.from({ length: count }, (_, i) => {
      const { address, port } = clientSelector(i, [INITIATOR]);
      return {
        name: clientName(i),
        version: VERSION,
        local_addrs: INITIATOR,
        remote_addrs: RESPONDER,
        proposals: IKE,
        psk: PSK,
        local_id: clientId(i),
        remote_id: RESPONDER,
        children: [
          {
            name: clientName(i),
            mode: 'tunnel' as const,
            local_ts: `${address}/32[udp/${port}]`,
            remote_ts: `${PROTECTED_SUBNET}[udp/${port}]`,
            esp_proposals: ESP,
            extra: { policies: 'no' },
          },
        ],
      };
    });
    const conf = join(charon.dir, 'swanctl.conf');
    writeFileSync(conf, swanctlConnection(...specs));
    const loaded = await charon.swanctl(['--load-all', '--noprompt', '--file', conf], 900);
    if (loaded.code !== 0) throw new Error(`swanctl --load-all: ${loaded.stderr}`);
    const vici = await Vici.connect(charon.uri.replace(/^unix:\/\//, ''));
    for (let i = 0; i < count; i++)
      await vici.request('initiate', {
        child: clientName(i),
        ike: clientName(i),
        timeout: '-1',
        'init-limits': 'no',
      });
    vici.close();
    const end = Date.now() + TIMEOUT * 1000;
    while (Date.now() < end) {
      if ((charon.log().match(/CHILD_SA \S+ established/g) ?? []).length >= count) break;
      await delay(200);
    }
    // Its Deletes at stop come after the reading, not inside it.
    return { result: parseCharonLoad(charon.log()), release: () => charon.stop() };
  } catch (error) {
    await charon.stop();
    throw error;
  }
}

/** Setup latencies and retransmissions from the initiator charon's log (times with milliseconds). */
function parseCharonLoad(log: string): Load {
  const started = new Map<string, number>();
  const latencies: number[] = [];
  let first = Infinity;
  let last = 0;
  let retransmits = 0;
  for (const line of log.split('\n')) {
    const time = /^(\d\d):(\d\d):(\d\d)\.(\d\d\d)/.exec(line);
    if (!time) continue;
    const at = Number(time[1]) * 3600 + Number(time[2]) * 60 + Number(time[3]) + Number(time[4]) / 1000;
    const name = /<(c\d+)\|/.exec(line)?.[1];
    if (/initiating (Main Mode|IKE_SA)/.test(line) && name) {
      started.set(name, at);
      first = Math.min(first, at);
    } else if (/CHILD_SA \S+ established/.test(line) && name && started.has(name)) {
      latencies.push(at - started.get(name)!);
      last = Math.max(last, at);
    } else if (/retransmit/.test(line)) {
      retransmits++;
    }
  }
  return {
    established: latencies.length,
    seconds: last - first,
    latencies: latencies.sort((a, b) => a - b),
    retransmits,
    failures: [],
  };
}

// ---------------------------------------------------------------------------------------------
// One measured run

async function measure(responderKind: ResponderKind, initiator: InitiatorKind): Promise<Measured> {
  const topology = await createTopology('direct');
  try {
    if (initiator === 'own') await addSources(topology);
    const responder = await startResponder(topology.right, responderKind, N);
    await delay(500); // let start-up work (configuration, worker threads) settle before the reading
    const cpu0 = cpuTicks(responder.pid);
    const main0 = responderKind.startsWith('ike-node')
      ? cpuTicks(responder.pid, responder.pid, false)
      : undefined;
    const rss0 = rssKb(responder.pid);
    const drops0 = await udpDrops(topology.right);
    const { result: load, release } =
      initiator === 'own' ? await ownLoad(topology.left, 0, N) : await charonLoad(topology.left, N);
    const result: Measured = {
      responder: responderKind,
      initiator,
      established: load.established,
      seconds: load.seconds,
      latencies: load.latencies,
      retransmits: load.retransmits,
      cpuTicks: cpuTicks(responder.pid) - cpu0,
      mainTicks: main0 === undefined ? undefined : cpuTicks(responder.pid, responder.pid, false) - main0,
      rssKb: rssKb(responder.pid) - rss0,
      drops: (await udpDrops(topology.right)) - drops0,
      ...(load.loadCpuMs !== undefined && { loadCpuMs: load.loadCpuMs }),
    };
    if (load.failures.length) console.error(`  ${responderKind}: ${load.failures.slice(0, 3).join('; ')}`);
    await release();
    await responder.stop();
    return result;
  } finally {
    await topology.destroy();
  }
}

const median = (list: readonly number[]) => {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)]! : NaN;
};
const quantile = (sorted: readonly number[], q: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]! : NaN;

function row(m: Measured): string[] {
  const per = (ticks: number) => msPerSa(ticks, m.established).toFixed(2);
  return [
    m.responder,
    m.initiator,
    `${m.established}/${N}`,
    (m.established / m.seconds).toFixed(0),
    (quantile(m.latencies, 0.5) * 1000).toFixed(0),
    (quantile(m.latencies, 0.99) * 1000).toFixed(0),
    per(m.cpuTicks),
    m.mainTicks === undefined ? '-' : per(m.mainTicks),
    (m.rssKb / Math.max(1, m.established)).toFixed(1),
    String(m.retransmits),
    String(m.drops),
    m.loadCpuMs === undefined ? '-' : (m.loadCpuMs / Math.max(1, m.established)).toFixed(2),
  ];
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

const HEADER = [
  'responder',
  'load',
  'up',
  'SAs/s',
  'p50 ms',
  'p99 ms',
  'cpu ms/SA',
  'main ms/SA',
  'RSS kB/SA',
  'retx',
  'drops',
  'load cpu ms/SA',
];

/** Key exchanges per second on one core: the responder's Diffie-Hellman for one IKE SA. */
function dhCeiling(): number {
  const provider = createCryptoProvider('node');
  const group = IKE.split('-').pop() as 'modp2048';
  const peer = runDhJob(provider, { group }).publicKey;
  const end = performance.now() + 2000;
  let count = 0;
  while (performance.now() < end) {
    runDhJob(provider, { group, peerPublic: peer });
    count++;
  }
  return count / 2;
}

// ---------------------------------------------------------------------------------------------
// Scale sweep: CPU per new SA, status time and RSS with 1k, 10k, 100k SAs up

const SETTLE_MS = Number(values.settle) * 1000;

/** The responder's Node heap, used/reserved, and external memory, in MB, from its metrics. */
async function heapFigures(ns: Ns, port: number): Promise<string> {
  const { stdout } = await ns.exec('curl', ['-sf', `http://127.0.0.1:${port}/metrics`], { allowFail: true });
  const mb = (name: string) => {
    const value = new RegExp(`^${name} (\\S+)$`, 'm').exec(stdout)?.[1];
    return value === undefined ? '?' : String(Math.round(Number(value) / 1048576));
  };
  // Per space, where the reserve beyond the live heap sits (see the metric's help).
  const spaces = ['new', 'old', 'large_object', 'code']
    .map((space) => {
      const of = (name: string) => mb(`nodejs_heap_space_size_${name}_bytes\\{space="${space}"\\}`);
      return `${space} ${of('used')}/${of('total')}`;
    })
    .join(' ');
  return `${mb('nodejs_heap_size_used_bytes')}/${mb('nodejs_heap_size_total_bytes')}, ${mb('nodejs_external_memory_bytes')} (${spaces})`;
}

/** SIGUSR2 to a responder started with --heapsnapshot-signal; waits until its snapshot is written. */
async function heapSnapshot(pid: number, dir: string): Promise<void> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  for (let size = -1; ; await delay(1000)) {
    const file = readdirSync(dir).find((name) => !before.has(name) && name.includes(`.${pid}.`));
    if (!file) continue;
    const now = statSync(join(dir, file)).size;
    if (now > 0 && now === size) return;
    size = now;
  }
}

async function sweep(sizes: readonly number[]): Promise<void> {
  const extra = 500;
  const rows: string[][] = [];
  for (const size of sizes) {
    const topology = await createTopology('direct');
    try {
      await addSources(topology);
      // Its metrics say how much of the RSS is live JavaScript heap (read in its namespace).
      const metricsPort = await freeTcpPort('127.0.0.1');
      const responder = await startIkeNodeResponder(topology.right, 'ike-node', size + 2 * extra, {
        metricsPort,
      });
      await delay(500);
      const rss0 = rssKb(responder.pid);
      const burstCpu0 = cpuTicks(responder.pid);
      const bulk = await ownLoad(topology.left, 0, size, { hold: true });
      const burstCpu = cpuTicks(responder.pid) - burstCpu0;
      const rss = rssKb(responder.pid);
      // CPU per new SA at this size, twice: at once, the burst's state still in the heap; and after
      // the settle, when the daemon has given memory back (src/daemon/heap-mode.ts) and the first
      // new SAs pay for the full GC that grows the heap again. Each probe is a second generator
      // beside the first (which holds its SAs): other source ports.
      const probe = async (first: number, port: number) => {
        const cpu0 = cpuTicks(responder.pid);
        const load = await ownLoad(topology.left, first, extra, { port });
        const cpu = cpuTicks(responder.pid) - cpu0;
        return { load, msPerSa: msPerSa(cpu, load.result.established) };
      };
      const atOnce = await probe(size, 600);
      // Main and quick mode messages are kept 30 s for repeats, and garbage waits for the
      // collector: what holding the SAs costs shows once that has passed. A full GC under way
      // (V8's memory reducer, say) moves the RSS for a few seconds, so one reading could land on
      // that: the median of the last ten seconds' readings, once a second, and the peak.
      const samples: number[] = [];
      for (const end = Date.now() + SETTLE_MS; Date.now() < end; await delay(1000)) {
        samples.push(rssKb(responder.pid));
      }
      const settled = median(samples.slice(-10));
      const peak = peakRssKb(responder.pid);
      const heap = await heapFigures(topology.right, metricsPort);
      if (values['heap-snapshots']) await heapSnapshot(responder.pid, values['heap-snapshots']);
      const timings: number[] = [];
      for (let i = 0; i < 7; i++) {
        const start = performance.now();
        await controlRequest(responder.socket!, { command: 'status', name: clientName(i * 13) });
        timings.push(performance.now() - start);
      }
      const afterSettle = await probe(size + extra, 700);
      rows.push([
        String(size),
        `${bulk.result.established}/${size}`,
        String(bulk.result.retransmits),
        msPerSa(burstCpu, bulk.result.established).toFixed(2),
        atOnce.msPerSa.toFixed(2),
        afterSettle.msPerSa.toFixed(2),
        median(timings).toFixed(1),
        String(Math.round(rss / 1024)),
        ((rss - rss0) / Math.max(1, bulk.result.established)).toFixed(1),
        String(Math.round(settled / 1024)),
        ((settled - rss0) / Math.max(1, bulk.result.established + atOnce.load.result.established)).toFixed(1),
        String(Math.round(peak / 1024)),
        heap,
      ]);
      await afterSettle.load.release();
      await atOnce.load.release();
      await bulk.release();
      await responder.stop();
    } finally {
      await topology.destroy();
    }
    console.log(
      table(
        [
          'SAs up',
          'established',
          'retransmitted',
          'cpu ms/SA in the burst',
          `cpu ms/new SA (next ${extra}, at once)`,
          '(after the settle)',
          'status ms',
          'RSS MB',
          'RSS kB/SA',
          `RSS MB ${SETTLE_MS / 1000} s later (median of 10 s)`,
          'kB/SA',
          'peak RSS MB',
          'heap used/reserved, external MB',
        ],
        rows,
      ),
    );
    console.log();
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:handshake runs as root (network namespaces)');
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: npm run build`);
  mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  const responders = values.responders!.split(',') as ResponderKind[];
  const parts = values.parts!.split(',');
  const initiators: InitiatorKind[] = !parts.includes('compare')
    ? []
    : values.initiator === 'both'
      ? ['own', 'charon']
      : [values.initiator as InitiatorKind];
  console.log(
    `bench:handshake  ${HANDSHAKE}, ${IKE} / ESP ${ESP}, N = ${N}, ${RUNS} runs, ` +
      `${availableParallelism()} CPUs; own load: ${SOURCES.length} addresses, ${CONCURRENCY} in flight\n`,
  );
  const ceiling = dhCeiling();
  console.log(
    `Diffie-Hellman ceiling (${IKE.split('-').pop()}, one responder key exchange): ${ceiling.toFixed(0)}/s per core\n`,
  );
  const all: Measured[] = [];
  for (const initiator of initiators) {
    const results: Measured[] = [];
    for (let run = 0; run < RUNS; run++) {
      for (const responder of responders) {
        const m = await measure(responder, initiator);
        results.push(m);
        console.log(table(HEADER, [row(m)]).split('\n')[1]);
      }
    }
    all.push(...results);
    // Medians per responder, then the ratios against charon with the same exponents and its defaults.
    const med = (kind: string, f: (m: Measured) => number) =>
      median(results.filter((m) => m.responder === kind).map(f));
    const cpuPerSa = (m: Measured) => msPerSa(m.cpuTicks, m.established);
    const rate = (m: Measured) => m.established / m.seconds;
    console.log(`\n${initiator} load, medians of ${RUNS}:`);
    console.log(
      table(
        ['responder', 'SAs/s', 'cpu ms/SA', 'main/total', 'fraction of DH ceiling'],
        responders.map((kind) => [
          kind,
          med(kind, rate).toFixed(0),
          med(kind, cpuPerSa).toFixed(2),
          kind.startsWith('ike-node')
            ? med(kind, (m) => (m.mainTicks ?? 0) / Math.max(1, m.cpuTicks)).toFixed(2)
            : '-',
          ((med(kind, rate) / (ceiling * availableParallelism())) * 100).toFixed(0) + '%',
        ]),
      ),
    );
    for (const charon of responders.filter((kind) => kind.startsWith('charon'))) {
      for (const ours of responders.filter((kind) => kind.startsWith('ike-node'))) {
        console.log(
          `  ${ours} / ${charon}: CPU per SA ${(med(ours, cpuPerSa) / med(charon, cpuPerSa)).toFixed(2)}, ` +
            `SAs/s ${(med(ours, rate) / med(charon, rate)).toFixed(2)}`,
        );
      }
    }
    console.log();
  }
  if (parts.includes('pinning')) await pinning();
  const sizes = values.sweep!.split(',').filter(Boolean).map(Number);
  if (parts.includes('sweep') && sizes.length) await sweep(sizes);
  writeFileSync(join(REPO_ROOT, 'bench', 'results', 'handshake.json'), JSON.stringify(all, null, 1));
}

/**
 * More than one core: the ike-node responder pinned to one core with Diffie-Hellman on its event
 * loop, against pinned to two with the worker pool, under the same load (alternated), the load
 * generator pinned to the second core.
 */
async function pinning(): Promise<void> {
  if (availableParallelism() < 2) return;
  // The load generator has the second core in every case, so that the responder's share of the
  // machine is what changes: one core without workers, or both with them. charon with short
  // exponents on one core beside it: each responder with a core of its own, which the shared
  // layout of the comparison above cannot give (there the generator takes CPU from whichever
  // responder is measured).
  const layouts = [
    { kind: 'ike-node', cpus: '0', workers: 0 },
    { kind: 'ike-node', cpus: '0,1', workers: 2 },
    { kind: 'charon-short', cpus: '0', workers: 0 },
  ] as const;
  const rows: string[][] = [];
  const rates = new Map<(typeof layouts)[number], number[]>();
  for (let run = 0; run < RUNS; run++) {
    for (const layout of layouts) {
      const { kind, cpus, workers } = layout;
      const topology = await createTopology('direct');
      try {
        await addSources(topology);
        const charon = kind === 'charon-short';
        const responder = charon
          ? await startCharonResponder(topology.right, kind)
          : await startIkeNodeResponder(topology.right, kind, N, { cpus, workers });
        // charon's threads, all of them (it has a pool), onto the core.
        if (charon)
          execFileSync('taskset', ['-a', '-p', '-c', cpus, String(responder.pid)], { stdio: 'ignore' });
        await delay(500);
        const cpu0 = cpuTicks(responder.pid);
        const main0 = cpuTicks(responder.pid, responder.pid, false);
        const { result, release } = await ownLoad(topology.left, 0, N, { cpus: '1' });
        await release();
        const cpu = cpuTicks(responder.pid) - cpu0;
        const main = cpuTicks(responder.pid, responder.pid, false) - main0;
        const label = charon ? `charon-short, core ${cpus}` : `ike-node, cores ${cpus}, ${workers} workers`;
        const rate = result.established / result.seconds;
        rates.set(layout, [...(rates.get(layout) ?? []), rate]);
        rows.push([
          label,
          `${result.established}/${N}`,
          rate.toFixed(0),
          msPerSa(cpu, result.established).toFixed(2),
          charon ? '-' : msPerSa(main, result.established).toFixed(2),
        ]);
        await responder.stop();
      } finally {
        await topology.destroy();
      }
    }
  }
  console.log('responders pinned (taskset), own load on core 1:');
  console.log(table(['responder', 'up', 'SAs/s', 'cpu ms/SA', 'main ms/SA'], rows));
  const [ikeNodeOneCore, , charonShortOneCore] = layouts;
  const oneCore = median(rates.get(ikeNodeOneCore) ?? [0]);
  const charonOneCore = median(rates.get(charonShortOneCore) ?? [0]);
  console.log(
    `one core each, medians of ${RUNS}: ike-node ${oneCore.toFixed(0)} SAs/s, charon-short ` +
      `${charonOneCore.toFixed(0)}: ${(oneCore / Math.max(1, charonOneCore)).toFixed(2)} times`,
  );
  console.log();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
