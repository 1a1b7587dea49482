import t from 'tap';
import { parseTrafficSelector } from '../../src/core/traffic-selector.js';
import { algorithmsOf } from '../../src/crypto/registry.js';
import { ExchangeType, PayloadType } from '../../src/ikev2/constants.js';
import { equalBytes } from '../../src/wire/bytes.js';
import {
  connection,
  type ConnectionSpec,
  EnginePair,
  ipv4,
  onlyChild,
  type Side,
  sitePair,
} from '../helpers/engine-pair.js';
import { applyFaults, masquerade } from '../helpers/faults.js';

/**
 * IKEv2 exchanges between two engines with a fake clock, beyond the first tunnel: every algorithm
 * of the registry, a NAT, lost, duplicated and reordered messages, cookies, INVALID_KE_PAYLOAD,
 * fragmentation, narrowing and refused selectors, transport mode, liveness checks, Deletes from
 * the responder, and a gateway choosing among its connections by the peer's identity.
 */

const v2 = { version: 2 as const, ike: ['aes128-sha256-modp2048'], esp: ['aes128-sha256'] };

function established(a: Side, b: Side): boolean {
  return a.engine.status()[0]!.status === 'Active' && b.engine.status()[0]!.status === 'Active';
}

function crossing(a: Side, b: Side): boolean {
  const ca = onlyChild(a);
  const cb = onlyChild(b);
  return ca.spiIn === cb.spiOut && ca.spiOut === cb.spiIn && equalBytes(ca.keys.encrIn, cb.keys.encrOut);
}

const ikev2 = <K extends 'encr' | 'integ' | 'prf' | 'dh'>(kind: K) =>
  algorithmsOf(kind).filter((a) => a.ikev2 !== undefined);

t.test('every IKEv2 algorithm of the registry, for the IKE SA and for the child SA', async (t) => {
  const suites: { ike: string; esp: string }[] = [];
  for (const encr of ikev2('encr')) {
    const aead = encr.icvLength > 0;
    suites.push({
      ike: aead ? `${encr.name}-prfsha256-modp2048` : `${encr.name}-sha256-modp2048`,
      esp: aead ? encr.name : `${encr.name}-sha1`,
    });
  }
  for (const integ of ikev2('integ'))
    suites.push({ ike: `aes128-${integ.name}-modp2048`, esp: `aes128-${integ.name}` });
  // With an integrity algorithm of another hash, so that the PRF is named (and checked) apart.
  for (const prf of ikev2('prf')) {
    const integ = prf.name === 'prfsha256' ? 'sha1' : 'sha256';
    suites.push({ ike: `aes128-${integ}-${prf.name}-modp2048`, esp: 'aes128gcm16' });
  }
  for (const dh of ikev2('dh')) suites.push({ ike: `aes128-sha256-${dh.name}`, esp: 'aes128-sha256' });
  for (const suite of suites) {
    const { pair, a, b } = sitePair({ both: { ...v2, ike: [suite.ike], esp: [suite.esp] } });
    pair.initiate(a);
    t.ok(established(a, b) && crossing(a, b), `${suite.ike} / ${suite.esp}`);
    t.equal(a.engine.status()[0]!.ikeSas[0]!.algorithms, suite.ike, `${suite.ike}: reported as configured`);
  }
});

/** a at `inside` behind a masquerading NAT (`nat`) initiates to b; `responder` adds to b's connection. */
function natPair(responder: Partial<ConnectionSpec> = {}) {
  const pair = new EnginePair();
  const inside = '192.0.2.130';
  const nat = '192.0.2.129';
  const a = pair.add('a', inside, [
    connection({
      ...v2,
      localAddress: inside,
      peerAddress: '192.0.2.2',
      localSubnets: ['198.51.100.0/24'],
      peerSubnets: ['203.0.113.0/24'],
      start: 'initiate',
    }),
  ]);
  const b = pair.add('b', '192.0.2.2', [
    connection({
      ...v2,
      localAddress: '192.0.2.2',
      peerAddress: nat,
      peerId: ipv4(inside),
      localSubnets: ['203.0.113.0/24'],
      peerSubnets: ['198.51.100.0/24'],
      ...responder,
    }),
  ]);
  const { dropped } = masquerade(pair, inside, nat);
  return { pair, a, b, inside, nat, dropped };
}

t.test('the initiator behind a NAT floats to 4500; ESP goes in UDP; keepalives flow', async (t) => {
  const { pair, a, b, inside, nat } = natPair();
  pair.initiate(a);
  t.ok(established(a, b) && crossing(a, b), 'up through the NAT');
  const [ikeA] = a.engine.status()[0]!.ikeSas;
  const [ikeB] = b.engine.status()[0]!.ikeSas;
  t.same(ikeA!.nat, { local: true, remote: false }, 'the initiator knows it is behind the NAT');
  t.same(ikeB!.nat, { local: false, remote: true }, 'the responder sees the peer behind it');
  t.equal(ikeA!.local, `${inside}:4500`, 'IKE_AUTH went from 4500');
  t.equal(ikeB!.remote, `${nat}:1025`, 'the responder follows the NAT mapping of 4500');
  t.ok(onlyChild(a).encapsulation && onlyChild(b).encapsulation, 'ESP in UDP at both ends');
  const auth = pair.sent.filter((p) => p.data[18] === ExchangeType.IKE_AUTH);
  t.ok(auth.length === 2 && auth.every((p) => p.nonEspMarker), 'IKE_AUTH on 4500 with the non-ESP marker');
  const before = pair.sent.filter((p) => p.keepalive).length;
  pair.advance(61);
  t.equal(
    pair.sent.filter((p) => p.keepalive).length - before,
    3,
    'a keepalive every 20 s from behind the NAT',
  );
});

t.test(
  'the responder rekeys a child SA and the IKE SA of a peer behind a NAT through the mapping',
  async (t) => {
    const { pair, a, b, nat, dropped } = natPair({ childLifetime: 100, ikeLifetime: 150 });
    pair.initiate(a);
    const firstChild = onlyChild(a).spiIn;
    const firstIke = b.engine.status()[0]!.ikeSas[0]!.spiI;
    const sent = pair.sent.length;
    pair.advance(200);
    const rekeys = pair.sent
      .slice(sent)
      .filter((p) => p.data[18] === ExchangeType.CREATE_CHILD_SA && p.from.address === '192.0.2.2');
    t.ok(rekeys.length >= 2, 'b sent CREATE_CHILD_SA requests (child SA, then IKE SA)');
    t.ok(
      rekeys.every((p) => p.from.port === 4500 && p.to.port === 4500 && p.nonEspMarker),
      'from 4500, delivered through the mapping to 4500, with the non-ESP marker',
    );
    t.same(dropped, [], 'the NAT dropped nothing');
    t.ok(established(a, b) && crossing(a, b), 'one tunnel at both ends');
    t.not(onlyChild(a).spiIn, firstChild, 'a new child SA');
    const [ikeA] = a.engine.status()[0]!.ikeSas;
    const [ikeB] = b.engine.status()[0]!.ikeSas;
    t.not(ikeB!.spiI, firstIke, 'a new IKE SA');
    t.same([ikeA!.spiI, ikeA!.spiR], [ikeB!.spiI, ikeB!.spiR], 'the same at both ends');
    t.equal(ikeB!.remote, `${nat}:1025`, 'still reached through the mapping');
  },
);

t.test('lost, duplicated and reordered messages: retransmitted, answered from the cache', async (t) => {
  for (const [what, faults] of [
    ['IKE_SA_INIT request lost', [{ exchange: ExchangeType.IKE_SA_INIT, response: false, action: 'drop' }]],
    ['IKE_SA_INIT response lost', [{ exchange: ExchangeType.IKE_SA_INIT, response: true, action: 'drop' }]],
    [
      'IKE_AUTH request lost twice',
      [{ exchange: ExchangeType.IKE_AUTH, response: false, action: 'drop', times: 2 }],
    ],
    ['IKE_AUTH response lost', [{ exchange: ExchangeType.IKE_AUTH, response: true, action: 'drop' }]],
    [
      'IKE_SA_INIT request twice',
      [{ exchange: ExchangeType.IKE_SA_INIT, response: false, action: 'duplicate' }],
    ],
    ['IKE_AUTH request twice', [{ exchange: ExchangeType.IKE_AUTH, response: false, action: 'duplicate' }]],
    ['IKE_AUTH response twice', [{ exchange: ExchangeType.IKE_AUTH, response: true, action: 'duplicate' }]],
  ] as const) {
    const { pair, a, b } = sitePair({ both: v2 });
    applyFaults(pair, a, faults);
    pair.initiate(a);
    pair.advance(30);
    t.ok(established(a, b) && crossing(a, b), `${what}: one tunnel`);
    t.equal(b.engine.status()[0]!.ikeSas.length, 1, `${what}: the responder made one IKE SA`);
    t.equal(b.installed.size, 1, `${what}: and one child SA`);
  }
  // Reordered: the responder gets IKE_AUTH before the IKE_SA_INIT retransmission... held back
  // here: the first IKE_AUTH request arrives after a duplicate of IKE_SA_INIT.
  const { pair, a, b } = sitePair({ both: v2 });
  let held: Parameters<typeof pair.wire>[0] | undefined;
  pair.wire = (p) => {
    if (p.data[18] === ExchangeType.IKE_AUTH && !(p.data[19]! & 0x20) && !held) {
      held = p;
      return undefined;
    }
    if (p.data[18] === ExchangeType.IKE_SA_INIT && p.data[19]! & 0x20 && held) return [p];
    return p;
  };
  pair.initiate(a);
  // Deliver the held IKE_AUTH after an IKE_SA_INIT request arrives again (an old duplicate).
  const initRequest = pair.sent.find(
    (p) => p.data[18] === ExchangeType.IKE_SA_INIT && !(p.data[19]! & 0x20),
  )!;
  pair.wire = (p) => p;
  pair.run(
    b,
    b.engine.receive(initRequest.data, { address: b.address, port: 500 }, initRequest.from, pair.now),
  );
  pair.run(b, b.engine.receive(held!.data, { address: b.address, port: 500 }, held!.from, pair.now));
  pair.advance(30);
  t.ok(established(a, b) && crossing(a, b), 'reordered: one tunnel');
  t.equal(b.engine.status()[0]!.ikeSas.length, 1, 'reordered: one IKE SA at the responder');
});

t.test(
  'cookies (section 2.6): the responder asks, the initiator proves its address, then goes on',
  async (t) => {
    const { pair, a, b } = sitePair({ both: v2, engines: { b: { ikev2: { cookies: { threshold: 0 } } } } });
    pair.initiate(a);
    t.ok(established(a, b) && crossing(a, b), 'up');
    const inits = pair.sent.filter((p) => p.data[18] === ExchangeType.IKE_SA_INIT);
    t.equal(inits.length, 4, 'IKE_SA_INIT twice: the first answered with a COOKIE');
    t.ok(
      a.logs.some((l) => /asked for a cookie/.test(l)),
      'the initiator says so',
    );
    // Without cookies the responder keeps state for the first request; with them it kept none.
    const plain = sitePair({ both: v2 });
    plain.pair.initiate(plain.a);
    t.equal(
      plain.pair.sent.filter((p) => p.data[18] === ExchangeType.IKE_SA_INIT).length,
      2,
      'no cookie below the threshold',
    );
  },
);

t.test('INVALID_KE_PAYLOAD: the initiator tries again with the group the responder wants', async (t) => {
  const { pair, a, b } = sitePair({
    both: v2,
    a: { ike: ['aes128-sha256-modp2048', 'aes128-sha256-curve25519'] },
    b: { ike: ['aes128-sha256-curve25519'] },
  });
  pair.initiate(a);
  t.ok(established(a, b) && crossing(a, b), 'up');
  t.equal(a.engine.status()[0]!.ikeSas[0]!.algorithms, 'aes128-sha256-curve25519', 'with curve25519');
  t.ok(
    a.logs.some((l) => /INVALID_KE_PAYLOAD/.test(l)),
    'after INVALID_KE_PAYLOAD',
  );
});

t.test(
  'fragmentation (RFC 7383): a big CREATE_CHILD_SA in fragments; a lost fragment is asked for again',
  async (t) => {
    // A second child SA with PFS in modp4096: its KE alone (512 bytes) overflows 576-byte datagrams.
    const spec = {
      both: { ...v2, pfs: 'modp4096' },
      a: { localSubnets: ['198.51.100.0/25', '198.51.100.128/25'] },
      b: { peerSubnets: ['198.51.100.0/25', '198.51.100.128/25'] },
      engines: { a: { fragmentSize: 576 }, b: { fragmentSize: 576 } },
    };
    const { pair, a, b } = sitePair(spec);
    pair.initiate(a);
    t.ok(established(a, b), 'up');
    t.equal(a.installed.size, 2, 'both child SAs');
    const fragments = pair.sent.filter((p) => p.data[16] === PayloadType.SKF);
    t.ok(fragments.length >= 4, `SKF payloads on the wire, both ways (${fragments.length})`);
    t.ok(
      fragments.every((p) => p.data[18] === ExchangeType.CREATE_CHILD_SA),
      'only the CREATE_CHILD_SA messages needed them',
    );
    t.ok(
      pair.sent.every((p) => p.data.length + 20 + 8 + (p.nonEspMarker ? 4 : 0) <= 576),
      'no datagram over the configured size',
    );
    const lossy = sitePair(spec);
    let dropped = 0;
    lossy.pair.wire = (p) => {
      if (dropped === 0 && p.data[16] === PayloadType.SKF && p.data[19]! & 0x20) {
        dropped++;
        return undefined;
      }
      return p;
    };
    lossy.pair.initiate(lossy.a);
    lossy.pair.advance(30);
    t.equal(dropped, 1, 'a fragment of the answer was lost');
    t.ok(established(lossy.a, lossy.b), 'the request went again, the whole answer came again');
    t.equal(lossy.a.installed.size, 2);
    const big = sitePair({ ...spec, engines: {} });
    big.pair.initiate(big.a);
    t.equal(
      big.pair.sent.filter((p) => p.data[16] === PayloadType.SKF).length,
      0,
      'with the default 1280 the same exchange needs no fragments',
    );
  },
);

t.test('narrowing (section 2.9): the responder answers with the part of the selectors it has', async (t) => {
  const { pair, a, b } = sitePair({ both: v2, b: { localSubnets: ['203.0.113.0/25'] } });
  pair.initiate(a);
  t.ok(established(a, b) && crossing(a, b), 'up');
  t.same(
    a.engine.status()[0]!.childSas[0]!.remoteTs,
    ['203.0.113.0/25'],
    "the initiator's child SA covers the narrowed subnet",
  );
});

t.test('TS_UNACCEPTABLE: no child SA on either side, the IKE SA stays', async (t) => {
  const { pair, a, b } = sitePair({ both: v2, b: { localSubnets: ['192.0.2.128/25'] } });
  pair.initiate(a);
  t.equal(a.installed.size + b.installed.size, 0, 'no child SA');
  t.match(a.engine.status()[0], { status: 'Error', error: /TS_UNACCEPTABLE/ });
  t.equal(a.engine.status()[0]!.ikeSas.length, 1, 'the IKE SA stays up');
});

t.test('transport mode (USE_TRANSPORT_MODE), and a responder that will not do it', async (t) => {
  const both = { ...v2, mode: 'transport' as const, localSubnets: [], peerSubnets: [] };
  const { pair, a, b } = sitePair({ both });
  pair.initiate(a);
  t.ok(crossing(a, b), 'up');
  t.equal(onlyChild(a).mode, 'transport');
  t.equal(onlyChild(b).mode, 'transport');
  const refusing = sitePair({ both, b: { mode: 'tunnel' } });
  refusing.pair.initiate(refusing.a);
  refusing.pair.advance(5);
  t.equal(refusing.a.installed.size, 0, 'a tunnel-mode answer to a transport-mode request is refused');
  t.equal(refusing.b.installed.size, 0, 'and the responder deletes the child SA it made');
  t.match(refusing.a.engine.status()[0], { status: 'Error', error: /declined transport mode/ });
});

t.test(
  'liveness checks: answered while the peer lives; dead peer declared when it goes silent',
  async (t) => {
    const dpd = { delay: 10, timeout: 30, action: 'clear' as const };
    const { pair, a, b } = sitePair({ both: { ...v2, dpd } });
    pair.initiate(a);
    pair.advance(120);
    t.ok(established(a, b), 'two minutes idle, still up (probes answered)');
    const probes = pair.sent.filter((p) => p.data[18] === ExchangeType.INFORMATIONAL).length;
    t.ok(probes >= 4, `liveness checks went both ways (${probes} INFORMATIONAL messages)`);
    pair.wire = (p) => (p.from.address === b.address ? undefined : p);
    pair.advance(60);
    t.match(a.engine.status()[0], { status: 'Error', error: /dead peer/ });
    t.equal(a.installed.size, 0, 'its child SAs are gone');
  },
);

t.test('the responder deletes: the initiator clears too', async (t) => {
  const { pair, a, b } = sitePair({ both: v2 });
  pair.initiate(a);
  pair.run(b, b.engine.terminate('test', pair.now));
  pair.advance(5);
  t.equal(a.installed.size + b.installed.size, 0);
  t.equal(a.engine.status()[0]!.ikeSas.length + b.engine.status()[0]!.ikeSas.length, 0, 'no IKE SA');
});

t.test('a gateway with a connection per client identity and a PSK each (peer "any")', async (t) => {
  const pair = new EnginePair();
  const gateway = '192.0.2.2';
  const clients = ['192.0.2.11', '192.0.2.12'];
  const g = pair.add(
    'gateway',
    gateway,
    clients.map((address, i) =>
      connection({
        ...v2,
        name: `client${i}`,
        localAddress: gateway,
        peerAddress: 'any',
        peerId: { type: 'fqdn', value: `client${i}.example.net` },
        localSubnets: ['203.0.113.0/24'],
        peerSubnets: [`198.51.100.${i * 16}/28`],
        psk: `secret of client ${i}`,
      }),
    ),
  );
  const sides = clients.map((address, i) =>
    pair.add(`c${i}`, address, [
      connection({
        ...v2,
        localAddress: address,
        peerAddress: gateway,
        localId: { type: 'fqdn', value: `client${i}.example.net` },
        localSubnets: [`198.51.100.${i * 16}/28`],
        peerSubnets: ['203.0.113.0/24'],
        psk: `secret of client ${i}`,
        start: 'initiate',
      }),
    ]),
  );
  for (const side of sides) pair.initiate(side);
  for (const [i, side] of sides.entries()) {
    t.equal(side.engine.status()[0]!.status, 'Active', `client ${i} is up`);
    const status = g.engine.status(`client${i}`)[0]!;
    t.equal(status.status, 'Active', `the gateway's client${i} is up`);
    t.same(status.childSas[0]!.remoteTs, [`198.51.100.${i * 16}/28`], `with client ${i}'s subnet`);
  }
});

t.test('a tunnel and an L2TP transport connection to one peer share one IKE SA', async (t) => {
  const pair = new EnginePair();
  const [A, B] = ['192.0.2.1', '192.0.2.2'];
  const side = (
    name: string,
    local: string,
    peer: string,
    subnets: [string, string],
    start: 'initiate' | 'respond',
  ) =>
    pair.add(name, local, [
      connection({
        ...v2,
        name: 'net',
        localAddress: local,
        peerAddress: peer,
        localSubnets: [subnets[0]],
        peerSubnets: [subnets[1]],
        start,
      }),
      connection({
        ...v2,
        name: 'l2tp',
        mode: 'transport',
        localAddress: local,
        peerAddress: peer,
        localSubnets: [parseTrafficSelector(local, 17, 1701)],
        peerSubnets: [parseTrafficSelector(peer, 17, 1701)],
        start,
      }),
    ]);
  const a = side('a', A, B, ['198.51.100.0/24', '203.0.113.0/24'], 'initiate');
  const b = side('b', B, A, ['203.0.113.0/24', '198.51.100.0/24'], 'respond');
  pair.run(a, [...a.engine.initiate('net', pair.now), ...a.engine.initiate('l2tp', pair.now)]);
  pair.advance(5);
  for (const s of [a, b]) {
    const [net, l2tp] = ['net', 'l2tp'].map((name) => s.engine.status(name)[0]!);
    t.equal(net!.status, 'Active', `${s.name}: net Active`);
    t.equal(l2tp!.status, 'Active', `${s.name}: l2tp Active`);
    t.equal(net!.childSas[0]!.mode, 'tunnel');
    t.equal(l2tp!.childSas[0]!.mode, 'transport');
    t.equal(net!.childSas[0]!.ikeSaId, l2tp!.childSas[0]!.ikeSaId, `${s.name}: over one IKE SA`);
  }
  const inits = pair.sent.filter((p) => p.data[18] === ExchangeType.IKE_SA_INIT);
  t.equal(inits.length, 2, 'one IKE_SA_INIT exchange in all');
});

t.test('start "on-traffic": the kernel\'s ACQUIRE starts IKE_SA_INIT, nothing before it', async (t) => {
  const { pair, a, b } = sitePair({ both: v2, a: { start: 'on-traffic' } });
  pair.advance(60);
  t.equal(pair.sent.length, 0, 'nothing sent without traffic');
  pair.run(a, a.engine.kernelEvent({ type: 'acquire', connection: 'test' }, pair.now));
  t.ok(established(a, b) && crossing(a, b), 'the first packet brought the tunnel up');
});
