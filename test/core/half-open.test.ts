import t from 'tap';
import type { Endpoint } from '../../src/core/endpoint.js';
import { parseConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { Logger } from '../../src/daemon/logger.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { createCryptoProvider } from '../../src/crypto/providers/index.js';
import type { CryptoProvider } from '../../src/crypto/provider.js';
import { ExchangeType as V1Exchange } from '../../src/ikev1/constants.js';
import { ExchangeType as V2Exchange, NotifyType } from '../../src/ikev2/constants.js';
import { decodeMessage as decodeV2 } from '../../src/ikev2/codec.js';
import type { EngineOptions } from '../../src/engine.js';
import { connection, EnginePair, type Side, SITE_A, SITE_B } from '../helpers/engine-pair.js';

/**
 * Half-open IKE SAs under a flood of first messages, both IKE versions: bounded in all and per
 * source address, a new initiator from a quiet address still answered when the table is full,
 * nothing computed for what is dropped, IKEv2 cookies from a busy address, and an IKEv1
 * responder that answers each message 1 once (no amplification).
 */

const SUBNETS = { a: ['198.51.100.0/24'], b: ['203.0.113.0/24'] };
const VERSIONS = [
  { version: 1 as const, ike: ['aes128-sha1-modp2048'], esp: ['aes128-sha1'] },
  { version: 2 as const, ike: ['aes128-sha256-modp2048'], esp: ['aes128-sha256'] },
];

/** b responds to anyone; `options` are its engine's. */
function responder(pair: EnginePair, v: (typeof VERSIONS)[number], options: Partial<EngineOptions>): Side {
  const spec = {
    ...v,
    localAddress: SITE_B,
    peerAddress: 'any',
    localSubnets: SUBNETS.b,
    peerSubnets: SUBNETS.a,
  };
  return pair.add('b', SITE_B, [connection(spec)], options);
}

function initiator(pair: EnginePair, v: (typeof VERSIONS)[number], address: string): Side {
  const spec = {
    ...v,
    localAddress: address,
    peerAddress: SITE_B,
    localSubnets: SUBNETS.a,
    peerSubnets: SUBNETS.b,
  };
  return pair.add(address, address, [connection({ ...spec, start: 'initiate' })]);
}

/** A first message of version `v` as an initiator sends it (captured, not delivered). */
function firstMessage(v: (typeof VERSIONS)[number]): Uint8Array {
  const pair = new EnginePair();
  const a = initiator(pair, v, SITE_A);
  let first: Uint8Array | undefined;
  pair.wire = (p) => {
    first ??= p.data;
    return undefined;
  };
  pair.initiate(a);
  return first!;
}

/** Copy `n` of a first message with its own initiator SPI (cookie). */
function forged(message: Uint8Array, n: number): Uint8Array {
  const copy = message.slice();
  new DataView(copy.buffer).setUint32(0, 0x7f000000 + n);
  return copy;
}

const to: Endpoint = { address: SITE_B, port: 500 };
const halfOpen = (side: Side) => side.engine.status()[0]!.ikeSas.filter((sa) => sa.role === 'responder');

for (const v of VERSIONS) {
  t.test(`IKEv${v.version}: half-open SAs are bounded per source address and in all`, async (t) => {
    const pair = new EnginePair();
    const b = responder(pair, v, { maxHalfOpen: 20, maxHalfOpenPerAddress: 4 });
    const message = firstMessage(v);
    const sources = ['203.0.113.7', '203.0.113.8', '203.0.113.9'];
    for (let i = 0; i < 300; i++)
      b.engine.receive(forged(message, i), to, { address: sources[i % 3]!, port: 1000 + i }, pair.now);
    // IKEv2 asks for cookies from an address holding half its bound: the flood, spoofed, holds two.
    const each = v.version === 1 ? 4 : 2;
    const held = halfOpen(b);
    t.equal(held.length, 3 * each, `${each} from each of the three addresses`);
    for (const source of sources)
      t.equal(held.filter((sa) => sa.remote.startsWith(`${source}:`)).length, each, `${source}: ${each}`);
    t.equal(
      b.engine.stats.refusedHalfOpen,
      v.version === 1 ? 300 - 12 : 0,
      v.version === 1 ? 'every other first message counted as refused' : 'none refused: asked for cookies',
    );
  });

  t.test(
    `IKEv${v.version}: a new initiator is answered while a few addresses keep the table full`,
    async (t) => {
      const pair = new EnginePair();
      const b = responder(pair, v, {
        maxHalfOpen: 16,
        maxHalfOpenPerAddress: 8,
        ikev2: { cookies: { threshold: 1000 } },
      });
      const message = firstMessage(v);
      // A trickle from four addresses keeps every slot taken.
      for (let i = 0; i < 40; i++)
        b.engine.receive(
          forged(message, i),
          to,
          { address: `203.0.113.${7 + (i % 4)}`, port: 1000 + i },
          pair.now,
        );
      t.equal(halfOpen(b).length, 16, 'the table is full');
      const a = initiator(pair, v, SITE_A);
      pair.initiate(a);
      t.equal(a.engine.status()[0]!.status, 'Active', 'the newcomer is up at once');
      t.equal(b.installed.size, 1, 'with its child SA at the responder');
      t.equal(
        halfOpen(b).filter((sa) => sa.remote.startsWith('203.0.113.')).length,
        15,
        'one forged SA made room',
      );
      t.equal(b.engine.stats.evictedHalfOpen, 1, 'counted');
    },
  );
}

t.test('IKEv1: the responder sends message 2 once per message 1, not on a timer', async (t) => {
  const v = VERSIONS[0]!;
  const pair = new EnginePair();
  const b = responder(pair, v, {});
  const message = firstMessage(v);
  const from = { address: '203.0.113.7', port: 500 };
  const sent = (actions: ReturnType<Side['engine']['tick']>) =>
    actions.filter((x) => x.type === 'send').length;
  t.equal(sent(b.engine.receive(message, to, from, pair.now)), 1, 'message 1 answered');
  let resent = 0;
  for (let now = pair.now + 1; now <= pair.now + 40; now++) resent += sent(b.engine.tick(now));
  t.equal(resent, 0, 'nothing sent again on its own (it was sent 5 times over 30 s)');
  t.equal(halfOpen(b).length, 0, 'the half-open SA timed out');
  const again = new EnginePair();
  const fresh = responder(again, v, {});
  fresh.engine.receive(message, to, from, again.now);
  t.equal(
    sent(fresh.engine.receive(message, to, from, again.now + 2)),
    1,
    'a repeated message 1 is answered again',
  );
  t.equal(
    sent(fresh.engine.receive(message, to, { address: '203.0.113.7', port: 501 }, again.now + 2)),
    1,
    'as is the same from another port (a new SA)',
  );
  // And the initiator's own retransmission still completes main mode when message 2 is lost.
  const lossy = new EnginePair();
  const gw = responder(lossy, v, {});
  const a = initiator(lossy, v, SITE_A);
  let dropped = false;
  lossy.wire = (p) => {
    if (!dropped && p.from.address === SITE_B && p.data[18] === V1Exchange.IDENTITY_PROTECTION) {
      dropped = true;
      return undefined;
    }
    return p;
  };
  lossy.initiate(a);
  lossy.advance(10);
  t.ok(dropped, 'message 2 was lost once');
  t.equal(a.engine.status()[0]!.status, 'Active', 'the initiator resent message 1 and got through');
  t.equal(gw.installed.size, 1, 'and the responder its child SA');
});

/** A provider that counts Diffie-Hellman key pairs made. */
function counting(): { crypto: CryptoProvider; keyPairs: () => number } {
  const inner = createCryptoProvider('node');
  let count = 0;
  const crypto = Object.create(inner) as CryptoProvider;
  crypto.keyPair = (group, privateKey) => {
    count++;
    return inner.keyPair(group, privateKey);
  };
  return { crypto, keyPairs: () => count };
}

t.test('IKEv2: a first message that is dropped or asked for a cookie costs no Diffie-Hellman', async (t) => {
  const v = VERSIONS[1]!;
  const { crypto, keyPairs } = counting();
  const pair = new EnginePair(crypto);
  const b = responder(pair, v, { maxHalfOpen: 4, maxHalfOpenPerAddress: 4 });
  const message = firstMessage(v);
  for (let i = 0; i < 4; i++)
    b.engine.receive(forged(message, i), to, { address: `203.0.113.${i}`, port: 500 }, pair.now);
  const afterFour = keyPairs();
  t.equal(afterFour, 4, 'one key pair for each SA kept');
  for (let i = 4; i < 100; i++)
    b.engine.receive(forged(message, i), to, { address: '203.0.113.1', port: 500 + i }, pair.now);
  t.equal(keyPairs(), afterFour, 'none for the 96 refused');
  t.equal(b.engine.stats.refusedHalfOpen, 96, 'all counted');
  const busy = new EnginePair(crypto);
  const cookies = responder(busy, v, { ikev2: { cookies: { always: true } } });
  for (let i = 0; i < 20; i++)
    cookies.engine.receive(forged(message, i), to, { address: '203.0.113.1', port: 500 + i }, busy.now);
  t.equal(keyPairs(), afterFour, 'none for the 20 asked for a cookie');
});

t.test('IKEv2: cookies from an address holding half of its half-open bound', async (t) => {
  const v = VERSIONS[1]!;
  const pair = new EnginePair();
  const b = responder(pair, v, { maxHalfOpenPerAddress: 8 });
  const message = firstMessage(v);
  // Spoofed from SITE_A: the flooder never sees the answers.
  const answers = [];
  for (let i = 0; i < 50; i++)
    answers.push(...b.engine.receive(forged(message, i), to, { address: SITE_A, port: 2000 + i }, pair.now));
  t.equal(halfOpen(b).length, 4, 'four kept, half the bound');
  const cookies = answers.filter(
    (x) =>
      x.type === 'send' &&
      decodeV2(x.data).payloads.some((p) => p.kind === 'notify' && p.notifyType === NotifyType.COOKIE),
  );
  t.equal(cookies.length, 46, 'the rest asked for a cookie, statelessly');
  // A real initiator at that address proves it and gets in.
  const a = initiator(pair, v, SITE_A);
  pair.initiate(a);
  t.equal(a.engine.status()[0]!.status, 'Active', 'the initiator behind the flooded address is up');
  t.ok(
    pair.sent.filter((p) => p.data[18] === V2Exchange.IKE_SA_INIT && p.from.address === SITE_A).length === 2,
    'after sending IKE_SA_INIT again with the cookie',
  );
});

t.test("the daemon's ike.maxHalfOpen and ike.maxHalfOpenPerAddress reach its engine", async (t) => {
  const v = VERSIONS[0]!;
  const config = parseConfig(
    JSON.stringify({
      listen: { addresses: [SITE_B] },
      kernel: 'memory',
      ike: { maxHalfOpen: 5, maxHalfOpenPerAddress: 2 },
      ikePolicies: { ike: { proposals: v.ike } },
      ipsecPolicies: { esp: { proposals: v.esp } },
      connections: {
        any: {
          ikePolicy: 'ike',
          ipsecPolicy: 'esp',
          local: { address: SITE_B, subnets: SUBNETS.b },
          peer: { address: 'any', subnets: SUBNETS.a },
          psk: 'a key long enough for the checks 0123',
        },
      },
    }),
    '/etc/ike-node/peers.json',
  );
  const daemon = new Daemon(config, { logger: new Logger({ level: 'error', write: () => {} }) });
  const message = firstMessage(v);
  for (let i = 0; i < 20; i++)
    daemon.engine.receive(forged(message, i), to, { address: `203.0.113.${i % 4}`, port: 500 }, 0);
  const held = daemon.engine.status()[0]!.ikeSas;
  t.equal(held.length, 5, 'five in all');
  t.ok(
    [0, 1, 2, 3].every((n) => held.filter((sa) => sa.remote === `203.0.113.${n}:500`).length <= 2),
    'at most two from each address',
  );
  // A quiet address: the oldest SA of a busy one makes room for it.
  daemon.engine.receive(forged(message, 20), to, { address: '203.0.113.9', port: 500 }, 0);
  const { refusedHalfOpen, evictedHalfOpen } = daemon.engine.stats;
  t.same([refusedHalfOpen, evictedHalfOpen], [15, 1], 'fifteen refused, one evicted');
  const metrics = new Metrics(daemon);
  t.teardown(() => metrics.close());
  const text = await metrics.render();
  const sample = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
  t.equal(sample('ike_node_half_open_refused_total'), refusedHalfOpen, 'refusals in the metrics');
  t.equal(sample('ike_node_half_open_evicted_total'), evictedHalfOpen, 'evictions in the metrics');
  t.equal(sample('ike_node_internal_errors_total'), 0, 'no internal error');
});
