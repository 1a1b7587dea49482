import t, { type Test } from 'tap';
import { type EnginePair, onlyChild, type Side, sitePair } from '../helpers/engine-pair.js';

/**
 * IKE SA rekeying (RFC 7296 sections 1.3.2, 2.18, 2.8.2) between two engines with a fake clock:
 * either side rekeys, the child SAs move to the new IKE SA untouched, the old IKE SA is gone at
 * both ends; simultaneous rekeys leave the same single IKE SA at both ends.
 */

const v2 = { version: 2 as const, ike: ['aes128-sha256-modp2048'], esp: ['aes128-sha256'] };

function ikeSas(side: Side) {
  return side.engine.status()[0]!.ikeSas;
}

/** Both sides hold one established IKE SA, the same one, carrying the one child SA pair. */
function agreed(t: Test, a: Side, b: Side, what: string) {
  const [sa] = ikeSas(a);
  const [sb] = ikeSas(b);
  t.equal(ikeSas(a).length, 1, `${what}: a holds one IKE SA`);
  t.equal(ikeSas(b).length, 1, `${what}: b holds one IKE SA`);
  t.equal(sa!.state, 'ESTABLISHED');
  t.same([sa!.spiI, sa!.spiR], [sb!.spiI, sb!.spiR], `${what}: the same SPIs at both ends`);
  const [ca] = a.engine.status()[0]!.childSas;
  const [cb] = b.engine.status()[0]!.childSas;
  t.equal(ca!.ikeSaId, sa!.id, `${what}: a's child SA belongs to the IKE SA`);
  t.equal(cb!.ikeSaId, sb!.id, `${what}: b's child SA belongs to the IKE SA`);
  return { sa: sa!, sb: sb! };
}

/** Ticks both engines at the same instant, their messages crossing on the wire. */
function tickBoth(pair: EnginePair, a: Side, b: Side, at: number): void {
  pair.now = at;
  pair.runAll([
    [a, a.engine.tick(at)],
    [b, b.engine.tick(at)],
  ]);
}

for (const rekeyer of ['a', 'b'] as const) {
  t.test(`${rekeyer === 'a' ? 'the initiator' : 'the responder'} rekeys the IKE SA`, async (t) => {
    // Only the rekeyer has the short lifetime, so it alone rekeys.
    const { pair, a, b } = sitePair({ both: v2, [rekeyer]: { ikeLifetime: 120 } });
    pair.initiate(a);
    const before = agreed(t, a, b, 'first');
    const child = onlyChild(a);
    pair.advance(115);
    const after = agreed(t, a, b, 'rekeyed');
    t.not(after.sa.spiI, before.sa.spiI, 'new SPIs');
    t.equal(after.sa.role, rekeyer === 'a' ? 'initiator' : 'responder', 'the rekeyer is the new initiator');
    t.equal(onlyChild(a).spiIn, child.spiIn, 'the child SA is untouched at a');
    t.equal(onlyChild(b).spiOut, child.spiIn, 'and at b');
    t.ok(
      a.events.some((e) => e.type === 'ike-up' && e.rekeyed === before.sa.id),
      'ike-up names the replaced SA',
    );
    t.equal(a.engine.status()[0]!.status, 'Active');

    // The new IKE SA works: a child rekey over it, then a Delete.
    pair.advance(3600);
    const rekeyedChild = onlyChild(a);
    t.not(rekeyedChild.spiIn, child.spiIn, 'the child SA was rekeyed over the new IKE SA');
    t.equal(onlyChild(b).spiOut, rekeyedChild.spiIn);
    pair.run(a, a.engine.terminate('test', pair.now));
    t.equal(a.installed.size + b.installed.size, 0, 'terminate clears both ends');
    t.same([ikeSas(a).length, ikeSas(b).length], [0, 0]);
  });
}

t.test('both ends rekey the IKE SA at once: the same one survives at both (section 2.8.2)', async (t) => {
  for (let round = 0; round < 6; round++) {
    const { pair, a, b } = sitePair({ both: { ...v2, ikeLifetime: 120 } });
    pair.initiate(a);
    const child = onlyChild(a);
    const before = agreed(t, a, b, 'first');
    const due = Math.max(before.sa.rekeyAt!, before.sb.rekeyAt!);
    pair.advance(due - pair.now - 0.5);
    tickBoth(pair, a, b, due);
    pair.advance(5);
    const after = agreed(t, a, b, `round ${round}`);
    t.not(after.sa.spiI, before.sa.spiI, 'a new IKE SA');
    t.equal(onlyChild(a).spiIn, child.spiIn, 'the child SA is untouched');
    t.equal(onlyChild(b).spiOut, child.spiIn);
    t.ok(
      a.logs.some((line) => /simultaneous IKE SA rekey|deciding when ours is answered/.test(line)),
      'a saw the collision',
    );
  }
});

t.test('an IKE SA rekey meeting a child SA rekey: TEMPORARY_FAILURE, then tried again', async (t) => {
  // b rekeys its IKE SA at the instant a rekeys the child SA (section 2.25).
  const { pair, a, b } = sitePair({ both: v2, a: { childLifetime: 120 }, b: { ikeLifetime: 120 } });
  pair.initiate(a);
  const child = onlyChild(a);
  const before = agreed(t, a, b, 'first');
  const childRekeyAt = a.engine.status()[0]!.childSas[0]!.rekeyAt;
  t.equal(childRekeyAt, before.sb.rekeyAt, 'both are due at once');
  pair.advance(childRekeyAt - pair.now - 0.5);
  tickBoth(pair, a, b, childRekeyAt);
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
