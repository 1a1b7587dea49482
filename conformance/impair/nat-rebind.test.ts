import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startIkeNode } from '../lib/ike-node.js';
import { count, flushConntrack, ikeNodeChildren, logged, tunnelUp } from '../lib/impair.js';
import { delay, type Ns, type Topology } from '../lib/netns.js';
import {
  ends,
  ikeNodeSide,
  type IkeNodeStatus,
  ikeNodeTunnel,
  openLab,
  swanctlTunnel,
  type TunnelSpec,
} from '../lib/scenario.js';
import { CHARON_LIVENESS, startCharon, swanctlConnection } from '../lib/strongswan.js';

/**
 * A NAT mapping that changes mid-tunnel: strongSwan 5.9.8 sits behind the masquerading router
 * (`masquerade random`) with a tunnel up to ike-node outside; the router's conntrack is flushed,
 * so strongSwan's next datagram leaves from a new public port. First only unauthenticated
 * datagrams come from there (strongSwan's NAT keepalives every second, and a forged message with
 * the IKE SA's SPIs and garbage for its encrypted body, sent from strongSwan's host through the
 * NAT from a port of its own): ike-node must not
 * move the peer (its status keeps the old port). Then strongSwan rekeys the child SA, an
 * authenticated message from the new port: ike-node must follow it (RFC 3947 for IKEv1, RFC 7296
 * 2.23 for IKEv2), show the new port, keep the same IKE SA, and its liveness checks must be
 * answered there. IKEv1 and IKEv2 at once.
 */

const PSK = 'conformance-rebind-psk-3a58';
const SUITE = 'aes128-sha1-modp1024';
const DPD = { delay: 2, timeout: 30, action: 'clear' } as const;

t.setTimeout(120_000);

/** The NAT's public port for strongSwan's IKE (from 4500), from the router's conntrack table. */
async function publicPort(topology: Topology): Promise<number | undefined> {
  const { stdout } = await topology.router!.exec(
    'conntrack',
    ['-L', '-p', 'udp', '--orig-port-src', '4500'],
    {
      allowFail: true,
    },
  );
  const reply = /src=192\.0\.2\.130 dst=192\.0\.2\.2 sport=4500 dport=4500 .*?dport=(\d+)/.exec(stdout);
  return reply ? Number(reply[1]) : undefined;
}

/**
 * An IKE message on port 4500 (non-ESP marker) that names the IKE SA's SPIs but whose encrypted
 * part is garbage, sent from strongSwan's host (`from`, behind the NAT) and a port the kernel
 * picks, so that it reaches ike-node from the NAT's address and yet another public port.
 */
async function forge(from: Ns, version: 1 | 2, spiI: string, spiR: string, to: string): Promise<void> {
  const body = Buffer.alloc(64, 0xa5);
  const header = Buffer.alloc(28);
  Buffer.from(spiI + spiR, 'hex').copy(header, 0);
  if (version === 2) {
    // SK, IKEv2, INFORMATIONAL request from the original initiator with the message ID ike-node
    // expects next from strongSwan (2, after IKE_AUTH's 1): inside the window, so it is verified.
    header.set([46, 0x20, 37, 0x08], 16);
    header.writeUInt32BE(2, 20);
  } else {
    // HASH, IKEv1, INFORMATIONAL, encrypted, a fresh message ID; the body stands for ciphertext.
    header.set([8, 0x10, 5, 0x01], 16);
    header.writeUInt32BE(0x5eed1e55, 20);
  }
  const sk = version === 2 ? Buffer.from([0, 0, 0, 4 + body.length]) : Buffer.alloc(0);
  const message = Buffer.concat([header, sk, body]);
  message.writeUInt32BE(message.length, 24);
  const datagram = Buffer.concat([Buffer.alloc(4), message]).toString('hex');
  const script = `
const socket = require('node:dgram').createSocket('udp4');
socket.bind(0, () => socket.send(Buffer.from(process.argv[1], 'hex'), 4500, process.argv[2], () => socket.close()));`;
  await from.exec(process.execPath, ['-e', script, datagram, to]);
}

async function scenario(t: Test, version: 1 | 2): Promise<string> {
  const label = `IKEv${version}`;
  const lab = await openLab(t, 'nat', `rebind-v${version}`);
  const { topology } = lab;
  const { ours, theirs } = ends(topology, ikeNodeSide('nat', 'responder'));
  const charon = await startCharon(theirs.ns, {
    name: 'strongswan',
    dir: join(lab.dir, 'strongswan'),
    // NAT keepalives every second: unauthenticated datagrams from the new port arrive early.
    extraCharonConf: '  keep_alive = 1s',
  });
  lab.charon = charon;
  const tunnel: TunnelSpec = {
    dir: lab.dir,
    ours,
    theirs,
    psk: PSK,
    version,
    role: 'responder',
    ike: SUITE,
    esp: SUITE,
    ikePolicy: { dpd: DPD },
    // strongSwan checks no liveness itself: every authenticated message from it is one we trigger.
    swan: { dpd_delay: 0 },
  };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  const ikeNode = await startIkeNode(ours.ns, ikeNodeTunnel(tunnel), { dir: lab.dir });
  lab.ikeNode = ikeNode;
  t.ok((await charon.initiate('net', 'net')).ok, `${label}: strongSwan initiated from behind the NAT`);
  const { net: before, sa: swanBefore } = await tunnelUp(ikeNode, charon, 15_000);
  const oldPort = await publicPort(topology);
  t.equal(
    before.ikeSas[0]?.remote,
    `${topology.leftSeenAs}:${oldPort}`,
    `${label}: ike-node sees the NAT's port`,
  );

  await flushConntrack(topology);
  // The next keepalive makes the new mapping.
  let newPort: number | undefined;
  for (let i = 0; i < 50 && (newPort === undefined || newPort === oldPort); i++) {
    await delay(100);
    newPort = await publicPort(topology);
  }
  t.ok(newPort !== undefined && newPort !== oldPort, `${label}: the NAT maps strongSwan to a new port`);
  const { spiI, spiR } = before.ikeSas[0]!;
  await forge(theirs.ns, version, spiI, spiR, ours.address);
  // Two more keepalives from the new port, and time for the forged message to be judged.
  await delay(2500);
  const [unmoved] = (await ikeNode.status()) as IkeNodeStatus;
  t.equal(
    unmoved?.ikeSas[0]?.remote,
    before.ikeSas[0]?.remote,
    `${label}: keepalives and a forged message from the new port did not move the peer`,
  );
  t.notMatch(ikeNode.log(), /peer moved/, `${label}: ike-node logged no move yet`);
  t.match(
    ikeNode.log(),
    /INFORMATIONAL from \S+ ignored/,
    `${label}: ike-node judged the forged message and ignored it`,
  );

  const checksBefore = count(charon.log(), CHARON_LIVENESS[version].request);
  const rekey = await charon.swanctl(['--rekey', '--child', 'net'], 20);
  t.equal(rekey.code, 0, `${label}: strongSwan rekeyed the child SA from the new port`);
  await logged(() => ikeNode.log(), /peer moved from/, 10_000, 'ike-node to follow the peer');
  await tunnelUp(ikeNode, charon, 15_000, { ikeNode: 2, charon: 2 });
  // Liveness checks go to the new port and are answered (2 × delay, and some slack).
  await delay(DPD.delay * 2000 + 1500);
  const [moved] = (await ikeNode.status()) as IkeNodeStatus;
  const swanAfter = (await charon.listSas()).find((sa) => sa.name === 'net');
  t.equal(moved?.status, 'Active', `${label}: the tunnel survived (ike-node Active)`);
  t.equal(moved?.ikeSas.length, 1, `${label}: one IKE SA`);
  t.equal(moved?.ikeSas[0]?.spiI, spiI, `${label}: the same IKE SA, followed and not replaced`);
  t.equal(
    moved?.ikeSas[0]?.remote,
    `${topology.leftSeenAs}:${newPort}`,
    `${label}: ike-node shows the new port`,
  );
  t.ok(
    moved?.childSas.length && moved.childSas.every((c) => c.encapsulation),
    `${label}: the child SA is UDP-encapsulated`,
  );
  t.equal(swanAfter?.uniqueid, swanBefore.uniqueid, `${label}: strongSwan kept its IKE SA`);
  const checksAfter = count(charon.log(), CHARON_LIVENESS[version].request) - checksBefore;
  t.ok(
    checksAfter >= 1,
    `${label}: ike-node's liveness checks reach strongSwan at the new port (${checksAfter})`,
  );
  t.notMatch(ikeNode.log(), /dead peer/, `${label}: no dead peer declared`);
  return `${label}: public port ${oldPort} -> ${newPort}; ${ikeNodeChildren(ikeNode.log())} child installs; ${checksAfter} liveness checks answered after the move`;
}

t.test('NAT mapping change mid-tunnel: IKEv1 and IKEv2', async (t) => {
  const lines = await Promise.all(([1, 2] as const).map((version) => scenario(t, version)));
  for (const line of lines) t.comment(line);
});
