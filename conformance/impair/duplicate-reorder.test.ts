import { join } from 'node:path';
import t, { type Test } from 'tap';
import { delay } from '../lib/netns.js';
import { startIkeNode } from '../lib/ike-node.js';
import type { RelayStats } from '../lib/impair-relay.js';
import {
  type IkeNodeStatus,
  ends,
  ikeNodeTunnel,
  openLab,
  swanctlTunnel,
  type TunnelSpec,
} from '../lib/scenario.js';
import { startCharon, swanctlConnection } from '../lib/strongswan.js';
import { charonChildren, ikeNodeChildren, startRelay, tunnelUp } from '../lib/impair.js';

/**
 * Duplicated and reordered datagrams between ike-node and strongSwan 5.9.8: every datagram of IKE
 * (and ESP in UDP) passes the project's impairment relay (conformance/lib/impair-relay.ts) in the
 * router namespace, which sends 25% of them twice and holds another 25% back for 0.1-1.5 s so that
 * later ones overtake them (seeded, so a run can be repeated). IKEv1 and IKEv2, ike-node as
 * initiator and as responder, the four at once; once up, strongSwan rekeys the child SA through the
 * relay. A duplicated request must be answered as a retransmission, a late one must not start a
 * second exchange: each side ends with exactly one IKE SA and one child SA (two installed in all:
 * the first and its replacement), agreeing on the SPIs, and ike-node's connection is Active.
 */

const PSK = 'conformance-dup-psk-90d4';
const SUITE = 'aes128-sha1-modp1024';
const IMPAIR = { duplicate: 0.25, delay: 0.25, delayMs: [100, 1500] as [number, number] };
/** After both sides are up, late and duplicated datagrams still in flight get this long to arrive. */
const SETTLE_MS = 2000;

t.setTimeout(120_000);

async function scenario(
  t: Test,
  version: 1 | 2,
  role: 'initiator' | 'responder',
  seed: number,
): Promise<{ label: string; stats: RelayStats }> {
  const label = `IKEv${version} ike-node ${role}`;
  const lab = await openLab(t, 'relay', `dup-v${version}-${role}`);
  const { ours, theirs } = ends(lab.topology, 'left');
  const relay = await startRelay(lab.topology, { seed, ...IMPAIR });
  const charon = await startCharon(theirs.ns, {
    name: 'strongswan',
    dir: join(lab.dir, 'strongswan'),
    // IKEv1: delete the replaced child at once (strongSwan's default keeps it until it expires).
    extraCharonConf: '  delete_rekeyed = yes',
  });
  lab.charon = charon;
  const tunnel: TunnelSpec = { dir: lab.dir, ours, theirs, psk: PSK, version, role, ike: SUITE, esp: SUITE };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  const ikeNode = await startIkeNode(ours.ns, ikeNodeTunnel(tunnel), { dir: lab.dir });
  lab.ikeNode = ikeNode;
  const initiated = role === 'responder' ? charon.initiate('net', 'net', 20) : undefined;
  await tunnelUp(ikeNode, charon, 30_000);
  if (initiated) t.ok((await initiated).ok, `${label}: swanctl --initiate succeeded`);
  // And a child rekey by strongSwan through the relay: its request duplicated or overtaken too.
  await delay(SETTLE_MS);
  const rekey = await charon.swanctl(['--rekey', '--child', 'net'], 20);
  t.equal(rekey.code, 0, `${label}: strongSwan rekeyed the child SA`);
  await tunnelUp(ikeNode, charon, 30_000, { ikeNode: 2, charon: 2 });

  await delay(SETTLE_MS);
  const [net] = (await ikeNode.status()) as IkeNodeStatus;
  const sas = await charon.listSas();
  const stats = await relay.stop();
  t.equal(net?.status, 'Active', `${label}: ike-node Active`);
  t.notOk(net?.error, `${label}: ike-node reports no error`);
  t.equal(net?.ikeSas.length, 1, `${label}: ike-node has one IKE SA`);
  t.equal(net?.childSas.length, 1, `${label}: ike-node has one child SA`);
  t.equal(sas.length, 1, `${label}: strongSwan has one IKE SA`);
  t.equal(sas[0]?.state, 'ESTABLISHED', `${label}: strongSwan's IKE SA is established`);
  // After an IKEv2 rekey strongSwan lists the replaced child (closed, no longer INSTALLED) until
  // its delete_rekeyed_delay (5 s) has passed: only installed ones count.
  const installed = (sas[0]?.children ?? []).filter((child) => child.state === 'INSTALLED');
  t.equal(installed.length, 1, `${label}: strongSwan has one installed child SA`);
  t.ok(
    (sas[0]?.children ?? []).every((child) => child === installed[0] || child.state !== 'INSTALLED'),
    `${label}: any other child strongSwan lists is on its way out`,
  );
  t.equal(net?.childSas[0]?.spiIn, installed[0]?.spiOut, `${label}: SPIs agree`);
  t.equal(net?.childSas[0]?.spiOut, installed[0]?.spiIn, `${label}: SPIs agree (other direction)`);
  // An extra child negotiated and deleted again would leave one at the end too: count installs.
  t.equal(ikeNodeChildren(ikeNode.log()), 2, `${label}: ike-node installed two child SAs in all`);
  t.equal(charonChildren(charon.log()), 2, `${label}: strongSwan established two child SAs in all`);
  return { label: `${label} (seed ${seed})`, stats };
}

t.test('duplication and reordering: IKEv1 and IKEv2, both roles', async (t) => {
  const results = await Promise.all(
    ([1, 2] as const).flatMap((version, v) =>
      (['initiator', 'responder'] as const).map((role, r) => scenario(t, version, role, 1000 + 10 * v + r)),
    ),
  );
  for (const { label, stats } of results) {
    t.comment(
      `${label}: relayed ${stats.forwarded} datagrams, ${stats.duplicated} duplicated, ` +
        `${stats.delayed} delayed, ${stats.reordered} of those overtaken`,
    );
  }
  // Per scenario a handful of datagrams: the seeds may spare one, never all four.
  const total = (key: keyof RelayStats) => results.reduce((sum, r) => sum + r.stats[key], 0);
  t.ok(total('duplicated') > 0, `the relay duplicated datagrams (${total('duplicated')})`);
  t.ok(total('reordered') > 0, `late datagrams were overtaken by later ones (${total('reordered')})`);
});
