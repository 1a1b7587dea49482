import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { controlRequest } from '../../src/daemon/control.js';
import { floodAnswers, prepareFloodNamespace, startFlood, type FloodReport } from '../lib/flood.js';
import { startIkeNode, watchSetups, type IkeNode } from '../lib/ike-node.js';
import { createStar, delay, type Ns, type Spoke } from '../lib/netns.js';
import { until } from '../lib/scenario.js';
import {
  charonSetupTimes,
  startCharon,
  swanctlConnection,
  type Charon,
  type SwanctlConnectionSpec,
} from '../lib/strongswan.js';

/**
 * A spoofed first-message flood against a road-warrior gateway (issue 15): one ike-node responder
 * with a peer of "any" for each IKE version, 50 legitimate peers (strongSwan and ike-node
 * initiators, IKEv1 and IKEv2) connecting once without a flood (the baseline) and once while
 * 198.51.100.0/24 sends main mode message 1 and IKE_SA_INIT, each from its own address and port,
 * at 2,500 a second (at least 10,000 in all). Every legitimate peer must come up both times; the
 * setup times (initiate to child SA up), the responder's peak memory, its log volume, its CPU time
 * and what it answered the flood are printed; memory and log are bounded (a table or a log line
 * per flood packet would break the bounds); the half-open counters in the metrics show that the
 * flood was refused and evicted.
 *
 * The namespaces: the gateway in the hub, and one spoke each for strongSwan, the ike-node
 * initiators and the flooder (netns.ts createStar). Each legitimate peer has its own address on
 * its spoke's lo (203.0.113.0/25 strongSwan, 203.0.113.128/25 ike-node), each round its own
 * addresses and identities. A peer of each kind and version comes up first: the first
 * negotiations of the gateway and of the initiators' daemon pay one-time costs (worker threads
 * starting, Diffie-Hellman set-up, compilation) that a cold baseline would count (its median
 * was 1.4-3.8 s cold, against 0.07-0.7 s warm).
 */

const GATEWAY = '192.0.2.1';
const GATEWAY_SUBNET = '192.0.2.240/28';
const FLOOD_PREFIX = '198.51.100';
const PSK = 'flood-scenario-psk-2f8c0a61';
const IKE = { 1: 'aes128-sha1-modp1024', 2: 'aes128-sha256-modp2048' } as const;
const ESP = 'aes128-sha1';
/** Per round: strongSwan and ike-node peers of each IKE version (15 + 15 + 10 + 10 = 50). */
const SWAN_PER_VERSION = 15;
const IKN_PER_VERSION = 10;
const FLOOD_RATE = 2500;
const FLOOD_MINIMUM = 10_000;
/** Every peer of a round must be up within this. */
const ROUND_TIMEOUT_MS = 60_000;
/** Bounds a regression breaks: a log line per flood packet, state or buffers per packet. */
const MAX_FLOOD_LOG_BYTES = 512 * 1024;
/** Peak RSS during the flood over the RSS after the baseline (measured: 19-31 MiB). */
const MAX_RSS_GROWTH_BYTES = 80 * 1024 * 1024;
/** The gateway's ike.maxHalfOpen (the default). */
const MAX_HALF_OPEN = 1024;

t.setTimeout(240_000);

interface Peer {
  name: string;
  version: 1 | 2;
  address: string;
  id: string;
}

/** Round r's peers on a spoke: addresses base+40r+1... on its lo, one identity each. */
function peers(kind: 's' | 'i', round: number, perVersion: number, base: number): Peer[] {
  return Array.from({ length: 2 * perVersion }, (_, k) => {
    const name = `${kind}${round}-${k}`;
    return {
      name,
      version: k % 2 === 0 ? 1 : 2,
      address: `203.0.113.${base + 40 * round + k + 1}`,
      id: `${name}@peers.example`,
    };
  });
}

function swanctlPeer(peer: Peer): SwanctlConnectionSpec {
  return {
    name: peer.name,
    version: peer.version,
    local_addrs: peer.address,
    remote_addrs: GATEWAY,
    proposals: IKE[peer.version],
    local_id: peer.id,
    remote_id: GATEWAY,
    psk: PSK,
    children: [
      {
        name: peer.name,
        mode: 'tunnel',
        local_ts: `${peer.address}/32`,
        remote_ts: GATEWAY_SUBNET,
        esp_proposals: ESP,
        start_action: 'start',
      },
    ],
  };
}

function ikeNodeInitiators(dir: string, list: Peer[]): object {
  return {
    listen: { addresses: list.map((peer) => peer.address) },
    control: { socket: join(dir, 'ike-node.sock') },
    kernel: 'memory',
    log: { level: 'info' },
    ikePolicies: {
      v1: { version: 1, proposals: [IKE[1]] },
      v2: { version: 2, proposals: [IKE[2]] },
    },
    ipsecPolicies: { esp: { proposals: [ESP] } },
    connections: Object.fromEntries(
      list.map((peer) => [
        peer.name,
        {
          ikePolicy: `v${peer.version}`,
          ipsecPolicy: 'esp',
          local: { address: peer.address, id: peer.id, subnets: [`${peer.address}/32`] },
          peer: { address: GATEWAY, id: GATEWAY, subnets: [GATEWAY_SUBNET] },
          psk: PSK,
          start: 'respond',
        },
      ]),
    ),
  };
}

function gatewayConfig(dir: string, metricsPort: number): object {
  const roadWarriors = (version: 1 | 2) => ({
    ikePolicy: `v${version}`,
    ipsecPolicy: 'esp',
    local: { address: GATEWAY, subnets: [GATEWAY_SUBNET] },
    peer: { address: 'any' },
    psk: PSK,
  });
  return {
    listen: { addresses: [GATEWAY] },
    control: { socket: join(dir, 'ike-node.sock') },
    kernel: 'memory',
    // What a gateway runs with: info, not debug.
    log: { level: 'info' },
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    ikePolicies: {
      v1: { version: 1, proposals: [IKE[1]] },
      v2: { version: 2, proposals: [IKE[2]] },
    },
    ipsecPolicies: { esp: { proposals: [ESP] } },
    connections: { 'rw-v1': roadWarriors(1), 'rw-v2': roadWarriors(2) },
  };
}

async function addAddresses(ns: Ns, addresses: string[]): Promise<void> {
  await ns.exec('ip', ['-batch', '-'], {
    input: addresses.map((address) => `addr add ${address}/32 dev lo\n`).join(''),
  });
}

/** A TCP port the kernel hands out in `ns` (the namespace is ours: nothing takes it after). */
async function freePortIn(ns: Ns): Promise<number> {
  const script =
    "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => " +
    '{ console.log(s.address().port); s.close(); });';
  const { stdout } = await ns.exec(process.execPath, ['-e', script]);
  return Number(stdout.trim());
}

/** The gateway's metrics, scraped inside its namespace, as name{labels} -> value. */
async function scrape(ns: Ns, port: number): Promise<Map<string, number>> {
  const script = `fetch('http://127.0.0.1:${port}/metrics').then(r => r.text()).then(t => process.stdout.write(t))`;
  const { stdout } = await ns.exec(process.execPath, ['-e', script]);
  const samples = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const match = /^([^#\s][^ ]*) (\S+)$/.exec(line);
    if (match) samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

/**
 * The gateway's UDP socket on `port`: bytes queued in the kernel (as the kernel counts them,
 * about 1,280 per small datagram) and datagrams it dropped for a full buffer (`ss -m`).
 */
async function socketQueue(ns: Ns, port: number): Promise<{ queued: number; drops: number }> {
  const { stdout } = await ns.exec('ss', ['-Huanm', 'sport', '=', `:${port}`]);
  const skmem = /skmem:\(r(\d+),.*?,d(\d+)\)/.exec(stdout);
  return { queued: Number(skmem?.[1] ?? NaN), drops: Number(skmem?.[2] ?? NaN) };
}

/** VmHWM and VmRSS of a process, in bytes. */
function memory(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { peak: kib('VmHWM'), now: kib('VmRSS') };
}

/** User + system CPU seconds of a process. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const summary = (values: number[]): string => {
  const sorted = [...values].sort((a, b) => a - b);
  const s = (x: number) => `${x.toFixed(3)} s`;
  return `min ${s(sorted[0]!)}, median ${s(median(sorted))}, max ${s(sorted.at(-1)!)}`;
};
const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

interface Round {
  /** Seconds from initiate to child SA up, per peer name. */
  setups: Map<string, number>;
  missing: string[];
}

t.test('a spoofed first-message flood: 50 legitimate peers up, memory and log bounded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-flood-'));
  const star = await createStar(['swan', 'ikn', 'flood']);
  const [swanSpoke, iknSpoke, floodSpoke] = star.spokes as [Spoke, Spoke, Spoke];
  /** Set once started: their logs' tails are printed on a failure. */
  const started: { gateway?: IkeNode; charon?: Charon } = {};
  t.teardown(async () => {
    if (!t.passing()) {
      const tail = (text: string) => text.split('\n').slice(-80).join('\n');
      if (started.gateway) t.comment(`--- gateway log\n${tail(started.gateway.log())}`);
      if (started.charon) t.comment(`--- charon log\n${tail(started.charon.log())}`);
    }
    await star.destroy();
    if (!process.env.IKE_NODE_KEEP_DIRS) rmSync(dir, { recursive: true, force: true });
    else t.comment(`kept ${dir}`);
  });

  // Addresses and routes.
  await star.hub.exec('ip', ['addr', 'add', `${GATEWAY}/32`, 'dev', 'lo']);
  const swanPeers = [0, 1].map((round) => peers('s', round, SWAN_PER_VERSION, 0));
  const iknPeers = [0, 1].map((round) => peers('i', round, IKN_PER_VERSION, 128));
  const warmUp = peers('s', 2, 1, 0);
  const iknWarmUp = peers('i', 2, 1, 128);
  await addAddresses(
    swanSpoke.ns,
    [...swanPeers.flat(), ...warmUp].map((peer) => peer.address),
  );
  await addAddresses(
    iknSpoke.ns,
    [...iknPeers.flat(), ...iknWarmUp].map((peer) => peer.address),
  );
  await star.route(swanSpoke, '203.0.113.0/25');
  await star.route(iknSpoke, '203.0.113.128/25');
  await prepareFloodNamespace(floodSpoke.ns, FLOOD_PREFIX, GATEWAY);
  await star.route(floodSpoke, `${FLOOD_PREFIX}.0/24`);

  const metricsPort = await freePortIn(star.hub);
  const gateway = (started.gateway = await startIkeNode(
    star.hub,
    gatewayConfig(join(dir, 'gateway'), metricsPort),
    {
      dir: join(dir, 'gateway'),
      logLevel: 'info',
    },
  ));
  const charon = (started.charon = await startCharon(swanSpoke.ns, {
    name: 'peers',
    dir: join(dir, 'strongswan'),
    logMilliseconds: true,
    // Tunnels for IKE only: no routes (50 of them to one subnet).
    extraCharonConf: '  install_routes = no\n',
    // Resends at 1, 2.8, 6.0, 11.9, 22.4 and 41.3 s: a peer given up on fails the round.
    retransmit: { timeout: 1, tries: 6 },
  }));

  // One daemon for every ike-node initiator, started once: warm in both rounds, as charon is.
  const iknDir = join(dir, 'initiators');
  const initiatorsSocket = join(iknDir, 'ike-node.sock');
  await startIkeNode(iknSpoke.ns, ikeNodeInitiators(iknDir, [...iknPeers.flat(), ...iknWarmUp]), {
    dir: iknDir,
    logLevel: 'info',
  });
  const watch = await watchSetups(initiatorsSocket);
  t.teardown(() => watch.close());

  /** Brings up these peers at once and waits for every one (or the timeout). */
  const bringUp = async (what: string, swan: Peer[], ikn: Peer[]): Promise<Round> => {
    const names = [...swan, ...ikn].map((peer) => peer.name);
    const setups = (): Map<string, number> => {
      const all = charonSetupTimes(charon.log());
      for (const [name, seconds] of watch.setups) all.set(name, seconds);
      return all;
    };
    await Promise.all([
      charon.load(swanctlConnection(...swan.map(swanctlPeer))),
      ...ikn.map((peer) => controlRequest(initiatorsSocket, { command: 'initiate', name: peer.name })),
    ]);
    await until(
      async () => (names.every((name) => setups().has(name)) ? true : undefined),
      ROUND_TIMEOUT_MS,
      `${what}: every peer up`,
    ).catch(() => {});
    const all = setups();
    return {
      setups: new Map(names.filter((name) => all.has(name)).map((name) => [name, all.get(name)!])),
      missing: names.filter((name) => !all.has(name)),
    };
  };
  const round = (r: number) => bringUp(`round ${r}`, swanPeers[r]!, iknPeers[r]!);

  // The gateway's and the initiators' first negotiations pay one-time costs: not in the baseline.
  const warm = await bringUp('warm-up', warmUp, iknWarmUp);
  t.same(warm.missing, [], 'warm-up: a peer of each version and kind up');

  // The baseline: no flood.
  const baseline = await round(0);
  t.same(baseline.missing, [], 'baseline: all 50 legitimate peers up');
  const baselineMemory = memory(gateway.pid);
  const beforeFlood = await scrape(star.hub, metricsPort);

  // The flood, and the same 50 (new addresses and identities) once it has filled the table.
  const logBefore = statSync(join(dir, 'gateway', 'ike-node.log')).size;
  const cpuBefore = cpuSeconds(gateway.pid);
  const flood = startFlood(floodSpoke.ns, {
    target: GATEWAY,
    port: 500,
    prefix: FLOOD_PREFIX,
    rate: FLOOD_RATE,
    minimum: FLOOD_MINIMUM,
    maxSeconds: 90,
    proposals: IKE,
  });
  let report: FloodReport | undefined;
  const queue = { peak: 0, drops: 0 };
  let flooded: Round;
  try {
    await until(async () => (flood.sent() >= 2500 ? true : undefined), 20_000, 'the flood under way');
    const sentAtStart = flood.sent();
    // The gateway's port 500 queue, sampled while the flooded round runs.
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const sample = await socketQueue(star.hub, 500);
        queue.peak = Math.max(queue.peak, sample.queued);
        queue.drops = sample.drops;
        await delay(200);
      }
    })();
    try {
      flooded = await round(1);
    } finally {
      sampling = false;
      await sampler;
    }
    t.comment(
      `flood: ${sentAtStart} first messages sent before the peers started, ${flood.sent()} when all were up`,
    );
  } finally {
    report = await flood.stop();
  }
  // What the gateway still had queued is handled before its counters and log are read.
  await delay(500);
  const cpuFlood = cpuSeconds(gateway.pid) - cpuBefore;
  const logBytes = statSync(join(dir, 'gateway', 'ike-node.log')).size - logBefore;
  const afterFlood = await scrape(star.hub, metricsPort);
  const peakMemory = memory(gateway.pid);
  const answers = await floodAnswers(floodSpoke.ns);

  t.same(flooded.missing, [], 'under the flood: all 50 legitimate peers up');
  t.equal(report.failed, 0, 'the flooder sent every message it meant to');
  t.ok(report.sent >= FLOOD_MINIMUM, `${report.sent} spoofed first messages (at least ${FLOOD_MINIMUM})`);
  t.ok(report.rate >= 2000, `at ${report.rate.toFixed(0)} a second (at least 2,000)`);
  t.equal(report.sources, report.sent, 'each from its own source address and port');
  t.equal(report.addresses, 254, 'from the whole /24');
  const counter = (samples: Map<string, number>, name: string) => samples.get(name) ?? NaN;
  const refused =
    counter(afterFlood, 'ike_node_half_open_refused_total') -
    counter(beforeFlood, 'ike_node_half_open_refused_total');
  const evicted =
    counter(afterFlood, 'ike_node_half_open_evicted_total') -
    counter(beforeFlood, 'ike_node_half_open_evicted_total');
  t.ok(refused + evicted > 0, `the gateway's metrics: ${refused} refused, ${evicted} evicted half-open`);
  // Unread first messages dropped by the daemon's queue (legitimate peers first): 0 unless the
  // gateway falls behind the flood by a whole queue.
  const queueDropped =
    counter(afterFlood, 'ike_node_first_messages_dropped_total') -
    counter(beforeFlood, 'ike_node_first_messages_dropped_total');
  t.ok(queueDropped >= 0, `first messages the gateway's queue dropped unread: ${queueDropped}`);
  t.equal(counter(afterFlood, 'ike_node_internal_errors_total'), 0, 'no internal error in the gateway');
  // strongSwan drops its SAs of a round when the next loads; ike-node's initiators keep theirs.
  t.equal(
    counter(afterFlood, 'ike_node_ike_sas{state="established",version="1"}') +
      counter(afterFlood, 'ike_node_ike_sas{state="established",version="2"}'),
    swanPeers[1]!.length + iknPeers.flat().length + iknWarmUp.length,
    "the gateway holds the flood round's IKE SAs and the ike-node initiators' earlier ones",
  );
  t.ok(logBytes <= MAX_FLOOD_LOG_BYTES, `gateway log during the flood: ${logBytes} bytes`);
  const halfOpen = [...afterFlood]
    .filter(([name]) => name.startsWith('ike_node_ike_sas{') && !name.includes('state="established"'))
    .reduce((sum, [, n]) => sum + n, 0);
  t.ok(
    halfOpen > 0 && halfOpen <= MAX_HALF_OPEN,
    `the gateway's half-open IKE SAs: ${halfOpen} (at most ${MAX_HALF_OPEN})`,
  );
  const growth = peakMemory.peak - baselineMemory.now;
  t.ok(
    growth <= MAX_RSS_GROWTH_BYTES,
    `gateway peak RSS ${mib(peakMemory.peak)}, ${mib(growth)} over its RSS before the flood`,
  );

  const base = [...baseline.setups.values()];
  const under = [...flooded.setups.values()];
  const ratio = median(under) / median(base);
  t.comment(`setup without the flood (${base.length} peers): ${summary(base)}`);
  t.comment(`setup under the flood (${under.length} peers): ${summary(under)}`);
  t.comment(`median under the flood / without: ${ratio.toFixed(2)} (the issue asks for at most 2)`);
  for (const [label, kind] of [
    ['strongSwan', 's'],
    ['ike-node', 'i'],
  ] as const) {
    for (const version of [1, 2] as const) {
      const group = (r: Round, n: number) =>
        [...r.setups].filter(
          ([name]) => name.startsWith(`${kind}${n}-`) && Number(name.split('-')[1]) % 2 === version - 1,
        );
      const without = group(baseline, 0).map(([, s]) => s);
      const withFlood = group(flooded, 1).map(([, s]) => s);
      t.comment(
        `  ${label} IKEv${version}: median ${median(without).toFixed(3)} s without, ${median(withFlood).toFixed(3)} s under the flood`,
      );
    }
  }
  t.comment(
    `flood: ${report.sent} messages (${report.byVersion[1]} main mode 1, ${report.byVersion[2]} IKE_SA_INIT) ` +
      `in ${report.seconds.toFixed(1)} s = ${report.rate.toFixed(0)}/s from ${report.addresses} addresses ` +
      `(the flooder used ${report.cpuSeconds.toFixed(1)} CPU s)`,
  );
  t.comment(
    `gateway: ${answers.packets} answers to the flood (${answers.bytes} bytes); ${refused} refused, ` +
      `${evicted} evicted half-open, ${queueDropped} dropped unread; ${cpuFlood.toFixed(1)} CPU s during the flood`,
  );
  t.comment(
    `gateway's port 500 socket during the flooded round: up to ${(queue.peak / 1024).toFixed(0)} kB queued ` +
      `(≈ ${Math.round(queue.peak / 1280)} datagrams, ${(queue.peak / 1280 / report.rate).toFixed(2)} s of the flood), ` +
      `${queue.drops} dropped by the kernel`,
  );
  t.comment(
    `gateway memory: ${mib(baselineMemory.now)} RSS after the baseline, peak ${mib(peakMemory.peak)} ` +
      `(VmHWM), ${mib(peakMemory.now)} after the flood; log: ${logBytes} bytes during the flood`,
  );
});
