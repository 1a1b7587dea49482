import t from 'tap';
import { decodeHeader, encodeMessage } from '../../src/ikev1/codec.js';
import { DOI_IPSEC, ExchangeType, NotifyType, ProtocolId } from '../../src/ikev1/constants.js';
import type { Action } from '../../src/core/actions.js';
import { connection, EnginePair, type Side, sitePair } from '../helpers/engine-pair.js';

/**
 * The defects that fuzzing the sans-I/O engine found (the engine issue), each reproduced: every
 * test here failed before its fix.
 */

const A = '192.0.2.1';
const B = '192.0.2.2';

function tunnel(options: { forceEncapsulation?: boolean; localSubnets?: string[] } = {}) {
  return sitePair({
    ...(options.localSubnets && { a: { localSubnets: options.localSubnets } }),
    b: { peerSubnets: ['198.51.0.0/16'] },
    engines: { a: { ...(options.forceEncapsulation && { forceEncapsulation: true }) } },
  });
}

const logsOf = (actions: readonly Action[]) =>
  actions.flatMap((x) => (x.type === 'event' && x.event.type === 'log' ? [x.event.message] : []));

t.test('an unauthenticated datagram does not move a NAT-T peer', async (t) => {
  const { pair, a, b } = tunnel({ forceEncapsulation: true });
  pair.initiate(a);
  const before = b.engine.status()[0]!.ikeSas[0]!;
  t.equal(before.remote, `${A}:4500`, 'the SA floated to 4500');
  // A quick mode message under the SA's cookies with a new message ID: its HASH cannot verify.
  const quickMode = pair.sent.find((p) => decodeHeader(p.data).exchangeType === ExchangeType.QUICK_MODE)!;
  const forged = quickMode.data.slice();
  forged[23]! ^= 0x5a;
  const sent = b.engine.receive(
    forged,
    { address: B, port: 4500 },
    { address: '203.0.113.66', port: 6666 },
    pair.now,
  );
  t.equal(b.engine.status()[0]!.ikeSas[0]!.remote, `${A}:4500`, 'the SA still points at the real peer');
  t.same(
    sent.filter((x) => x.type === 'send' || x.type === 'install-child'),
    [],
    'nothing sent to the forged address, nothing reinstalled',
  );
  // The same for a forged informational (the peer's DPD traffic would follow it).
  const informational = encodeMessage(
    {
      CKY_I: decodeHeader(forged).CKY_I,
      CKY_R: decodeHeader(forged).CKY_R,
      exchangeType: ExchangeType.INFORMATIONAL,
      flags: 1,
      messageId: 0x1234,
    },
    [],
  );
  const garbage = new Uint8Array(informational.length + 32);
  garbage.set(informational);
  new DataView(garbage.buffer).setUint32(24, garbage.length);
  b.engine.receive(garbage, { address: B, port: 4500 }, { address: '203.0.113.66', port: 6666 }, pair.now);
  t.equal(
    b.engine.status()[0]!.ikeSas[0]!.remote,
    `${A}:4500`,
    'an informational that does not verify moves nothing',
  );
  t.equal(b.engine.stats.internalErrors, 0);
});

t.test('encrypted or garbled main mode messages are typed errors, never internal ones', async (t) => {
  const pair = new EnginePair();
  const b = pair.add('b', B, [connection({ localAddress: B, peerAddress: 'any' })]);
  const a = pair.add('a', A, [connection({ localAddress: A, peerAddress: B, start: 'initiate' })]);
  // Message 1 goes through; message 3 is dropped and replaced by hostile variants.
  let mm1: Uint8Array | undefined;
  pair.wire = (p) => {
    if (p.from.address === A && !mm1) {
      mm1 = p.data;
      return p;
    }
    return p.from.address === B ? p : undefined;
  };
  pair.initiate(a);
  const mm2 = pair.sent.find((p) => p.from.address === B)!.data;
  const { CKY_I, CKY_R } = decodeHeader(mm2);
  const encrypted = (body: number) => {
    const header = encodeMessage(
      { CKY_I, CKY_R, exchangeType: ExchangeType.IDENTITY_PROTECTION, flags: 1, messageId: 0 },
      [],
    );
    const message = new Uint8Array(header.length + body);
    message.set(header);
    message[16] = 4; // next payload KE
    new DataView(message.buffer).setUint32(24, message.length);
    return message;
  };
  const lines: string[] = [];
  for (const body of [0, 16, 17, 31]) {
    const actions = b.engine.receive(
      encrypted(body),
      { address: B, port: 500 },
      { address: A, port: 500 },
      pair.now,
    );
    lines.push(...logsOf(actions));
    t.notOk(
      logsOf(actions).some((line) => line.includes('internal error')),
      `encrypted message 3 of ${body} bytes: no internal error`,
    );
  }
  t.equal(b.engine.stats.internalErrors, 0, 'nothing reached the catch-all');
  t.match(
    lines.join('\n'),
    /encrypted message before keys exist \(INVALID_FLAGS\)/,
    'said plainly, with its notify',
  );
});

t.test('one authenticated peer cannot make unbounded child negotiations', async (t) => {
  // 200 selector pairs, each a quick mode; the responder's answers are lost, so every one waits.
  const subnets = Array.from({ length: 200 }, (_, i) => `198.51.${i}.0/24`);
  const { pair, a, b } = tunnel({ localSubnets: subnets });
  pair.wire = (p) =>
    p.from.address === B && decodeHeader(p.data).exchangeType === ExchangeType.QUICK_MODE ? undefined : p;
  pair.initiate(a);
  t.ok(b.inbound.size <= 16, `at most 16 inbound SAs wait for their quick mode (${b.inbound.size})`);
  t.ok(
    b.engine.stats.refusedNegotiations >= 184,
    `the rest refused and counted (${b.engine.stats.refusedNegotiations})`,
  );
  t.ok(
    b.logs.filter((line) => line.includes('refused a child SA negotiation')).length <= 2,
    'and logged at a bounded rate',
  );
  pair.advance(120);
  t.equal(b.inbound.size, 0, 'the waiting ones time out with their inbound SAs');
});

t.test('unauthenticated input makes a bounded number of bounded log lines', async (t) => {
  const { pair, a, b } = tunnel();
  pair.initiate(a);
  const { CKY_I, CKY_R } = decodeHeader(pair.sent[1]!.data);
  const lines: string[] = [];
  // 60 kB of clear notifies under the SA's cookies, and as many from strangers.
  for (let i = 0; i < 1000; i++) {
    const notify = encodeMessage(
      { CKY_I, CKY_R, exchangeType: ExchangeType.INFORMATIONAL, flags: 0, messageId: i },
      [
        {
          kind: 'notify',
          doi: DOI_IPSEC,
          protocolId: ProtocolId.ISAKMP,
          notifyType: NotifyType.INVALID_SPI,
          spi: new Uint8Array(0),
          data: new Uint8Array(0),
        },
      ],
    );
    const stranger = notify.slice();
    stranger[0] = i & 0xff;
    stranger[1] = i >> 8;
    for (const datagram of [notify, stranger])
      lines.push(
        ...logsOf(b.engine.receive(datagram, { address: B, port: 500 }, { address: A, port: 500 }, pair.now)),
      );
  }
  t.ok(lines.length <= 4, `2000 messages, ${lines.length} log lines`);
  t.equal(b.installed.size, 1, 'the tunnel is untouched');
  // One huge first message: an offer of 2000 transforms nobody uses.
  const transforms = Array.from({ length: 200 }, (_, i) => ({
    number: i + 1,
    transformId: 1,
    attributes: [
      { type: 1, value: 99 },
      { type: 2, value: 2 },
      { type: 3, value: 1 },
      { type: 4, value: 2 },
    ],
  }));
  const proposals = Array.from({ length: 10 }, (_, i) => ({
    number: i + 1,
    protocolId: 1,
    spi: new Uint8Array(0),
    transforms,
  }));
  const mm1 = encodeMessage(
    {
      CKY_I: Uint8Array.of(9, 9, 9, 9, 9, 9, 9, 9),
      CKY_R: new Uint8Array(8),
      exchangeType: 2,
      flags: 0,
      messageId: 0,
    },
    [{ kind: 'sa', doi: 1, situation: 1, proposals }],
  );
  t.ok(mm1.length > 30_000, `a ${mm1.length}-byte message 1`);
  const long = logsOf(
    b.engine.receive(mm1, { address: B, port: 500 }, { address: '203.0.113.9', port: 500 }, pair.now),
  );
  t.ok(long.length >= 1, 'its refusal is logged');
  t.ok(
    long.every((line) => line.length < 1000),
    `in lines of at most 1000 characters (${long.map((l) => l.length).join(', ')})`,
  );
});

t.test('clients behind one NAT, each with its own identity and INITIAL-CONTACT, all come up', async (t) => {
  const pair = new EnginePair();
  const nat = '198.51.100.1';
  const gateway = pair.add('gw', B, [
    connection({ name: 'l2tp', localAddress: B, peerAddress: 'any', mode: 'transport' }),
  ]);
  const clients: Side[] = [];
  for (let i = 0; i < 100; i++) {
    const inside = `10.0.${i >> 8}.${(i & 0xff) + 1}`;
    clients.push(
      pair.add(inside, inside, [
        connection({
          localAddress: inside,
          peerAddress: B,
          mode: 'transport',
          start: 'initiate',
          localId: { type: 'user-fqdn', value: `client${i}@example.net` },
        }),
      ]),
    );
  }
  // A masquerading NAT: inside address and port to the NAT's address and a port of its own.
  const outside = new Map<string, number>();
  const inside = new Map<number, { address: string; port: number }>();
  pair.wire = (p) => {
    if (p.from.address.startsWith('10.')) {
      const key = `${p.from.address}:${p.from.port}`;
      let port = outside.get(key);
      if (port === undefined) {
        port = 20000 + outside.size;
        outside.set(key, port);
        inside.set(port, p.from);
      }
      return { ...p, from: { address: nat, port } };
    }
    if (p.to.address === nat) return { ...p, to: inside.get(p.to.port)! };
    return p;
  };
  // Every client starts before any finishes: their main modes overlap at the gateway.
  pair.runAll(clients.map((client) => [client, client.engine.initiate('test', pair.now)] as const));
  const up = clients.filter((client) => client.installed.size === 1).length;
  t.equal(up, 100, 'every client has its child SA');
  t.equal(gateway.installed.size, 100, 'the gateway has one per client');
  t.equal(gateway.engine.status()[0]!.ikeSas.length, 100, 'and an ISAKMP SA each');
  t.ok(
    pair.sent.filter((p) => p.from.address === nat && p.data.length > 100).length > 0,
    'INITIAL-CONTACT went out with every message 5',
  );
});

t.test(
  'a replayed informational (a copy of an old one, from another port) is dropped: no move, no liveness',
  async (t) => {
    const { pair, a, b } = sitePair({
      both: { dpd: { delay: 10, timeout: 30, action: 'clear' } },
      b: { peerSubnets: ['198.51.0.0/16'] },
      engines: { a: { forceEncapsulation: true } },
    });
    pair.initiate(a);
    // An authentic informational from a to b: a's DPD probe, once b has been silent long enough.
    const sentBefore = pair.sent.length;
    pair.advance(15);
    const probe = pair.sent
      .slice(sentBefore)
      .find((p) => p.from.address === A && decodeHeader(p.data).exchangeType === ExchangeType.INFORMATIONAL);
    t.ok(probe, 'a sent an informational');
    const children = b.engine.children().length;
    // The same bytes again, as an attacker on the path would replay them, from another port.
    const replayed = b.engine.receive(
      probe!.data,
      { address: B, port: 4500 },
      { address: A, port: 40226 },
      pair.now,
    );
    t.equal(b.engine.status()[0]!.ikeSas[0]!.remote, `${A}:4500`, 'the SA still points at the real port');
    t.same(
      replayed.filter((x) => x.type !== 'event'),
      [],
      'nothing sent, installed or deleted for the replay',
    );
    t.equal(b.engine.children().length, children, 'the child SAs are as they were');
    t.match(logsOf(replayed).join('\n'), /dropped as a replay/);
  },
);

t.test(
  'a replayed quick mode message 1 (from another port) moves no peer and makes no child SA',
  async (t) => {
    const { pair, a, b } = sitePair({
      b: { peerSubnets: ['198.51.0.0/16'] },
      engines: { a: { forceEncapsulation: true } },
    });
    pair.initiate(a);
    const quickMode = pair.sent.find(
      (p) => p.from.address === A && decodeHeader(p.data).exchangeType === ExchangeType.QUICK_MODE,
    )!;
    const children = b.engine.children().map((c) => c.spiIn);
    t.equal(children.length, 1, 'one child SA');
    const replay = () =>
      b.engine.receive(quickMode.data, { address: B, port: 4500 }, { address: A, port: 40226 }, pair.now);
    // The responder's exchange ended with message 3 (nothing of it lingers): a copy right after
    // is a replay, as it is later on.
    const early = replay();
    t.same(
      early.filter((x) => x.type !== 'event'),
      [],
      'a copy right after message 3: nothing sent, installed or deleted',
    );
    t.match(logsOf(early).join('\n'), /dropped as a replay/);
    pair.advance(60);
    const late = replay();
    t.equal(b.engine.status()[0]!.ikeSas[0]!.remote, `${A}:4500`, 'the SA still points at the real port');
    t.same(
      late.filter((x) => x.type !== 'event'),
      [],
      'nothing sent, installed or deleted for the replay',
    );
    t.same(
      b.engine.children().map((c) => c.spiIn),
      children,
      'the child SAs are as they were',
    );
    t.match(logsOf(late).join('\n'), /dropped as a replay/);
  },
);

t.test('child SAs of one selector pair stay few when the Deletes of rekeys are lost', async (t) => {
  // Both ends rekey (IKEv1 marks no rekey): a quick mode the peer runs for a pair we have a child
  // SA for replaces it. Before, each end went on rekeying its old copy as well, and with every
  // Delete lost the children of the one pair doubled with each lifetime.
  const { pair, a, b } = sitePair({ both: { childLifetime: 60 } });
  pair.wire = (p) => (decodeHeader(p.data).exchangeType === ExchangeType.INFORMATIONAL ? undefined : p);
  pair.initiate(a);
  let most = 0;
  for (let step = 0; step < 30; step++) {
    pair.advance(20);
    for (const side of [a, b]) {
      const children = side.engine.children().length;
      most = Math.max(most, children);
      t.ok(children >= 1, `${side.name} at ${pair.now}: the tunnel is up`, { diagnostic: false });
    }
  }
  t.ok(most <= 3, `at most 3 child SAs for the pair at either end over 10 lifetimes (${most})`);
});

t.test('a peer that rekeys often and never deletes leaves at most two replaced child SAs', async (t) => {
  // a rekeys every ~50 s a child SA that lives 600 s, and its Deletes are lost: b keeps the SAs
  // a replaced until a Delete or their expiry, so without a bound it would hold a dozen.
  const { pair, a, b } = sitePair({
    a: { childLifetime: 600, childRekeyMargin: 550 },
    b: { childLifetime: 600 },
  });
  pair.wire = (p) => (decodeHeader(p.data).exchangeType === ExchangeType.INFORMATIONAL ? undefined : p);
  pair.initiate(a);
  let most = 0;
  for (let step = 0; step < 30; step++) {
    pair.advance(20);
    most = Math.max(most, b.engine.children().length);
  }
  t.equal(a.engine.children().length, 1, 'a keeps its newest');
  t.ok(most <= 3, `b: the newest and at most two it was not told to delete (${most})`);
  t.ok(
    b.logs.some((line) => line.includes('replaced by the peer, which did not delete it')),
    'the oldest went, and said why',
  );
});

/** Main mode messages 5 and 6: the first encrypted ones (E flag set, message ID 0). */
const isMessage5or6 = (data: Uint8Array) => {
  const header = decodeHeader(data);
  return header.exchangeType === ExchangeType.IDENTITY_PROTECTION && (header.flags & 1) === 1;
};

for (const from of [A, B]) {
  const which = from === A ? 'message 5' : 'message 6';
  t.test(`a garbled or forged copy of main mode ${which} ahead of the real one ends nothing`, async (t) => {
    const { pair, a, b } = tunnel();
    let forged = 0;
    pair.wire = (p) => {
      if (p.from.address !== from || !isMessage5or6(p.data) || forged > 0) return p;
      forged++;
      const copy = p.data.slice();
      copy[30]! ^= 0x41; // in the first block of the encrypted body: the ID payload garbled
      return [{ ...p, data: copy }, p];
    };
    pair.initiate(a);
    t.equal(forged, 1, `a forged ${which} went first`);
    t.equal(a.engine.status()[0]!.status, 'Active', 'the initiator is up');
    t.equal(b.engine.status()[0]!.status, 'Active', 'the responder is up');
    t.equal(a.installed.size, 1);
    t.equal(b.installed.size, 1);
    const receiver = from === A ? b : a;
    t.match(
      receiver.logs.join('\n'),
      /main mode message from .* dropped/,
      'the copy was dropped, and said so',
    );
  });

  t.test(`a forged ${which} alone: the genuine retransmission still completes main mode`, async (t) => {
    const { pair, a, b } = tunnel();
    let dropped = false;
    pair.wire = (p) => {
      if (p.from.address !== from || !isMessage5or6(p.data) || dropped) return p;
      dropped = true;
      const copy = p.data.slice();
      copy[30]! ^= 0x41;
      return { ...p, data: copy }; // the real one is lost: only the retransmission is genuine
    };
    pair.initiate(a);
    pair.advance(30);
    t.ok(dropped);
    t.equal(a.engine.status()[0]!.status, 'Active', 'the initiator is up');
    t.equal(b.engine.status()[0]!.status, 'Active', 'the responder is up');
  });
}

t.test('a pre-shared key mismatch: messages 5 dropped, and the timeout names the likely cause', async (t) => {
  const pair = new EnginePair();
  const a = pair.add('a', A, [connection({ localAddress: A, peerAddress: B, start: 'initiate' })]);
  const b = pair.add('b', B, [connection({ localAddress: B, peerAddress: A, psk: 'another key' })]);
  pair.initiate(a);
  t.equal(b.engine.status()[0]!.status, 'Pending', 'the responder waits: a forged message 5 looks the same');
  pair.advance(120);
  const responder = b.events.find((e) => e.type === 'failed');
  t.match(responder, {
    cause: 'authentication',
    reason: /message 5 .* failed their integrity check \(PSK mismatch\?\)/,
  });
  t.equal(b.engine.status()[0]!.status, 'Error');
  t.match(b.engine.status()[0]!.error, /PSK mismatch\?/);
  const initiator = a.events.find((e) => e.type === 'failed');
  t.match(initiator, { cause: 'timeout', reason: /message 5 unanswered.*PSK mismatch\?/ });
  t.equal(a.installed.size + b.installed.size, 0, 'nothing installed');
  t.equal(a.engine.status()[0]!.ikeSas.length + b.engine.status()[0]!.ikeSas.length, 0, 'no SA left');
});
