import t, { type Test } from 'tap';
import { equalBytes } from '../../src/wire/bytes.js';
import { formatSpi } from '../../src/core/sa.js';
import { ExchangeType } from '../../src/ikev2/constants.js';
import { applyFaults, type Fault } from '../helpers/faults.js';
import type { Action } from '../../src/core/actions.js';
import { eitherSideWins } from '../helpers/collisions.js';
import { type Side, sitePair } from '../helpers/engine-pair.js';

/**
 * Child SA rekeying with CREATE_CHILD_SA (RFC 7296 sections 1.3.3, 2.8, 2.8.1, 2.25) between two
 * engines with a fake clock, situation by situation: who rekeys, both at once, lost, duplicated
 * and crossing messages, a Delete or an IKE SA rekey racing the rekey, several child SAs. Each
 * ends by checking what both sides hold: one child SA pair per selector pair, the same at both
 * ends with crossing keys, a new one, and the connection Active.
 */

const v2 = { version: 2 as const, ike: ['aes128-sha256-modp2048'], esp: ['aes128-sha256'] };

interface Situation {
  name: string;
  /** Who rekeys: one side (its child lifetime is short) or both at the same instant. */
  rekeyer: 'a' | 'b' | 'both';
  pfs?: boolean;
  faults?: Fault[];
  /** Two selector pairs, so two child SAs rekey at once over one window. */
  twoChildren?: boolean;
  /** Diffie-Hellman results come back as later inputs (a worker pool). */
  deferred?: boolean;
  /** Something else happens at the instant of the rekey. */
  race?: 'peer-deletes-child' | 'peer-rekeys-ike' | 'peer-deletes-ike';
}

function children(side: Side) {
  return [...side.installed.values()];
}

/** What both sides hold in the end. */
function settled(t: Test, a: Side, b: Side, before: readonly number[], pairs: number): void {
  const ca = children(a);
  const cb = children(b);
  t.equal(ca.length, pairs, `a holds ${pairs} child SA(s)`);
  t.equal(cb.length, pairs, `b holds ${pairs} child SA(s)`);
  for (const child of ca) {
    const peer = cb.find((c) => c.spiOut === child.spiIn);
    t.ok(peer && peer.spiIn === child.spiOut, `child ${child.spiIn.toString(16)}: the same pair at b`);
    t.ok(peer && equalBytes(peer.keys.encrOut, child.keys.encrIn), 'with crossing keys');
    t.notOk(before.includes(child.spiIn), 'a new child SA');
  }
  t.equal(a.engine.status()[0]!.status, 'Active', 'a: Active');
  t.equal(b.engine.status()[0]!.status, 'Active', 'b: Active');
  t.equal(a.engine.status()[0]!.ikeSas.length, 1, 'a: one IKE SA');
  t.equal(b.engine.status()[0]!.ikeSas.length, 1, 'b: one IKE SA');
}

async function run(t: Test, s: Situation): Promise<void> {
  const short = { childLifetime: 120 };
  const selectors = s.twoChildren
    ? {
        a: { localSubnets: ['198.51.100.0/25', '198.51.100.128/25'], peerSubnets: ['203.0.113.0/24'] },
        b: { localSubnets: ['203.0.113.0/24'], peerSubnets: ['198.51.100.0/25', '198.51.100.128/25'] },
      }
    : { a: {}, b: {} };
  const ikeShort = s.race === 'peer-rekeys-ike' ? { ikeLifetime: 120 } : {};
  const { pair, a, b } = sitePair({
    both: { ...v2, ...(s.pfs && { pfs: 'modp2048' }) },
    a: { ...selectors.a, ...(s.rekeyer !== 'b' && short) },
    b: { ...selectors.b, ...(s.rekeyer !== 'a' && short), ...ikeShort },
    ...(s.deferred && { engines: { a: { compute: 'deferred' }, b: { compute: 'deferred' } } }),
  });
  pair.initiate(a);
  const pairs = s.twoChildren ? 2 : 1;
  t.equal(children(a).length, pairs, 'the first child SAs');
  const before = children(a).map((c) => c.spiIn);
  const firstIke = a.engine.status()[0]!.ikeSas[0]!.id;
  applyFaults(pair, a, s.faults ?? []);

  const rekeyer = s.rekeyer === 'b' ? b : a;
  const due = Math.min(...children(rekeyer).map((c) => c.rekeyAt));
  const other = rekeyer === a ? b : a;
  const race = (): [Side, Action[]][] => {
    if (s.race === 'peer-deletes-child') {
      const victim = children(other)[0]!;
      return [[other, other.engine.kernelEvent({ type: 'expire', child: victim.id, hard: true }, due)]];
    }
    if (s.race === 'peer-deletes-ike') return [[other, other.engine.terminate('test', due)]];
    return [];
  };
  pair.advance(due - pair.now - 0.5);
  const sides = s.rekeyer === 'both' || s.race === 'peer-rekeys-ike' ? [a, b] : [rekeyer];
  pair.tickTogether(due, sides, race());
  pair.advance(30);

  if (s.race === 'peer-deletes-ike') {
    t.equal(children(a).length + children(b).length, 0, 'the IKE SA Delete took every child SA along');
    t.same(
      [a.engine.status()[0]!.ikeSas.length, b.engine.status()[0]!.ikeSas.length],
      [0, 0],
      'and no IKE SA is left',
    );
    return;
  }
  if (s.race === 'peer-deletes-child') {
    // The peer deleted the child SA being rekeyed; our rekey finds it gone (CHILD_SA_NOT_FOUND)
    // or makes a new one first: either way both ends agree, with no duplicate.
    const ca = children(a);
    const cb = children(b);
    t.equal(ca.length, cb.length, 'both ends hold the same number of child SAs');
    t.ok(ca.length <= 1, 'no duplicate');
    for (const child of ca)
      t.ok(
        cb.some((c) => c.spiOut === child.spiIn),
        'the same pair',
      );
    return;
  }
  settled(t, a, b, before, pairs);
  if (s.race === 'peer-rekeys-ike') {
    const [ike] = a.engine.status()[0]!.ikeSas;
    t.not(ike!.id, firstIke, 'the IKE SA was rekeyed too');
    t.equal(a.engine.status()[0]!.childSas[0]!.ikeSaId, ike!.id, 'the child SA is under the new IKE SA');
  }
}

const BASE: Situation[] = [
  { name: 'the IKE SA initiator rekeys', rekeyer: 'a' },
  { name: 'the IKE SA responder rekeys', rekeyer: 'b' },
  { name: 'both rekey at once', rekeyer: 'both' },
  {
    name: 'the rekey request is lost once',
    rekeyer: 'a',
    faults: [{ exchange: ExchangeType.CREATE_CHILD_SA, response: false, action: 'drop' }],
  },
  {
    name: 'the rekey response is lost once',
    rekeyer: 'a',
    faults: [{ exchange: ExchangeType.CREATE_CHILD_SA, response: true, action: 'drop' }],
  },
  {
    name: 'the rekey request arrives twice',
    rekeyer: 'a',
    faults: [{ exchange: ExchangeType.CREATE_CHILD_SA, response: false, action: 'duplicate' }],
  },
  {
    name: 'the rekey response arrives twice',
    rekeyer: 'a',
    faults: [{ exchange: ExchangeType.CREATE_CHILD_SA, response: true, action: 'duplicate' }],
  },
  {
    name: "both rekey at once, a's request lost once",
    rekeyer: 'both',
    faults: [{ exchange: ExchangeType.CREATE_CHILD_SA, response: false, from: 'a', action: 'drop' }],
  },
  {
    name: "both rekey at once, b's response lost once",
    rekeyer: 'both',
    faults: [{ exchange: ExchangeType.CREATE_CHILD_SA, response: true, from: 'b', action: 'drop' }],
  },
  {
    name: 'both rekey at once, the Deletes of the old child SA lost once each',
    rekeyer: 'both',
    faults: [{ exchange: ExchangeType.INFORMATIONAL, response: false, action: 'drop', times: 2 }],
  },
  { name: 'two child SAs rekeyed at once over one window', rekeyer: 'a', twoChildren: true },
  { name: 'both rekey two child SAs at once', rekeyer: 'both', twoChildren: true },
  { name: 'both rekey at once, Diffie-Hellman on a worker pool', rekeyer: 'both', deferred: true },
  { name: 'the peer deletes the child SA as it is rekeyed', rekeyer: 'a', race: 'peer-deletes-child' },
  { name: 'the peer rekeys the IKE SA as the child SA is rekeyed', rekeyer: 'a', race: 'peer-rekeys-ike' },
  { name: 'the peer deletes the IKE SA as the child SA is rekeyed', rekeyer: 'a', race: 'peer-deletes-ike' },
];

// Each situation with and without PFS: 32 in all.
for (const situation of BASE) {
  for (const pfs of [false, true]) {
    t.test(`${situation.name}${pfs ? ', with PFS' : ''}`, (t) => run(t, { ...situation, pfs }));
  }
}

t.test('simultaneous rekeys: either side may win, and both agree which', async (t) => {
  eitherSideWins(
    t,
    { ...v2, childLifetime: 120 },
    (a) => children(a)[0]!.rekeyAt,
    /redundant after a simultaneous rekey/,
  );
});

t.test(
  "the rekey's responder sends on the new child SA only once the old one is deleted (2.8)",
  async (t) => {
    const { pair, a, b } = sitePair({ both: v2, a: { childLifetime: 120 } });
    pair.initiate(a);
    const old = children(b)[0]!;
    // a's Delete of the old pair is lost once: b waits for it (its retransmission).
    applyFaults(pair, a, [
      { exchange: ExchangeType.INFORMATIONAL, response: false, from: 'a', action: 'drop' },
    ]);
    pair.tickTogether(children(a)[0]!.rekeyAt, [a]);
    const fresh = children(a).at(-1)!; // the replaced pair stays in the kernel a moment
    t.not(fresh.spiIn, old.spiOut, 'a rekeyed and sends on the new pair');
    t.same(
      [...b.inbound.values()].map((c) => c.spiIn),
      [fresh.spiOut],
      'b receives on the new pair already',
    );
    t.same(
      children(b).map((c) => c.spiIn),
      [old.spiIn],
      'but sends on the old one until the Delete',
    );
    pair.advance(3);
    t.same(
      children(b).map((c) => c.spiIn),
      [fresh.spiOut],
      'the Delete came again: b sends on the new pair',
    );
    t.equal(b.inbound.size, 0);
  },
);

t.test("without the initiator's Delete the responder moves to the new pair after 5 s", async (t) => {
  const { pair, a, b } = sitePair({ both: v2, a: { childLifetime: 120 } });
  pair.initiate(a);
  applyFaults(pair, a, [
    { exchange: ExchangeType.INFORMATIONAL, response: false, from: 'a', action: 'drop', times: 10 },
  ]);
  pair.tickTogether(children(a)[0]!.rekeyAt, [a]);
  const fresh = children(a).at(-1)!; // the replaced pair stays in the kernel a moment
  pair.advance(4);
  t.equal(b.inbound.size, 1, 'still waiting at 4 s');
  pair.advance(2);
  t.ok(
    children(b).some((c) => c.spiIn === fresh.spiOut),
    'sending on the new pair after 5 s',
  );
});

t.test(
  "the rekey's initiator keeps the replaced inbound SA 5 s for what the peer still sends on it",
  async (t) => {
    const { pair, a, b } = sitePair({ both: v2, a: { childLifetime: 120 } });
    pair.initiate(a);
    const old = children(a)[0]!;
    pair.tickTogether(old.rekeyAt, [a]);
    const status = a.engine.status()[0]!;
    t.same(
      status.childSas.map((c) => c.spiIn),
      [formatSpi(children(a).at(-1)!.spiIn)],
      'status shows the new child SA alone',
    );
    t.same(
      children(a).map((c) => c.spiIn),
      [old.spiIn, children(a).at(-1)!.spiIn],
      'the kernel still holds the old one beside it',
    );
    t.same(
      children(b).map((c) => c.spiOut),
      [children(a).at(-1)!.spiIn],
      "the peer's Delete answered: it sends on the new pair alone",
    );
    pair.advance(4.9);
    t.equal(a.installed.size, 2, 'kept for 5 s');
    pair.advance(0.2);
    t.same(
      children(a).map((c) => c.spiIn),
      [children(b)[0]!.spiOut],
      'then removed, without a second Delete',
    );
    t.equal(b.installed.size, 1, 'the peer still holds the new pair');
  },
);

t.test('shutdown removes a retiring child SA at once', async (t) => {
  const { pair, a } = sitePair({ both: v2, a: { childLifetime: 120 } });
  pair.initiate(a);
  pair.tickTogether(children(a)[0]!.rekeyAt, [a]);
  t.equal(a.installed.size, 2);
  pair.run(a, a.engine.shutdown(pair.now));
  t.equal(a.installed.size, 0, 'nothing left in the kernel');
});
