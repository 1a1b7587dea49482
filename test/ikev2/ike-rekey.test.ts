import t, { type Test } from 'tap';
import { ExchangeType } from '../../src/ikev2/constants.js';
import { connection, EnginePair, onlyChild, type Side, sitePair } from '../helpers/engine-pair.js';
import { eitherSideWins } from '../helpers/collisions.js';
import { applyFaults, type Fault, masquerade } from '../helpers/faults.js';

/**
 * IKE SA rekeying (RFC 7296 sections 1.3.2, 2.18, 2.8.2, 2.25) between two engines with a fake
 * clock, situation by situation: either side rekeys, both at once, lost and duplicated messages,
 * a child SA rekey or a Delete racing it, behind a NAT, with several child SAs, on a worker pool,
 * again and again. Each ends by checking what both sides hold: one IKE SA, the same at both ends,
 * a new one, carrying the child SAs, which are untouched, and working (a liveness check and a
 * child SA rekey over it).
 */

const v2 = { version: 2 as const, ike: ['aes128-sha256-modp2048'], esp: ['aes128-sha256'] };

interface Situation {
  name: string;
  rekeyer: 'a' | 'b' | 'both';
  faults?: Fault[];
  deferred?: boolean;
  twoChildren?: boolean;
  nat?: boolean;
  /** At the instant of the rekey the other side also rekeys a child SA, or deletes the IKE SA. */
  race?: 'peer-rekeys-child' | 'peer-deletes-ike';
  /** Rekey this many times in a row (default 1). */
  rounds?: number;
}

const INSIDE = '192.0.2.130';
const NAT = '192.0.2.129';

function ikeSas(side: Side) {
  return side.engine.status()[0]!.ikeSas;
}

/** Both sides hold one established IKE SA, the same one, carrying every child SA. */
function agreed(t: Test, a: Side, b: Side, what: string) {
  const [sa] = ikeSas(a);
  const [sb] = ikeSas(b);
  t.equal(ikeSas(a).length, 1, `${what}: a holds one IKE SA`);
  t.equal(ikeSas(b).length, 1, `${what}: b holds one IKE SA`);
  t.same([sa?.spiI, sa?.spiR], [sb?.spiI, sb?.spiR], `${what}: the same SPIs at both ends`);
  for (const side of [a, b])
    t.ok(
      side.engine.status()[0]!.childSas.every((c) => c.ikeSaId === ikeSas(side)[0]?.id),
      `${what}: ${side.name}'s child SAs belong to its IKE SA`,
    );
  return { sa: sa!, sb: sb! };
}

function pairFor(s: Situation) {
  const lifetimes = (side: 'a' | 'b') =>
    s.rekeyer === side || s.rekeyer === 'both' ? { ikeLifetime: 120 } : {};
  const childRace = s.race === 'peer-rekeys-child' ? { childLifetime: 120 } : {};
  const engines = s.deferred
    ? { a: { compute: 'deferred' as const }, b: { compute: 'deferred' as const } }
    : {};
  const selectors = s.twoChildren
    ? {
        a: { localSubnets: ['198.51.100.0/25', '198.51.100.128/25'] },
        b: { peerSubnets: ['198.51.100.0/25', '198.51.100.128/25'] },
      }
    : { a: {}, b: {} };
  if (!s.nat) {
    return sitePair({
      both: v2,
      a: { ...lifetimes('a'), ...selectors.a },
      b: { ...lifetimes('b'), ...(s.rekeyer === 'a' && childRace), ...selectors.b },
      engines,
    });
  }
  // a behind a masquerading NAT: b knows it by its identity, at the NAT's address.
  const pair = new EnginePair();
  const a = pair.add(
    'a',
    INSIDE,
    [
      connection({
        ...v2,
        ...lifetimes('a'),
        localAddress: INSIDE,
        peerAddress: '192.0.2.2',
        localSubnets: ['198.51.100.0/24'],
        peerSubnets: ['203.0.113.0/24'],
        start: 'initiate',
      }),
    ],
    engines.a,
  );
  const b = pair.add(
    'b',
    '192.0.2.2',
    [
      connection({
        ...v2,
        ...lifetimes('b'),
        localAddress: '192.0.2.2',
        peerAddress: NAT,
        localSubnets: ['203.0.113.0/24'],
        peerSubnets: ['198.51.100.0/24'],
      }),
    ],
    engines.b,
  );
  masquerade(pair, INSIDE, NAT);
  return { pair, a, b };
}

async function run(t: Test, s: Situation): Promise<void> {
  const { pair, a, b } = pairFor(s);
  pair.initiate(a);
  const firstChildren = [...a.installed.values()].map((c) => c.spiIn).sort();
  t.equal(firstChildren.length, s.twoChildren ? 2 : 1, 'the first child SAs');
  applyFaults(pair, a, s.faults ?? []);
  for (let round = 1; round <= (s.rounds ?? 1); round++) {
    const before = agreed(t, a, b, `before round ${round}`);
    const rekeyer = s.rekeyer === 'b' ? b : a;
    const other = rekeyer === a ? b : a;
    const due = (s.rekeyer === 'b' ? before.sb : before.sa).rekeyAt!;
    pair.advance(due - pair.now - 0.5);
    const sides = s.rekeyer === 'both' || s.race === 'peer-rekeys-child' ? [rekeyer, other] : [rekeyer];
    pair.tickTogether(
      due,
      sides,
      s.race === 'peer-deletes-ike' ? [[other, other.engine.terminate('test', due)]] : [],
    );
    pair.advance(20);
    if (s.race === 'peer-deletes-ike') {
      t.same([ikeSas(a).length, ikeSas(b).length], [0, 0], 'the Delete won: no IKE SA at either end');
      t.equal(a.installed.size + b.installed.size, 0, 'and no child SA');
      return;
    }
    const after = agreed(t, a, b, `round ${round}`);
    t.not(after.sa.spiI, before.sa.spiI, `round ${round}: a new IKE SA`);
    if (s.race !== 'peer-rekeys-child')
      t.same(
        [...a.installed.values()].map((c) => c.spiIn).sort(),
        firstChildren,
        'the child SAs are untouched',
      );
    t.equal(a.engine.status()[0]!.status, 'Active');
    t.equal(b.engine.status()[0]!.status, 'Active');
  }
  if (s.nat) {
    const [sa] = ikeSas(a);
    t.equal(sa!.local, `${INSIDE}:4500`, 'the new IKE SA stays on 4500 behind the NAT');
    t.same(sa!.nat, { local: true, remote: false }, 'and knows the NAT');
  }
  // The new IKE SA works: liveness checks are answered, and a child SA rekey runs over it.
  const probesBefore = a.logs.length;
  const sent = pair.sent.length;
  pair.advance(3600);
  t.ok(pair.sent.length > sent, 'messages flowed over the new IKE SA');
  t.notOk(
    a.logs.slice(probesBefore).some((line) => /dead peer/.test(line)),
    'no dead-peer verdict afterwards',
  );
  t.equal(b.installed.size, a.installed.size, 'both ends hold the same number of child SAs');
  for (const child of a.installed.values())
    t.ok(
      [...b.installed.values()].some((c) => c.spiOut === child.spiIn),
      'the same child SAs at both ends',
    );
}

const SITUATIONS: Situation[] = [
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
    rekeyer: 'b',
    faults: [{ exchange: ExchangeType.CREATE_CHILD_SA, response: false, action: 'duplicate' }],
  },
  {
    name: 'the rekey response arrives twice',
    rekeyer: 'b',
    faults: [{ exchange: ExchangeType.CREATE_CHILD_SA, response: true, action: 'duplicate' }],
  },
  {
    name: 'the Delete of the old IKE SA is lost once',
    rekeyer: 'a',
    faults: [{ exchange: ExchangeType.INFORMATIONAL, response: false, action: 'drop' }],
  },
  {
    name: 'the answer to the Delete of the old IKE SA is lost once',
    rekeyer: 'b',
    faults: [{ exchange: ExchangeType.INFORMATIONAL, response: true, action: 'drop' }],
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
    name: 'both rekey at once, both requests arrive twice',
    rekeyer: 'both',
    faults: [{ exchange: ExchangeType.CREATE_CHILD_SA, response: false, action: 'duplicate', times: 2 }],
  },
  { name: 'a child SA rekey of the peer meets the IKE SA rekey', rekeyer: 'a', race: 'peer-rekeys-child' },
  { name: 'the peer deletes the IKE SA as it is rekeyed', rekeyer: 'a', race: 'peer-deletes-ike' },
  { name: 'Diffie-Hellman on a worker pool', rekeyer: 'b', deferred: true },
  { name: 'both rekey at once, Diffie-Hellman on a worker pool', rekeyer: 'both', deferred: true },
  { name: 'two child SAs move to the new IKE SA', rekeyer: 'a', twoChildren: true },
  { name: 'the initiator behind a NAT rekeys', rekeyer: 'a', nat: true },
  { name: 'the responder rekeys towards a peer behind a NAT', rekeyer: 'b', nat: true },
  { name: 'rekeyed three times in a row', rekeyer: 'a', rounds: 3 },
  { name: 'both rekey at once, three times in a row', rekeyer: 'both', rounds: 3 },
];

for (const situation of SITUATIONS) t.test(situation.name, (t) => run(t, situation));

t.test('simultaneous IKE SA rekeys: either side may win, and both agree which', async (t) => {
  eitherSideWins(
    t,
    { ...v2, ikeLifetime: 120 },
    (a) => ikeSas(a)[0]!.rekeyAt!,
    /wins, deleting ours/,
    (a, b, round) => agreed(t, a, b, `round ${round}`),
  );
});

t.test('an IKE SA rekey meeting a child SA rekey: TEMPORARY_FAILURE, then tried again', async (t) => {
  // b rekeys its IKE SA at the instant a rekeys the child SA (section 2.25).
  const { pair, a, b } = sitePair({ both: v2, a: { childLifetime: 120 }, b: { ikeLifetime: 120 } });
  pair.initiate(a);
  const child = onlyChild(a);
  const before = agreed(t, a, b, 'first');
  const childRekeyAt = a.engine.status()[0]!.childSas[0]!.rekeyAt;
  t.equal(childRekeyAt, before.sb.rekeyAt, 'both are due at once');
  pair.tickTogether(childRekeyAt, [a, b]);
  t.ok(
    b.logs.some((line) => /TEMPORARY_FAILURE/.test(line)),
    'b was told to try again',
  );
  pair.advance(10);
  const after = agreed(t, a, b, 'after');
  t.not(after.sa.spiI, before.sa.spiI, 'the IKE SA was rekeyed on the second try');
  t.not(onlyChild(a).spiIn, child.spiIn, 'the child SA was rekeyed');
  t.equal(onlyChild(b).spiOut, onlyChild(a).spiIn);
});
