import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlRequest } from '../../src/daemon/control.js';
import { startCapture, type Capture } from '../lib/capture.js';
import { startIkeNode, type IkeNode } from '../lib/ike-node.js';
import {
  decodeGuestRun,
  type GuestRun,
  isMainModule,
  keepCaptures,
  runGuestScenarios,
} from '../lib/kernel-lab-guest.js';
import {
  libreswanTunnel,
  parsePlutoLog,
  type PlutoChildSa,
  type PlutoIkeSa,
  type PlutoState,
  startPluto,
  withoutDebug,
} from '../lib/libreswan.js';
import { createTopology, delay, type Ns, type Topology, type TopologyKind } from '../lib/netns.js';
import { ends, type IkeNodeStatus, ikeNodeTunnel, type TunnelSpec, until } from '../lib/scenario.js';
import { startCharon, swanctlConnection, type Charon, type ParsedSa } from '../lib/strongswan.js';

/**
 * Runs INSIDE the qemu kernel lab (conformance/kernel-esp.test.ts boots it:
 * `node --import tsx conformance/kernel-lab/kernel-esp.ts`): ike-node's kernel backends carry real
 * ESP through the guest kernel. Nine scenarios, one boot:
 *
 * - `direct`: ike-node (xfrm) initiates two connections to strongSwan (kernel-netlink): a tunnel
 *   between the inner subnets (AES-GCM, PFS) and a transport-mode udp/1701 connection as an L2TP
 *   client makes (AES-CBC, HMAC-SHA-256). A ping through the tunnel, a udp/1701 datagram and its
 *   echo, then strongSwan rekeys the tunnel while a ping stream (every 20 ms) runs (strongSwan's
 *   IKEv1 default keeps the rekeyed SAs until they expire), then ike-node gets SIGTERM and must
 *   leave nothing behind in the kernel.
 * - `nat`: the same two connections with ike-node behind a masquerading NAT: ESP in UDP on 4500.
 * - `pfkey`: ike-node (xfrm) initiates to ike-node (pfkey, Linux af_key), tunnel mode, AES-CBC with
 *   HMAC-SHA1 (af_key has no AEAD and truncates HMAC-SHA-256 to 96 bits).
 * - `ikev2`: as `direct` in IKEv2: the transport child by CREATE_CHILD_SA over the tunnel's IKE SA.
 * - `libreswan`: ike-node (xfrm) and libreswan's pluto (XFRM, conformance/lib/libreswan.ts), IKEv2
 *   PSK, a tunnel between the inner subnets, in both roles one after the other on one topology and
 *   one pluto: ike-node initiates (AES-CBC, HMAC-SHA-256), pings cross both ways, ike-node stops
 *   (SIGTERM, Deletes); then a fresh ike-node responds to `whack --initiate` and picks AES-GCM from
 *   pluto's proposals, pings both ways, stops; last pluto stops, and neither kernel may keep
 *   anything.
 * - `acquire`: ike-node (xfrm) with `start: "on-traffic"` installs trap policies only; a ping from
 *   the inner subnet makes the kernel send an ACQUIRE, which starts the negotiation.
 * - `restart`, `restart-ikev2`, `restart-pfkey`: ike-node (xfrm in IKEv1 and IKEv2, pfkey in
 *   IKEv2) initiates a tunnel to strongSwan, which runs DPD every DPD_DELAY_SEC; a ping crosses,
 *   then ike-node is SIGKILLed, which leaves its SAs and policies in the kernel, and started again
 *   with the same configuration: it must remove what the killed run left before it installs
 *   anything, negotiate anew (its INITIAL-CONTACT tells strongSwan to drop the old SAs) and carry
 *   the ping again, well within one DPD period.
 *
 * Every scenario captures the outgoing packets of both peers' outer interfaces (`tcpdump -Q out`:
 * the guest kernel re-injects decrypted tunnel-mode packets on the receiving device, so a capture
 * of both directions would show plain ICMP that never crossed the wire).
 *
 * Output: result.json and the pcaps in $KLAB_OUT, and, because klab-run deletes $KLAB_OUT after a
 * successful run, the same (pcaps base64 encoded inside) printed on the console as gzip+base64
 * lines between RESULT_BEGIN and RESULT_END, which `decodeGuestResult` turns back into a
 * GuestResult on the host. The assertions are the host test's business.
 */

export const PSK = 'conformance-kernel-esp-psk-5e2d';
export const IKE_PROPOSAL = 'aes128-sha256-modp2048';
export const L2TP_PORT = 1701;

export type Peer = 'strongswan' | 'ike-node-pfkey' | 'libreswan';

export interface Scenario {
  name: string;
  /** IKE version of every connection. */
  version: 1 | 2;
  kind: TopologyKind;
  /**
   * Who answers ike-node (xfrm), which always sits on the left and initiates (against libreswan
   * it then responds too, see `responderEsp`).
   */
  peer: Peer;
  start: 'initiate' | 'on-traffic';
  /** IKE proposal (strongSwan's syntax, as ike-node takes it); IKE_PROPOSAL when not given. */
  ike?: string;
  /** strongSwan-style ESP proposal of the tunnel; a trailing DH group is the PFS group. */
  tunnelEsp: string;
  /** libreswan: ike-node's ESP proposal when it responds (`tunnelEsp` is its initiator's). */
  responderEsp?: string;
  /** libreswan: pluto's `ike=` and `esp=` (its own syntax), covering both of ike-node's runs. */
  libreswan?: { ike: string; esp: string };
  /** The transport-mode udp/1701 connection's ESP proposal, when the scenario has one. */
  transportEsp?: string;
  /** strongSwan rekeys the tunnel while a ping stream runs. */
  rekey: boolean;
  /**
   * SIGKILL and restart: ike-node runs on this kernel backend (instead of xfrm), is killed with
   * its tunnel up and started again with the same configuration; strongSwan runs DPD.
   */
  restart?: 'xfrm' | 'pfkey';
}

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'direct',
    version: 1,
    kind: 'direct',
    peer: 'strongswan',
    start: 'initiate',
    tunnelEsp: 'aes128gcm16-modp2048',
    transportEsp: 'aes256-sha256',
    rekey: true,
  },
  {
    name: 'nat',
    version: 1,
    kind: 'nat',
    peer: 'strongswan',
    start: 'initiate',
    tunnelEsp: 'aes128-sha1',
    transportEsp: 'aes128-sha1',
    rekey: false,
  },
  {
    name: 'pfkey',
    version: 1,
    kind: 'direct',
    peer: 'ike-node-pfkey',
    start: 'initiate',
    tunnelEsp: 'aes128-sha1-modp2048',
    rekey: false,
  },
  {
    name: 'ikev2',
    version: 2,
    kind: 'direct',
    peer: 'strongswan',
    start: 'initiate',
    tunnelEsp: 'aes256gcm16-modp2048',
    transportEsp: 'aes128-sha256',
    rekey: true,
  },
  {
    name: 'libreswan',
    version: 2,
    kind: 'direct',
    peer: 'libreswan',
    start: 'initiate',
    ike: 'aes256-sha256-modp2048',
    tunnelEsp: 'aes256-sha256',
    responderEsp: 'aes128gcm16',
    libreswan: { ike: 'aes256-sha2_256-modp2048', esp: 'aes256-sha2_256,aes_gcm128' },
    rekey: false,
  },
  {
    name: 'acquire',
    version: 1,
    kind: 'direct',
    peer: 'strongswan',
    start: 'on-traffic',
    tunnelEsp: 'aes256-sha1',
    rekey: false,
  },
  {
    name: 'restart',
    version: 1,
    kind: 'direct',
    peer: 'strongswan',
    start: 'initiate',
    tunnelEsp: 'aes128-sha256',
    rekey: false,
    restart: 'xfrm',
  },
  {
    name: 'restart-ikev2',
    version: 2,
    kind: 'direct',
    peer: 'strongswan',
    start: 'initiate',
    tunnelEsp: 'aes128gcm16',
    rekey: false,
    restart: 'xfrm',
  },
  {
    name: 'restart-pfkey',
    version: 2,
    kind: 'direct',
    peer: 'strongswan',
    start: 'initiate',
    // af_key: no AEAD, and HMAC-SHA-256 truncated to 96 bits (which ike-node refuses there).
    tunnelEsp: 'aes128-sha1',
    rekey: false,
    restart: 'pfkey',
  },
];

/**
 * strongSwan's DPD interval in the restart scenarios (dpd_delay): the restarted ike-node must have
 * the tunnel back, and traffic through it, well within one period.
 */
export const DPD_DELAY_SEC = 10;

/**
 * Pings through the tunnel: first a few, then a stream across the rekey, dense enough (every
 * 20 ms) that the switch to the new SAs happens with packets in flight both ways.
 */
export const PING_COUNT = 5;
export const STREAM_COUNT = 300;
export const STREAM_INTERVAL = 0.02;
/** The acquire scenario's ping: the first packets are dropped while the SA is negotiated. */
export const ACQUIRE_PING_COUNT = 30;

export interface Ping {
  code: number;
  transmitted: number;
  received: number;
  ms: number;
  output: string;
}

export interface UdpProbe {
  /** What the sender printed: { sent, echo } (echo: what came back, or null). */
  sender: { sent: boolean; echo: string | null; error?: string };
  /** What the listener on the other side printed: { from, port, data }, or undefined. */
  listener?: { from: string; port: number; data: string };
  listenerOutput: string;
}

/** The kernel's view in one namespace: `ip -s xfrm state` and `ip xfrm policy`. */
export interface Xfrm {
  state: string;
  policy: string;
}

export interface Snapshot {
  status?: IkeNodeStatus;
  xfrm: Xfrm;
  /** strongSwan's `swanctl --list-sas --raw`, parsed (strongSwan peers only). */
  sas?: ParsedSa[];
}

export interface StopResult {
  code: number;
  ms: number;
  xfrm: Xfrm;
}

/** The restart scenarios: ike-node killed with its tunnel up, then started again. */
export interface RestartResult {
  /** ike-node's kernel backend in both runs. */
  kernel: 'xfrm' | 'pfkey';
  /** The first run, tunnel up and a ping through it: both sides' state. */
  before: { ours: Snapshot; theirs: Snapshot; ping: Ping };
  /** SIGKILL: the exit status, and what ike-node's kernel holds right after. */
  killed: { code: number; xfrm: Xfrm };
  /** From the restart's spawn until its control socket answered (Node's start, the backend's). */
  msToReady: number;
  /** From the control socket until ike-node reported net Active again. */
  msToActive: number;
  /** From the control socket until the ping through the new SAs had ended. */
  msToRecovered: number;
  ping: Ping;
  /** The restarted daemon's log lines about what the killed run left (and removed). */
  cleanupLog: string[];
  /** strongSwan's log lines about INITIAL-CONTACT, DPD and the SAs it deleted after the restart. */
  peerLog: string[];
  /** Once strongSwan lists one IKE SA with one child (or 10 s passed): both sides. */
  after: { ours: Snapshot; theirs: Snapshot };
  /** SIGTERM to the restarted daemon: its kernel after it. */
  stop?: StopResult;
}

/** One of ike-node's runs against libreswan: ike-node started in `role`, checked, stopped. */
export interface LibreswanRun {
  role: 'initiator' | 'responder';
  /** ike-node's ESP proposal in this run. */
  esp: string;
  /** `whack --initiate` (when ike-node responds): exit code and the tail of its output. */
  whack?: { code: number; output: string };
  /** From ike-node's start until both ike-node and pluto had the child SA. */
  msToEstablished?: number;
  /** PING_COUNT pings from each side's inner address to the other's. */
  pings?: { fromOurs: Ping; fromTheirs: Ping };
  /** After both pings: ike-node's status and kernel, pluto's kernel, pluto's SAs from its log. */
  afterTraffic?: {
    ours: Snapshot;
    theirs: Snapshot;
    plutoIke?: PlutoIkeSa;
    plutoChild: PlutoChildSa;
  };
  /** SIGTERM to ike-node; pluto's states and kernel once it has acted on the Delete. */
  stop?: { ours: StopResult; plutoStates: PlutoState[]; theirXfrm: Xfrm };
}

export interface ScenarioResult {
  name: string;
  spec: Scenario;
  completed: boolean;
  error?: string;
  addresses: {
    left: string;
    right: string;
    leftSeenAs: string;
    leftInner: string;
    rightInner: string;
  };
  /** Acquire: before any traffic (trap policies only). */
  beforeTraffic?: { ours: Snapshot };
  /** Once ike-node reports every connection Active. */
  established?: { ours: Snapshot; msToActive: number };
  ping?: Ping;
  probe?: UdpProbe;
  /** After the ping and the probe: ike-node's status (with counters), both kernels, strongSwan. */
  afterTraffic?: { ours: Snapshot; theirs: Snapshot };
  rekey?: {
    swanctl: { code: number; output: string };
    ping: Ping;
    /** ike-node's status when its tunnel child's SPIs had changed, and how long after the rekey. */
    rekeyedStatus?: IkeNodeStatus;
    msToNewSpis?: number;
    after: { ours: Snapshot; theirs: Snapshot };
  };
  /** Acquire: ike-node's log lines about the ACQUIRE and the negotiation it started. */
  acquireLog?: string[];
  /** The restart scenarios: SIGKILL, start again, recovery. */
  restart?: RestartResult;
  /** libreswan: ike-node's two runs, then SIGTERM to pluto and its kernel after it. */
  libreswan?: { runs: LibreswanRun[]; plutoStop?: StopResult };
  /** SIGTERM to ike-node (and to the pfkey peer): exit code, then both kernels. */
  stop?: { ours: StopResult; theirs: StopResult; theirSasAfter?: ParsedSa[] };
  timings: Record<string, number>;
  /** Capture file names (in $KLAB_OUT and `GuestResult.files`): outgoing packets of each side. */
  pcaps: { left?: string; right?: string };
  /** tcpdump's closing counters, by capture file name. */
  captureCounters?: Record<string, string>;
  logs: { left: string; right: string };
}

export type GuestResult = GuestRun<ScenarioResult>;

/** Finds the console copy in klab-run's output and decodes it. */
export function decodeGuestResult(output: string): GuestResult | undefined {
  return decodeGuestRun<ScenarioResult>(output);
}

const tail = (text: string, lines = 120): string => text.split('\n').slice(-lines).join('\n');
const now = (): number => performance.now();

const DH_GROUP = /^(modp|ecp|curve|x25519|x448)/;

/** A strongSwan ESP proposal as ike-node's ipsecPolicy: the proposal and its PFS group. */
function ipsecPolicy(esp: string, mode: 'tunnel' | 'transport'): object {
  const parts = esp.split('-');
  const pfs = DH_GROUP.test(parts.at(-1) ?? '') ? parts.pop() : undefined;
  return { mode, proposals: [parts.join('-')], pfs: pfs ?? 'none' };
}

interface EndSpec {
  address: string;
  /** How the other side addresses this end. */
  seenAs: string;
  subnet: string;
}

/** ike-node's peers.json: the tunnel `net` and, when asked, the transport connection `l2tp`. */
function ikeNodeConfig(
  dir: string,
  kernel: 'xfrm' | 'pfkey',
  ours: EndSpec,
  theirs: EndSpec,
  spec: Scenario,
  role: 'initiator' | 'responder',
): object {
  const start = role === 'responder' ? 'respond' : spec.start;
  const connections: Record<string, object> = {
    net: {
      ikePolicy: 'ike',
      ipsecPolicy: 'tunnel',
      local: { address: ours.address, id: ours.address, subnets: [ours.subnet] },
      peer: { address: theirs.seenAs, id: theirs.address, subnets: [theirs.subnet] },
      psk: PSK,
      start,
    },
  };
  const ipsecPolicies: Record<string, object> = { tunnel: ipsecPolicy(spec.tunnelEsp, 'tunnel') };
  if (spec.transportEsp !== undefined) {
    ipsecPolicies['transport'] = ipsecPolicy(spec.transportEsp, 'transport');
    connections['l2tp'] = {
      ikePolicy: 'ike',
      ipsecPolicy: 'transport',
      local: { address: ours.address, id: ours.address, selectors: [{ protocol: 'udp', port: L2TP_PORT }] },
      peer: {
        address: theirs.seenAs,
        id: theirs.address,
        selectors: [{ protocol: 'udp', port: L2TP_PORT }],
      },
      psk: PSK,
      start,
    };
  }
  return {
    listen: { addresses: [ours.address] },
    control: { socket: join(dir, 'ike-node.sock') },
    log: { level: 'debug' },
    kernel,
    ikePolicies: { ike: { version: spec.version, proposals: [spec.ike ?? IKE_PROPOSAL] } },
    ipsecPolicies,
    connections,
  };
}

/** strongSwan's side: one connection, the tunnel child and (when asked) the l2tp child. */
function swanctlConfig(ours: EndSpec, theirs: EndSpec, spec: Scenario): string {
  const children: Parameters<typeof swanctlConnection>[0]['children'] = [
    {
      name: 'net',
      mode: 'tunnel',
      local_ts: theirs.subnet,
      remote_ts: ours.subnet,
      esp_proposals: spec.tunnelEsp,
    },
  ];
  if (spec.transportEsp !== undefined) {
    children.push({
      name: 'l2tp',
      mode: 'transport',
      // dynamic: the IKE addresses, i.e. behind the NAT the NAT's address, which is what the
      // NAT leaves in the (only) IP header of a transport-mode packet.
      local_ts: `dynamic[udp/${L2TP_PORT}]`,
      remote_ts: `dynamic[udp/${L2TP_PORT}]`,
      esp_proposals: spec.transportEsp,
    });
  }
  return swanctlConnection({
    name: 'net',
    version: spec.version,
    ...(spec.restart && { dpd_delay: `${DPD_DELAY_SEC}s` }),
    local_addrs: theirs.address,
    remote_addrs: ours.seenAs,
    proposals: spec.ike ?? IKE_PROPOSAL,
    local_id: theirs.address,
    remote_id: ours.address,
    psk: PSK,
    children,
  });
}

async function xfrmOf(ns: Ns): Promise<Xfrm> {
  const [state, policy] = await Promise.all([
    ns.exec('ip', ['-s', 'xfrm', 'state'], { allowFail: true }),
    ns.exec('ip', ['xfrm', 'policy'], { allowFail: true }),
  ]);
  return { state: state.stdout + state.stderr, policy: policy.stdout + policy.stderr };
}

async function ping(ns: Ns, from: string, to: string, count: number, interval: number): Promise<Ping> {
  const started = now();
  const result = await ns.exec(
    'ping',
    ['-n', '-c', String(count), '-i', String(interval), '-W', '2', '-I', from, to],
    { allowFail: true, timeoutMs: (count * interval + 20) * 1000 },
  );
  const summary = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(result.stdout);
  return {
    code: result.code,
    transmitted: Number(summary?.[1] ?? 0),
    received: Number(summary?.[2] ?? 0),
    ms: Math.round(now() - started),
    output: tail(result.stdout + result.stderr, count + 8),
  };
}

/**
 * One UDP datagram from `from`:1701 to `to`:1701 (what an L2TP client sends first), which a
 * listener on the other side echoes back: both directions through the transport-mode SAs.
 */
async function udpProbe(client: Ns, server: Ns, from: string, to: string): Promise<UdpProbe> {
  const listener = server.spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:dgram').createSocket('udp4');
       const timer = setTimeout(() => process.exit(3), 20000);
       s.on('message', (m, r) => {
         console.log(JSON.stringify({ from: r.address, port: r.port, data: m.toString() }));
         s.send(Buffer.concat([Buffer.from('echo: '), m]), r.port, r.address, () => { clearTimeout(timer); s.close(); });
       });
       s.bind(${L2TP_PORT}, '${to}', () => console.log('READY'));`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let listenerOutput = '';
  const exited = new Promise<void>((resolve) => listener.once('exit', () => resolve()));
  listener.stdout!.on('data', (chunk: Buffer) => (listenerOutput += chunk.toString()));
  listener.stderr!.on('data', (chunk: Buffer) => (listenerOutput += chunk.toString()));
  await until(async () => (listenerOutput.includes('READY') ? true : undefined), 20_000, 'the udp listener');
  const sent = await client.exec(
    process.execPath,
    [
      '-e',
      `const s = require('node:dgram').createSocket('udp4');
       let sent = false;
       const done = (echo, error) => { console.log(JSON.stringify({ sent, echo, error })); process.exit(0); };
       setTimeout(() => done(null, 'no echo within 10 s'), 10000);
       s.on('message', (m) => done(m.toString()));
       s.bind(${L2TP_PORT}, '${from}', () =>
         s.send('l2tp probe', ${L2TP_PORT}, '${to}', (e) => { if (e) done(null, e.message); sent = true; }));`,
    ],
    { allowFail: true, timeoutMs: 30_000 },
  );
  await Promise.race([exited, delay(3000)]);
  listener.kill('SIGKILL');
  let sender: UdpProbe['sender'];
  try {
    sender = JSON.parse(sent.stdout.trim().split('\n').at(-1) ?? '') as UdpProbe['sender'];
  } catch {
    sender = { sent: false, echo: null, error: `sender printed ${sent.stdout}${sent.stderr}` };
  }
  const line = listenerOutput.split('\n').find((l) => l.startsWith('{'));
  return {
    sender,
    ...(line && { listener: JSON.parse(line) as UdpProbe['listener'] }),
    listenerOutput,
  };
}

/** ike-node's status straight from its control socket (what `ike-node status --json` prints). */
const statusOf = async (dir: string): Promise<IkeNodeStatus> =>
  (await controlRequest(join(dir, 'ike-node.sock'), { command: 'status' }, 10_000)) as IkeNodeStatus;

const childSpis = (status: IkeNodeStatus | undefined, connection: string): string[] =>
  (status?.find((c) => c.name === connection)?.childSas ?? []).map((c) => `${c.spiIn}/${c.spiOut}`);

/** What every scenario stands on: its directory, topology, captures, timings and result. */
interface Frame {
  readonly spec: Scenario;
  readonly dir: string;
  readonly topology: Topology;
  readonly ours: EndSpec;
  readonly theirs: EndSpec;
  readonly result: ScenarioResult;
  /** Records the milliseconds since the previous step under `label`. */
  step(label: string): void;
  /** Where result.logs come from when the scenario ends, however it ends (set as the peers start). */
  readonly logs: { left?: () => string; right?: () => string };
}

/**
 * Runs one scenario's `body` in a fresh frame: a topology of its kind with everything each side
 * sends on its outer interface captured (IKE, ESP, and anything that leaks). Whatever happens, the
 * captures are kept and the topology is destroyed, which stops every daemon started in it.
 */
async function framed(
  spec: Scenario,
  out: string,
  body: (frame: Frame) => Promise<void>,
): Promise<ScenarioResult> {
  const { name, kind } = spec;
  const dir = mkdtempSync(join(tmpdir(), `ike-node-kesp-${name}-`));
  const timings: Record<string, number> = {};
  let t0 = now();
  const step = (label: string) => {
    timings[label] = Math.round(now() - t0);
    t0 = now();
  };
  let topology: Topology | undefined;
  const captures: Capture[] = [];
  const logs: Frame['logs'] = {};
  const result: ScenarioResult = {
    name,
    spec,
    completed: false,
    addresses: { left: '', right: '', leftSeenAs: '', leftInner: '', rightInner: '' },
    timings,
    pcaps: {},
    logs: { left: '', right: '' },
  };
  try {
    topology = await createTopology(kind);
    const ours: EndSpec = {
      address: topology.leftAddress,
      seenAs: topology.leftSeenAs,
      subnet: topology.leftSubnet,
    };
    const theirs: EndSpec = {
      address: topology.rightAddress,
      seenAs: topology.rightAddress,
      subnet: topology.rightSubnet,
    };
    result.addresses = {
      left: ours.address,
      right: theirs.address,
      leftSeenAs: ours.seenAs,
      leftInner: topology.leftInner,
      rightInner: topology.rightInner,
    };
    step('topology');

    for (const [side, ns, iface] of [
      ['left', topology.left, topology.leftIface],
      ['right', topology.right, topology.rightIface],
    ] as const) {
      const file = `${name}-${side}.pcap`;
      captures.push(await startCapture(ns, iface, join(dir, file), '', { direction: 'out' }));
      result.pcaps[side] = file;
    }
    step('captures');

    await body({ spec, dir, topology, ours, theirs, result, step, logs });
    result.completed = true;
  } catch (error) {
    result.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
  } finally {
    result.logs = { left: tail(logs.left?.() ?? '', 400), right: tail(logs.right?.() ?? '', 300) };
    result.captureCounters = {};
    result.error = await keepCaptures(captures, result.pcaps, dir, out, result.error, result.captureCounters);
    const cleanup = now();
    await topology?.destroy();
    rmSync(dir, { recursive: true, force: true });
    timings.cleanup = Math.round(now() - cleanup);
  }
  return result;
}

/** strongSwan (kernel-netlink) on the right, the scenario's connection loaded. */
async function startStrongswan({ spec, dir, topology, ours, theirs, logs }: Frame): Promise<Charon> {
  const charon = await startCharon(topology.right, {
    name: 'strongswan',
    dir: join(dir, 'strongswan'),
    kernel: 'netlink',
    readyTimeoutMs: 30_000,
  });
  await charon.load(swanctlConfig(ours, theirs, spec));
  logs.right = charon.log;
  return charon;
}

/** ike-node (xfrm) initiates to strongSwan or to ike-node (pfkey): every scenario but libreswan. */
async function initiating(frame: Frame): Promise<void> {
  const { spec, dir, topology, ours, theirs, result, step, logs } = frame;
  const { left, right } = topology;
  let charon: Charon | undefined;
  let peerNode: IkeNode | undefined;
  if (spec.peer === 'strongswan') {
    charon = await startStrongswan(frame);
  } else {
    peerNode = await startIkeNode(
      right,
      ikeNodeConfig(join(dir, 'peer'), 'pfkey', theirs, ours, spec, 'responder'),
      { dir: join(dir, 'peer'), readyTimeoutMs: 60_000 },
    );
    logs.right = peerNode.log;
  }
  step('peer');

  const nodeDir = join(dir, 'ike-node');
  const node = await startIkeNode(left, ikeNodeConfig(nodeDir, 'xfrm', ours, theirs, spec, 'initiator'), {
    dir: nodeDir,
    readyTimeoutMs: 30_000,
  });
  logs.left = node.log;
  const connections = spec.transportEsp !== undefined ? ['net', 'l2tp'] : ['net'];
  const allActive = async () => {
    const status = await statusOf(nodeDir);
    return connections.every((c) => status.find((s) => s.name === c)?.status === 'Active')
      ? status
      : undefined;
  };
  step('ikeNode');

  if (spec.start === 'on-traffic') {
    result.beforeTraffic = { ours: { status: await statusOf(nodeDir), xfrm: await xfrmOf(left) } };
    step('beforeTraffic');
    const started = now();
    const pinging = ping(left, topology.leftInner, topology.rightInner, ACQUIRE_PING_COUNT, 0.5);
    const active = await until(allActive, 30_000, 'ike-node to report Active after the ACQUIRE');
    const msToActive = Math.round(now() - started);
    result.established = { ours: { status: active, xfrm: await xfrmOf(left) }, msToActive };
    result.ping = await pinging;
    result.acquireLog = node
      .log()
      .split('\n')
      .filter((line) => /ACQUIRE|acquire|initiat|established|installed/.test(line));
    step('established');
  } else {
    const started = now();
    const active = await until(allActive, 60_000, `ike-node to report ${connections.join(' and ')} Active`);
    const msToActive = Math.round(now() - started);
    result.established = { ours: { status: active, xfrm: await xfrmOf(left) }, msToActive };
    step('established');
    result.ping = await ping(left, topology.leftInner, topology.rightInner, PING_COUNT, 0.2);
    step('ping');
  }

  if (spec.transportEsp !== undefined) {
    result.probe = await udpProbe(left, right, ours.address, theirs.address);
    step('probe');
  }

  const theirsSnapshot = async (): Promise<Snapshot> => ({
    xfrm: await xfrmOf(right),
    ...(charon && { sas: await charon.listSas() }),
    ...(peerNode && { status: await statusOf(peerNode.dir) }),
  });
  // Once through the command line, as an operator would look.
  result.afterTraffic = {
    ours: { status: (await node.status()) as IkeNodeStatus, xfrm: await xfrmOf(left) },
    theirs: await theirsSnapshot(),
  };
  step('afterTraffic');

  if (spec.rekey && charon) {
    const before = childSpis(result.afterTraffic.ours.status, 'net');
    const stream = ping(left, topology.leftInner, topology.rightInner, STREAM_COUNT, STREAM_INTERVAL);
    await delay(1500);
    const rekeyAt = now();
    const swanctl = await charon.swanctl(['--rekey', '--child', 'net'], 20);
    let rekeyedStatus: IkeNodeStatus | undefined;
    let msToNewSpis: number | undefined;
    try {
      rekeyedStatus = await until(
        async () => {
          const status = await statusOf(nodeDir);
          return childSpis(status, 'net').some((spis) => !before.includes(spis)) ? status : undefined;
        },
        20_000,
        'new SPIs on the tunnel',
      );
      msToNewSpis = Math.round(now() - rekeyAt);
    } catch {
      // reported through the missing msToNewSpis
    }
    const pinged = await stream;
    result.rekey = {
      swanctl: { code: swanctl.code, output: tail(swanctl.stdout + swanctl.stderr, 10) },
      ping: pinged,
      ...(rekeyedStatus && { rekeyedStatus }),
      ...(msToNewSpis !== undefined && { msToNewSpis }),
      after: {
        ours: { status: await statusOf(nodeDir), xfrm: await xfrmOf(left) },
        theirs: await theirsSnapshot(),
      },
    };
    step('rekey');
  }

  // SIGTERM: ike-node deletes its SAs (telling the peer) and removes all it installed.
  const stopAt = now();
  const code = await node.stop();
  const ourStop: StopResult = { code, ms: Math.round(now() - stopAt), xfrm: await xfrmOf(left) };
  let theirStop: StopResult;
  let theirSasAfter: ParsedSa[] | undefined;
  if (peerNode) {
    const peerAt = now();
    const peerCode = await peerNode.stop();
    theirStop = { code: peerCode, ms: Math.round(now() - peerAt), xfrm: await xfrmOf(right) };
  } else {
    const swan = charon!;
    // strongSwan acts on ike-node's Deletes: its SAs go, its policies stay only for trapping.
    theirSasAfter = await until(
      async () => {
        const sas = await swan.listSas();
        return sas.length === 0 ? sas : undefined;
      },
      10_000,
      'strongSwan to drop the SAs ike-node deleted',
    ).catch(() => swan.listSas());
    theirStop = { code: 0, ms: 0, xfrm: await xfrmOf(right) };
  }
  result.stop = { ours: ourStop, theirs: theirStop, ...(theirSasAfter && { theirSasAfter }) };
  step('stop');
}

/** ike-node's log line about what an earlier run left in the kernel (src/kernel/leftovers.ts). */
const CLEANUP_LINE = /left behind by an earlier run/;
/**
 * strongSwan's log lines that tell how it let go of the killed run's SAs (INITIAL-CONTACT, or DPD
 * giving up) and took the new ones.
 */
const PEER_RECOVERY_LINE =
  /INIT(IAL)?_CONTACT|duplicate|DPD|giving up|state change: \w+ => DESTROYING|deleting IKE_SA|established/;

/**
 * ike-node (on spec.restart's backend) initiates a tunnel to strongSwan, which runs DPD; a ping
 * crosses; ike-node is SIGKILLed and its kernel state recorded; the same configuration starts
 * again, and the scenario records how long until the tunnel is back and a ping crosses, what the
 * daemon says it removed, and both sides once strongSwan holds one IKE SA with one child.
 */
async function restarting(frame: Frame): Promise<void> {
  const { spec, dir, topology, ours, theirs, result, step, logs } = frame;
  const { left, right } = topology;
  const kernel = spec.restart!;
  const charon = await startStrongswan(frame);
  step('peer');

  const nodeDir = join(dir, 'ike-node');
  const config = ikeNodeConfig(nodeDir, kernel, ours, theirs, spec, 'initiator');
  // Read from the files, so that a daemon that never came up still shows its log.
  const logOf = (file: string) => () => {
    try {
      return readFileSync(join(nodeDir, file), 'utf8');
    } catch {
      return '';
    }
  };
  const [firstLog, restartedLog] = [logOf('ike-node.log'), logOf('ike-node-restarted.log')];
  logs.left = () => `${firstLog()}\n--- restarted\n${restartedLog()}`;
  // pfkey's first SADB_REGISTER loads every ESP algorithm module: 10 s idle, far more on a busy host.
  const first = await startIkeNode(left, config, { dir: nodeDir, readyTimeoutMs: 120_000 });
  const netActive = async () => {
    const status = await statusOf(nodeDir);
    return status.find((c) => c.name === 'net')?.status === 'Active' ? status : undefined;
  };
  await until(netActive, 60_000, 'ike-node to report net Active');
  step('established');
  const firstPing = await ping(left, topology.leftInner, topology.rightInner, PING_COUNT, 0.2);
  const before = {
    ours: { status: await statusOf(nodeDir), xfrm: await xfrmOf(left) },
    theirs: { xfrm: await xfrmOf(right), sas: await charon.listSas() },
    ping: firstPing,
  };
  step('ping');

  // SIGKILL: no Delete, no clean-up; the kernel keeps the SAs and policies, strongSwan its SAs.
  const killed = { code: await first.kill(), xfrm: await xfrmOf(left) };
  const peerLogAtKill = charon.log().length;
  step('kill');

  const restartAt = now();
  const restarted = await startIkeNode(left, config, {
    dir: nodeDir,
    readyTimeoutMs: 60_000,
    logFile: 'ike-node-restarted.log',
  });
  const readyAt = now();
  await until(netActive, 60_000, 'the restarted ike-node to report net Active');
  const activeAt = now();
  const pingAgain = await ping(left, topology.leftInner, topology.rightInner, PING_COUNT, 0.2);
  const recoveredAt = now();
  step('restart');

  // strongSwan drops the killed run's SAs on the INITIAL-CONTACT (or its DPD would, later).
  const sas = await until(
    async () => {
      const listed = await charon.listSas();
      return listed.length === 1 && listed[0]!.children.length === 1 ? listed : undefined;
    },
    10_000,
    'strongSwan to hold one IKE SA with one child',
  ).catch(() => charon.listSas());
  result.restart = {
    kernel,
    before,
    killed,
    msToReady: Math.round(readyAt - restartAt),
    msToActive: Math.round(activeAt - readyAt),
    msToRecovered: Math.round(recoveredAt - readyAt),
    ping: pingAgain,
    cleanupLog: restartedLog()
      .split('\n')
      .filter((line) => CLEANUP_LINE.test(line)),
    peerLog: charon
      .log()
      .slice(peerLogAtKill)
      .split('\n')
      .filter((line) => PEER_RECOVERY_LINE.test(line)),
    after: {
      ours: { status: await statusOf(nodeDir), xfrm: await xfrmOf(left) },
      theirs: { xfrm: await xfrmOf(right), sas },
    },
  };
  step('after');

  const stopAt = now();
  const code = await restarted.stop();
  result.restart.stop = { code, ms: Math.round(now() - stopAt), xfrm: await xfrmOf(left) };
  step('stop');
}

/**
 * ike-node (xfrm) against libreswan's pluto, which runs throughout with one connection `net` that
 * it can initiate and answer: ike-node initiates, then a fresh ike-node responds.
 */
async function againstLibreswan(frame: Frame): Promise<void> {
  const { spec, dir, topology, result, step, logs } = frame;
  const { left, right } = topology;
  const { ours, theirs } = ends(topology, 'left');
  const tunnel = (role: LibreswanRun['role'], esp: string): TunnelSpec => ({
    dir: join(dir, `ike-node-${role}`),
    ours,
    theirs,
    psk: PSK,
    version: 2,
    role,
    ike: spec.ike ?? IKE_PROPOSAL,
    esp,
  });
  const pluto = await startPluto(right, {
    name: 'libreswan',
    dir: join(dir, 'libreswan'),
    conns: [libreswanTunnel(tunnel('initiator', spec.tunnelEsp), spec.libreswan!)],
    // Its log without plutodebug's lines says all this scenario reads (the IKE SPIs need debug).
    debug: false,
    // Once ike-node deletes the IKE SA pluto initiated, pluto would initiate again at once.
    impair: ['revival'],
    readyTimeoutMs: 30_000,
  });
  logs.right = () => withoutDebug(pluto.log());
  step('pluto');

  const nodes: IkeNode[] = [];
  logs.left = () => nodes.map((node) => node.log()).join('\n');
  const runs: LibreswanRun[] = [];
  result.libreswan = { runs };
  for (const [role, esp] of [
    ['initiator', spec.tunnelEsp],
    ['responder', spec.responderEsp!],
  ] as const) {
    const run: LibreswanRun = { role, esp };
    runs.push(run);
    const own = tunnel(role, esp);
    const started = now();
    const node = await startIkeNode(
      left,
      { ...ikeNodeTunnel(own), kernel: 'xfrm' },
      { dir: own.dir, readyTimeoutMs: 30_000 },
    );
    nodes.push(node);
    if (role === 'responder') {
      const whack = await pluto.initiate('net', 30);
      run.whack = { code: whack.code, output: tail(withoutDebug(whack.stdout + whack.stderr), 10) };
    }
    const active = await until(
      async () => {
        const net = (await statusOf(own.dir)).find((c) => c.name === 'net');
        return net?.status === 'Active' ? net : undefined;
      },
      60_000,
      `ike-node (${role}) to report net Active`,
    );
    // pluto's child SA: the one it sends on with ike-node's inbound SPI.
    const spiIn = active.childSas[0]?.spiIn;
    const plutoChild = await until(
      async () => parsePlutoLog(pluto.log()).childSas.find((sa) => sa.established && sa.spiOut === spiIn),
      20_000,
      `pluto to log the child SA with ike-node's inbound SPI 0x${spiIn}`,
    );
    run.msToEstablished = Math.round(now() - started);
    step(`${role}:established`);

    // Both ways at once: each SA carries one side's requests and its answers to the other's.
    const [fromOurs, fromTheirs] = await Promise.all([
      ping(left, topology.leftInner, topology.rightInner, PING_COUNT, 0.2),
      ping(right, topology.rightInner, topology.leftInner, PING_COUNT, 0.2),
    ]);
    run.pings = { fromOurs, fromTheirs };
    step(`${role}:ping`);
    const plutoIke = parsePlutoLog(pluto.log())
      .ikeSas.filter((sa) => sa.established && !sa.deleted)
      .at(-1);
    const [status, ourXfrm, theirXfrm] = await Promise.all([statusOf(own.dir), xfrmOf(left), xfrmOf(right)]);
    run.afterTraffic = {
      ours: { status, xfrm: ourXfrm },
      theirs: { xfrm: theirXfrm },
      ...(plutoIke && { plutoIke }),
      plutoChild,
    };
    step(`${role}:afterTraffic`);

    // SIGTERM: ike-node deletes the IKE SA (telling pluto) and removes all it installed.
    const stopAt = now();
    const code = await node.stop();
    const ms = Math.round(now() - stopAt);
    const [ourAfter, plutoStates] = await Promise.all([
      xfrmOf(left),
      until(
        async () => {
          const states = await pluto.states();
          return states.length === 0 ? states : undefined;
        },
        10_000,
        'pluto to drop the SAs ike-node deleted',
      ).catch(() => pluto.states()),
    ]);
    run.stop = { ours: { code, ms, xfrm: ourAfter }, plutoStates, theirXfrm: await xfrmOf(right) };
    step(`${role}:stop`);
  }

  const stopAt = now();
  const code = await pluto.stop();
  result.libreswan.plutoStop = { code, ms: Math.round(now() - stopAt), xfrm: await xfrmOf(right) };
  step('pluto:stop');
}

if (isMainModule(import.meta.url)) {
  await runGuestScenarios(
    'kernel-esp',
    SCENARIOS,
    (spec, out) =>
      framed(
        spec,
        out,
        spec.peer === 'libreswan' ? againstLibreswan : spec.restart ? restarting : initiating,
      ),
    process.argv.slice(2),
  );
}
