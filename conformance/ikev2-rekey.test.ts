import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startCapture, tsharkProblems } from './lib/capture.js';
import { startIkeNode } from './lib/ike-node.js';
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

/**
 * IKEv2 rekeying against strongSwan 5.9.8 with traffic flowing: a ping stream crosses the tunnel
 * (ike-node's userspace ESP plane, strongSwan's kernel-libipsec) while the child SA or the IKE SA
 * is rekeyed, by ike-node (short lifetimes) or by strongSwan (`swanctl --rekey`), and not one
 * echo is lost. Afterwards both ends hold the same single IKE SA and child SA.
 */

t.setTimeout(240_000);

const PSK = 'conformance-ikev2-rekey-psk-3e8a';
const PINGS = 120;

interface Options {
  /** What is rekeyed, and by whom. */
  what: 'child' | 'ike';
  by: 'ike-node' | 'strongswan';
  /** ESP proposal (a trailing group: PFS for the child rekey). */
  esp: string;
}

/** The icmp_seq numbers ping never saw answered, so a failure says when in the rekey it lost them. */
function missingEchoes(stdout: string): number[] {
  const answered = new Set([...stdout.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])));
  return Array.from({ length: PINGS }, (_, i) => i + 1).filter((seq) => !answered.has(seq));
}

async function swanSas(charon: Charon) {
  return (await charon.listSas()).filter((x) => x.name === 'net');
}

async function scenario(t: Test, o: Options): Promise<void> {
  const lab: Lab = await openLab(t, 'direct', `v2-rekey-${o.what}-${o.by}`, 80);
  const { dir, topology } = lab;
  const { ours, theirs } = ends(topology, 'left');
  const charon = await startCharon(theirs.ns, { name: 'strongswan', dir: join(dir, 'strongswan') });
  lab.charon = charon;
  const capture = await startCapture(ours.ns, ours.iface, join(dir, 'ike-node.pcap'), 'udp');
  // ike-node rekeys 10 s after the SA is up when it is the rekeyer (60 s lifetime, margin 50).
  const short = { lifetime: 60, rekeyMargin: 50, rekeyFuzz: 0 };
  const ours10 = o.by === 'ike-node';
  const tunnel: TunnelSpec = {
    dir,
    ours,
    theirs,
    psk: PSK,
    version: 2,
    role: 'initiator',
    ike: 'aes256-sha256-modp2048',
    esp: o.esp,
    ikePolicy: ours10 && o.what === 'ike' ? short : {},
    ipsecPolicy: ours10 && o.what === 'child' ? short : {},
  };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  const ikeNode = await startIkeNode(ours.ns, { ...ikeNodeTunnel(tunnel), kernel: 'userspace' }, { dir });
  lab.ikeNode = ikeNode;
  const status = async () => ((await ikeNode.status()) as IkeNodeStatus)[0];
  const first = await until(
    async () => {
      const net = await status();
      return net?.status === 'Active' && net.childSas.length === 1 ? net : undefined;
    },
    10_000,
    'ike-node to establish the tunnel',
  );
  const firstIke = first.ikeSas[0]!;
  const firstChild = first.childSas[0]!;
  await until(
    async () => (await swanSas(charon))[0]?.children.find((c) => c.state === 'INSTALLED'),
    5000,
    'strongSwan to install the child SA',
  );

  // 120 echoes at 10 a second span the rekey, which comes about 10 s after the first SA.
  const ping = topology.left.exec(
    'ping',
    ['-c', String(PINGS), '-i', '0.1', '-W', '2', '-I', topology.leftInner, topology.rightInner],
    { allowFail: true },
  );
  if (o.by === 'strongswan') {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const args = o.what === 'ike' ? ['--rekey', '--ike', 'net'] : ['--rekey', '--child', 'net'];
    const rekeyed = await charon.swanctl(args, 10);
    t.equal(rekeyed.code, 0, `strongSwan: swanctl ${args.join(' ')}`);
  }
  const after = await until(
    async () => {
      const net = await status();
      const ike = net?.ikeSas ?? [];
      const children = net?.childSas ?? [];
      const done =
        o.what === 'ike'
          ? ike.length === 1 && ike[0]!.id !== firstIke.id
          : children.length === 1 && children[0]!.spiIn !== firstChild.spiIn;
      return done && ike.length === 1 && children.length === 1 ? net : undefined;
    },
    30_000,
    `the ${o.what === 'ike' ? 'IKE' : 'child'} SA to be rekeyed by ${o.by}`,
  );
  const swan = await until(
    async () => {
      const sas = await swanSas(charon);
      const installed = sas.flatMap((sa) => sa.children).filter((c) => c.state === 'INSTALLED');
      return sas.length === 1 && sas[0]!.state === 'ESTABLISHED' && installed.length === 1
        ? { sa: sas[0]!, child: installed[0]! as ParsedChildSa }
        : undefined;
    },
    10_000,
    'strongSwan to hold one IKE SA and one child SA',
  );
  const ike = after.ikeSas[0]!;
  const child = after.childSas[0]!;
  t.same(
    [swan.sa.raw['initiator-spi'], swan.sa.raw['responder-spi']],
    [ike.spiI, ike.spiR],
    'both ends hold the same IKE SA',
  );
  t.same([swan.child.spiIn, swan.child.spiOut], [child.spiOut, child.spiIn], 'and the same child SA');
  if (o.what === 'ike') {
    t.not(ike.spiI, firstIke.spiI, 'a new IKE SA');
    t.equal(child.spiIn, firstChild.spiIn, 'the child SA moved over untouched');
    t.equal(child.ikeSaId, ike.id, 'under the new IKE SA');
  } else {
    t.equal(ike.id, firstIke.id, 'the IKE SA stays');
    // A rekeyed child SA has its own Diffie-Hellman when the proposal names a group (PFS).
    t.equal(child.algorithms, o.esp, 'the new child SA has the configured algorithms');
  }
  const result = await ping;
  t.same(missingEchoes(result.stdout), [], 'not one echo lost (the sequence numbers of those that were)');
  t.match(result.stdout, new RegExp(` ${PINGS} received, 0% packet loss`), 'ping agrees');
  t.equal(await ikeNode.stop(), 0, 'ike-node exits 0');
  lab.ikeNode = undefined;
  await capture.stop();
  t.same(await tsharkProblems(join(dir, 'ike-node.pcap')), [], 'tshark: no malformed packets');
}

t.test('ike-node rekeys the child SA (PFS)', (t) =>
  scenario(t, { what: 'child', by: 'ike-node', esp: 'aes128-sha256-modp2048' }),
);
t.test('strongSwan rekeys the child SA', (t) =>
  scenario(t, { what: 'child', by: 'strongswan', esp: 'aes128gcm16' }),
);
t.test('ike-node rekeys the IKE SA', (t) => scenario(t, { what: 'ike', by: 'ike-node', esp: 'aes128gcm16' }));
t.test('strongSwan rekeys the IKE SA', (t) =>
  scenario(t, { what: 'ike', by: 'strongswan', esp: 'aes128-sha256' }),
);
