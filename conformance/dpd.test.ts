import { join } from 'node:path';
import t, { type Test } from 'tap';
import { isakmpSummary, startCapture, tsharkProblems } from './lib/capture.js';
import { startIkeNode } from './lib/ike-node.js';
import { delay, listNamespaces, signal, type TopologyKind } from './lib/netns.js';
import {
  ends,
  ikeNodeSide,
  type IkeNodeStatus,
  ikeNodeTunnel,
  openLab,
  swanctlTunnel,
  type TunnelSpec,
  until,
} from './lib/scenario.js';
import { CHARON_LIVENESS, startCharon, swanctlConnection } from './lib/strongswan.js';

/**
 * Dead peer detection against strongSwan 5.9.8 (tunnel mode, aes128-sha1-modp1024, PFS
 * modp1024): IKEv1 R-U-THERE (RFC 3706) with ike-node as initiator and as responder, directly and
 * through the masquerading NAT, and IKEv2 liveness checks (empty INFORMATIONAL requests, RFC 7296
 * 2.4) in both roles. While strongSwan lives, ike-node's checks are answered and the connection
 * stays Active; once charon is SIGKILLed, ike-node must declare the peer dead within delay +
 * timeout and drop its SAs (action clear).
 */

const PSK = 'conformance-dpd-psk-41af';
const SUITE = 'aes128-sha1-modp1024';
const DPD = { delay: 2, timeout: 6, action: 'clear' } as const;

// Six scenarios of about 14 s each: well past tap's default 30 s per file.
t.setTimeout(200_000);

/** How strongSwan logs a liveness check it receives and its answer, and tshark names the exchange. */
const CHECKS = {
  1: { ...CHARON_LIVENESS[1], exchange: 'INFORMATIONAL_V1' },
  2: { ...CHARON_LIVENESS[2], exchange: 'INFORMATIONAL' },
} as const;

async function scenario(
  t: Test,
  version: 1 | 2,
  kind: TopologyKind,
  role: 'initiator' | 'responder',
): Promise<void> {
  const lab = await openLab(t, kind, `v${version}-dpd-${kind}-${role}`);
  const { dir, topology } = lab;
  const { ours, theirs } = ends(topology, ikeNodeSide(kind, role));

  const charon = await startCharon(theirs.ns, { name: 'strongswan', dir: join(dir, 'strongswan') });
  lab.charon = charon;

  const pcap = join(dir, 'ike-node.pcap');
  const capture = await startCapture(ours.ns, ours.iface, pcap);
  const tunnel: TunnelSpec = {
    dir,
    ours,
    theirs,
    psk: PSK,
    version,
    role,
    ike: SUITE,
    esp: SUITE,
    ikePolicy: { dpd: DPD },
    // strongSwan sends no DPD of its own: every R-U-THERE on the wire is ike-node's.
    swan: { dpd_delay: 0 },
  };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  const ikeNode = await startIkeNode(ours.ns, ikeNodeTunnel(tunnel), { dir });
  lab.ikeNode = ikeNode;
  if (role === 'responder') t.ok((await charon.initiate('net', 'net')).ok, 'strongSwan initiated');

  const established = await until(
    async () => {
      const [net] = (await ikeNode.status()) as IkeNodeStatus;
      return net?.status === 'Active' && net.childSas.length === 1 ? net : undefined;
    },
    10_000,
    'ike-node to establish the child SA',
  );
  const swanChild = await until(
    async () =>
      (await charon.listSas())
        .find((x) => x.name === 'net' && x.state === 'ESTABLISHED')
        ?.children.find((c) => c.state === 'INSTALLED'),
    5000,
    'strongSwan to install the child SA',
  );
  t.equal(swanChild.spiIn, established.childSas[0]!.spiOut, 'SPIs agree (ike-node out = strongSwan in)');
  t.equal(swanChild.spiOut, established.childSas[0]!.spiIn, 'SPIs agree (ike-node in = strongSwan out)');

  // Idle past 2 × delay: R-U-THERE goes out at least twice, and strongSwan answers each one.
  await delay(DPD.delay * 2 * 1000 + 1500);
  const [alive] = (await ikeNode.status()) as IkeNodeStatus;
  t.equal(alive!.status, 'Active', `still Active after ${DPD.delay * 2 + 1.5} s of DPD`);
  t.same(
    alive!.childSas.map((c) => c.spiIn),
    established.childSas.map((c) => c.spiIn),
    'the same child SA',
  );
  const log = charon.log();
  const checks = CHECKS[version];
  const requests = log.match(checks.request) ?? [];
  const acks = log.match(checks.answer) ?? [];
  t.ok(requests.length >= 2, `strongSwan received liveness checks (${requests.length})`);
  t.equal(acks.length, requests.length, 'strongSwan answered every one');
  const wire = await isakmpSummary(pcap).catch(() => []);
  const informational = wire.filter((f) => f.exchange === checks.exchange);
  t.ok(
    informational.some((f) => f.src === ours.address) && informational.some((f) => f.src === theirs.seenAs),
    'informational exchanges in both directions on the wire',
  );

  // SIGKILL charon itself (the handle's pid is charon's: `sh -c … exec charon`): no Delete goes out.
  const killedAt = Date.now();
  signal(charon.pid, 'SIGKILL');
  t.equal(await charon.stop(), 137, 'charon died of SIGKILL');
  const dead = await until(
    async () => {
      const [net] = (await ikeNode.status()) as IkeNodeStatus;
      return net?.status === 'Error' ? net : undefined;
    },
    12_000,
    'ike-node to declare the peer dead',
  );
  const detectedIn = (Date.now() - killedAt) / 1000;
  t.comment(`dead peer detected ${detectedIn.toFixed(1)} s after the kill`);
  t.match(dead.error, /dead peer/, `status Error: ${dead.error}`);
  t.same(dead.childSas, [], 'no child SA left');
  t.same(dead.ikeSas, [], 'no IKE SA left');
  t.ok(detectedIn >= DPD.timeout - DPD.delay - 0.5, 'not declared dead before the timeout could run');
  t.match(
    await ikeNode.logged(/dead peer: no answer for \d+ s, action clear/),
    /dead peer/,
    'ike-node logged the dead peer',
  );

  await ikeNode.stop();
  lab.ikeNode = undefined;
  await capture.stop();
  t.same(await tsharkProblems(pcap), [], 'tshark: no malformed packets, no expert warnings');
  await topology.destroy();
  t.same(
    (await listNamespaces()).filter((name) => name.startsWith(topology.prefix)),
    [],
    'no namespace left behind',
  );
}

for (const kind of ['direct', 'nat'] as const) {
  for (const role of ['initiator', 'responder'] as const) {
    t.test(`IKEv1 ${kind}: ike-node ${role} detects a SIGKILLed strongSwan by DPD`, (t) =>
      scenario(t, 1, kind, role),
    );
  }
}
// IKEv2: NAT handling is the same code as above; each role once, the responder behind the NAT.
t.test('IKEv2 direct: ike-node initiator detects a SIGKILLed strongSwan by liveness checks', (t) =>
  scenario(t, 2, 'direct', 'initiator'),
);
t.test('IKEv2 nat: ike-node responder detects a SIGKILLed strongSwan by liveness checks', (t) =>
  scenario(t, 2, 'nat', 'responder'),
);
