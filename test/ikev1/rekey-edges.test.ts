import t from 'tap';
import { decodeHeader, decodeMessage } from '../../src/ikev1/codec.js';
import { ExchangeType } from '../../src/ikev1/constants.js';
import type { Connection } from '../../src/core/connection.js';
import { formatSpi } from '../../src/core/sa.js';
import { parsePhase1Sa } from '../../src/ikev1/proposals.js';
import { connection, EnginePair, ipv4, type Side, SITE_A, SITE_B } from '../helpers/engine-pair.js';
import { masquerade } from '../helpers/faults.js';

/**
 * IKEv1 rekeys at the edges: an ISAKMP SA rekeyed by the responder towards a peer behind a NAT,
 * and SAs whose lifetime the peer imposed, much shorter than ours.
 */

const INSIDE = '192.0.2.130';
const NAT = '192.0.2.129';
const B = '192.0.2.2';

function ikeSas(side: Side) {
  return side.engine.status()[0]!.ikeSas;
}

/** a behind a masquerading NAT initiates to b; `b` and `a` add to each side's connection. */
function natPair(specs: { a?: object; b?: object } = {}) {
  const pair = new EnginePair();
  const a = pair.add('a', INSIDE, [
    connection({
      localAddress: INSIDE,
      peerAddress: B,
      localSubnets: ['198.51.100.0/24'],
      peerSubnets: ['203.0.113.0/24'],
      start: 'initiate',
      ...specs.a,
    }),
  ]);
  const b = pair.add('b', B, [
    connection({
      localAddress: B,
      peerAddress: NAT,
      peerId: ipv4(INSIDE),
      localSubnets: ['203.0.113.0/24'],
      peerSubnets: ['198.51.100.0/24'],
      ...specs.b,
    }),
  ]);
  const nat = masquerade(pair, INSIDE, NAT);
  return { pair, a, b, nat };
}

t.test('the responder rekeys the ISAKMP SA of a peer behind a NAT on the floated port', async (t) => {
  const { pair, a, b, nat } = natPair({ b: { ikeLifetime: 120 } });
  pair.initiate(a);
  const [first] = ikeSas(b);
  t.equal(first?.remote, `${NAT}:1025`, 'b reaches a at the NAT mapping of port 4500');
  const child = [...a.installed.keys()];
  const sent = pair.sent.length;
  pair.advance(first!.rekeyAt! - pair.now + 30);
  const mainMode1 = pair.sent
    .slice(sent)
    .find(
      (p) =>
        p.from.address === B &&
        decodeHeader(p.data).exchangeType === ExchangeType.IDENTITY_PROTECTION &&
        decodeMessage(p.data).payloads?.some((x) => x.kind === 'sa'),
    );
  t.ok(mainMode1, 'b began a new main mode');
  t.same(
    mainMode1 && [`${mainMode1.from.address}:${mainMode1.from.port}`, mainMode1.to, mainMode1.nonEspMarker],
    [`${B}:4500`, { address: INSIDE, port: 4500 }, true],
    'from its port 4500 through the mapping to port 4500 (as delivered), with the non-ESP marker',
  );
  t.same(nat.dropped, [], 'the NAT dropped nothing');
  const [sa] = ikeSas(a);
  const [sb] = ikeSas(b);
  t.equal(ikeSas(a).length, 1, 'a holds one ISAKMP SA');
  t.equal(ikeSas(b).length, 1, 'b holds one ISAKMP SA');
  t.not(sb?.spiI, first?.spiI, 'a new one');
  t.same([sa?.spiI, sa?.spiR], [sb?.spiI, sb?.spiR], 'the same at both ends');
  t.equal(sb?.remote, `${NAT}:1025`, 'still on the mapping');
  t.equal(sa?.local, `${INSIDE}:4500`, 'a answered on its port 4500');
  t.same([...a.installed.keys()], child, 'the child SA is untouched');
  t.equal(a.engine.status()[0]!.status, 'Active');
  t.equal(b.engine.status()[0]!.status, 'Active');
});

t.test('the responder rekeys a child SA of a peer behind a NAT through the mapping', async (t) => {
  const { pair, a, b, nat } = natPair({ b: { childLifetime: 100 } });
  pair.initiate(a);
  const first = [...a.installed.values()][0]!.spiIn;
  const sent = pair.sent.length;
  pair.advance(150);
  const quickModes = pair.sent
    .slice(sent)
    .filter((p) => p.from.address === B && decodeHeader(p.data).exchangeType === ExchangeType.QUICK_MODE);
  t.ok(quickModes.length >= 1, 'b began a quick mode');
  t.ok(
    quickModes.every((p) => p.from.port === 4500 && p.to.port === 4500 && p.nonEspMarker),
    'from 4500, delivered through the mapping to 4500, with the non-ESP marker',
  );
  t.same(nat.dropped, [], 'the NAT dropped nothing');
  const children = [...a.installed.values()];
  t.equal(children.length, 1, 'a holds one child SA');
  t.not(children[0]?.spiIn, first, 'a new one');
  t.same(
    [...b.installed.values()].map((c) => [c.spiIn, c.spiOut]),
    children.map((c) => [c.spiOut, c.spiIn]),
    'the same at both ends',
  );
});

/** `connection` with a lifetime of `seconds` and a margin of `margin` for `kind`. */
function withLifetime(c: Connection, kind: 'ike' | 'ipsec', seconds: number, margin: number): Connection {
  const lifetime = { seconds, rekeyMargin: margin, rekeyFuzz: 0 };
  return kind === 'ike' ? { ...c, ike: { ...c.ike, lifetime } } : { ...c, ipsec: { ...c.ipsec, lifetime } };
}

/** a initiates to b, a with a short lifetime of `kind`; b has the defaults (10800 s and 3600 s). */
function shortLifetimePair(kind: 'ike' | 'ipsec', seconds: number, margin: number) {
  const pair = new EnginePair();
  const spec = { localSubnets: ['198.51.100.0/24'], peerSubnets: ['203.0.113.0/24'] };
  const ours = connection({ localAddress: SITE_A, peerAddress: SITE_B, start: 'initiate', ...spec });
  const a = pair.add('a', SITE_A, [withLifetime(ours, kind, seconds, margin)]);
  const b = pair.add('b', SITE_B, [
    connection({
      localAddress: SITE_B,
      peerAddress: SITE_A,
      localSubnets: spec.peerSubnets,
      peerSubnets: spec.localSubnets,
    }),
  ]);
  return { pair, a, b };
}

t.test('a short child lifetime from the peer: the margin scales, the rekey asks for no more', async (t) => {
  // a (the quick mode initiator) offers 8 s and rekeys 0.2 s before the end; b has 3600 s with
  // a 360 s margin: 10% of its lifetime, so b should rekey 0.8 s before the end, as a
  // configured 8 s lifetime would.
  const { pair, a, b } = shortLifetimePair('ipsec', 8, 0.2);
  pair.initiate(a);
  const [child] = b.engine.status()[0]!.childSas;
  t.equal(child?.lifetime.seconds, 8, "b applies the peer's 8 s");
  t.equal(
    Math.round((child!.rekeyAt - child!.installedAt) * 10) / 10,
    7.2,
    'b rekeys after 90% of it (not 10%)',
  );
  const firstSpi = [...a.installed.values()][0]!.spiIn;
  pair.advance(7.5); // past b's rekey at 7.2 s, before a's at 7.8 s
  // The replaced child SA stays in the kernel a few seconds (RETIRE_WAIT), out of status.
  const children = b.engine.status()[0]!.childSas;
  t.equal(children.length, 1, 'b replaced its child SA before a did');
  t.notOk(
    a.engine.status()[0]!.childSas.some((c) => c.spiIn === formatSpi(firstSpi)),
    'a holds the new one only',
  );
  t.equal(children[0]?.lifetime.seconds, 8, 'the new child SA has 8 s');
  t.notOk(
    b.logs.some((line) => /responder lifetime/.test(line)),
    'a had no shorter lifetime to impose: b asked for no more than the 8 s',
  );
});

t.test(
  'a short ISAKMP SA lifetime from the peer: the responder rekeys late and asks for no more',
  async (t) => {
    const { pair, a, b } = shortLifetimePair('ike', 60, 1);
    pair.initiate(a);
    const [sa] = ikeSas(b);
    t.equal(sa!.expiresAt! - sa!.establishedAt!, 60, "b applies the peer's 60 s");
    t.equal(sa!.rekeyAt! - sa!.establishedAt!, 57, 'b rekeys after 95% of it (its margin is 5%)');
    const sent = pair.sent.length;
    pair.advance(58);
    const mainMode1 = pair.sent
      .slice(sent)
      .map((p) => ({ p, message: decodeMessage(p.data) }))
      .find(({ p, message }) => p.from.address === SITE_B && message.payloads?.some((x) => x.kind === 'sa'));
    const offer = mainMode1?.message.payloads?.find((x) => x.kind === 'sa');
    t.ok(offer, 'b began a new main mode');
    t.same(
      offer?.kind === 'sa' && parsePhase1Sa(offer).offers.map((o) => o.lifetime.seconds),
      [60],
      'offering 60 s, not its own 10800 s',
    );
    t.equal(ikeSas(a).length, 1, 'one ISAKMP SA at a');
    t.equal(ikeSas(b)[0]?.spiI, ikeSas(a)[0]?.spiI, 'the new one, at both ends');
    t.not(ikeSas(b)[0]?.spiI, sa!.spiI, 'replacing the first');
  },
);
