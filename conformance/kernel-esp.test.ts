import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import type { ChildSaStatus, ConnectionStatus } from '../src/core/status.js';
import { isakmpSummary, readFields, tsharkProblems } from './lib/capture.js';
import { REPO_ROOT } from './lib/ike-node.js';
import { kernelLabMissing, runInKernelLab } from './lib/kernel-lab.js';
import { LEFT_SUBNET, RIGHT_SUBNET } from './lib/netns.js';
import type { ParsedChildSa, ParsedSa } from './lib/strongswan.js';
import { missing } from './lib/scenario.js';
import {
  ACQUIRE_PING_COUNT,
  decodeGuestResult,
  DPD_DELAY_SEC,
  L2TP_PORT,
  PING_COUNT,
  SCENARIOS,
  STREAM_COUNT,
  STREAM_INTERVAL,
  type ScenarioResult,
  type Xfrm,
} from './kernel-lab/kernel-esp.js';

/**
 * ike-node's kernel backends carrying real ESP, in ONE boot of the qemu kernel lab (the host
 * kernel has no ESP and no PF_KEY): conformance/kernel-lab/kernel-esp.ts runs its scenarios in
 * the guest and reports what it saw; the captures come back and tshark reads them here.
 *
 * - direct: ike-node (xfrm) to strongSwan (kernel-netlink, no kernel-libipsec), IKEv1: a tunnel
 *   between the inner subnets and a transport-mode udp/1701 connection as an L2TP client makes; a
 *   ping, a udp/1701 datagram and its echo, a rekey (strongSwan's) under a ping stream every
 *   20 ms, then SIGTERM.
 * - nat: the same through a masquerading NAT: ESP in UDP on 4500 only.
 * - ikev2: as direct, in IKEv2: the tunnel child from IKE_AUTH, the transport child by
 *   CREATE_CHILD_SA over the same IKE SA, strongSwan's rekey with PFS under the ping stream.
 * - pfkey: ike-node (xfrm) to ike-node (pfkey, Linux af_key).
 * - acquire: ike-node (xfrm) with `start: "on-traffic"`: the first ping's ACQUIRE starts it.
 * - restart, restart-ikev2, restart-pfkey: ike-node (xfrm IKEv1, xfrm IKEv2, pfkey IKEv2) with a
 *   tunnel up to strongSwan (DPD every DPD_DELAY_SEC) is SIGKILLed: its SAs and policies stay in
 *   the kernel; started again with the same configuration, it removes them (and says so),
 *   negotiates anew and the ping crosses again within one DPD period; strongSwan ends with one IKE
 *   SA and one child, the new ones.
 * - libreswan: ike-node (xfrm) and libreswan's pluto (XFRM), IKEv2 with a PSK, a tunnel between
 *   the subnets: ike-node initiates (AES-CBC/HMAC-SHA-256), then a fresh ike-node responds to
 *   pluto (AES-GCM); pings both ways in each run, the SPIs, keys and counters of both kernels
 *   compared, and nothing left in either kernel once ike-node and then pluto have stopped. (On the
 *   host, conformance/libreswan.test.ts checks the IKE level only: no ESP in that kernel.)
 *
 * "On the wire" means the outgoing packets of both peers' outer interfaces (the guest kernel
 * re-injects decrypted tunnel-mode packets on the receiving device, which a capture of both
 * directions would show as plain ICMP). It fails, saying what is missing, where the lab or the
 * native addon is not installed. IKE_NODE_KERNEL_ESP_REPLAY=FILE checks a saved console of an earlier run
 * (klab-run's stdout) instead of booting.
 */

const GUEST = join(dirname(fileURLToPath(import.meta.url)), 'kernel-lab', 'kernel-esp.ts');
/** ESP, XFRM netlink, PF_KEY, veth and the NAT router's nftables masquerade, loaded at boot. */
const MODULES = ['esp4', 'xfrm_user', 'af_key', 'veth', 'nf_tables', 'nft_chain_nat', 'nft_masq'];
/**
 * The whole VM (boot, the first six scenarios, shutdown) measured about 245 s on an otherwise idle
 * machine and 315 s beside two busy processes (libreswan's scenario 40-46 s of it). The three
 * restart scenarios took 59, 67 and 83 s of a 670 s guest run on a host at load 12 (the six others
 * 460 s there), so about 110 s idle. This is its hard limit.
 */
const LAB_TIMEOUT_SEC = 600;
const ADDON = join(REPO_ROOT, 'build', 'Release', 'ike_native.node');

/** ike-node's XFRM reqids (src/kernel/xfrm/backend.ts DEFAULT_REQID_BASE and _COUNT). */
const REQID_BASE = 0x1ce00000;
const REQID_COUNT = 0x10000;
const ours = (reqid: number) => reqid >= REQID_BASE && reqid < REQID_BASE + REQID_COUNT;
/** ike-node's reqids on Linux af_key (src/kernel/pfkey/backend.ts DEFAULT_REQIDS: 0x3c00-0x3fff). */
const oursOnPfkey = (reqid: number) => reqid >= 0x3c00 && reqid <= 0x3fff;

t.setTimeout((LAB_TIMEOUT_SEC + 90) * 1000);

const unavailable =
  (process.env.IKE_NODE_KERNEL_ESP_REPLAY ? false : kernelLabMissing()) ||
  (existsSync(ADDON) ? false : `the native addon is missing (${ADDON}): run npm run install`);

const tail = (text: string, lines: number) => text.split('\n').slice(-lines).join('\n');
const consoleText = (output: string) => output.replace(/RESULT_BEGIN[\s\S]*?RESULT_END\n?/, '');

// ---------------------------------------------------------------------------------------------------
// The kernel's XFRM database as `ip -s xfrm state` and `ip xfrm policy` print it

interface XfrmState {
  src: string;
  dst: string;
  spi: string;
  reqid: number;
  mode: string;
  encap?: { sport: number; dport: number };
  bytes: number;
  packets: number;
  replayWindow?: number;
  text: string;
}

function xfrmStates(text: string): XfrmState[] {
  return text
    .split(/\n(?=src )/)
    .filter((block) => /proto esp spi/.test(block))
    .map((block) => {
      const [, src = '', dst = ''] = /^src (\S+) dst (\S+)/.exec(block) ?? [];
      const encap = /encap type espinudp sport (\d+) dport (\d+)/.exec(block);
      const current = /lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)/.exec(block);
      const window = /replay_window (\d+)/.exec(block);
      return {
        src,
        dst,
        spi: /spi 0x([0-9a-f]+)/.exec(block)?.[1] ?? '',
        reqid: Number(/reqid (\d+)/.exec(block)?.[1] ?? -1),
        mode: /mode (\w+)/.exec(block)?.[1] ?? '',
        ...(encap && { encap: { sport: Number(encap[1]), dport: Number(encap[2]) } }),
        bytes: Number(current?.[1] ?? -1),
        packets: Number(current?.[2] ?? -1),
        ...(window && { replayWindow: Number(window[1]) }),
        text: block,
      };
    });
}

interface XfrmPolicy {
  selector: string;
  dir: string;
  reqids: number[];
  mode?: string;
  text: string;
}

function xfrmPolicies(text: string): XfrmPolicy[] {
  return text
    .split(/\n(?=src )/)
    .filter((block) => block.startsWith('src '))
    .map((block) => ({
      selector: block.split('\n')[0]!.trim(),
      dir: /\t(?:dir|socket) (\w+)/.exec(block)?.[1] ?? '',
      reqids: [...block.matchAll(/reqid (\d+)/g)].map((m) => Number(m[1])),
      ...(/mode (\w+)/.exec(block) && { mode: /mode (\w+)/.exec(block)![1] }),
      text: block,
    }));
}

// ---------------------------------------------------------------------------------------------------
// What crossed the wire: the outgoing packets of one interface, classified by tshark

interface Frame {
  protocols: string[];
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** ESP SPI (hex, no 0x), plain or in UDP. */
  spi?: string;
}

async function frames(pcap: string): Promise<Frame[]> {
  const rows = await readFields(pcap, 'ip', [
    'frame.protocols',
    'ip.src',
    'ip.dst',
    'udp.srcport',
    'udp.dstport',
    'esp.spi',
  ]);
  return rows.map((row) => {
    const [protocols = '', src = '', dst = '', srcPort, dstPort, spi] = row;
    return {
      protocols: protocols.split(':'),
      src,
      dst,
      srcPort: Number(srcPort || 0),
      dstPort: Number(dstPort || 0),
      ...(spi && { spi: Number(spi).toString(16).padStart(8, '0') }),
    };
  });
}

interface Wire {
  /** ESP straight in IP (protocol 50), by SPI. */
  esp: Map<string, number>;
  /** ESP in UDP (RFC 3948), by SPI, and the ports used. */
  espInUdp: Map<string, number>;
  espInUdpPorts: Set<string>;
  /** Anything between the inner subnets, or udp/1701, that went out unencrypted. */
  leaks: Frame[];
  isakmp: number;
}

async function wire(pcap: string, innerPrefixes: readonly string[]): Promise<Wire> {
  const result: Wire = {
    esp: new Map(),
    espInUdp: new Map(),
    espInUdpPorts: new Set(),
    leaks: [],
    isakmp: 0,
  };
  const inner = (address: string) => innerPrefixes.some((prefix) => address.startsWith(prefix));
  for (const frame of await frames(pcap)) {
    const has = (p: string) => frame.protocols.includes(p);
    if (has('esp') && frame.spi !== undefined) {
      const map = has('udp') ? result.espInUdp : result.esp;
      map.set(frame.spi, (map.get(frame.spi) ?? 0) + 1);
      if (has('udp')) result.espInUdpPorts.add(`${frame.srcPort}>${frame.dstPort}`);
    } else if (has('isakmp')) {
      result.isakmp++;
    } else if (
      inner(frame.src) ||
      inner(frame.dst) ||
      has('icmp') ||
      frame.srcPort === L2TP_PORT ||
      frame.dstPort === L2TP_PORT
    ) {
      result.leaks.push(frame);
    }
  }
  return result;
}

const count = (map: Map<string, number>, spi: string | undefined) => (spi ? (map.get(spi) ?? 0) : 0);

// ---------------------------------------------------------------------------------------------------

const connection = (status: ConnectionStatus[] | undefined, name: string) =>
  status?.find((c) => c.name === name);
const onlyChild = (status: ConnectionStatus[] | undefined, name: string): ChildSaStatus | undefined =>
  connection(status, name)?.childSas[0];
const swanChild = (sas: ParsedSa[] | undefined, name: string): ParsedChildSa | undefined =>
  sas?.flatMap((sa) => sa.children).find((c) => c.name === name);

/** Nothing of ike-node's in a namespace's XFRM database, and (ideally) nothing at all. */
function assertClean(t: Test, xfrm: Xfrm, who: string): void {
  const states = xfrmStates(xfrm.state);
  const policies = xfrmPolicies(xfrm.policy);
  t.same(
    states.filter((s) => ours(s.reqid)).map((s) => s.spi),
    [],
    `${who}: no state with a reqid of ike-node's range left`,
  );
  t.same(
    policies.filter((p) => p.reqids.some(ours)).map((p) => p.selector),
    [],
    `${who}: no policy with a reqid of ike-node's range left`,
  );
  t.equal(xfrm.state.trim(), '', `${who}: ip xfrm state shows nothing at all`);
  t.equal(xfrm.policy.trim(), '', `${who}: ip xfrm policy shows nothing at all`);
}

/**
 * One child SA of ike-node in its kernel: both states (our SPIs, a reqid of ours, the mode, ESP
 * in UDP or not), their counters equal to what ike-node's status reports, the inbound state with
 * the configured replay window.
 */
function assertKernelChild(
  t: Test,
  xfrm: Xfrm,
  child: ChildSaStatus,
  what: string,
  nat: boolean,
): { out?: XfrmState; in?: XfrmState } {
  const states = xfrmStates(xfrm.state);
  const out = states.find((s) => s.spi === child.spiOut);
  const inbound = states.find((s) => s.spi === child.spiIn);
  for (const [state, direction] of [
    [out, 'outbound'],
    [inbound, 'inbound'],
  ] as const) {
    if (
      !t.ok(
        state,
        `kernel: ${what} ${direction} state (SPI 0x${direction === 'outbound' ? child.spiOut : child.spiIn})`,
      )
    )
      continue;
    t.ok(
      ours(state!.reqid),
      `kernel: ${what} ${direction} state has a reqid of ours (0x${state!.reqid.toString(16)})`,
    );
    t.equal(state!.mode, child.mode, `kernel: ${what} ${direction} state in ${child.mode} mode`);
    if (nat)
      t.same(state!.encap, { sport: 4500, dport: 4500 }, `kernel: ${what} ${direction} state espinudp 4500`);
    else t.equal(state!.encap, undefined, `kernel: ${what} ${direction} state without UDP encapsulation`);
  }
  t.equal(inbound?.replayWindow, 64, `kernel: ${what} inbound state with the configured replay window (64)`);
  const traffic = child.traffic;
  if (t.ok(traffic, `ike-node status: traffic counters on ${what}`) && out && inbound) {
    t.same(
      {
        packetsOut: traffic!.packetsOut,
        bytesOut: traffic!.bytesOut,
        packetsIn: traffic!.packetsIn,
        bytesIn: traffic!.bytesIn,
      },
      { packetsOut: out.packets, bytesOut: out.bytes, packetsIn: inbound.packets, bytesIn: inbound.bytes },
      `ike-node status counters of ${what} = the kernel's (${traffic!.packetsOut} out, ${traffic!.packetsIn} in)`,
    );
  }
  return { ...(out && { out }), ...(inbound && { in: inbound }) };
}

/** ike-node's tunnel policies in its kernel: in, out and fwd, each with a reqid of ours. */
function assertTunnelPolicies(t: Test, xfrm: Xfrm | undefined): void {
  const tunnelPolicies = xfrmPolicies(xfrm?.policy ?? '').filter(
    (p) => p.mode === 'tunnel' && p.reqids.some(ours),
  );
  t.same(
    tunnelPolicies.map((p) => p.dir).sort(),
    ['fwd', 'in', 'out'],
    'kernel: tunnel policies in, out and fwd with reqids of ours',
  );
}

/** strongSwan's name for the encryption of an ESP proposal. */
const encrAlg = (esp: string) => (esp.includes('gcm') ? 'AES_GCM_16' : 'AES_CBC');

/** strongSwan's child SA: installed, SPIs mirrored, its counters the mirror of ike-node's. */
function assertSwanChild(
  t: Test,
  swan: ParsedChildSa | undefined,
  child: ChildSaStatus | undefined,
  what: string,
  expect: { mode: string; encrAlg: string; encap: boolean },
): void {
  if (!t.ok(swan, `strongSwan lists the ${what} child SA`) || !child) return;
  t.match(
    swan,
    { state: 'INSTALLED', protocol: 'ESP', ...expect },
    `strongSwan: ${what} INSTALLED, ${expect.mode}`,
  );
  t.equal(swan!.spiIn, child.spiOut, `SPIs agree: strongSwan in = ike-node out (${what})`);
  t.equal(swan!.spiOut, child.spiIn, `SPIs agree: strongSwan out = ike-node in (${what})`);
  const traffic = child.traffic;
  if (!traffic) return;
  t.same(
    [swan!.packetsIn, swan!.bytesIn],
    [traffic.packetsOut, traffic.bytesOut],
    `strongSwan received what ike-node sent (${what}: ${traffic.packetsOut} packets, ${traffic.bytesOut} bytes)`,
  );
  t.same(
    [swan!.packetsOut, swan!.bytesOut],
    [traffic.packetsIn, traffic.bytesIn],
    `ike-node received what strongSwan sent (${what}: ${traffic.packetsIn} packets, ${traffic.bytesIn} bytes)`,
  );
}

async function checkScenario(t: Test, s: ScenarioResult, dir: string): Promise<void> {
  const spec = s.spec;
  const nat = spec.kind === 'nat';
  t.comment(`guest timings (ms): ${JSON.stringify(s.timings)}`);
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`--- ike-node (xfrm) log\n${tail(s.logs.left, 80)}`);
    t.comment(`--- peer log\n${tail(s.logs.right, 80)}`);
  });
  if (!t.ok(s.completed && s.error === undefined, 'the guest script ran every step', { error: s.error }))
    return;
  if (spec.peer === 'libreswan') return checkLibreswan(t, s, dir);
  if (spec.restart) return checkRestart(t, s, dir);

  const status = s.afterTraffic?.ours.status;
  const net = onlyChild(status, 'net');
  const l2tp = onlyChild(status, 'l2tp');

  // --- negotiation
  const connections = spec.transportEsp !== undefined ? ['net', 'l2tp'] : ['net'];
  t.same(
    connections.map((name) => connection(status, name)?.status),
    connections.map(() => 'Active'),
    `ike-node: ${connections.join(' and ')} Active (${s.established?.msToActive} ms after start${spec.start === 'on-traffic' ? ' of the ping' : ''})`,
  );
  const ike = connection(status, 'net')?.ikeSas[0];
  t.match(
    ike,
    { version: spec.version, state: 'ESTABLISHED', role: 'initiator', nat: { local: nat, remote: false } },
    `ike-node: IKEv${spec.version} SA ESTABLISHED as initiator${nat ? ', behind the NAT' : ''}`,
  );
  if (nat) t.match(ike?.local, /:4500$/, 'ike-node: IKE floated to port 4500');
  t.match(
    net,
    {
      mode: 'tunnel',
      encapsulation: nat,
      // IKEv2's first child SA comes out of IKE_AUTH, with no Diffie-Hellman of its own.
      algorithms: spec.version === 1 ? spec.tunnelEsp : withoutGroup(spec.tunnelEsp),
      localTs: [`${s.addresses.leftInner.replace(/\.1$/, '.0')}/24`],
      remoteTs: [`${s.addresses.rightInner.replace(/\.1$/, '.0')}/24`],
    },
    `ike-node: tunnel child ${spec.tunnelEsp}${nat ? ', ESP in UDP' : ''}, the inner subnets`,
  );
  if (spec.transportEsp !== undefined) {
    t.match(
      l2tp,
      {
        mode: 'transport',
        encapsulation: nat,
        algorithms: spec.transportEsp,
        localTs: [`${s.addresses.left}/32[udp/1701]`],
        remoteTs: [`${s.addresses.right}/32[udp/1701]`],
      },
      `ike-node: transport child ${spec.transportEsp}, udp/1701 both ends`,
    );
  }

  // --- the peer
  const theirs = s.afterTraffic?.theirs;
  if (spec.peer === 'strongswan') {
    const sa = theirs?.sas?.find((x) => x.name === 'net');
    t.match(
      sa,
      { state: 'ESTABLISHED', version: spec.version, initiator: false, natRemote: nat, natLocal: false },
      `strongSwan: IKEv${spec.version} ESTABLISHED as responder${nat ? ', the peer behind a NAT' : ''}`,
    );
    assertSwanChild(t, swanChild(theirs?.sas, 'net'), net, 'tunnel', {
      mode: 'TUNNEL',
      encrAlg: encrAlg(spec.tunnelEsp),
      encap: nat,
    });
    if (spec.transportEsp !== undefined) {
      assertSwanChild(t, swanChild(theirs?.sas, 'l2tp'), l2tp, 'transport', {
        mode: 'TRANSPORT',
        encrAlg: encrAlg(spec.transportEsp),
        encap: nat,
      });
    }
  } else {
    const peer = onlyChild(theirs?.status, 'net');
    t.equal(connection(theirs?.status, 'net')?.status, 'Active', 'the pfkey ike-node: Active');
    t.match(
      peer,
      { mode: 'tunnel', algorithms: spec.tunnelEsp, spiIn: net?.spiOut, spiOut: net?.spiIn },
      'the pfkey ike-node: the same tunnel child, SPIs mirrored',
    );
    if (peer?.traffic && net?.traffic) {
      t.same(
        [peer.traffic.packetsIn, peer.traffic.packetsOut],
        [net.traffic.packetsOut, net.traffic.packetsIn],
        'the pfkey side counts what the xfrm side sent and received',
      );
    } else t.comment('the pfkey backend reports no traffic counters');
    // af_key's SAs are XFRM states: `ip xfrm state` in the pfkey namespace lists them.
    const states = xfrmStates(theirs?.xfrm.state ?? '');
    for (const [spi, direction] of [
      [net?.spiIn, 'outbound'],
      [net?.spiOut, 'inbound'],
    ] as const) {
      const state = states.find((x) => x.spi === spi);
      t.match(state, { mode: 'tunnel' }, `pfkey side: ip xfrm state lists its ${direction} SA 0x${spi}`);
    }
    t.ok(
      xfrmPolicies(theirs?.xfrm.policy ?? '').some(
        (p) => p.dir === 'out' && p.selector.startsWith('src 203.0.113.0/24 dst 198.51.100.0/24'),
      ),
      'pfkey side: its outbound tunnel policy is in the kernel',
    );
  }

  // --- the data path: ping, udp/1701, the kernel's counters
  if (spec.start === 'on-traffic') {
    const before = s.beforeTraffic?.ours;
    t.match(
      connection(before?.status, 'net'),
      { status: 'Down', ikeSas: [], childSas: [] },
      'before traffic: Down, no SAs',
    );
    t.same(xfrmStates(before?.xfrm.state ?? ''), [], 'before traffic: no ESP state in the kernel');
    const traps = xfrmPolicies(before?.xfrm.policy ?? '').filter((p) => p.reqids.some(ours));
    t.ok(
      traps.some((p) => p.dir === 'out' && p.selector.startsWith('src 198.51.100.0/24 dst 203.0.113.0/24')),
      `before traffic: the outbound trap policy is installed (${traps.length} trap policies of ours)`,
    );
    const acquire = (s.acquireLog ?? []).find((line) => /kernel ACQUIRE/.test(line));
    t.ok(acquire, `ike-node's log shows the ACQUIRE: ${acquire?.replace(/^\S+\s+/, '')}`);
    t.ok(
      (s.acquireLog ?? []).findIndex((line) => /kernel ACQUIRE/.test(line)) <
        (s.acquireLog ?? []).findIndex((line) => /initiating main mode/.test(line)),
      'the ACQUIRE came before main mode started',
    );
    t.equal(s.ping?.transmitted, ACQUIRE_PING_COUNT, `${ACQUIRE_PING_COUNT} pings sent (every 500 ms)`);
    // The kernel drops what meets the trap policy until the SA is there (xfrm_larval_drop): the
    // first pings, for the second or so that main mode and quick mode take in the lab.
    const answered = [...(s.ping?.output ?? '').matchAll(/icmp_seq=(\d+) /g)].map((m) => Number(m[1]));
    const firstAnswered = Math.min(...answered);
    t.ok(
      answered.length >= ACQUIRE_PING_COUNT / 2 &&
        answered.length === ACQUIRE_PING_COUNT - firstAnswered + 1 &&
        answered.includes(ACQUIRE_PING_COUNT),
      `the tunnel carried every ping from #${firstAnswered} on: ${s.ping?.received}/${s.ping?.transmitted} answered ` +
        `(those before were dropped while the SA was negotiated)`,
    );
  } else {
    t.same(
      [s.ping?.transmitted, s.ping?.received],
      [PING_COUNT, PING_COUNT],
      `ping ${s.addresses.leftInner} -> ${s.addresses.rightInner}: ${PING_COUNT}/${PING_COUNT} answered`,
    );
  }
  if (net) {
    const { out } = assertKernelChild(t, s.afterTraffic!.ours.xfrm, net, 'tunnel', nat);
    t.ok(
      (out?.packets ?? 0) >= (s.ping?.received ?? PING_COUNT),
      `kernel: the outbound tunnel state counted the pings (${out?.packets} packets)`,
    );
  }
  if (spec.transportEsp !== undefined) {
    t.match(
      s.probe?.sender,
      { sent: true, echo: 'echo: l2tp probe' },
      'udp/1701: the datagram went out and its echo came back through the transport-mode SAs',
    );
    t.match(
      s.probe?.listener,
      { from: s.addresses.leftSeenAs, port: L2TP_PORT, data: 'l2tp probe' },
      `udp/1701: the peer's listener got it from ${s.addresses.leftSeenAs}:1701`,
    );
    if (l2tp) {
      assertKernelChild(t, s.afterTraffic!.ours.xfrm, l2tp, 'transport', nat);
      t.same(
        [l2tp.traffic?.packetsOut, l2tp.traffic?.packetsIn],
        [1, 1],
        'ike-node status: one datagram out and one in on the transport child',
      );
      const policies = xfrmPolicies(s.afterTraffic!.ours.xfrm.policy);
      for (const direction of ['out', 'in']) {
        t.ok(
          policies.some(
            (p) =>
              p.dir === direction &&
              p.mode === 'transport' &&
              p.reqids.some(ours) &&
              /proto udp sport 1701 dport 1701/.test(p.selector),
          ),
          `kernel: udp/1701 ${direction} policy with a transport-mode template of ours`,
        );
      }
    }
  }
  assertTunnelPolicies(t, s.afterTraffic?.ours.xfrm);

  // --- the wire
  const inner = ['198.51.100.', '203.0.113.'];
  const left = await wire(join(dir, s.pcaps.left!), inner);
  const right = await wire(join(dir, s.pcaps.right!), inner);
  t.same(left.leaks, [], 'wire (ike-node out): no plain inner traffic, no plain ICMP, no plain udp/1701');
  t.same(right.leaks, [], 'wire (peer out): no plain inner traffic, no plain ICMP, no plain udp/1701');
  const rekeyedOut = s.rekey?.rekeyedStatus && onlyRekeyed(s);
  const sent = s.ping?.received ?? 0;
  if (nat) {
    t.same([left.esp.size, right.esp.size], [0, 0], 'wire: no ESP straight in IP behind the NAT');
    t.ok(
      count(left.espInUdp, net?.spiOut) >= sent && count(right.espInUdp, net?.spiIn) >= sent,
      `wire: the pings crossed as ESP in UDP (${count(left.espInUdp, net?.spiOut)} out with SPI 0x${net?.spiOut}, ${count(right.espInUdp, net?.spiIn)} back with 0x${net?.spiIn})`,
    );
    t.same(
      [...left.espInUdpPorts],
      ['4500>4500'],
      'wire: ike-node sends ESP in UDP from 4500 to 4500 (the NAT rewrites the source)',
    );
    t.ok(
      [...right.espInUdpPorts].every((ports) => ports.startsWith('4500>')),
      `wire: strongSwan answers from 4500 to the NAT's port (${[...right.espInUdpPorts].join(', ')})`,
    );
  } else {
    t.same([left.espInUdp.size, right.espInUdp.size], [0, 0], 'wire: no ESP in UDP without a NAT');
    t.ok(
      count(left.esp, net?.spiOut) >= sent && count(right.esp, net?.spiIn) >= sent,
      `wire: the pings crossed as ESP, IP protocol 50 (${count(left.esp, net?.spiOut)} out with SPI 0x${net?.spiOut}, ${count(right.esp, net?.spiIn)} back with 0x${net?.spiIn})`,
    );
  }
  if (l2tp) {
    const map = nat ? [left.espInUdp, right.espInUdp] : [left.esp, right.esp];
    t.same(
      [count(map[0]!, l2tp.spiOut), count(map[1]!, l2tp.spiIn)],
      [1, 1],
      `wire: the udp/1701 datagram and its echo crossed as ESP${nat ? ' in UDP' : ''} (SPIs 0x${l2tp.spiOut}, 0x${l2tp.spiIn})`,
    );
  }
  const known = new Set(
    [net, l2tp, ...(rekeyedOut ? [rekeyedOut] : [])].flatMap((c) => (c ? [c.spiIn, c.spiOut] : [])),
  );
  const seen = [...left.esp.keys(), ...left.espInUdp.keys(), ...right.esp.keys(), ...right.espInUdp.keys()];
  t.same(
    seen.filter((spi) => !known.has(spi)),
    [],
    'wire: every ESP SPI is one of the negotiated child SAs',
  );
  for (const side of ['left', 'right'] as const) {
    t.same(await tsharkProblems(join(dir, s.pcaps[side]!)), [], `tshark: ${side} capture's IKE is clean`);
  }
  const exchanges = (await isakmpSummary(join(dir, s.pcaps.left!))).map((f) => f.exchange);
  t.same(
    exchanges.filter((x, i) => x !== exchanges[i - 1]).slice(0, 2),
    spec.version === 1 ? ['ID_PROT', 'QUICK_MODE'] : ['IKE_SA_INIT', 'IKE_AUTH'],
    `wire: ike-node sent ${spec.version === 1 ? 'main mode, then quick mode' : 'IKE_SA_INIT, then IKE_AUTH'}`,
  );

  // --- rekey under traffic
  if (spec.rekey) {
    const r = s.rekey;
    if (t.ok(r, 'the rekey ran')) {
      t.equal(r!.swanctl.code, 0, `swanctl --rekey --child net: ${r!.swanctl.output.trim()}`);
      const fresh = onlyRekeyed(s);
      t.ok(
        r!.msToNewSpis !== undefined && fresh,
        `ike-node installed new SPIs ${r!.msToNewSpis} ms after the rekey request (in 0x${fresh?.spiIn}, out 0x${fresh?.spiOut})`,
      );
      t.ok(fresh && net && fresh.spiIn !== net.spiIn && fresh.spiOut !== net.spiOut, 'both SPIs are new');
      // strongSwan, the initiator, sends on its new SAs before ike-node has read message 3:
      // ike-node's inbound SA went in before its message 2 left, so nothing meets a larval SPI.
      const lost = r!.ping.transmitted - r!.ping.received;
      t.equal(r!.ping.transmitted, STREAM_COUNT, `${STREAM_COUNT} pings in the stream`);
      t.equal(
        lost,
        0,
        `ping stream through the rekey (every ${STREAM_INTERVAL * 1000} ms): ${r!.ping.received}/${r!.ping.transmitted} answered`,
      );
      const after = connection(r!.after.ours.status, 'net')?.childSas ?? [];
      const current = after.find((c) => c.spiIn === fresh?.spiIn);
      if (t.ok(current, 'after the stream: the new child SA is installed') && current) {
        const { out } = assertKernelChild(t, r!.after.ours.xfrm, current, 'rekeyed tunnel', nat);
        t.ok(
          (out?.packets ?? 0) > 0,
          `kernel: the stream moved to the new outbound SA (${out?.packets} packets)`,
        );
        const old = after.find((c) => c.spiIn === net?.spiIn);
        if (old?.traffic) {
          t.equal(
            old.traffic.packetsOut + current.traffic!.packetsOut,
            PING_COUNT + STREAM_COUNT,
            `every ping went out on the old or the new SA (${old.traffic.packetsOut} + ${current.traffic!.packetsOut})`,
          );
        } else t.comment(`the old child SA is gone after the stream (${after.length} child SA(s) left)`);
        assertSwanChild(
          t,
          r!.after.theirs.sas?.flatMap((sa) => sa.children).find((c) => c.spiOut === current.spiIn),
          current,
          'rekeyed tunnel',
          { mode: 'TUNNEL', encrAlg: encrAlg(spec.tunnelEsp), encap: nat },
        );
      }
      t.ok(
        count(left.esp, net?.spiOut) > PING_COUNT && count(left.esp, fresh?.spiOut) > 0,
        `wire: the stream used the old outbound SA (${count(left.esp, net?.spiOut) - PING_COUNT} packets), then the new (${count(left.esp, fresh?.spiOut)})`,
      );
    }
  }

  // --- SIGTERM
  const stop = s.stop;
  if (t.ok(stop, 'ike-node was stopped with SIGTERM')) {
    t.equal(stop!.ours.code, 0, `ike-node (xfrm) exited 0 on SIGTERM (${stop!.ours.ms} ms)`);
    assertClean(t, stop!.ours.xfrm, 'ike-node (xfrm) namespace after SIGTERM');
    if (spec.peer === 'ike-node-pfkey') {
      t.equal(stop!.theirs.code, 0, `ike-node (pfkey) exited 0 on SIGTERM (${stop!.theirs.ms} ms)`);
      assertClean(t, stop!.theirs.xfrm, 'ike-node (pfkey) namespace after SIGTERM');
    } else {
      t.same(stop!.theirSasAfter, [], "strongSwan dropped every SA on ike-node's Deletes");
      t.same(xfrmStates(stop!.theirs.xfrm.state), [], "strongSwan's kernel has no ESP state left");
    }
  }
}

/** An ESP proposal without its trailing Diffie-Hellman group. */
function withoutGroup(esp: string): string {
  return esp.replace(/-(modp|ecp|curve)\w+$/, '');
}

/** The tunnel child that the rekey brought: the one whose SPIs ike-node did not have before. */
function onlyRekeyed(s: ScenarioResult): ChildSaStatus | undefined {
  const before = onlyChild(s.afterTraffic?.ours.status, 'net');
  return connection(s.rekey?.rekeyedStatus, 'net')?.childSas.find((c) => c.spiIn !== before?.spiIn);
}

// ---------------------------------------------------------------------------------------------------
// libreswan

/** How pluto 4.10 logs the libreswan scenario's algorithms, by ike-node's names for them. */
const PLUTO_IKE: Readonly<Record<string, Record<string, string>>> = {
  'aes256-sha256-modp2048': {
    cipher: 'AES_CBC_256',
    integ: 'HMAC_SHA2_256_128',
    prf: 'HMAC_SHA2_256',
    group: 'MODP2048',
  },
};
const PLUTO_ESP: Readonly<Record<string, string>> = {
  'aes256-sha256': 'AES_CBC_256-HMAC_SHA2_256_128',
  aes128gcm16: 'AES_GCM_16_128-NONE',
};

/** A state's algorithm and key lines (`enc cbc(aes) 0x...`): the same at both ends of one SA. */
const keying = (state: XfrmState | undefined): string[] =>
  (state?.text ?? '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /^(enc|auth|auth-trunc|aead) /.test(line));
const algorithmsOf = (lines: readonly string[]) => lines.map((line) => line.split(' ')[1]).join(', ');

/**
 * pluto's IPv6 neighbour discovery bypasses (ipv6-icmp types 135 and 136 in, out and fwd, no
 * template): it installs them at start and leaves them when it stops.
 */
const ndBypass = (p: XfrmPolicy) =>
  /^src ::\/0 dst ::\/0 proto ipv6-icmp type 13[56]$/.test(p.selector) && !p.text.includes('tmpl');

/**
 * ike-node against libreswan, both roles: each run's IKE and child SA on both sides, pings both
 * ways, both kernels' states (SPIs crosswise, keys, counters), the wire, and the clean-up.
 */
async function checkLibreswan(t: Test, s: ScenarioResult, dir: string): Promise<void> {
  const spec = s.spec;
  const { left: ourAddress, right: theirAddress, leftInner, rightInner } = s.addresses;
  const runs = s.libreswan?.runs ?? [];
  // Each side's pings and its answers to the other's cross each SA.
  const packets = 2 * PING_COUNT;
  t.same(
    runs.map((r) => r.role),
    ['initiator', 'responder'],
    'ike-node ran against pluto as initiator, then as responder',
  );
  const inner = ['198.51.100.', '203.0.113.'];
  const ourWire = await wire(join(dir, s.pcaps.left!), inner);
  const theirWire = await wire(join(dir, s.pcaps.right!), inner);
  const ikeSent = await isakmpSummary(join(dir, s.pcaps.left!));
  const known = new Set<string>();

  for (const r of runs) {
    const { role } = r;
    const theirRole = role === 'initiator' ? 'responder' : 'initiator';
    await t.test(`ike-node ${role}, ESP ${r.esp}`, async (t) => {
      if (role === 'responder') {
        t.equal(
          r.whack?.code,
          0,
          `whack --initiate returned 0: ${r.whack?.output.trim().split('\n').at(-1)}`,
        );
      }
      const net = connection(r.afterTraffic?.ours.status, 'net');
      const ike = net?.ikeSas[0];
      const child = net?.childSas[0];
      t.equal(
        net?.status,
        'Active',
        `ike-node: net Active (both sides had the child ${r.msToEstablished} ms after ike-node's start)`,
      );
      t.match(
        ike,
        {
          version: 2,
          state: 'ESTABLISHED',
          role,
          algorithms: spec.ike,
          localId: ourAddress,
          remoteId: theirAddress,
          natDetected: false,
        },
        `ike-node: IKEv2 SA ESTABLISHED as ${role}, ${spec.ike}, no NAT`,
      );
      t.match(
        child,
        {
          mode: 'tunnel',
          encapsulation: false,
          algorithms: r.esp,
          localTs: [LEFT_SUBNET],
          remoteTs: [RIGHT_SUBNET],
        },
        `ike-node: tunnel child ${r.esp} between ${LEFT_SUBNET} and ${RIGHT_SUBNET}`,
      );
      const plutoChild = r.afterTraffic?.plutoChild;
      t.match(
        r.afterTraffic?.plutoIke,
        {
          established: true,
          role: theirRole,
          peerId: `ID_IPV4_ADDR '${ourAddress}'`,
          algorithms: PLUTO_IKE[spec.ike!],
        },
        `libreswan: IKE SA established as ${theirRole} with ${Object.values(PLUTO_IKE[spec.ike!] ?? {}).join('/')}, ike-node authenticated by its address`,
      );
      t.match(
        plutoChild,
        { established: true, xfrm: PLUTO_ESP[r.esp] },
        `libreswan: child SA established, the kernel given ${PLUTO_ESP[r.esp]}`,
      );
      t.equal(
        plutoChild?.spiOut,
        child?.spiIn,
        `SPIs agree: libreswan out = ike-node in (0x${child?.spiIn})`,
      );
      t.equal(
        plutoChild?.spiIn,
        child?.spiOut,
        `SPIs agree: libreswan in = ike-node out (0x${child?.spiOut})`,
      );

      // --- the data path: pings both ways, both kernels
      for (const [ping, from, to] of [
        [r.pings?.fromOurs, leftInner, rightInner],
        [r.pings?.fromTheirs, rightInner, leftInner],
      ] as const) {
        t.same(
          [ping?.transmitted, ping?.received],
          [PING_COUNT, PING_COUNT],
          `ping ${from} -> ${to}: ${ping?.received}/${ping?.transmitted} answered (${PING_COUNT} sent)`,
        );
      }
      if (!child) return;
      const ourXfrm = r.afterTraffic!.ours.xfrm;
      const theirXfrm = r.afterTraffic!.theirs.xfrm;
      const ourStates = assertKernelChild(t, ourXfrm, child, 'tunnel', false);
      assertTunnelPolicies(t, ourXfrm);
      t.same(
        [ourStates.out?.packets, ourStates.in?.packets],
        [packets, packets],
        `kernel (ike-node): ${packets} packets out and ${packets} in, each side's pings and the answers to the other's`,
      );
      const theirStates = xfrmStates(theirXfrm.state);
      const theirOut = theirStates.find((x) => x.spi === child.spiIn);
      const theirIn = theirStates.find((x) => x.spi === child.spiOut);
      t.match(
        theirOut,
        { src: theirAddress, dst: ourAddress, mode: 'tunnel' },
        `kernel (libreswan): outbound tunnel-mode state 0x${child.spiIn} (ike-node's inbound SPI), ${theirAddress} -> ${ourAddress}`,
      );
      t.match(
        theirIn,
        { src: ourAddress, dst: theirAddress, mode: 'tunnel' },
        `kernel (libreswan): inbound tunnel-mode state 0x${child.spiOut} (ike-node's outbound SPI), ${ourAddress} -> ${theirAddress}`,
      );
      t.same(
        [theirIn?.packets, theirIn?.bytes],
        [ourStates.out?.packets, ourStates.out?.bytes],
        `kernel: libreswan received what ike-node sent (${ourStates.out?.packets} packets, ${ourStates.out?.bytes} bytes)`,
      );
      t.same(
        [theirOut?.packets, theirOut?.bytes],
        [ourStates.in?.packets, ourStates.in?.bytes],
        `kernel: ike-node received what libreswan sent (${ourStates.in?.packets} packets, ${ourStates.in?.bytes} bytes)`,
      );
      for (const [mine, peer, direction] of [
        [ourStates.out, theirIn, 'ike-node -> libreswan'],
        [ourStates.in, theirOut, 'libreswan -> ike-node'],
      ] as const) {
        const keys = keying(mine);
        t.ok(
          keys.length > 0 && JSON.stringify(keying(peer)) === JSON.stringify(keys),
          `kernel: both ends of the ${direction} SA hold the same algorithms and keys (${algorithmsOf(keys)})`,
        );
      }
      t.ok(
        xfrmPolicies(theirXfrm.policy).some(
          (p) =>
            p.dir === 'out' &&
            p.mode === 'tunnel' &&
            p.selector.startsWith(`src ${RIGHT_SUBNET} dst ${LEFT_SUBNET}`),
        ),
        `kernel (libreswan): its outbound tunnel policy ${RIGHT_SUBNET} -> ${LEFT_SUBNET}`,
      );

      // --- the wire
      t.same(
        [count(ourWire.esp, child.spiOut), count(theirWire.esp, child.spiIn)],
        [packets, packets],
        `wire: ${packets} ESP packets (IP protocol 50) each way, 0x${child.spiOut} out and 0x${child.spiIn} back`,
      );
      const sent = ikeSent
        .filter((f) => f.ispi === ike?.spiI)
        .map((f) => `${f.exchange} ${f.flagNames.includes('R') ? 'response' : 'request'}`);
      const expected = ['IKE_SA_INIT', 'IKE_AUTH'].map(
        (x) => `${x} ${role === 'initiator' ? 'request' : 'response'}`,
      );
      t.same(
        sent.filter((x, i) => x !== sent[i - 1]).slice(0, 2),
        expected,
        `wire: ike-node sent ${expected.join(', then ')} with IKE SPIi ${ike?.spiI}`,
      );
      known.add(child.spiIn).add(child.spiOut);

      // --- SIGTERM to ike-node
      const stop = r.stop;
      if (t.ok(stop, 'ike-node was stopped with SIGTERM')) {
        t.equal(stop!.ours.code, 0, `ike-node (xfrm) exited 0 on SIGTERM (${stop!.ours.ms} ms)`);
        assertClean(t, stop!.ours.xfrm, 'ike-node namespace after SIGTERM');
        t.same(
          stop!.plutoStates,
          [],
          "libreswan dropped its SAs on ike-node's Delete (whack --showstates lists none)",
        );
        t.same(
          xfrmStates(stop!.theirXfrm.state),
          [],
          "kernel (libreswan): no ESP state left after ike-node's Delete",
        );
      }
    });
  }

  // --- the whole capture, both runs
  t.same(ourWire.leaks, [], 'wire (ike-node out): no plain traffic between the subnets, no plain ICMP');
  t.same(theirWire.leaks, [], 'wire (libreswan out): no plain traffic between the subnets, no plain ICMP');
  t.same([ourWire.espInUdp.size, theirWire.espInUdp.size], [0, 0], 'wire: no ESP in UDP without a NAT');
  const seen = [...ourWire.esp.keys(), ...theirWire.esp.keys()];
  t.same(
    seen.filter((spi) => !known.has(spi)),
    [],
    `wire: every ESP SPI is one of the two runs' child SAs (${seen.length} SPIs)`,
  );
  for (const side of ['left', 'right'] as const) {
    t.same(await tsharkProblems(join(dir, s.pcaps[side]!)), [], `tshark: ${side} capture's IKE is clean`);
  }

  // --- SIGTERM to pluto
  const plutoStop = s.libreswan?.plutoStop;
  if (t.ok(plutoStop, 'pluto was stopped with SIGTERM')) {
    t.equal(plutoStop!.code, 0, `pluto exited 0 on SIGTERM (${plutoStop!.ms} ms)`);
    t.equal(
      plutoStop!.xfrm.state.trim(),
      '',
      'libreswan namespace after pluto stopped: ip xfrm state shows nothing',
    );
    t.same(
      xfrmPolicies(plutoStop!.xfrm.policy)
        .filter((p) => !ndBypass(p))
        .map((p) => p.selector),
      [],
      'libreswan namespace after pluto stopped: no policy left but its IPv6 neighbour discovery bypasses',
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// SIGKILL and restart

/**
 * ike-node killed with its tunnel up, then started again: what the kill left in the kernel, that
 * the start removed exactly that (and said so), the new negotiation, the ping through the new SAs
 * within one DPD period, strongSwan with one IKE SA and one child, the wire, and SIGTERM after.
 */
async function checkRestart(t: Test, s: ScenarioResult, dir: string): Promise<void> {
  const spec = s.spec;
  const r = s.restart;
  if (!t.ok(r, 'the restart ran')) return;
  const mine = r!.kernel === 'pfkey' ? oursOnPfkey : ours;
  const { leftInner, rightInner } = s.addresses;

  // --- the first run
  const old = onlyChild(r!.before.ours.status, 'net');
  const oldIke = connection(r!.before.ours.status, 'net')?.ikeSas[0];
  t.match(
    oldIke,
    { version: spec.version, state: 'ESTABLISHED', role: 'initiator' },
    `before the kill: ike-node (${r!.kernel}) IKEv${spec.version} SA ESTABLISHED as initiator`,
  );
  t.same(
    [r!.before.ping.transmitted, r!.before.ping.received],
    [PING_COUNT, PING_COUNT],
    `before the kill: ping ${leftInner} -> ${rightInner} ${r!.before.ping.received}/${PING_COUNT} answered`,
  );
  assertSwanChild(t, swanChild(r!.before.theirs.sas, 'net'), old, 'tunnel (first run)', {
    mode: 'TUNNEL',
    encrAlg: encrAlg(spec.tunnelEsp),
    encap: false,
  });
  if (!old) return;

  // --- SIGKILL: the kernel keeps what the daemon installed
  t.equal(r!.killed.code, 128 + 9, 'ike-node died of SIGKILL');
  const staleStates = xfrmStates(r!.killed.xfrm.state).filter((x) => mine(x.reqid));
  const stalePolicies = xfrmPolicies(r!.killed.xfrm.policy).filter((p) => p.reqids.some(mine));
  t.same(
    staleStates.map((x) => x.spi).sort(),
    [old.spiIn, old.spiOut].sort(),
    `after the kill: the kernel still holds both SAs of the killed run (0x${old.spiIn}, 0x${old.spiOut})`,
  );
  t.same(
    stalePolicies.map((p) => p.dir).sort(),
    ['fwd', 'in', 'out'],
    'after the kill: the kernel still holds its in, out and fwd policies',
  );

  // --- the restart: what it removed, and said it removed
  // One line: "removed 2 SA(s) (SPIs c6b22367, c1712f91) and 3 policy(ies) left behind by ...".
  const removed = r!.cleanupLog.map((line) => {
    const said = /removed (\d+) SA\(s\) \(SPIs ([^)]*)\) and (\d+) policy/.exec(line);
    return said ? [Number(said[1]), said[2]!.split(', ').sort(), Number(said[3])] : line;
  });
  t.same(
    removed,
    [[staleStates.length, staleStates.map((x) => x.spi).sort(), stalePolicies.length]],
    `the restarted daemon logged what it removed: ${r!.cleanupLog.map((l) => l.replace(/^\S+\s+/, '')).join('; ')}`,
  );
  const now = onlyChild(r!.after.ours.status, 'net');
  const ike = connection(r!.after.ours.status, 'net')?.ikeSas[0];
  t.equal(connection(r!.after.ours.status, 'net')?.status, 'Active', 'after the restart: net Active');
  t.match(
    ike,
    { version: spec.version, state: 'ESTABLISHED', role: 'initiator' },
    `after the restart: a new IKEv${spec.version} SA as initiator`,
  );
  t.not(ike?.spiI, oldIke?.spiI, `after the restart: a new IKE SA (SPIi ${ike?.spiI}, was ${oldIke?.spiI})`);
  if (!t.ok(now, 'after the restart: a child SA') || !now) return;
  t.ok(
    now.spiIn !== old.spiIn && now.spiOut !== old.spiOut,
    `after the restart: new SPIs (in 0x${now.spiIn}, out 0x${now.spiOut})`,
  );
  const states = xfrmStates(r!.after.ours.xfrm.state).filter((x) => mine(x.reqid));
  t.same(
    states.map((x) => x.spi).sort(),
    [now.spiIn, now.spiOut].sort(),
    "after the restart: ike-node's kernel holds exactly the new child's SAs, none of the killed run's",
  );
  const policies = xfrmPolicies(r!.after.ours.xfrm.policy).filter((p) => p.reqids.some(mine));
  const live = new Set(states.map((x) => x.reqid));
  t.same(
    policies.map((p) => p.dir).sort(),
    ['fwd', 'in', 'out'],
    'after the restart: one in, out and fwd policy of ours',
  );
  t.same(
    policies.filter((p) => !p.reqids.every((reqid) => live.has(reqid))).map((p) => p.selector),
    [],
    'after the restart: no policy of ours without a live SA of its reqid',
  );

  // --- the peer and the data path
  t.same(
    [r!.ping.transmitted, r!.ping.received],
    [PING_COUNT, PING_COUNT],
    `after the restart: ping ${leftInner} -> ${rightInner} ${r!.ping.received}/${PING_COUNT} answered`,
  );
  // Printed, not asserted (the project keeps timings out of pass/fail): under TCG on a busy host
  // one IKE exchange alone can take longer than the DPD period.
  t.comment(
    `recovery: ${r!.msToActive} ms to Active and ${r!.msToRecovered} ms to the ping's end, counted from ` +
      `the restarted daemon's control socket (${r!.msToReady} ms after its spawn); ` +
      `${r!.msToRecovered <= DPD_DELAY_SEC * 1000 ? 'within' : 'LONGER than'} one DPD period (${DPD_DELAY_SEC} s)`,
  );
  const sas = r!.after.theirs.sas ?? [];
  t.same(
    sas.map((sa) => [sa.state, sa.children.length]),
    [['ESTABLISHED', 1]],
    'strongSwan ends with exactly one IKE SA, with one child SA',
  );
  assertSwanChild(t, swanChild(sas, 'net'), now, 'tunnel (after the restart)', {
    mode: 'TUNNEL',
    encrAlg: encrAlg(spec.tunnelEsp),
    encap: false,
  });
  t.same(
    xfrmStates(r!.after.theirs.xfrm.state)
      .map((x) => x.spi)
      .sort(),
    [now.spiIn, now.spiOut].sort(),
    "strongSwan's kernel holds only the new child's SAs",
  );
  const peerLog = r!.peerLog.map((line) => line.replace(/^\S+ \d+\[\w+\] /, ''));
  t.ok(
    peerLog.some((line) => /parsed (ID_PROT|IKE_AUTH) request .*N\(INIT(IAL)?_CONTACT\)/.test(line)),
    'the restarted ike-node sent INITIAL-CONTACT (strongSwan parsed it)',
  );
  const byContact = peerLog.find((line) => /duplicate/.test(line));
  // IKEv2: the DPD exchange runs out of retransmits; IKEv1: no R-U-THERE-ACK in time.
  const byDpd = peerLog.find((line) => /giving up|DPD check timed out/.test(line));
  t.ok(
    byContact ?? byDpd,
    `strongSwan let the killed run's IKE SA go: ${byContact ? 'INITIAL-CONTACT' : 'its DPD'} (${byContact ?? byDpd})`,
  );

  // --- the wire
  const inner = ['198.51.100.', '203.0.113.'];
  const left = await wire(join(dir, s.pcaps.left!), inner);
  const right = await wire(join(dir, s.pcaps.right!), inner);
  t.same([left.leaks, right.leaks], [[], []], 'wire: no plain inner traffic, no plain ICMP either way');
  t.same([left.espInUdp.size, right.espInUdp.size], [0, 0], 'wire: no ESP in UDP without a NAT');
  t.ok(
    count(left.esp, now.spiOut) >= PING_COUNT && count(right.esp, now.spiIn) >= PING_COUNT,
    `wire: the ping after the restart crossed on the new SAs (${count(left.esp, now.spiOut)} out with 0x${now.spiOut}, ${count(right.esp, now.spiIn)} back with 0x${now.spiIn})`,
  );
  const known = new Set([old.spiIn, old.spiOut, now.spiIn, now.spiOut]);
  const seen = [...left.esp.keys(), ...right.esp.keys()];
  t.same(
    seen.filter((spi) => !known.has(spi)),
    [],
    "wire: every ESP SPI is the first or the second run's",
  );
  const first = spec.version === 1 ? 'ID_PROT' : 'IKE_SA_INIT';
  const starts = (await isakmpSummary(join(dir, s.pcaps.left!)))
    .filter((f) => f.exchange === first)
    .map((f) => f.ispi);
  t.same(
    [...new Set(starts)],
    [oldIke?.spiI, ike?.spiI],
    `wire: ike-node started ${first} twice, once per run (SPIi ${oldIke?.spiI}, then ${ike?.spiI})`,
  );
  for (const side of ['left', 'right'] as const) {
    t.same(await tsharkProblems(join(dir, s.pcaps[side]!)), [], `tshark: ${side} capture's IKE is clean`);
  }

  // --- SIGTERM to the restarted daemon
  if (t.ok(r!.stop, 'the restarted ike-node was stopped with SIGTERM')) {
    t.equal(r!.stop!.code, 0, `the restarted ike-node exited 0 on SIGTERM (${r!.stop!.ms} ms)`);
    assertClean(t, r!.stop!.xfrm, `ike-node (${r!.kernel}) namespace after SIGTERM`);
  }
}

t.test(
  'kernel ESP in the kernel lab: ike-node xfrm and pfkey backends with strongSwan (kernel-netlink), libreswan and each other',
  { timeout: (LAB_TIMEOUT_SEC + 60) * 1000 },
  async (t) => {
    if (missing(t, unavailable)) return;
    const dir = mkdtempSync(join(tmpdir(), 'ike-node-kernel-esp-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // A saved console of an earlier run (klab-run's stdout) is checked again without a boot.
    const replay = process.env.IKE_NODE_KERNEL_ESP_REPLAY;
    const lab = replay
      ? {
          code: 0,
          output: readFileSync(replay, 'utf8').replace(/^\[\s*[\d.]+\] /gm, ''),
          stderr: 'replayed',
          ms: 0,
        }
      : await runInKernelLab(process.execPath, {
          args: ['--import', 'tsx', GUEST],
          cwd: REPO_ROOT,
          timeoutSec: LAB_TIMEOUT_SEC,
          modules: MODULES,
          // TCG runs each vCPU on a host thread: two halve the run (ike-node, charon, ping, tcpdump).
          cpus: 2,
        });
    t.comment(`kernel lab run: ${lab.ms.toFixed(0)} ms (${lab.stderr.trim().split('\n').join('; ')})`);
    const result = decodeGuestResult(lab.output);
    if (!t.equal(lab.code, 0, 'the guest script exited 0') || !t.ok(result, 'the guest reported a result')) {
      t.comment(`--- guest console\n${tail(consoleText(lab.output), 80)}\n--- klab-run\n${lab.stderr}`);
      return;
    }
    t.comment(`guest: kernel ${result!.kernel}, node ${result!.node}, scenarios ${result!.totalMs} ms`);
    for (const [name, base64] of Object.entries(result!.files ?? {})) {
      writeFileSync(join(dir, name), Buffer.from(base64, 'base64'));
    }
    t.same(
      result!.scenarios.map((s) => s.name),
      SCENARIOS.map((s) => s.name),
      'every scenario ran',
    );
    const titles: Record<string, string> = {
      direct:
        'ike-node (xfrm) <-> strongSwan (kernel-netlink): tunnel + transport udp/1701, rekey under a ping stream, SIGTERM',
      nat: 'ike-node (xfrm) behind a NAT <-> strongSwan: tunnel + transport udp/1701 as ESP in UDP',
      pfkey: 'ike-node (xfrm) <-> ike-node (pfkey, Linux af_key): tunnel',
      ikev2:
        'ike-node (xfrm) <-> strongSwan (kernel-netlink), IKEv2: tunnel + transport udp/1701 by CREATE_CHILD_SA, rekey under a ping stream, SIGTERM',
      libreswan:
        'ike-node (xfrm) <-> libreswan (pluto, XFRM), IKEv2 PSK: tunnel with ike-node initiating, then responding; pings both ways, SIGTERM',
      acquire: 'ike-node (xfrm, start on traffic) <-> strongSwan: the first ping ACQUIREs the tunnel',
      restart:
        'ike-node (xfrm) <-> strongSwan (DPD), IKEv1: SIGKILL with the tunnel up, restart, stale state removed, tunnel back',
      'restart-ikev2':
        'ike-node (xfrm) <-> strongSwan (DPD), IKEv2: SIGKILL with the tunnel up, restart, stale state removed, tunnel back',
      'restart-pfkey':
        'ike-node (pfkey, Linux af_key) <-> strongSwan (DPD), IKEv2: SIGKILL, restart, stale state removed, tunnel back',
    };
    for (const s of result!.scenarios) {
      await t.test(`${s.name}: ${titles[s.name] ?? s.name}`, (t) => checkScenario(t, s, dir));
    }
  },
);
