import t, { type Test } from 'tap';
import { masquerade } from '../helpers/faults.js';
import { algorithm } from '../../src/crypto/registry.js';
import type { ChildSa } from '../../src/core/sa.js';
import { parseTrafficSelector } from '../../src/core/traffic-selector.js';
import { equalBytes, toHex } from '../../src/wire/bytes.js';
import { sameAuthenticationKey } from '../../src/core/connection.js';
import { decodeHeader, decodeMessage } from '../../src/ikev1/codec.js';
import { ExchangeType, NotifyType } from '../../src/ikev1/constants.js';
import { CommandError } from '../../src/core/command-error.js';
import { connection, type ConnectionSpec, EnginePair, ipv4, type Side } from '../helpers/engine-pair.js';

/**
 * Two engines back to back with a fake clock: main mode + quick mode in both roles and the
 * failure paths. Every assertion reads what the engines installed, reported or sent.
 */

const A = '192.0.2.1';
const B = '192.0.2.2';

function tunnelPair(spec: Partial<ConnectionSpec> = {}, responder: Partial<ConnectionSpec> = {}) {
  const pair = new EnginePair();
  const a = pair.add('a', A, [
    connection({
      localAddress: A,
      peerAddress: B,
      localSubnets: ['198.51.100.0/24'],
      peerSubnets: ['203.0.113.0/24'],
      start: 'initiate',
      ...spec,
    }),
  ]);
  const b = pair.add('b', B, [
    connection({
      localAddress: B,
      peerAddress: A,
      localSubnets: ['203.0.113.0/24'],
      peerSubnets: ['198.51.100.0/24'],
      ...spec,
      ...responder,
    }),
  ]);
  return { pair, a, b };
}

function only(side: Side): ChildSa {
  const children = [...side.installed.values()];
  if (children.length !== 1) throw new Error(`${side.name} has ${children.length} child SAs`);
  return children[0]!;
}

/** Both ends installed one matching child SA: SPIs and keys cross over. */
function assertMatchingChildren(t: Test, a: Side, b: Side): void {
  const ca = only(a);
  const cb = only(b);
  t.equal(ca.spiIn, cb.spiOut, 'initiator inbound SPI is responder outbound');
  t.equal(ca.spiOut, cb.spiIn, 'initiator outbound SPI is responder inbound');
  t.ok(equalBytes(ca.keys.encrIn, cb.keys.encrOut), 'encryption keys cross over');
  t.ok(equalBytes(ca.keys.encrOut, cb.keys.encrIn), 'encryption keys cross over (other direction)');
  t.ok(equalBytes(ca.keys.integIn, cb.keys.integOut), 'integrity keys cross over');
  t.notOk(equalBytes(ca.keys.encrIn, ca.keys.encrOut), 'directions have different keys');
}

const IKE_SUITES = [
  'aes128-sha1-modp1024',
  'aes192-sha256-modp1536',
  'aes256-sha256-modp2048',
  'aes256-sha384-modp3072',
  'aes128-sha512-ecp256',
  'aes256-sha1-ecp384',
  '3des-sha1-modp1024',
  '3des-md5-modp1024',
  'aes128-md5-modp768',
];
const ESP_SUITES = [
  'aes128-sha1',
  'aes256-sha256',
  '3des-md5',
  'aes128gcm16',
  'aes256gcm16',
  'aes192ctr-sha384',
  'aes256-sha512',
];

t.test('main mode + quick mode with every IKEv1 phase 1 suite', async (t) => {
  for (const ike of IKE_SUITES) {
    const { pair, a, b } = tunnelPair({ ike: [ike] });
    pair.initiate(a);
    t.equal(a.engine.status()[0]!.ikeSas[0]?.algorithms, ike, `${ike}: initiator reports the suite`);
    assertMatchingChildren(t, a, b);
  }
});

t.test('quick mode with every ESP suite, with and without PFS', async (t) => {
  for (const esp of ESP_SUITES) {
    for (const pfs of [undefined, 'modp2048']) {
      const { pair, a, b } = tunnelPair({ esp: [esp], ...(pfs && { pfs }) });
      pair.initiate(a);
      const child = only(b);
      t.equal(child.suite.dh?.name, pfs, `${esp} pfs=${pfs}: group`);
      t.equal(child.suite.encr.name, esp.split('-')[0], `${esp}: cipher`);
      assertMatchingChildren(t, a, b);
    }
  }
});

t.test('the responder chooses by its own preference from a multi-transform offer', async (t) => {
  // The macOS/iOS L2TP client's order: strongest first, 3DES/MD5 last.
  const offer = [
    'aes256-sha256-modp2048',
    'aes128-sha256-modp2048',
    'aes256-sha1-modp2048',
    'aes256-sha256-modp1536',
    'aes256-sha1-modp1024',
    'aes128-sha1-modp1024',
    '3des-sha1-modp1024',
    '3des-md5-modp1024',
  ];
  const { pair, a, b } = tunnelPair({ ike: offer }, { ike: ['3des-sha1-modp1024', 'aes128-sha1-modp1024'] });
  pair.initiate(a);
  t.equal(b.engine.status()[0]!.ikeSas[0]?.algorithms, '3des-sha1-modp1024', 'our first preference wins');
  t.equal(a.engine.status()[0]!.ikeSas[0]?.algorithms, '3des-sha1-modp1024');
  assertMatchingChildren(t, a, b);
});

t.test('transport mode with protocol/port selectors (L2TP)', async (t) => {
  const l2tp = (address: string) => [parseTrafficSelector(address, 17, 1701)];
  const { pair, a, b } = tunnelPair(
    { mode: 'transport', localSubnets: l2tp(A), peerSubnets: l2tp(B) },
    { localSubnets: l2tp(B), peerSubnets: [] },
  );
  pair.initiate(a);
  const child = only(b);
  t.equal(child.mode, 'transport');
  t.same(b.engine.status()[0]!.childSas[0]?.localTs, ['192.0.2.2/32[udp/1701]']);
  t.same(b.engine.status()[0]!.childSas[0]?.remoteTs, ['192.0.2.1/32[udp/1701]']);
  assertMatchingChildren(t, a, b);
});

t.test('a responder with peer address "any" serves any client', async (t) => {
  const pair = new EnginePair();
  const gateway = pair.add('gw', B, [
    connection({
      name: 'l2tp',
      localAddress: B,
      peerAddress: 'any',
      mode: 'transport',
      ike: ['aes256-sha1-modp1024', '3des-sha1-modp1024'],
      esp: ['aes256-sha1', '3des-sha1'],
    }),
  ]);
  for (const address of ['192.0.2.10', '192.0.2.11']) {
    const client = pair.add(address, address, [
      connection({
        localAddress: address,
        peerAddress: B,
        mode: 'transport',
        start: 'initiate',
        ike: ['3des-sha1-modp1024'],
        esp: ['3des-sha1'],
      }),
    ]);
    pair.initiate(client);
    t.equal(client.installed.size, 1, `${address} got a child SA`);
  }
  const status = gateway.engine.status()[0]!;
  t.equal(status.status, 'Active');
  t.equal(status.childSas.length, 2, 'one child SA per client');
  t.same(status.ikeSas.map((sa) => sa.remote).sort(), ['192.0.2.10:500', '192.0.2.11:500']);
});

t.test('NAT traversal: the initiator behind a NAT floats to 4500 and keeps the mapping alive', async (t) => {
  const pair = new EnginePair();
  const inside = '192.0.2.130';
  const nat = '192.0.2.129';
  const a = pair.add('a', inside, [
    connection({
      localAddress: inside,
      peerAddress: B,
      localSubnets: ['198.51.100.0/24'],
      peerSubnets: ['203.0.113.0/24'],
      start: 'initiate',
    }),
  ]);
  const b = pair.add('b', B, [
    connection({
      localAddress: B,
      peerAddress: nat,
      peerId: ipv4(inside),
      localSubnets: ['203.0.113.0/24'],
      peerSubnets: ['198.51.100.0/24'],
    }),
  ]);
  // A masquerading NAT: the inside address and port are rewritten both ways.
  masquerade(pair, inside, nat);
  pair.initiate(a);
  assertMatchingChildren(t, a, b);
  t.ok(only(a).encapsulation && only(b).encapsulation, 'both sides use UDP encapsulation');
  const ikeA = a.engine.status()[0]!.ikeSas[0]!;
  const ikeB = b.engine.status()[0]!.ikeSas[0]!;
  t.same(ikeA.nat, { local: true, remote: false }, 'the initiator knows it is behind the NAT');
  t.same(ikeB.nat, { local: false, remote: true }, 'the responder sees the peer behind a NAT');
  t.equal(ikeA.local, `${inside}:4500`, 'initiator floated to 4500');
  t.equal(ikeB.remote, `${nat}:1025`, 'responder follows the NAT mapping of port 4500');
  const floated = pair.sent.filter((p) => p.to.port === 4500 || p.from.port === 4500);
  t.ok(
    floated.length >= 4 && floated.every((p) => p.nonEspMarker || p.keepalive),
    'IKE on 4500 carries the non-ESP marker',
  );
  const before = pair.sent.filter((p) => p.keepalive).length;
  pair.advance(61);
  t.equal(
    pair.sent.filter((p) => p.keepalive).length - before,
    3,
    'a keepalive every 20 s from behind the NAT',
  );
});

t.test('lost and duplicated packets are retransmitted and answered from cache', async (t) => {
  const { pair, a, b } = tunnelPair();
  let count = 0;
  pair.wire = (p) => {
    count++;
    if (count === 2 || count === 5 || count === 9) return undefined; // drop message 2, 5 and QM2
    return count % 3 === 0 ? [p, p] : p; // and duplicate every third
  };
  pair.initiate(a);
  pair.advance(30);
  assertMatchingChildren(t, a, b);
  t.equal(a.engine.status()[0]!.childSas.length, 1, 'duplicates did not create extra child SAs');
});

t.test('an unreachable peer fails cleanly after bounded retransmissions', async (t) => {
  const { pair, a } = tunnelPair();
  pair.wire = () => undefined;
  pair.initiate(a);
  pair.advance(120);
  t.equal(pair.sent.length, 0);
  const status = a.engine.status()[0]!;
  t.equal(status.status, 'Error');
  t.match(status.error, /no answer/);
  t.equal(a.engine.nextTimeout(), undefined, 'no state left behind');
});

t.test('a wrong pre-shared key fails cleanly on both sides, nothing installed', async (t) => {
  const { pair, a, b } = tunnelPair({}, { psk: 'a different key' });
  pair.initiate(a);
  // Messages 5 that fail their integrity check are dropped (a forged one looks the same): both
  // sides wait until their retransmissions run out.
  pair.advance(120);
  t.equal(a.installed.size + b.installed.size, 0);
  t.equal(a.engine.status()[0]!.status, 'Error');
  t.equal(b.engine.status()[0]!.status, 'Error');
  t.match(b.logs.join('\n'), /wrong pre-shared key/);
  t.equal(a.engine.status()[0]!.ikeSas.length + b.engine.status()[0]!.ikeSas.length, 0);
});

t.test('no proposal chosen: the log names both sides offers', async (t) => {
  const { pair, a, b } = tunnelPair({ ike: ['3des-md5-modp1024'] }, { ike: ['aes256-sha256-modp2048'] });
  pair.initiate(a);
  const log = b.logs.join('\n');
  t.match(log, /peer offers 3des-md5-modp1024/);
  t.match(log, /we accept aes256-sha256-modp2048/);
  t.match(
    log,
    /closest: peer's 3des-md5-modp1024 against our aes256-sha256-modp2048; allow 3des \(encryption\) and md5 \(integrity\) and modp1024 \(DH group\) in ikePolicy 'ike' to match/,
  );
  t.match(
    b.engine.status()[0]!.error,
    /peer offers 3des-md5-modp1024.*allow 3des/,
    "the responder's status says why",
  );
  t.match(a.engine.status()[0]!.error, /NO_PROPOSAL_CHOSEN/, 'the initiator learns it from the notify');
  const close = tunnelPair(
    { ike: ['aes256-sha1-modp1024', '3des-sha1-modp1024'] },
    { ike: ['aes256-sha256-modp1024'] },
  );
  close.pair.initiate(close.a);
  t.match(
    close.b.logs.join('\n'),
    /closest: peer's aes256-sha1-modp1024 against our aes256-sha256-modp1024; allow sha1 \(integrity\) in ikePolicy 'ike' to match/,
    'the closest of several offers, one algorithm apart',
  );
  const esp = tunnelPair({ esp: ['aes128-sha1'] }, { esp: ['aes256-sha256'] });
  esp.pair.initiate(esp.a);
  t.match(
    esp.b.logs.join('\n'),
    /peer offers aes128-sha1 \(tunnel\).*'test' accepts aes256-sha256 in tunnel mode; closest: peer's aes128-sha1 against our aes256-sha256; allow aes128 \(encryption\) and sha1 \(integrity\) in ipsecPolicy 'esp' to match/,
  );
  const pfs = tunnelPair({}, { pfs: 'modp2048' });
  pfs.pair.initiate(pfs.a);
  t.match(pfs.b.logs.join('\n'), /allow no DH group \(the peer offers none\) in ipsecPolicy 'esp' to match/);
  t.equal(esp.a.installed.size, 0);
  t.match(esp.a.engine.status()[0]!.error ?? esp.a.logs.join('\n'), /NO_PROPOSAL_CHOSEN/);
});

t.test('PFS mismatch and selector mismatch are refused', async (t) => {
  const pfs = tunnelPair({ pfs: 'modp1024' }, { pfs: undefined });
  pfs.pair.initiate(pfs.a);
  t.equal(pfs.b.installed.size, 0, 'no PFS on the responder, PFS offered: refused');
  const ts = tunnelPair({}, { peerSubnets: ['198.51.100.0/25'] });
  ts.pair.initiate(ts.a);
  t.equal(ts.b.installed.size, 0, 'wider selectors than configured: refused');
  t.match(ts.b.logs.join('\n'), /does not cover/);
});

t.test('delete: terminate on one side removes the SAs on both', async (t) => {
  for (const who of ['initiator', 'responder'] as const) {
    const { pair, a, b } = tunnelPair();
    pair.initiate(a);
    const side = who === 'initiator' ? a : b;
    pair.run(side, side.engine.terminate('test', pair.now));
    t.equal(a.installed.size + b.installed.size, 0, `${who} terminates: no child SA left`);
    t.equal(
      a.engine.status()[0]!.ikeSas.length + b.engine.status()[0]!.ikeSas.length,
      0,
      'no ISAKMP SA left',
    );
    t.equal(b.engine.status()[0]!.status, 'Down');
  }
});

t.test('quick mode SAs are rekeyed before they expire and the old ones deleted', async (t) => {
  const { pair, a, b } = tunnelPair({ childLifetime: 120 });
  pair.initiate(a);
  const first = only(a);
  pair.advance(115);
  const second = only(a);
  t.not(second.spiIn, first.spiIn, 'a new child SA replaced the first');
  t.ok(second.installedAt < first.expiresAt, 'before the old one expired');
  assertMatchingChildren(t, a, b);
  t.ok(
    a.events.some((e) => e.type === 'child-up' && e.rekeyed === first.id),
    'reported as a rekey',
  );
  pair.advance(400);
  assertMatchingChildren(t, a, b);
});

/** The wire's quick mode messages: `answered` once the responder's message 2 went by. */
function watchQuickMode(pair: EnginePair, onMessage2: () => void, dropAfterMessage2: () => boolean) {
  let answered = false;
  pair.wire = (p) => {
    if (decodeHeader(p.data).exchangeType !== ExchangeType.QUICK_MODE) return p;
    if (p.from.address === B) {
      answered = true;
      onMessage2();
      return p;
    }
    return answered && dropAfterMessage2() ? undefined : p;
  };
}

t.test(
  'the quick mode responder installs its inbound SA before message 2, the rest on message 3',
  async (t) => {
    // The responder imposes 120 s and rekeys 1 s before the end; the initiator adopts the 120 s
    // with its margin scaled (10% of it), so it rekeys after 108 s, before the responder would.
    const { pair, a, b } = tunnelPair({}, { childLifetime: 120, childRekeyMargin: 1 });
    const seen: { inbound: number[]; installed: number }[] = [];
    watchQuickMode(
      pair,
      () => seen.push({ inbound: [...b.inbound.values()].map((c) => c.spiIn), installed: b.installed.size }),
      () => false,
    );
    pair.initiate(a);
    assertMatchingChildren(t, a, b);
    const child = only(b);
    t.same(seen, [{ inbound: [child.spiIn], installed: 0 }], 'when message 2 left: its inbound SA alone');
    t.equal(b.inbound.size, 0, 'after message 3: the whole child SA, nothing half-installed');

    // A rekey: the new inbound SA goes in while the old child SA still carries the traffic.
    seen.length = 0;
    pair.advance(110);
    const current = [...b.installed.values()];
    t.equal(seen.length, 1, 'one rekey');
    t.equal(seen[0]?.installed, 1, 'the old child SA was installed when the new inbound SA went in');
    t.ok(current.length === 1 && current[0]!.spiIn === seen[0]?.inbound[0], 'the new child SA took over');
  },
);

/** A quick mode whose message 3 never arrives: the responder holds its inbound SA alone. */
function unfinishedQuickMode(t: Test) {
  const { pair, a, b } = tunnelPair();
  watchQuickMode(
    pair,
    () => {},
    () => true,
  );
  pair.initiate(a);
  t.equal(b.inbound.size, 1, 'message 3 lost: the inbound SA waits');
  return { pair, b };
}

t.test(
  'a lost message 3: the responder sends message 2 again and the initiator answers it again',
  async (t) => {
    const { pair, a, b } = tunnelPair();
    let dropped = 0;
    watchQuickMode(
      pair,
      () => {},
      () => dropped++ === 0,
    );
    pair.initiate(a);
    t.equal(dropped, 1, 'the first message 3 was lost');
    t.equal(b.installed.size, 0, 'the responder waits for it');
    pair.advance(5);
    t.equal(b.installed.size, 1, 'the lingering exchange of the initiator answered the repeat');
    assertMatchingChildren(t, a, b);
  },
);

t.test('a quick mode that never gets message 3 takes its inbound SA away', async (t) => {
  const { pair, b } = unfinishedQuickMode(t);
  pair.advance(120);
  t.equal(b.inbound.size, 0, 'the responder gave up: the inbound SA is gone');
  t.equal(b.installed.size, 0, 'and nothing else was installed');
  t.match(b.engine.status()[0], { status: 'Error', error: /no answer .* in quick mode/ });
});

t.test('an ISAKMP SA deleted under an unfinished quick mode takes its inbound SA along', async (t) => {
  const { pair, b } = unfinishedQuickMode(t);
  pair.run(b, b.engine.terminate(b.engine.status()[0]!.name, pair.now));
  t.equal(b.inbound.size, 0, 'terminated: the inbound SA is gone');
});

t.test('the ISAKMP SA is rekeyed and child SAs survive it', async (t) => {
  const { pair, a, b } = tunnelPair({ ikeLifetime: 300, childLifetime: 3600 });
  pair.initiate(a);
  const child = only(a);
  const firstIke = a.engine.status()[0]!.ikeSas[0]!.id;
  pair.advance(290);
  const ikeSas = a.engine.status()[0]!.ikeSas;
  t.equal(ikeSas.length, 1, 'one ISAKMP SA after the rekey');
  t.not(ikeSas[0]!.id, firstIke, 'it is a new one');
  t.equal(b.engine.status()[0]!.ikeSas.length, 1, 'the responder deleted the old one too');
  t.equal(only(a).spiIn, child.spiIn, 'the child SA was not touched');
  for (const side of [a, b]) {
    const [net] = side.engine.status();
    t.equal(
      net!.childSas[0]!.ikeSaId,
      net!.ikeSas[0]!.id,
      `${side.name}: the child now belongs to the new SA`,
    );
  }
});

t.test(
  'the responder rekeys the ISAKMP SA: the initiator moves the child SA over, nothing is lost',
  async (t) => {
    const { pair, a, b } = tunnelPair({}, { ikeLifetime: 300 });
    pair.initiate(a);
    const child = only(a);
    const firstIke = b.engine.status()[0]!.ikeSas[0]!.id;
    pair.advance(280);
    for (const side of [a, b]) {
      const [net] = side.engine.status();
      t.equal(net!.ikeSas.length, 1, `${side.name}: one ISAKMP SA after the rekey`);
      t.equal(net!.childSas.length, 1, `${side.name}: the child SA is still there`);
      t.equal(net!.childSas[0]!.ikeSaId, net!.ikeSas[0]!.id, `${side.name}: under the new ISAKMP SA`);
    }
    t.not(b.engine.status()[0]!.ikeSas[0]!.id, firstIke, 'the responder made a new one');
    t.equal(a.engine.status()[0]!.ikeSas[0]!.role, 'responder', 'the initiator answered it');
    t.equal(only(a).spiIn, child.spiIn, 'the same child SA');
    t.match(a.logs.join('\n'), /child SA \d+ moves over from ISAKMP SA/, 'logged at debug');
    pair.advance(3000);
    t.equal(a.engine.status()[0]!.childSas.length, 1, 'the child is rekeyed under the new SA in time');
  },
);

t.test('child SAs outlive an expired ISAKMP SA and the next ISAKMP SA takes them over', async (t) => {
  const { pair, a, b } = tunnelPair({ ikeLifetime: 300, childLifetime: 3600 });
  pair.initiate(a);
  const child = only(a);
  const started = pair.now;
  // The network fails while the initiator tries to rekey the ISAKMP SA: it expires at both ends.
  const deliver = pair.wire;
  pair.wire = () => undefined;
  pair.advance(301);
  for (const side of [a, b]) {
    const [net] = side.engine.status();
    t.same(
      net!.ikeSas.filter((sa) => sa.state === 'ESTABLISHED'),
      [],
      `${side.name}: the ISAKMP SA expired`,
    );
    t.equal(side.installed.size, 1, `${side.name}: the child SA lives on`);
    t.equal(net!.status, 'Active', `${side.name}: still Active`);
  }
  t.equal(only(a).spiIn, child.spiIn, 'the same child SA');
  pair.wire = deliver;
  pair.advance(3600 - 360 - (pair.now - started) + 30);
  for (const side of [a, b]) {
    const [net] = side.engine.status();
    t.equal(net!.ikeSas.length, 1, `${side.name}: a new ISAKMP SA (made when the child needed a rekey)`);
    t.equal(net!.childSas.length, 1, `${side.name}: one child SA`);
    t.equal(net!.childSas[0]!.ikeSaId, net!.ikeSas[0]!.id, `${side.name}: under the new ISAKMP SA`);
  }
  t.not(only(a).spiIn, child.spiIn, 'the child SA was rekeyed through it');
  assertMatchingChildren(t, a, b);
});

t.test('dead peer detection clears the SAs of a silent peer', async (t) => {
  const { pair, a, b } = tunnelPair({ dpd: { delay: 10, timeout: 30, action: 'clear' } });
  pair.initiate(a);
  pair.advance(25);
  t.equal(a.installed.size, 1, 'a live peer answers R-U-THERE');
  t.ok(b.logs.length > 0);
  pair.wire = () => undefined; // the peer dies
  pair.advance(60);
  t.equal(a.installed.size, 0, 'SAs cleared');
  t.match(a.engine.status()[0]!.error, /dead peer/);
});

t.test('dead peer detection with action restart re-initiates', async (t) => {
  const { pair, a, b } = tunnelPair({ dpd: { delay: 10, timeout: 30, action: 'restart' } });
  pair.initiate(a);
  let down = true;
  pair.wire = (p) => (down ? undefined : p);
  pair.advance(45);
  t.equal(a.installed.size, 0);
  down = false;
  // The peer lost its state too (it rebooted): a fresh exchange must succeed.
  pair.run(b, b.engine.shutdown(pair.now));
  pair.advance(60);
  t.equal(a.installed.size, 1, 're-established');
  t.equal(a.engine.status()[0]!.status, 'Active');
});

t.test('garbage and hostile input never throws and leaves no state', async (t) => {
  const { pair, a, b } = tunnelPair();
  const from = { address: A, port: 500 };
  const to = { address: B, port: 500 };
  const inputs = [
    new Uint8Array(0),
    new Uint8Array(27),
    new Uint8Array(28),
    Uint8Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff),
  ];
  for (const input of inputs)
    t.same(
      b.engine.receive(input, to, from, pair.now).filter((x) => x.type === 'send'),
      [],
    );
  pair.initiate(a);
  const established = pair.sent.find((p) => decodeHeader(p.data).exchangeType === ExchangeType.QUICK_MODE)!;
  for (let i = 0; i < 200; i++) {
    const mutated = established.data.slice();
    const at = 28 + ((i * 7) % (mutated.length - 28));
    mutated[at] = mutated[at]! ^ (1 << (i % 8));
    b.engine.receive(mutated, to, from, pair.now);
  }
  t.equal(b.installed.size, 1, 'tampered quick mode copies created nothing');
  // A flood of first messages is bounded.
  const flood = pair.sent[0]!.data;
  const limited = new EnginePair().add('x', B, [connection({ localAddress: B, peerAddress: 'any' })], {
    maxHalfOpen: 5,
    maxHalfOpenPerAddress: 5,
  });
  for (let i = 0; i < 50; i++) {
    const copy = flood.slice();
    copy[0] = i;
    limited.engine.receive(copy, to, { address: A, port: 1000 + i }, 0);
  }
  t.equal(limited.engine.status()[0]!.ikeSas.length, 5, 'half-open SAs are bounded');
  limited.engine.tick(100);
  t.equal(limited.engine.status()[0]!.ikeSas.length, 0, 'and time out');
});

t.test('an aggressive mode offer is refused with UNSUPPORTED-EXCHANGE-TYPE, statelessly', async (t) => {
  const { pair, a, b } = tunnelPair();
  pair.initiate(a);
  const mainMode1 = pair.sent[0]!.data;
  const from = { address: A, port: 500 };
  const to = { address: B, port: 500 };
  const fresh = new EnginePair().add('gw', B, [connection({ localAddress: B, peerAddress: 'any' })]);
  const aggressive = mainMode1.slice();
  aggressive[18] = ExchangeType.AGGRESSIVE; // the header's exchange type octet
  const actions = fresh.engine.receive(aggressive, to, from, 0);
  const answers = actions.filter((x) => x.type === 'send');
  t.equal(answers.length, 1, 'one answer');
  const answer = decodeMessage(answers[0]!.data);
  t.equal(answer.header.exchangeType, ExchangeType.INFORMATIONAL, 'an informational exchange');
  t.same(answer.header.CKY_I, aggressive.subarray(0, 8), "it names the client's cookie");
  t.same(
    answer.payloads?.map((p) => (p.kind === 'notify' ? p.notifyType : p.kind)),
    [NotifyType.UNSUPPORTED_EXCHANGE_TYPE],
    'carrying UNSUPPORTED-EXCHANGE-TYPE',
  );
  const logs = actions.flatMap((x) =>
    x.type === 'event' && x.event.type === 'log' ? [`${x.event.level}: ${x.event.message}`] : [],
  );
  t.match(logs.join('\n'), /info: refused AGGRESSIVE from 192\.0\.2\.1:500: only main mode/, 'logged');
  t.equal(fresh.engine.status()[0]!.ikeSas.length, 0, 'no state kept');
  const bare = aggressive.slice(0, 28);
  bare[16] = 0; // no payloads: nothing to answer
  new DataView(bare.buffer).setUint32(24, 28);
  t.same(
    fresh.engine.receive(bare, to, from, 0).filter((x) => x.type === 'send'),
    [],
    'a bare header gets no answer',
  );
  t.equal(b.installed.size, 1, 'the real exchange was not disturbed');
});

t.test('initiate refuses what cannot initiate, to the caller, without an internal error', async (t) => {
  const pair = new EnginePair();
  const gateway = pair.add('gw', B, [connection({ name: 'gw', localAddress: B, peerAddress: 'any' })]);
  t.throws(() => gateway.engine.initiate('nope', pair.now), new CommandError("no connection named 'nope'"));
  t.throws(
    () => gateway.engine.initiate('gw', pair.now),
    { name: 'CommandError', message: /'gw' has peer address "any": it can only respond/ },
    'an "any" peer can only respond',
  );
  const unbound = new EnginePair().add('x', A, [connection({ name: 'site', peerAddress: B })], {
    defaultLocalAddress: undefined,
  });
  t.throws(
    () => unbound.engine.initiate('site', pair.now),
    { name: 'CommandError', message: /'site' needs local\.address to initiate/ },
    'no local address to initiate from',
  );
  t.same(gateway.logs.concat(unbound.logs), [], 'nothing logged as our own failure');
});

t.test('reconfigure keeps unchanged connections, tears down changed and removed ones', async (t) => {
  const spec = { localAddress: A, peerAddress: B, start: 'initiate' as const };
  const peerSpec = { localAddress: B, peerAddress: A };
  const nets = (n: number) => ({ localSubnets: [`198.51.${n}.0/24`], peerSubnets: [`203.0.${n}.0/24`] });
  const flip = (n: number) => ({ localSubnets: [`203.0.${n}.0/24`], peerSubnets: [`198.51.${n}.0/24`] });
  const pair = new EnginePair();
  const a = pair.add('a', A, [
    connection({ ...spec, name: 'keep', ...nets(1) }),
    connection({ ...spec, name: 'change', ...nets(2) }),
    connection({ ...spec, name: 'drop', ...nets(3) }),
  ]);
  const b = pair.add('b', B, [
    connection({ ...peerSpec, name: 'keep', ...flip(1) }),
    connection({ ...peerSpec, name: 'change', ...flip(2) }),
    connection({ ...peerSpec, name: 'drop', ...flip(3) }),
    connection({ ...peerSpec, name: 'new', ...flip(4) }),
  ]);
  for (const name of ['keep', 'change', 'drop']) pair.initiate(a, name);
  t.equal(b.installed.size, 3, 'three tunnels up');
  const kept = [...a.installed.values()].find((c) => c.connection === 'keep')!;

  // A fresh object equal to the old one counts as unchanged; 'change' gets a shorter lifetime.
  pair.run(
    a,
    a.engine.reconfigure(
      [
        connection({ ...spec, name: 'keep', ...nets(1) }),
        connection({ ...spec, name: 'change', ...nets(2), childLifetime: 1800 }),
        connection({ ...spec, name: 'new', ...nets(4) }),
      ],
      pair.now,
    ),
  );
  const byName = (side: Side) => [...side.installed.values()].map((c) => c.connection).sort();
  t.same(byName(a), ['change', 'keep', 'new'], "'drop' gone; 'change' and 'new' (re)initiated");
  t.same(byName(b), ['change', 'keep', 'new'], 'the peer followed the Deletes');
  t.equal(a.installed.get(kept.id), kept, "'keep' still has its very same child SA");
  const changed = [...a.installed.values()].find((c) => c.connection === 'change')!;
  t.equal(changed.lifetime.seconds, 1800, 'the changed connection negotiated again, with its new lifetime');
  t.same(
    a.engine.status().map((s) => s.name),
    ['keep', 'change', 'new'],
  );
  t.match(a.logs.join('\n'), /deleted: removed from the configuration/);
  t.match(a.logs.join('\n'), /deleted: configuration changed/);
});

/** a's two connections to B, 'one' and 'two', one half of 198.51.100.0/24 each; `two` adds to the second. */
function siblings(two: Partial<ConnectionSpec> = {}) {
  const spec = { localAddress: A, peerAddress: B, start: 'initiate' as const };
  return [
    connection({ ...spec, name: 'one', localSubnets: ['198.51.100.0/25'], peerSubnets: ['203.0.113.0/25'] }),
    connection({
      ...spec,
      name: 'two',
      localSubnets: ['198.51.100.128/25'],
      peerSubnets: ['203.0.113.128/25'],
      ...two,
    }),
  ];
}

t.test('sibling connections started together share one main mode', async (t) => {
  const pair = new EnginePair();
  const a = pair.add('a', A, siblings());
  const b = pair.add('b', B, [
    connection({
      name: 'one',
      localAddress: B,
      peerAddress: A,
      localSubnets: ['203.0.113.0/25'],
      peerSubnets: ['198.51.100.0/25'],
    }),
    connection({
      name: 'two',
      localAddress: B,
      peerAddress: A,
      localSubnets: ['203.0.113.128/25'],
      peerSubnets: ['198.51.100.128/25'],
    }),
  ]);
  // Both commands before any answer arrives, as at daemon start.
  const actions = [...a.engine.initiate('one', pair.now), ...a.engine.initiate('two', pair.now)];
  t.same(
    a.engine.status().map((c) => c.status),
    ['Pending', 'Pending'],
    'the sibling waiting for the main mode under way is Pending',
  );
  pair.run(a, actions);
  t.equal(
    pair.sent.filter((p) => p.data[18] === ExchangeType.IDENTITY_PROTECTION).length,
    6,
    'one main mode, six messages',
  );
  t.same([...b.installed.values()].map((c) => c.connection).sort(), ['one', 'two']);
  t.same(
    a.engine.status().map((c) => c.status),
    ['Active', 'Active'],
  );
});

t.test('connections with the same ends but another pre-shared key do not share a main mode', async (t) => {
  const pair = new EnginePair();
  const a = pair.add('a', A, siblings({ psk: 'another key' }));
  const actions = [...a.engine.initiate('one', pair.now), ...a.engine.initiate('two', pair.now)];
  const firstMessages = actions.filter(
    (action) => action.type === 'send' && action.data[18] === ExchangeType.IDENTITY_PROTECTION,
  );
  t.equal(firstMessages.length, 2, 'a main mode each: one ISAKMP SA authenticates with one key');
  // The share group tells keys apart without holding one in a string (heap snapshots, core dumps).
  const key = siblings({ psk: 'another key' })[1]!;
  t.notMatch(sameAuthenticationKey(key), toHex(key.psk), 'the group key leaves the pre-shared key out');
});

t.test('phase 1 keys leave the engine only when asked for (the debug key log)', async (t) => {
  const plain = tunnelPair();
  plain.pair.initiate(plain.a);
  t.notOk(
    [...plain.a.events, ...plain.b.events].some((e) => e.type === 'ike-keys'),
    'no key events by default',
  );
  const pair = new EnginePair();
  const spec = { localSubnets: ['198.51.100.0/24'], peerSubnets: ['203.0.113.0/24'] };
  const a = pair.add('a', A, [connection({ localAddress: A, peerAddress: B, start: 'initiate', ...spec })], {
    exportKeys: true,
  });
  const b = pair.add(
    'b',
    B,
    [
      connection({
        localAddress: B,
        peerAddress: A,
        localSubnets: spec.peerSubnets,
        peerSubnets: spec.localSubnets,
      }),
    ],
    { exportKeys: true },
  );
  pair.initiate(a);
  const keysOf = (side: Side) =>
    side.events.filter((e) => e.type === 'ike-keys').filter((e) => e.version === 1);
  const [ka] = keysOf(a);
  const [kb] = keysOf(b);
  t.equal(keysOf(a).length, 1);
  t.ok(ka && kb && equalBytes(ka.encryptionKey, kb.encryptionKey), 'both ends derived the same key');
  t.equal(ka?.encryptionKey.length, 16, 'aes128: a 16-byte key');
  t.ok(ka && kb && equalBytes(ka.spiI, kb.spiI) && equalBytes(ka.spiR, kb.spiR), 'under the same cookies');
  t.equal(ka?.encryption.name, 'aes128', 'and the cipher named');
});

t.test('a responder can accept more modes and PFS choices than it proposes', async (t) => {
  const lenient = (spec: Partial<ConnectionSpec>) => {
    const base = connection({ localAddress: B, peerAddress: 'any', pfs: 'modp1024', ...spec });
    return {
      ...base,
      ipsec: {
        ...base.ipsec,
        acceptModes: ['tunnel', 'transport'] as const,
        acceptPfs: [algorithm('dh', 'modp1024'), 'none' as const],
      },
    };
  };
  const transportNoPfs = {
    mode: 'transport' as const,
    localSubnets: [parseTrafficSelector(A, 17, 1701)],
    peerSubnets: [parseTrafficSelector(B, 17, 1701)],
  };
  const offers: [string, Partial<ConnectionSpec>][] = [
    ['transport mode without PFS', transportNoPfs],
    [
      'tunnel mode with PFS',
      { pfs: 'modp1024', localSubnets: ['198.51.100.0/24'], peerSubnets: ['203.0.113.0/24'] },
    ],
  ];
  for (const [label, offer] of offers) {
    const pair = new EnginePair();
    const client = pair.add('a', A, [
      connection({ localAddress: A, peerAddress: B, start: 'initiate', ...offer }),
    ]);
    const gateway = pair.add('b', B, [lenient({ localSubnets: ['203.0.113.0/24', `${B}/32`] })]);
    pair.initiate(client);
    const [child] = [...gateway.installed.values()];
    t.equal(child?.mode, offer.mode ?? 'tunnel', `${label}: accepted in the offered mode`);
    t.equal(child?.suite.dh?.name, offer.pfs, `${label}: PFS as offered`);
    t.equal(client.installed.size, 1);
  }
  const strict = tunnelPair({ ...transportNoPfs }, { mode: 'tunnel', pfs: 'modp1024' });
  strict.pair.initiate(strict.a);
  t.equal(strict.b.installed.size, 0, 'without them, the same offer is refused');
  t.match(strict.b.logs.join('\n'), /accepts aes128-sha1-modp1024 in tunnel mode/);
});
