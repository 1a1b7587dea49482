import { join } from 'node:path';
import t, { type Test } from 'tap';
import {
  addLoss,
  budgetSeconds,
  gaveUp,
  logSpan,
  lossCounters,
  retransmissions,
  type RetransmitBudget,
  tunnelUp,
} from '../lib/impair.js';
import { startIkeNode } from '../lib/ike-node.js';
import { ends, ikeNodeTunnel, openLab, swanctlTunnel, type TunnelSpec } from '../lib/scenario.js';
import { startCharon, swanctlConnection } from '../lib/strongswan.js';

/**
 * 20% random loss in both directions (nftables `numgen random mod 100 < 20 drop` on what arrives
 * at either peer's interface) while ike-node and strongSwan 5.9.8 set up a tunnel: IKEv1 (main mode +
 * quick mode) and IKEv2 (IKE_SA_INIT + IKE_AUTH), ike-node as initiator and as responder. The four
 * run at once, each in its own namespaces, since they spend their time waiting for resends.
 *
 * The retransmit budget: both peers resend after 0.5 s, each wait 1.5 times the one before, 8
 * times, so a message is given up on about 37 s after it was first sent. A round trip then fails
 * only when all 9 tries lose the request or the answer (0.36^9, about 1 in 10,000). Every tunnel
 * must come up with no "no answer" from ike-node and no "giving up" from strongSwan: before either
 * initiator gave up. Setup times and retransmission counts are printed, not asserted.
 */

const PSK = 'conformance-loss-psk-7c21';
const SUITE = 'aes128-sha1-modp1024';
const LOSS_PERCENT = 20;
const BUDGET: RetransmitBudget = { timeout: 0.5, backoff: 1.5, tries: 8 };
const BUDGET_MS = budgetSeconds(BUDGET) * 1000;

t.setTimeout(4 * BUDGET_MS + 60_000);

interface Measured {
  label: string;
  setupMs: number;
  retransmits: { ikeNode: number; strongSwan: number };
  dropped: string;
}

async function scenario(t: Test, version: 1 | 2, role: 'initiator' | 'responder'): Promise<Measured> {
  const label = `IKEv${version} ike-node ${role}`;
  const lab = await openLab(t, 'direct', `loss-v${version}-${role}`);
  const { ours, theirs } = ends(lab.topology, 'left');
  const charon = await startCharon(theirs.ns, {
    name: 'strongswan',
    dir: join(lab.dir, 'strongswan'),
    retransmit: { timeout: BUDGET.timeout, base: BUDGET.backoff, tries: BUDGET.tries },
  });
  lab.charon = charon;
  const tunnel: TunnelSpec = { dir: lab.dir, ours, theirs, psk: PSK, version, role, ike: SUITE, esp: SUITE };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  await addLoss(ours.ns, ours.iface, LOSS_PERCENT);
  await addLoss(theirs.ns, theirs.iface, LOSS_PERCENT);

  const ikeNode = await startIkeNode(
    ours.ns,
    { ...ikeNodeTunnel(tunnel), retransmit: BUDGET },
    { dir: lab.dir },
  );
  lab.ikeNode = ikeNode;
  // swanctl waits for the outcome: not awaited here, the two sides' status says when it is up.
  const initiated =
    role === 'responder' ? charon.initiate('net', 'net', Math.ceil((4 * BUDGET_MS) / 1000)) : undefined;
  // Up on both sides within four budgets: MM1..MM6 + QM1..QM3 are four round trips and a half.
  const { net, sa } = await tunnelUp(ikeNode, charon, 4 * BUDGET_MS);
  // From ike-node listening (it initiates at once; strongSwan is told to right after) to its child SA.
  const setupMs = logSpan(ikeNode.log(), /listening on/, /child SA installed/) ?? NaN;
  if (initiated) t.ok((await initiated).ok, `${label}: swanctl --initiate succeeded`);

  t.same(gaveUp(ikeNode, charon), [], `${label}: neither side gave up on an exchange`);
  t.equal(net.ikeSas.length, 1, `${label}: ike-node has one IKE SA`);
  t.equal(net.childSas.length, 1, `${label}: ike-node has one child SA`);
  t.equal(sa.children.length, 1, `${label}: strongSwan has one child SA`);
  t.equal(net.childSas[0]?.spiIn, sa.children[0]?.spiOut, `${label}: SPIs agree`);
  t.equal(net.childSas[0]?.spiOut, sa.children[0]?.spiIn, `${label}: SPIs agree (other direction)`);

  const [toIkeNode, toStrongSwan] = [await lossCounters(ours.ns), await lossCounters(theirs.ns)];
  t.ok(
    toIkeNode.seen > 0 && toStrongSwan.seen > 0,
    `${label}: datagrams went through the loss rules both ways`,
  );
  return {
    label,
    setupMs,
    retransmits: retransmissions(ikeNode, charon),
    dropped:
      `to ike-node ${toIkeNode.dropped}/${toIkeNode.seen}, ` +
      `to strongSwan ${toStrongSwan.dropped}/${toStrongSwan.seen}`,
  };
}

t.test(`${LOSS_PERCENT}% loss both ways: IKEv1 and IKEv2, both roles`, async (t) => {
  t.comment(
    `retransmit budget: ${BUDGET.timeout} s × ${BUDGET.backoff}^n, ${BUDGET.tries} resends ` +
      `(${(BUDGET_MS / 1000).toFixed(1)} s per message), the same on both peers`,
  );
  const results = await Promise.all(
    ([1, 2] as const).flatMap((version) =>
      (['initiator', 'responder'] as const).map((role) => scenario(t, version, role)),
    ),
  );
  for (const r of results) {
    t.comment(
      `${r.label}: up in ${(r.setupMs / 1000).toFixed(1)} s; resends ike-node ${r.retransmits.ikeNode}, ` +
        `strongSwan ${r.retransmits.strongSwan}; dropped ${r.dropped}`,
    );
  }
});
