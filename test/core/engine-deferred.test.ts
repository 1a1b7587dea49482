import t from 'tap';
import { onlyChild, sitePair } from '../helpers/engine-pair.js';
import type { EngineOptions } from '../../src/engine.js';

/**
 * The engine with its Diffie-Hellman off the event loop (compute: 'deferred', as the daemon's
 * worker pool runs it): every key exchange is a `compute` action whose result comes back as a
 * later input, with the peer's retransmissions and other traffic arriving in between.
 */

const deferred: Partial<EngineOptions> = { compute: 'deferred' };

function tunnel(spec: { pfs?: string; childLifetime?: number; ikeLifetime?: number } = {}) {
  return sitePair({
    both: { ike: ['aes128-sha256-modp2048'], ...spec },
    engines: { a: deferred, b: deferred },
  });
}

const only = onlyChild;

t.test('main mode and quick mode with PFS, every Diffie-Hellman deferred', async (t) => {
  const { pair, a, b } = tunnel({ pfs: 'modp2048' });
  const results: string[] = [];
  for (const side of [a, b]) {
    const computed = side.engine.computed.bind(side.engine);
    side.engine.computed = (id, result, now) => {
      results.push(side.name);
      return computed(id, result, now);
    };
  }
  pair.initiate(a);
  t.equal(only(a).spiIn, only(b).spiOut, 'the child SA is up on both sides');
  t.equal(only(a).suite.dh?.name, 'modp2048', 'with PFS');
  // Main mode: the initiator's key pair and secret, the responder's pair-and-secret; quick mode
  // likewise for PFS.
  t.equal(
    results.filter((side) => side === 'a').length,
    4,
    'the initiator computed four times through actions',
  );
  t.equal(results.filter((side) => side === 'b').length, 2, 'the responder twice');
  t.ok(a.events.some((e) => e.type === 'ike-up') && b.events.some((e) => e.type === 'ike-up'));
});

t.test('duplicated and lost messages while keys are being computed', async (t) => {
  const { pair, a, b } = tunnel({ pfs: 'modp2048' });
  let count = 0;
  pair.wire = (p) => {
    count++;
    if (count === 3 || count === 8) return undefined;
    return [p, p]; // every message twice: the copies arrive while the first is still computing
  };
  pair.initiate(a);
  pair.advance(60);
  t.equal(only(a).spiIn, only(b).spiOut, 'one child SA each, matching');
  t.equal(a.engine.status()[0]!.childSas.length, 1);
  t.equal(b.engine.status()[0]!.ikeSas.length, 1, 'one ISAKMP SA: no duplicate from the copies');
});

t.test('rekeys of both kinds, deferred', async (t) => {
  const { pair, a, b } = tunnel({ pfs: 'modp2048', childLifetime: 200, ikeLifetime: 400 });
  pair.initiate(a);
  const first = only(a);
  pair.advance(390);
  t.not(only(a).spiIn, first.spiIn, 'the child SA was rekeyed');
  t.equal(only(a).spiIn, only(b).spiOut);
  const [status] = a.engine.status();
  t.equal(status!.ikeSas.length, 1, 'one ISAKMP SA after its rekey');
  t.equal(status!.childSas[0]!.ikeSaId, status!.ikeSas[0]!.id, 'the child moved to the new one');
});

t.test('a result for an SA that is gone is dropped', async (t) => {
  const { pair, a } = tunnel();
  const actions = a.engine.initiate('test', pair.now);
  pair.wire = () => undefined;
  pair.run(a, actions);
  // Message 2 never comes; terminate while nothing is computing, then feed a stale result.
  pair.run(a, a.engine.terminate('test', pair.now));
  t.same(a.engine.computed(12345, new Error('late'), pair.now), [], 'an unknown id changes nothing');
  t.equal(a.engine.nextTimeout(), undefined, 'no state left');
});
