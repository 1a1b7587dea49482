import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startCapture, tsharkProblems } from './lib/capture.js';
import { type IkeNode, startIkeNode } from './lib/ike-node.js';
import type { TopologyKind } from './lib/netns.js';
import {
  ends,
  type IkeNodeStatus,
  ikeNodeTunnel,
  type Lab,
  openLab,
  swanctlTunnel,
  type TunnelSpec,
  until,
} from './lib/scenario.js';
import { type Charon, type ParsedChildSa, startCharon, swanctlConnection } from './lib/strongswan.js';
import { countBytes, countPackets, tcpTransfer } from './lib/traffic.js';

/**
 * The userspace ESP data plane carrying real traffic on the host (whose kernel has no ESP):
 * ike-node's `userspace` backend (ESP in Node over a TUN device) against strongSwan's
 * kernel-libipsec, directly and through the masquerading NAT, and again after a rekey; then
 * ike-node against ike-node. Each time: a ping and a 10 MB TCP transfer between the protected
 * subnets, arriving intact; on the wire only ESP in UDP (no inner ICMP or TCP in the clear, no
 * plain ESP); byte and packet counters that agree on both sides; IKE that tshark dissects cleanly.
 */

t.setTimeout(240_000);

const PSK = 'conformance-userspace-psk-91c4';
const TEN_MB = 10 * 1024 * 1024;
const CIPHERS = ['aes128gcm16', 'aes128-sha256'];

interface Counters {
  bytesIn: number;
  packetsIn: number;
  bytesOut: number;
  packetsOut: number;
}

async function activeChild(ikeNode: IkeNode, spiNot?: string) {
  return until(
    async () => {
      const [net] = (await ikeNode.status()) as IkeNodeStatus;
      const child = net?.childSas.find((c) => c.spiIn !== spiNot);
      return net?.status === 'Active' && child ? child : undefined;
    },
    10_000,
    'ike-node to report an active child SA',
  );
}

/** Ping and the 10 MB transfer left -> right across the tunnel, with a capture on ike-node's wire. */
async function traffic(t: Test, lab: Lab, ikeNodeSide: 'left' | 'right', label: string): Promise<void> {
  const { topology, dir } = lab;
  const iface = ikeNodeSide === 'left' ? topology.leftIface : topology.rightIface;
  const ns = ikeNodeSide === 'left' ? topology.left : topology.right;
  const file = join(dir, `${label}.pcap`);
  const capture = await startCapture(ns, iface, file, 'ip');
  const ping = await topology.left.exec(
    'ping',
    ['-c', '5', '-i', '0.2', '-W', '2', '-I', topology.leftInner, topology.rightInner],
    { allowFail: true },
  );
  t.match(ping.stdout, / 5 received, 0% packet loss/, `${label}: 5 pings answered through the tunnel`);
  const transfer = await tcpTransfer(
    topology.left,
    topology.leftInner,
    topology.right,
    topology.rightInner,
    TEN_MB,
  );
  t.equal(transfer.received, TEN_MB, `${label}: 10 MB arrived`);
  t.ok(transfer.intact, `${label}: and intact (SHA-256 agrees)`);
  t.comment(
    `${label}: 10 MB in ${transfer.ms} ms (${((TEN_MB * 8) / transfer.ms / 1000).toFixed(0)} Mbit/s)`,
  );
  await capture.stop();
  t.equal(await countPackets(file, 'icmp'), 0, `${label}: no ICMP in the clear on the wire`);
  t.equal(await countPackets(file, 'tcp'), 0, `${label}: no TCP in the clear on the wire`);
  t.equal(
    await countPackets(file, 'ip proto 50'),
    0,
    `${label}: no plain ESP either (the userspace plane sends ESP in UDP)`,
  );
  const espBytes = await countBytes(file, 'udp.port == 4500');
  t.ok(espBytes > TEN_MB, `${label}: the transfer crossed as ESP in UDP (${espBytes} bytes on port 4500)`);
  t.same(await tsharkProblems(file), [], `${label}: tshark dissects the capture cleanly`);
}

/**
 * Counters agree. Under a 10 MB burst some datagrams may be lost on the way (a full socket buffer)
 * and TCP sends them again, so the sender counts at least what the receiver did; five pings on the
 * quiet tunnel afterwards must then move both sides' counters by exactly the same amounts.
 */
async function countersAgree(
  t: Test,
  label: string,
  read: () => Promise<{ ours: Counters; theirs: Counters }>,
  ping: () => Promise<unknown>,
): Promise<void> {
  const before = await read();
  t.ok(
    before.ours.packetsOut >= before.theirs.packetsIn && before.theirs.packetsIn > TEN_MB / 1500,
    `${label}: the transfer was counted: ${before.ours.packetsOut} packets out, ${before.theirs.packetsIn} in at the peer`,
  );
  await ping();
  const after = await read();
  const delta = (side: 'ours' | 'theirs', key: keyof Counters) => after[side][key] - before[side][key];
  t.equal(delta('ours', 'packetsOut'), 5, `${label}: five pings out, counted by ike-node`);
  t.equal(delta('theirs', 'packetsIn'), 5, `${label}: and five in at the peer`);
  t.equal(delta('ours', 'packetsIn'), 5, `${label}: five replies in`);
  t.equal(delta('theirs', 'packetsOut'), 5, `${label}: five replies out at the peer`);
  t.equal(delta('ours', 'bytesOut'), delta('theirs', 'bytesIn'), `${label}: bytes out = the peer's bytes in`);
  t.equal(delta('ours', 'bytesIn'), delta('theirs', 'bytesOut'), `${label}: bytes in = the peer's bytes out`);
}

async function pingFive(lab: Lab): Promise<void> {
  const { topology } = lab;
  await topology.left.exec('ping', [
    '-c',
    '5',
    '-i',
    '0.2',
    '-W',
    '2',
    '-I',
    topology.leftInner,
    topology.rightInner,
  ]);
}

function swanCounters(child: ParsedChildSa): Counters {
  return {
    bytesIn: child.bytesIn,
    packetsIn: child.packetsIn,
    bytesOut: child.bytesOut,
    packetsOut: child.packetsOut,
  };
}

async function installedSwanChild(charon: Charon, spiNot?: string): Promise<ParsedChildSa> {
  return until(
    async () =>
      (await charon.listSas())
        .find((sa) => sa.name === 'net' && sa.state === 'ESTABLISHED')
        ?.children.find((c) => c.state === 'INSTALLED' && c.spiIn !== spiNot),
    10_000,
    'strongSwan to install the child SA',
  );
}

async function againstStrongswan(
  t: Test,
  kind: TopologyKind,
  esp: string,
  rekey: boolean,
  version: 1 | 2 = 1,
): Promise<void> {
  const lab = await openLab(t, kind, `us-v${version}-${kind}`, 60);
  const { dir, topology } = lab;
  const { ours, theirs } = ends(topology, 'left');
  const charon = await startCharon(theirs.ns, { name: 'strongswan', dir: join(dir, 'strongswan') });
  lab.charon = charon;
  const tunnel: TunnelSpec = {
    dir,
    ours,
    theirs,
    psk: PSK,
    version,
    role: 'initiator',
    ike: 'aes128-sha256-modp2048',
    esp,
  };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  const ikeNode = await startIkeNode(ours.ns, { ...ikeNodeTunnel(tunnel), kernel: 'userspace' }, { dir });
  lab.ikeNode = ikeNode;
  let child = await activeChild(ikeNode);
  let swan = await installedSwanChild(charon);
  t.equal(child.spiOut, swan.spiIn, 'SPIs agree');
  t.ok(child.encapsulation && swan.encap, 'both sides encapsulate ESP in UDP');

  if (rekey) {
    const rekeyed = await charon.swanctl(['--rekey', '--child', 'net'], 10);
    t.equal(rekeyed.code, 0, 'strongSwan rekeyed the child SA');
    const old = child.spiIn;
    child = await activeChild(ikeNode, old);
    swan = await installedSwanChild(charon, swan.spiIn);
    t.not(child.spiIn, old, 'a new SA replaced the old one');
    t.equal(child.spiOut, swan.spiIn, 'SPIs agree after the rekey');
  }

  await traffic(t, lab, 'left', `IKEv${version} ${kind}${rekey ? ' after a rekey' : ''} ${esp}`);
  await countersAgree(
    t,
    esp,
    async () => {
      const [net] = (await ikeNode.status()) as IkeNodeStatus;
      const sa = (await charon.listSas()).find((x) => x.name === 'net');
      return {
        ours: net!.childSas.find((c) => c.spiIn === child.spiIn)!.traffic!,
        theirs: swanCounters(sa!.children.find((c) => c.spiIn === swan.spiIn)!),
      };
    },
    () => pingFive(lab),
  );
  t.equal(await ikeNode.stop(), 0, 'ike-node exits 0 on SIGTERM');
  lab.ikeNode = undefined;
}

t.test('ike-node (userspace) <-> strongSwan (kernel-libipsec), direct', async (t) => {
  for (const esp of CIPHERS) await t.test(esp, (t) => againstStrongswan(t, 'direct', esp, false));
});

t.test('ike-node (userspace) <-> strongSwan (kernel-libipsec), through the NAT', (t) =>
  againstStrongswan(t, 'nat', 'aes128gcm16', false),
);

t.test('ike-node (userspace) <-> strongSwan (kernel-libipsec), after a rekey', (t) =>
  againstStrongswan(t, 'direct', 'aes128-sha256', true),
);

t.test(
  'IKEv2: ike-node (userspace) <-> strongSwan (kernel-libipsec), direct and through the NAT',
  async (t) => {
    await t.test('direct, aes256gcm16', (t) => againstStrongswan(t, 'direct', 'aes256gcm16', false, 2));
    await t.test('NAT, aes128-sha256', (t) => againstStrongswan(t, 'nat', 'aes128-sha256', false, 2));
  },
);

t.test('ike-node (userspace) <-> ike-node (userspace)', async (t) => {
  const lab = await openLab(t, 'direct', 'us-pair', 60);
  const { dir, topology } = lab;
  const { ours, theirs } = ends(topology, 'left');
  const tunnel: TunnelSpec = {
    dir,
    ours,
    theirs,
    psk: PSK,
    role: 'initiator',
    ike: 'aes128-sha256-modp2048',
    esp: 'aes128gcm16',
  };
  const mirrored: TunnelSpec = {
    ...tunnel,
    dir: join(dir, 'right'),
    ours: theirs,
    theirs: ours,
    role: 'responder',
  };
  const right = await startIkeNode(
    theirs.ns,
    { ...ikeNodeTunnel(mirrored), kernel: 'userspace' },
    { dir: mirrored.dir },
  );
  t.teardown(() => right.stop().then(() => undefined));
  const left = await startIkeNode(ours.ns, { ...ikeNodeTunnel(tunnel), kernel: 'userspace' }, { dir });
  lab.ikeNode = left;
  const leftChild = await activeChild(left);
  const rightChild = await activeChild(right);
  t.equal(leftChild.spiOut, rightChild.spiIn, 'SPIs agree');
  await traffic(t, lab, 'left', 'ike-node pair');
  const counters = async (node: IkeNode) =>
    ((await node.status()) as IkeNodeStatus)[0]!.childSas[0]!.traffic!;
  await countersAgree(
    t,
    'ike-node pair',
    async () => ({ ours: await counters(left), theirs: await counters(right) }),
    () => pingFive(lab),
  );
});
