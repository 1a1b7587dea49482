import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startCapture, tsharkProblems, type Capture } from './lib/capture.js';
import { startIkeNode } from './lib/ike-node.js';
import type { TopologyKind } from './lib/netns.js';
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
import { startCharon, swanctlConnection } from './lib/strongswan.js';

/**
 * ike-node against strongSwan 5.9.8 in network namespaces, IKEv1 main mode + quick mode with
 * PSK, tunnel mode, each suite with ike-node as initiator and as responder, directly and through
 * a masquerading NAT. strongSwan runs kernel-libipsec, which always fakes a NAT (LAB.md), so IKE
 * floats to 4500 in every scenario. Assertions read `swanctl --list-sas` and `ike-node status
 * --json`; tshark dissects every captured exchange.
 */

const PSK = 'conformance-ikev1-psk-5b1e';

// Eight scenarios, about 2 s each alone; more when the kernel-lab file runs beside this one.
t.setTimeout(120_000);
const SUITES = [
  {
    ike: 'aes128-sha1-modp1024',
    esp: 'aes128-sha1-modp1024',
    swan: { encrAlg: 'AES_CBC', encrKeysize: 128, integAlg: 'HMAC_SHA1_96', dhGroup: 'MODP_1024' },
  },
  {
    ike: 'aes256-sha256-modp2048',
    esp: 'aes256-sha256-modp2048',
    swan: { encrAlg: 'AES_CBC', encrKeysize: 256, integAlg: 'HMAC_SHA2_256_128', dhGroup: 'MODP_2048' },
  },
  {
    ike: '3des-sha1-modp1024',
    esp: '3des-sha1-modp1024',
    swan: { encrAlg: '3DES_CBC', integAlg: 'HMAC_SHA1_96', dhGroup: 'MODP_1024' },
  },
];

interface Scenario {
  kind: TopologyKind;
  role: 'initiator' | 'responder';
  suite: (typeof SUITES)[number];
}

async function scenario(t: Test, s: Scenario): Promise<void> {
  const lab = await openLab(t, s.kind, `v1-${s.kind}-${s.role}`, 40);
  const { dir, topology } = lab;
  const captures: Capture[] = [];

  const { ours, theirs } = ends(topology, ikeNodeSide(s.kind, s.role));
  const charon = await startCharon(theirs.ns, { name: 'strongswan', dir: join(dir, 'strongswan') });
  lab.charon = charon;
  captures.push(await startCapture(ours.ns, ours.iface, join(dir, 'ike-node.pcap')));
  const tunnel: TunnelSpec = {
    dir,
    ours,
    theirs,
    psk: PSK,
    role: s.role,
    ike: s.suite.ike,
    esp: s.suite.esp,
    ikePolicy: { dpd: { delay: 5, timeout: 20, action: 'clear' } },
  };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  const ikeNode = await startIkeNode(ours.ns, ikeNodeTunnel(tunnel), { dir });
  lab.ikeNode = ikeNode;
  if (s.role === 'responder') {
    const initiated = await charon.initiate('net', 'net');
    t.ok(initiated.ok, `strongSwan initiated (${initiated.stdout.split('\n').slice(-2).join(' ')})`);
  }
  const sa = await until(
    async () =>
      (await charon.listSas()).find(
        (x) => x.name === 'net' && x.state === 'ESTABLISHED' && x.children[0]?.state === 'INSTALLED',
      ),
    10000,
    'strongSwan to install the child SA',
  );
  t.match(
    sa,
    { version: 1, ...s.suite.swan, initiator: s.role === 'responder' },
    'strongSwan: IKE SA with the configured algorithms',
  );
  t.match(
    sa.children[0],
    {
      mode: 'TUNNEL',
      protocol: 'ESP',
      localTs: [theirs.subnet],
      remoteTs: [ours.subnet],
      dhGroup: s.suite.swan.dhGroup,
    },
    'strongSwan: child SA',
  );
  const status = await until(
    async () => {
      const st = (await ikeNode.status()) as IkeNodeStatus;
      return st[0]?.status === 'Active' ? st : undefined;
    },
    5000,
    'ike-node to report Active',
  );
  const [net] = status;
  t.equal(net!.ikeSas[0]!.algorithms, s.suite.ike, 'ike-node: IKE algorithms');
  t.equal(net!.childSas[0]!.algorithms, s.suite.esp, 'ike-node: child algorithms');
  t.equal(net!.childSas[0]!.spiIn, sa.children[0]!.spiOut, 'SPIs agree (ike-node in = strongSwan out)');
  t.equal(net!.childSas[0]!.spiOut, sa.children[0]!.spiIn, 'SPIs agree (ike-node out = strongSwan in)');
  t.ok(
    net!.ikeSas[0]!.natDetected,
    'NAT detected (kernel-libipsec fakes one; the nat topology has a real one)',
  );
  t.ok(net!.childSas[0]!.encapsulation, 'ESP in UDP negotiated');

  // Delete: ike-node initiates the teardown when it was the initiator, strongSwan otherwise.
  if (s.role === 'initiator') {
    const code = await ikeNode.stop();
    lab.ikeNode = undefined;
    t.equal(code, 0, 'ike-node exits 0 on SIGTERM');
    await until(
      async () => ((await charon.listSas()).length === 0 ? true : undefined),
      5000,
      'strongSwan to act on the Delete',
    );
    t.pass('strongSwan removed its SAs after our Delete');
  } else {
    await charon.terminate('net');
    await until(
      async () => (((await ikeNode.status()) as IkeNodeStatus)[0]?.status === 'Down' ? true : undefined),
      5000,
      'ike-node to act on the Delete',
    );
    t.pass("ike-node removed its SAs after strongSwan's Delete");
  }
  for (const capture of captures) await capture.stop();
  const problems = await tsharkProblems(join(dir, 'ike-node.pcap'));
  t.same(problems, [], 'tshark: no malformed packets, no expert warnings');
}

for (const kind of ['direct', 'nat'] as TopologyKind[]) {
  for (const role of ['initiator', 'responder'] as const) {
    for (const suite of kind === 'direct' ? SUITES : SUITES.slice(1, 2)) {
      t.test(`${kind}: ike-node ${role}, ${suite.ike}`, (t) => scenario(t, { kind, role, suite }));
    }
  }
}
