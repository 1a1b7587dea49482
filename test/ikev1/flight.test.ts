import t from 'tap';
import { DEFAULT_RETRANSMIT as POLICY } from '../../src/core/retransmit.js';
import { Flight } from '../../src/ikev1/flight.js';

t.test('a lingering flight keeps a copy of what it answers, not a view of the batch', async (t) => {
  const batch = new Uint8Array(64).fill(7);
  const received = batch.subarray(16, 32);
  const flight = new Flight('mm');
  flight.received(received);
  const answer = new Uint8Array([1, 2, 3]);
  flight.sent(answer, 0, POLICY, false);
  flight.linger();
  const again = new Uint8Array(16).fill(7);
  t.ok(flight.isRepeat(again), 'a repeat of the message it answered is recognised');
  t.equal(flight.answerToRepeat(), answer, 'and answered with the same message');
  batch.fill(0); // the batch's memory goes on to other datagrams
  t.ok(flight.isRepeat(again), 'what it compares with is its own copy');
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
