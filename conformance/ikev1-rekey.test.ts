import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startCapture, tsharkProblems } from './lib/capture.js';
import { startIkeNode } from './lib/ike-node.js';
import type { IkeSaStatus } from '../src/core/status.js';
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

/**
 * IKEv1 rekeying against strongSwan 5.9.8 (direct topology, tunnel mode, aes128-sha1-modp1024
 * with PFS): ike-node replaces a quick-mode SA before its short lifetime runs out; ike-node follows
 * when strongSwan rekeys; and ike-node rekeys the ISAKMP SA while the child SA lives on at both
 * ends. Lifetimes are the shortest the configuration allows (60 s) with a large rekey margin, so
 * each rekey happens about 10 s after the first negotiation.
 */

const PSK = 'conformance-ikev1-rekey-psk-7c2d';
const SUITE = 'aes128-sha1-modp1024';

t.setTimeout(150_000);

interface Options {
  /** 'nat' puts ike-node (then the initiator) behind the masquerading NAT; default 'direct'. */
  kind?: TopologyKind;
  /** Who initiates the first negotiation. */
  initiator: 'ike-node' | 'strongswan';
  /** ike-node's policy lifetimes: [seconds, rekeyMargin]. */
  ikeLifetime?: [number, number];
  espLifetime?: [number, number];
  /** strongSwan's child rekey_time (its life_time is 2 minutes longer). */
  swanChildRekey?: string;
  /** strongSwan's IKE rekey_time (for IKEv1 a new main mode, then a Delete of the old ISAKMP SA). */
  swanIkeRekey?: string;
}

interface Started {
  lab: Lab;
  charon: Charon;
  status: () => Promise<IkeNodeStatus>;
  finish: () => Promise<void>;
}

/** strongSwan on the right, ike-node on the left, negotiated once; `finish` checks the capture. */
async function start(t: Test, label: string, o: Options): Promise<Started> {
  const lab = await openLab(t, o.kind ?? 'direct', `v1-rekey-${label}`, 80);
  const { dir, topology } = lab;
  const { ours, theirs } = ends(topology, 'left');
  const charon = await startCharon(theirs.ns, {
    name: 'strongswan',
    dir: join(dir, 'strongswan'),
    // Without it strongSwan keeps a rekeyed IKEv1 child until it expires instead of deleting it.
    extraCharonConf: '  delete_rekeyed = yes\n',
  });
  lab.charon = charon;
  const capture = await startCapture(ours.ns, ours.iface, join(dir, 'ike-node.pcap'));
  const [ikeSeconds, ikeMargin] = o.ikeLifetime ?? [3600, 360];
  const [espSeconds, espMargin] = o.espLifetime ?? [3600, 360];
  const tunnel: TunnelSpec = {
    dir,
    ours,
    theirs,
    psk: PSK,
    role: o.initiator === 'ike-node' ? 'initiator' : 'responder',
    ike: SUITE,
    esp: SUITE,
    ikePolicy: { lifetime: ikeSeconds, rekeyMargin: ikeMargin, rekeyFuzz: 0 },
    ipsecPolicy: { lifetime: espSeconds, rekeyMargin: espMargin, rekeyFuzz: 0 },
    swan: {
      rekey_time: o.swanIkeRekey ?? '1h',
      // strongSwan proposes rekey_time + over_time as the ISAKMP lifetime: a long over_time keeps
      // that from making ike-node rekey first.
      ...(o.swanIkeRekey && { rand_time: 0, over_time: '10m' }),
    },
    swanChild: {
      rekey_time: o.swanChildRekey ?? '1h',
      rand_time: 0,
      life_time: o.swanChildRekey ? '150s' : '2h',
    },
  };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  const ikeNode = await startIkeNode(ours.ns, ikeNodeTunnel(tunnel), { dir });
  lab.ikeNode = ikeNode;
  if (o.initiator === 'strongswan') {
    const initiated = await charon.initiate('net', 'net');
    t.ok(initiated.ok, 'strongSwan initiated');
  }
  return {
    lab,
    charon,
    status: async () => (await ikeNode.status()) as IkeNodeStatus,
    async finish() {
      await ikeNode.stop(); // idempotent: the handle stays for the log tail on failure
      await capture.stop();
      t.same(
        await tsharkProblems(join(dir, 'ike-node.pcap')),
        [],
        'tshark: no malformed packets, no expert warnings',
      );
    },
  };
}

/** strongSwan's child SAs of `net`, in any state, across its IKE SAs. */
async function swanChildren(charon: Charon): Promise<ParsedChildSa[]> {
  return (await charon.listSas()).filter((x) => x.name === 'net').flatMap((x) => x.children);
}

async function firstChild(t: Test, s: Started) {
  const child = await until(
    async () => {
      const [net] = await s.status();
      return net?.status === 'Active' && net.childSas.length === 1 ? net.childSas[0] : undefined;
    },
    10_000,
    'ike-node to establish the first child SA',
  );
  const swan = await until(
    async () => (await swanChildren(s.charon)).find((c) => c.state === 'INSTALLED'),
    5000,
    'strongSwan to install the first child SA',
  );
  t.equal(swan.spiIn, child.spiOut, 'first SA: SPIs agree (ike-node out = strongSwan in)');
  t.equal(swan.spiOut, child.spiIn, 'first SA: SPIs agree (ike-node in = strongSwan out)');
  return child;
}

/** Waits until both ends hold exactly one child SA, a new pair, and returns ike-node's. */
async function rekeyedChild(t: Test, s: Started, first: { spiIn: string; spiOut: string }, what: string) {
  const started = Date.now();
  const child = await until(
    async () => {
      const [net] = await s.status();
      const only = net?.status === 'Active' && net.childSas.length === 1 ? net.childSas[0] : undefined;
      const swan = await swanChildren(s.charon);
      return only &&
        only.spiIn !== first.spiIn &&
        swan.length === 1 &&
        swan[0]!.state === 'INSTALLED' &&
        swan[0]!.spiIn === only.spiOut &&
        swan[0]!.spiOut === only.spiIn
        ? only
        : undefined;
    },
    40_000,
    what,
  );
  t.pass(`${what}: one new SPI pair at both ends (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return child;
}

t.test('ike-node rekeys a quick-mode SA before its 60 s lifetime', async (t) => {
  const s = await start(t, 'qm-ours', { initiator: 'ike-node', espLifetime: [60, 50] });
  const first = await firstChild(t, s);
  t.equal(first.rekeyAt - first.installedAt, 10, 'rekey scheduled 10 s after install (60 s - margin 50)');
  const second = await rekeyedChild(t, s, first, 'ike-node to rekey the child SA');
  t.not(second.id, first.id, 'ike-node: a new child SA');
  t.match(
    s.charon.log(),
    new RegExp(`received DELETE for ESP CHILD_SA with SPI ${first.spiIn}`),
    'strongSwan deleted the old pair on our Delete (which names our inbound SPI)',
  );
  await s.finish();
});

t.test('behind the NAT: ike-node rekeys a quick-mode SA before its 60 s lifetime', async (t) => {
  const s = await start(t, 'qm-nat', { kind: 'nat', initiator: 'ike-node', espLifetime: [60, 50] });
  const first = await firstChild(t, s);
  const second = await rekeyedChild(t, s, first, 'ike-node to rekey the child SA through the NAT');
  t.ok(second.encapsulation, 'the new child SA is UDP-encapsulated too');
  const [net] = await s.status();
  // (strongSwan's kernel-libipsec fakes a NAT on its side too, so nat.remote is true as well.)
  t.ok(net!.ikeSas[0]!.nat.local, 'ike-node knows it is behind the NAT');
  await s.finish();
});

t.test('strongSwan rekeys a quick-mode SA and ike-node follows', async (t) => {
  const s = await start(t, 'qm-theirs', { initiator: 'strongswan', swanChildRekey: '8s' });
  const first = await firstChild(t, s);
  const second = await rekeyedChild(t, s, first, "strongSwan's rekey to replace the child SA at ike-node");
  t.not(second.id, first.id, 'ike-node: a new child SA');
  t.equal(second.lifetime.seconds, 150, "ike-node took strongSwan's proposed lifetime (150 s)");
  t.match(
    await s.lab.ikeNode!.logged(/delete/i),
    /delete/i,
    "ike-node acted on strongSwan's Delete of the old pair",
  );
  await s.finish();
});

t.test('ike-node rekeys the ISAKMP SA and the child SA lives on at both ends', async (t) => {
  const s = await start(t, 'isakmp', { initiator: 'ike-node', ikeLifetime: [60, 50] });
  const child = await firstChild(t, s);
  const [before] = await s.status();
  const oldIke = before!.ikeSas[0]!;
  t.equal(oldIke.rekeyAt! - oldIke.establishedAt!, 10, 'ISAKMP rekey scheduled 10 s after establishment');
  const ike = await until(
    async () => {
      const [net] = await s.status();
      const sas = net?.ikeSas ?? [];
      return sas.length === 1 && sas[0]!.id !== oldIke.id && sas[0]!.state === 'ESTABLISHED'
        ? sas[0]
        : undefined;
    },
    40_000,
    'ike-node to replace the ISAKMP SA and delete the old one',
  );
  t.ok(ike.establishedAt! > oldIke.establishedAt!, 'ike-node: a newer ISAKMP SA');
  const swanSas = await until(
    async () => {
      const sas = (await s.charon.listSas()).filter((x) => x.name === 'net');
      // strongSwan moves the child over right after the new SA is up: wait for that too.
      return sas.length === 1 &&
        sas[0]!.state === 'ESTABLISHED' &&
        sas[0]!.children.some((c) => c.state === 'INSTALLED')
        ? sas
        : undefined;
    },
    10_000,
    'strongSwan to hold one ISAKMP SA, with the child SA',
  );
  t.match(
    s.charon.log(),
    /received DELETE for IKE_SA/,
    'strongSwan received our Delete of the old ISAKMP SA',
  );
  const [after] = await s.status();
  t.same(
    after!.childSas.map((c) => [c.spiIn, c.spiOut, c.ikeSaId]),
    [[child.spiIn, child.spiOut, ike.id]],
    'ike-node: the same child SA, now under the new ISAKMP SA',
  );
  const swanChild = swanSas[0]!.children.find((c) => c.state === 'INSTALLED');
  t.same(
    [swanChild?.spiIn, swanChild?.spiOut],
    [child.spiOut, child.spiIn],
    'strongSwan: the same child SA, adopted by its new ISAKMP SA',
  );
  await s.finish();
});

// strongSwan (IKEv1) reauthenticates: it deletes its old ISAKMP SA first, then runs a new main mode
// with INITIAL-CONTACT, and keeps its IPsec SAs; ike-node must keep them too.
t.test('strongSwan rekeys the ISAKMP SA and ike-node keeps the child SA', async (t) => {
  const s = await start(t, 'isakmp-theirs', { initiator: 'strongswan', swanIkeRekey: '8s' });
  const child = await firstChild(t, s);
  const [before] = await s.status();
  const oldIke = before!.ikeSas[0]!;
  // strongSwan may keep its old ISAKMP SA a while (until it expires): look at the newest one.
  const ike = await until(
    async () => {
      const [net] = await s.status();
      const newest = (net?.ikeSas ?? [])
        .filter((sa) => sa.state === 'ESTABLISHED')
        .reduce<IkeSaStatus | undefined>((a, b) => (a && a.id > b.id ? a : b), undefined);
      return newest && newest.id !== oldIke.id && net?.childSas[0]?.ikeSaId === newest.id
        ? newest
        : undefined;
    },
    20_000,
    "strongSwan's new ISAKMP SA to take over the child SA at ike-node",
  );
  t.equal(ike.role, 'responder', 'ike-node answered the new main mode');
  const [after] = await s.status();
  const swanChild = (await swanChildren(s.charon)).filter((c) => c.state === 'INSTALLED');
  t.same(
    after!.childSas.map((c) => [c.spiIn, c.spiOut, c.ikeSaId]),
    swanChild.map((c) => [c.spiOut, c.spiIn, ike.id]),
    'ike-node and strongSwan hold the same child SAs, under the new ISAKMP SA',
  );
  t.comment(
    swanChild[0]?.spiIn === child.spiOut
      ? 'strongSwan kept the child SA (adopted)'
      : 'strongSwan re-created the child SA',
  );
  await s.finish();
});
