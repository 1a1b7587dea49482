import t from 'tap';
import { DEFAULT_RETRANSMIT as POLICY } from '../../src/core/retransmit.js';
import { Flight } from '../../src/ikev1/flight.js';

t.test('a lingering flight answers a repeat of the message it answered', async (t) => {
  const flight = new Flight('mm');
  flight.received(new Uint8Array(16).fill(7));
  const answer = new Uint8Array([1, 2, 3]);
  flight.sent(answer, 0, POLICY, false);
  flight.linger();
  t.ok(flight.isRepeat(new Uint8Array(16).fill(7)), 'a repeat of the message it answered is recognised');
  t.equal(flight.answerToRepeat(), answer, 'and answered with the same message');
  t.equal(flight.dueAt, undefined, 'no retransmission runs while it lingers');
});

t.test("a flight whose last word was the peer's keeps nothing to linger with", async (t) => {
  const flight = new Flight('qm:1');
  flight.sent(new Uint8Array([1]), 0, POLICY, true);
  flight.received(new Uint8Array([9, 9]));
  flight.linger();
  t.notOk(flight.isRepeat(new Uint8Array([9, 9])), 'nothing to compare with');
  t.equal(flight.answerToRepeat(), undefined, 'nothing to answer with');
  t.equal(flight.lastSent, undefined);
});
