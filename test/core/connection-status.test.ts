import t from 'tap';
import type { EngineEvent } from '../../src/core/actions.js';
import { connection, SITE_A, SITE_B, type Side, sitePair } from '../helpers/engine-pair.js';

/**
 * What a connection's status says while it comes up or is refused, as the 'connection' events
 * report it: a refused child SA shows the peer's notify at once, a responder never passes by Down.
 */

type ConnectionEvent = Extract<EngineEvent, { type: 'connection' }>;

const moves = (side: Side, from = 0): string[] =>
  side.events
    .slice(from)
    .filter((event): event is ConnectionEvent => event.type === 'connection')
    .map((event) => `${event.previous} -> ${event.status}`);

const refused = { a: { esp: ['aes128-sha1'] }, b: { esp: ['aes256-sha256'] } };

for (const version of [1, 2] as const) {
  const ike = version === 1 ? 'quick mode' : 'IKE_AUTH child';
  t.test(`IKEv${version}: a ${ike} refused with NO_PROPOSAL_CHOSEN is an Error at once`, async (t) => {
    const { pair, a } = sitePair({ both: { version }, ...refused });
    pair.initiate(a);
    // No time has passed: nothing was retransmitted, the peer's answer alone decided.
    const [status] = a.engine.status();
    t.equal(status!.status, 'Error', 'not Pending');
    t.match(status!.error, /NO_PROPOSAL_CHOSEN/, "the peer's notify is the reason");
    t.same(moves(a), ['Down -> Pending', 'Pending -> Error']);
    const error = a.events.find((e): e is ConnectionEvent => e.type === 'connection' && e.status === 'Error');
    t.match(error!.error, /NO_PROPOSAL_CHOSEN/, 'the Error event carries the reason');
    const failed = a.events.filter((e) => e.type === 'failed');
    t.equal(failed.length, 1, 'one failed negotiation is reported');
    t.match(failed[0], { kind: 'child', cause: 'no-proposal', connection: 'test' });
    t.equal(
      a.events.filter((e) => e.type === 'negotiation-started' && e.kind === 'child').length,
      1,
      'the refused child SA is not asked for again at once',
    );
    t.notOk(
      a.events.some((e) => e.type === 'retransmit'),
      'the initiator did not wait for an answer that had come',
    );
    // Later, nothing turns it into a timeout.
    pair.advance(120);
    t.notMatch(a.engine.status()[0]!.error ?? '', /no answer/);
    t.equal(a.installed.size, 0);
  });
}

t.test('IKEv2: a CREATE_CHILD_SA refused with NO_PROPOSAL_CHOSEN is an Error at once', async (t) => {
  const { pair, a } = sitePair({ both: { version: 2 }, ...refused });
  pair.initiate(a);
  t.equal(a.engine.status()[0]!.ikeSas.length, 1, 'the IKE SA stands without a child');
  const from = a.events.length;
  pair.initiate(a); // the IKE SA is up: CREATE_CHILD_SA this time
  t.ok(
    a.events.slice(from).some((e) => e.type === 'negotiation-started' && e.kind === 'child'),
    'a child negotiation ran',
  );
  t.match(
    a.events.slice(from).find((e) => e.type === 'failed'),
    { kind: 'child', cause: 'no-proposal' },
  );
  t.equal(a.engine.status()[0]!.status, 'Error');
  t.match(a.engine.status()[0]!.error, /NO_PROPOSAL_CHOSEN/);
});

for (const version of [1, 2] as const) {
  t.test(`IKEv${version}: a responder goes Pending -> Active, never by Down`, async (t) => {
    const { pair, a, b } = sitePair({ both: { version }, ...refused });
    pair.initiate(a);
    t.equal(b.engine.status()[0]!.status, 'Error', 'a first attempt failed: the responder shows why');
    // The initiator's operator fixes the proposal and tries again.
    pair.run(a, a.engine.terminate('test', pair.now));
    const fixed = connection({
      localAddress: SITE_A,
      peerAddress: SITE_B,
      localSubnets: ['198.51.100.0/24'],
      peerSubnets: ['203.0.113.0/24'],
      start: 'respond', // initiated below, not by the reload
      version,
      esp: ['aes256-sha256'],
    });
    pair.run(a, a.engine.reconfigure([fixed], pair.now));
    const from = b.events.length;
    pair.initiate(a);
    t.equal(b.engine.status()[0]!.status, 'Active');
    t.notOk(
      moves(b, from).some((move) => move.endsWith('-> Down')),
      `no Down on the way: ${moves(b, from).join(', ')}`,
    );
    t.equal(moves(b, from).at(-1), 'Pending -> Active');
  });
}

t.test(
  'IKEv1: a responder whose peer never starts quick mode is Down after the half-open time',
  async (t) => {
    const { pair, a, b } = sitePair({ both: { version: 1 } });
    // Quick mode message 1 is lost, and so are its retransmissions.
    pair.wire = (packet) =>
      packet.from.address === SITE_A &&
      b.engine.status()[0]!.ikeSas.length &&
      a.engine.status()[0]!.ikeSas[0]?.state === 'ESTABLISHED'
        ? undefined
        : packet;
    pair.initiate(a);
    t.equal(b.engine.status()[0]!.ikeSas.length, 1, 'the ISAKMP SA is up on the responder');
    t.equal(b.engine.status()[0]!.status, 'Pending', 'waiting for the quick mode that follows');
    pair.advance(31);
    t.equal(b.engine.status()[0]!.status, 'Down', 'no quick mode came: Down');
  },
);

t.test('a responder SA left half-open is a failed negotiation (for metrics), not an Error', async (t) => {
  const { pair, a, b } = sitePair({ both: { version: 1 } });
  // The initiator is gone after its first message.
  pair.wire = (packet) =>
    packet.from.address === SITE_A && b.engine.status()[0]!.ikeSas.length ? undefined : packet;
  pair.run(a, a.engine.initiate('test', pair.now));
  pair.sides.splice(pair.sides.indexOf(a), 1);
  t.equal(b.engine.status()[0]!.status, 'Pending');
  pair.advance(31);
  t.match(
    b.events.filter((e) => e.type === 'failed'),
    [{ kind: 'ike', cause: 'timeout', reason: 'half-open SA timed out', connection: 'test' }],
  );
  t.equal(b.engine.status()[0]!.status, 'Down', 'the first message may have been anyone’s: no Error');
});
