import t, { type Test } from 'tap';
import { parseTrafficSelector } from '../../../src/core/traffic-selector.js';
import { algorithm } from '../../../src/crypto/registry.js';
import { NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST } from '../../../src/kernel/netlink/message.js';
import { XfrmBackend } from '../../../src/kernel/xfrm/backend.js';
import * as C from '../../../src/kernel/xfrm/constants.js';
import { XfrmError } from '../../../src/kernel/xfrm/errors.js';
import { FakeChannel, FakeSubscription, nlmsg, RecordingHost, type SentRequest } from './fake-channel.js';
import { attr, defaultLifetimeCfg, hex, ip4, join, Layout } from './layout.js';
import { child, KEYS } from './fixtures/child.js';

const ACK = NLM_F_REQUEST | NLM_F_ACK;
const BASE = 0x1ce00000;
const PRIO = 0x1ce000;

function setup(options: ConstructorParameters<typeof XfrmBackend>[3] = {}) {
  const channel = new FakeChannel();
  const subscription = new FakeSubscription();
  const host = new RecordingHost();
  const backend = new XfrmBackend(channel, subscription, host, { now: () => 0, ...options });
  return { channel, subscription, host, backend };
}

/** aes128-sha256 algorithm attributes for one direction, from the header layout. */
function cbcSha256(encr: Uint8Array, integ: Uint8Array): Uint8Array {
  return join(
    attr(2, new Layout(84).ascii(0, 'cbc(aes)').u32(64, 128).put(68, encr).bytes), // XFRMA_ALG_CRYPT
    attr(20, new Layout(104).ascii(0, 'hmac(sha256)').u32(64, 256).u32(68, 128).put(72, integ).bytes), // XFRMA_ALG_AUTH_TRUNC
  );
}

interface SaExpect {
  src: string;
  dst: string;
  spi: number;
  reqid: number;
  mode: number;
  hard: bigint;
  window: number;
  algorithms: Uint8Array;
  selector?: { src: string; srcPrefix: number; dst: string; dstPrefix: number };
  encap?: [number, number];
}

/** xfrm_usersa_info (224) and its attributes, as the header lays them out. */
function saBytes(e: SaExpect): Uint8Array {
  const l = new Layout(224);
  if (e.selector) {
    l.put(0, ip4(e.selector.dst)).put(16, ip4(e.selector.src)); // sel.daddr, sel.saddr
    l.u16(40, 2).u8(42, e.selector.dstPrefix).u8(43, e.selector.srcPrefix); // family, prefixlen_d, prefixlen_s
  }
  l.put(56, ip4(e.dst)).be32(72, e.spi).u8(76, 50); // id.daddr, id.spi, id.proto
  l.put(80, ip4(e.src)); // saddr
  defaultLifetimeCfg(l, 96, { soft: 0n, hard: e.hard }); // lft
  l.u32(208, e.reqid).u16(212, 2).u8(214, e.mode).u8(215, e.window); // reqid, family, mode, replay_window
  const parts = [l.bytes, e.algorithms];
  if (e.encap) parts.push(attr(4, new Layout(24).u16(0, 2).be16(2, e.encap[0]).be16(4, e.encap[1]).bytes));
  return join(...parts);
}

interface PolicyExpect {
  src: string;
  srcPrefix: number;
  dst: string;
  dstPrefix: number;
  dir: number;
  priority: number;
  reqid: number;
  mode: number;
  /** Tunnel endpoints of the template (transport: none). */
  outer?: { src: string; dst: string };
}

/** xfrm_userpolicy_info (168) and one xfrm_user_tmpl (64) in XFRMA_TMPL. */
function policyBytes(e: PolicyExpect): Uint8Array {
  const p = new Layout(168);
  p.put(0, ip4(e.dst)).put(16, ip4(e.src)).u16(40, 2).u8(42, e.dstPrefix).u8(43, e.srcPrefix); // sel
  defaultLifetimeCfg(p, 56); // lft
  p.u32(152, e.priority).u32(156, 0).u8(160, e.dir).u8(161, 0); // priority, index, dir, action allow
  const tmpl = new Layout(64);
  if (e.outer) tmpl.put(0, ip4(e.outer.dst)).put(28, ip4(e.outer.src)); // id.daddr, saddr
  tmpl.u8(20, 50).u16(24, 2).u32(44, e.reqid).u8(48, e.mode); // id.proto, family, reqid, mode
  tmpl.u32(52, 0xffffffff).u32(56, 0xffffffff).u32(60, 0xffffffff); // aalgos, ealgos, calgos: any
  return join(p.bytes, attr(5, tmpl.bytes));
}

function policyIdBytes(e: { src: string; srcPrefix: number; dst: string; dstPrefix: number; dir: number }) {
  const l = new Layout(64);
  l.put(0, ip4(e.dst)).put(16, ip4(e.src)).u16(40, 2).u8(42, e.dstPrefix).u8(43, e.srcPrefix);
  return l.u8(60, e.dir).bytes;
}

function saIdBytes(dst: string, spi: number): Uint8Array {
  return new Layout(24).put(0, ip4(dst)).be32(16, spi).u16(20, 2).u8(22, 50).bytes;
}

const IN_SEL = { src: '203.0.113.128', srcPrefix: 25, dst: '198.51.100.0', dstPrefix: 24 };
const OUT_SEL = { src: '198.51.100.0', srcPrefix: 24, dst: '203.0.113.128', dstPrefix: 25 };
/** Base + 1023 - specificity (2 * (25 + 24) prefix bits). */
const CHILD_PRIO = PRIO + 1023 - 98;
const TRAP_PRIO = CHILD_PRIO + 1024;

function childPolicies(reqid: number, priority: number): Uint8Array[] {
  const inbound = { ...IN_SEL, priority, reqid, mode: 1, outer: { src: '203.0.113.9', dst: '192.0.2.1' } };
  return [
    policyBytes({ ...inbound, dir: C.XFRM_POLICY_IN }),
    policyBytes({ ...inbound, dir: C.XFRM_POLICY_FWD }),
    policyBytes({
      ...OUT_SEL,
      dir: C.XFRM_POLICY_OUT,
      priority,
      reqid,
      mode: 1,
      outer: { src: '192.0.2.1', dst: '203.0.113.9' },
    }),
  ];
}

/** The SAs of child(), byte for byte. */
const inboundSa = (overrides: Partial<SaExpect> = {}) =>
  saBytes({
    src: '203.0.113.9',
    dst: '192.0.2.1',
    spi: 0xc0000001,
    reqid: BASE + 1,
    mode: 1,
    hard: 3630n, // expiresAt - installedAt, plus the 30 s margin
    window: 32,
    algorithms: cbcSha256(KEYS.encrIn, KEYS.integIn),
    ...overrides,
  });
const outboundSa = (overrides: Partial<SaExpect> = {}) =>
  saBytes({
    src: '192.0.2.1',
    dst: '203.0.113.9',
    spi: 0xd0000001,
    reqid: BASE + 1,
    mode: 1,
    hard: 3630n,
    window: 0,
    algorithms: cbcSha256(KEYS.encrOut, KEYS.integOut),
    ...overrides,
  });

function check(t: Test, sent: SentRequest, type: number, payload: Uint8Array, flags = ACK): void {
  t.equal(C.xfrmMessageName(sent.type), C.xfrmMessageName(type), `${sent.what}: type`);
  t.equal(sent.flags, flags, `${sent.what}: flags`);
  t.equal(hex(sent.payload), hex(payload), `${sent.what}: bytes`);
}

t.test('install: inbound SA, outbound SA, then in, fwd and out policies, byte for byte', async (t) => {
  const { channel, backend } = setup();
  await backend.install(child());
  const sent = channel.sent;
  t.equal(sent.length, 5);
  check(t, sent[0]!, C.XFRM_MSG_NEWSA, inboundSa());
  check(t, sent[1]!, C.XFRM_MSG_NEWSA, outboundSa());
  const [pin, pfwd, pout] = childPolicies(BASE + 1, CHILD_PRIO);
  check(t, sent[2]!, C.XFRM_MSG_NEWPOLICY, pin!);
  check(t, sent[3]!, C.XFRM_MSG_NEWPOLICY, pfwd!);
  check(t, sent[4]!, C.XFRM_MSG_NEWPOLICY, pout!);
  t.match(
    sent[0]!.what,
    /^add inbound SA 203\.0\.113\.9->192\.0\.2\.1 spi c0000001 \(child SA 1 of 'office', aes128-sha256\)$/,
  );
  t.same(
    backend.installed().map((c) => c.id),
    [1],
  );
  t.same(backend.reqidOf('office'), [BASE + 1]);
  t.ok(
    backend.isOurPriority(CHILD_PRIO) && backend.isOurPriority(TRAP_PRIO) && !backend.isOurPriority(PRIO - 1),
  );
});

t.test(
  'transport mode with NAT-T: SA selectors, ESP-in-UDP ports, no fwd policy, template without addresses',
  async (t) => {
    const { channel, backend } = setup({ replayWindow: 32 });
    await backend.install(
      child({
        mode: 'transport',
        encapsulation: true,
        local: { address: '192.0.2.1', port: 4500 },
        remote: { address: '203.0.113.9', port: 31337 },
        localTs: [parseTrafficSelector('192.0.2.1')],
        remoteTs: [parseTrafficSelector('203.0.113.9')],
      }),
    );
    const sent = channel.sent;
    t.same(channel.types(), [C.XFRM_MSG_NEWSA, C.XFRM_MSG_NEWSA, C.XFRM_MSG_NEWPOLICY, C.XFRM_MSG_NEWPOLICY]);
    const common = { reqid: BASE + 1, mode: 0, hard: 3630n };
    check(
      t,
      sent[0]!,
      C.XFRM_MSG_NEWSA,
      saBytes({
        ...common,
        src: '203.0.113.9',
        dst: '192.0.2.1',
        spi: 0xc0000001,
        window: 32,
        algorithms: cbcSha256(KEYS.encrIn, KEYS.integIn),
        selector: { src: '203.0.113.9', srcPrefix: 32, dst: '192.0.2.1', dstPrefix: 32 },
        encap: [31337, 4500], // the inbound SA's source is the peer
      }),
    );
    check(
      t,
      sent[1]!,
      C.XFRM_MSG_NEWSA,
      saBytes({
        ...common,
        src: '192.0.2.1',
        dst: '203.0.113.9',
        spi: 0xd0000001,
        window: 0,
        algorithms: cbcSha256(KEYS.encrOut, KEYS.integOut),
        selector: { src: '192.0.2.1', srcPrefix: 32, dst: '203.0.113.9', dstPrefix: 32 },
        encap: [4500, 31337],
      }),
    );
    const priority = PRIO + 1023 - 128;
    check(
      t,
      sent[2]!,
      C.XFRM_MSG_NEWPOLICY,
      policyBytes({
        src: '203.0.113.9',
        srcPrefix: 32,
        dst: '192.0.2.1',
        dstPrefix: 32,
        dir: 0,
        priority,
        reqid: BASE + 1,
        mode: 0,
      }),
    );
    check(
      t,
      sent[3]!,
      C.XFRM_MSG_NEWPOLICY,
      policyBytes({
        src: '192.0.2.1',
        srcPrefix: 32,
        dst: '203.0.113.9',
        dstPrefix: 32,
        dir: 1,
        priority,
        reqid: BASE + 1,
        mode: 0,
      }),
    );
  },
);

t.test(
  'allocateSpi: ALLOCSPI through requestSync, then install completes the larval SA with UPDSA',
  async (t) => {
    const { channel, backend } = setup();
    channel.answer = (request) => {
      if (request.type !== C.XFRM_MSG_ALLOCSPI) return [];
      const info = new Layout(224).put(56, ip4('192.0.2.1')).be32(72, 0xc1234567).u8(76, 50).u16(212, 2);
      return [nlmsg(C.XFRM_MSG_NEWSA, info.u32(208, BASE).bytes)];
    };
    const spi = backend.allocateSpi('192.0.2.1', '203.0.113.9');
    t.equal(spi, 0xc1234567);
    const request = channel.sent[0]!;
    t.equal(request.sync, true);
    const expected = new Layout(232);
    expected.put(56, ip4('192.0.2.1')).u8(76, 50).put(80, ip4('203.0.113.9')); // id.daddr (ours), proto, saddr
    defaultLifetimeCfg(expected, 96);
    expected.u32(208, BASE).u16(212, 2).u8(214, 1); // the larval reqid, family, tunnel
    expected.u32(224, 0xc0000000).u32(228, 0xcfffffff); // min, max
    check(t, request, C.XFRM_MSG_ALLOCSPI, expected.bytes);

    await backend.install(child({ spiIn: spi }));
    t.equal(channel.sent[1]!.type, C.XFRM_MSG_UPDSA, 'the inbound SA updates the larval one');
    t.equal(channel.sent[2]!.type, C.XFRM_MSG_NEWSA, 'the outbound SA is new');

    channel.answer = () => [nlmsg(C.XFRM_MSG_NEWSA, new Layout(224).be32(72, 0x1234).bytes)];
    t.throws(() => backend.allocateSpi('192.0.2.1', '203.0.113.9'), /outside the range asked/);
    channel.answer = () => ({ errno: 28, code: 'ENOSPC' });
    t.throws(() => backend.allocateSpi('192.0.2.1', '203.0.113.9'), XfrmError);
    t.throws(() => backend.allocateSpi('192.0.2.1', '203.0.113.9'), {
      name: 'XfrmError',
      message:
        /^allocate SPI for 203\.0\.113\.9->192\.0\.2\.1: no free SPI left in the requested range \(ENOSPC\)$/,
    });
  },
);

t.test('rekey: the new child shares reqid and policies; policies go with the last child', async (t) => {
  const { channel, backend } = setup();
  const old = child();
  const renewed = child({ id: 2, spiIn: 0xc0000002, spiOut: 0xd0000002 });
  await backend.install(old);
  channel.clear();
  await backend.install(renewed);
  t.same(channel.types(), [C.XFRM_MSG_NEWSA, C.XFRM_MSG_NEWSA], 'only the two new SAs');
  t.equal(new DataView(channel.sent[0]!.payload.buffer).getUint32(208, true), BASE + 1, 'same reqid');
  channel.clear();
  await backend.remove(old);
  t.same(channel.types(), [C.XFRM_MSG_DELSA, C.XFRM_MSG_DELSA], 'the policies stay');
  check(t, channel.sent[0]!, C.XFRM_MSG_DELSA, saIdBytes('192.0.2.1', 0xc0000001));
  check(t, channel.sent[1]!, C.XFRM_MSG_DELSA, saIdBytes('203.0.113.9', 0xd0000001));
  channel.clear();
  await backend.remove(renewed);
  t.same(channel.types(), [
    C.XFRM_MSG_DELSA,
    C.XFRM_MSG_DELSA,
    C.XFRM_MSG_DELPOLICY,
    C.XFRM_MSG_DELPOLICY,
    C.XFRM_MSG_DELPOLICY,
  ]);
  check(t, channel.sent[2]!, C.XFRM_MSG_DELPOLICY, policyIdBytes({ ...IN_SEL, dir: 0 }));
  check(t, channel.sent[3]!, C.XFRM_MSG_DELPOLICY, policyIdBytes({ ...IN_SEL, dir: 2 }));
  check(t, channel.sent[4]!, C.XFRM_MSG_DELPOLICY, policyIdBytes({ ...OUT_SEL, dir: 1 }));
  t.same(backend.installed(), []);
  t.same(backend.reqidOf('office'), [], 'the reqid is free again');
  channel.clear();
  await backend.remove(renewed);
  t.same(channel.sent, [], 'removing twice sends nothing');
});

t.test(
  'trap, then a child takes the policies over (UPDPOLICY), gives them back, untrap deletes them',
  async (t) => {
    const { channel, backend, subscription, host } = setup();
    await backend.trap({
      connection: 'office',
      mode: 'tunnel',
      local: '192.0.2.1',
      remote: '203.0.113.9',
      localTs: [parseTrafficSelector('198.51.100.0/24')],
      remoteTs: [parseTrafficSelector('203.0.113.128/25')],
    });
    const trapPolicies = childPolicies(BASE + 1, TRAP_PRIO);
    t.same(channel.types(), [C.XFRM_MSG_NEWPOLICY, C.XFRM_MSG_NEWPOLICY, C.XFRM_MSG_NEWPOLICY]);
    trapPolicies.forEach((bytes, i) => check(t, channel.sent[i]!, C.XFRM_MSG_NEWPOLICY, bytes));

    // Traffic hits the trap: the kernel's ACQUIRE carries the template's reqid.
    const acquire = new Layout(280).u16(96 + 40, 2).u8(96 + 160, 1);
    const tmpl = new Layout(64)
      .u8(20, 50)
      .u16(24, 2)
      .u32(44, BASE + 1)
      .u8(48, 1);
    subscription.emit(nlmsg(C.XFRM_MSG_ACQUIRE, join(acquire.bytes, attr(5, tmpl.bytes))));
    t.same(host.events, [{ type: 'acquire', connection: 'office' }]);

    channel.clear();
    await backend.install(child());
    const childPolicyBytes = childPolicies(BASE + 1, CHILD_PRIO);
    t.same(channel.types(), [
      C.XFRM_MSG_NEWSA,
      C.XFRM_MSG_NEWSA,
      C.XFRM_MSG_UPDPOLICY,
      C.XFRM_MSG_UPDPOLICY,
      C.XFRM_MSG_UPDPOLICY,
    ]);
    childPolicyBytes.forEach((bytes, i) => check(t, channel.sent[i + 2]!, C.XFRM_MSG_UPDPOLICY, bytes));

    channel.clear();
    await backend.remove(child());
    t.same(channel.types(), [
      C.XFRM_MSG_DELSA,
      C.XFRM_MSG_DELSA,
      C.XFRM_MSG_UPDPOLICY,
      C.XFRM_MSG_UPDPOLICY,
      C.XFRM_MSG_UPDPOLICY,
    ]);
    trapPolicies.forEach((bytes, i) => check(t, channel.sent[i + 2]!, C.XFRM_MSG_UPDPOLICY, bytes));

    channel.clear();
    await backend.untrap('office');
    t.same(channel.types(), [C.XFRM_MSG_DELPOLICY, C.XFRM_MSG_DELPOLICY, C.XFRM_MSG_DELPOLICY]);
    channel.clear();
    await backend.untrap('office');
    t.same(channel.sent, []);
  },
);

t.test('several selectors: every local TS x remote TS, ranges split into exact prefixes', async (t) => {
  const { channel, backend } = setup();
  await backend.install(
    child({
      localTs: [parseTrafficSelector('198.51.100.0/25'), parseTrafficSelector('198.51.100.200')],
      remoteTs: [parseTrafficSelector('203.0.113.10-203.0.113.11')],
    }),
  );
  const policies = channel.sent.filter((r) => r.type === C.XFRM_MSG_NEWPOLICY);
  t.equal(policies.length, 6, '2 x 1 pairs, in + fwd + out each');
  const sa = channel.sent[0]!.payload;
  t.equal(sa[42], 0, 'a tunnel-mode SA has no selector');
});

t.test('EXPIRE (once per child and kind), MAPPING, unknown and garbled events', async (t) => {
  const { backend, subscription, host } = setup();
  await backend.install(child());
  const expire = (dst: string, spi: number, hard: boolean) =>
    nlmsg(
      C.XFRM_MSG_EXPIRE,
      new Layout(232)
        .put(56, ip4(dst))
        .be32(72, spi)
        .u8(76, 50)
        .u32(208, BASE + 1)
        .u16(212, 2)
        .u8(224, hard ? 1 : 0).bytes,
    );
  subscription.emit(expire('192.0.2.1', 0xc0000001, false), expire('203.0.113.9', 0xd0000001, false));
  subscription.emit(expire('203.0.113.9', 0xd0000001, true));
  t.same(host.events, [
    { type: 'expire', child: 1, hard: false },
    { type: 'expire', child: 1, hard: true },
  ]);
  const mapping = new Layout(64).put(0, ip4('192.0.2.1')).be32(16, 0xc0000001).u16(20, 2).u8(22, 50);
  mapping.put(28, ip4('203.0.113.9')).put(44, ip4('203.0.113.77')).be16(60, 4500).be16(62, 1027);
  subscription.emit(nlmsg(C.XFRM_MSG_MAPPING, mapping.bytes));
  t.same(host.events[2], { type: 'mapping', child: 1, remote: { address: '203.0.113.77', port: 1027 } });

  subscription.emit(expire('192.0.2.1', 0xc0000099, true)); // not ours
  const tmpl = new Layout(64).u32(44, 7); // someone else's reqid
  subscription.emit(nlmsg(C.XFRM_MSG_ACQUIRE, join(new Layout(280).bytes, attr(5, tmpl.bytes))));
  t.equal(backend.stats.ignored, 2);
  for (let i = 0; i < 3; i++) subscription.emit(nlmsg(C.XFRM_MSG_EXPIRE, new Uint8Array(100)));
  t.equal(backend.stats.malformed, 3);
  t.equal(
    host.messages('warn').filter((m) => m.includes('garbled XFRM_MSG_EXPIRE')).length,
    1,
    'logged once',
  );
  t.match(host.messages('warn')[0], /xfrm_user_expire of 100 bytes is truncated: it needs 232/);
  t.equal(host.events.length, 3);
});

t.test('a host that throws in onEvent does not break the event loop', async (t) => {
  const { backend, subscription, host } = setup();
  await backend.trap({
    connection: 'office',
    mode: 'tunnel',
    local: '192.0.2.1',
    remote: '203.0.113.9',
    localTs: [parseTrafficSelector('198.51.100.0/24')],
    remoteTs: [parseTrafficSelector('203.0.113.128/25')],
  });
  host.onEvent = () => {
    throw new Error('engine busy');
  };
  const tmpl = new Layout(64).u32(44, BASE + 1);
  t.doesNotThrow(() =>
    subscription.emit(nlmsg(C.XFRM_MSG_ACQUIRE, join(new Layout(280).bytes, attr(5, tmpl.bytes)))),
  );
  t.match(host.messages('error')[0], /handling the kernel's acquire event: engine busy/);
});

t.test('ENOBUFS: counted, logged, and an SA gone meanwhile becomes a hard expire', async (t) => {
  const { channel, backend, subscription, host } = setup();
  await backend.install(child());
  channel.answer = (request) => {
    if (request.type !== C.XFRM_MSG_GETSA) return [];
    // Only the outbound SA is still there.
    const info = new Layout(224).put(56, ip4('203.0.113.9')).be32(72, 0xd0000001).u8(76, 50).u16(212, 2);
    return [nlmsg(C.XFRM_MSG_NEWSA, info.u32(208, BASE + 1).bytes)];
  };
  subscription.fail(Object.assign(new Error('recv: ENOBUFS'), { code: 'ENOBUFS' }));
  subscription.fail(Object.assign(new Error('recv: ENOBUFS'), { code: 'ENOBUFS' }));
  await backend.cleanup(); // queued after the resync
  t.equal(backend.stats.overruns, 2);
  t.same(host.events, [{ type: 'expire', child: 1, hard: true }]);
  t.equal(host.messages('warn').filter((m) => m.includes('ENOBUFS')).length, 1, 'rate-limited');
  const dump = channel.sent.find((r) => r.type === C.XFRM_MSG_GETSA)!;
  t.equal(dump.flags, NLM_F_REQUEST | NLM_F_DUMP);
  t.equal(dump.payload.length, 0);
});

t.test('refusals become XfrmErrors naming the SA, and nothing is left half-installed', async (t) => {
  const { channel, backend, host } = setup();
  channel.answer = (r) => (r.type === C.XFRM_MSG_NEWSA ? { errno: 93, code: 'EPROTONOSUPPORT' } : []);
  await t.rejects(backend.install(child()), {
    name: 'XfrmError',
    code: 'EPROTONOSUPPORT',
    message:
      "add inbound SA 203.0.113.9->192.0.2.1 spi c0000001 (child SA 1 of 'office', aes128-sha256): " +
      'the kernel has no ESP support (esp4/esp6 not built or not loadable) (EPROTONOSUPPORT)',
  });
  t.same(channel.types(), [C.XFRM_MSG_NEWSA]);
  t.same(backend.installed(), []);
  t.same(backend.reqidOf('office'), []);

  channel.clear();
  channel.answer = (r) => (r.type === C.XFRM_MSG_NEWSA ? { errno: 38, code: 'ENOSYS' } : []);
  await t.rejects(
    backend.install(
      child({
        suite: { encr: algorithm('encr', 'aes256gcm16') },
        keys: { ...KEYS, encrIn: new Uint8Array(36), encrOut: new Uint8Array(36) },
      }),
    ),
    {
      message:
        /the kernel does not offer the algorithm: rfc4106\(gcm\(aes\)\) 288-bit key 128-bit ICV \(ENOSYS\)$/,
    },
  );

  channel.clear();
  let newsa = 0;
  channel.answer = (r) => (r.type === C.XFRM_MSG_NEWSA && ++newsa === 2 ? { errno: 17, code: 'EEXIST' } : []);
  await t.rejects(backend.install(child()), {
    message:
      /^add outbound SA 192\.0\.2\.1->203\.0\.113\.9 spi d0000001 .*an identical SA is already installed \(EEXIST\)$/,
  });
  t.same(
    channel.types(),
    [C.XFRM_MSG_NEWSA, C.XFRM_MSG_NEWSA, C.XFRM_MSG_DELSA],
    'the inbound SA is taken back',
  );
  check(t, channel.sent[2]!, C.XFRM_MSG_DELSA, saIdBytes('192.0.2.1', 0xc0000001));

  channel.clear();
  channel.answer = (r) =>
    r.type === C.XFRM_MSG_NEWPOLICY && r.payload[160] === 1 ? { errno: 22, code: 'EINVAL' } : [];
  await t.rejects(backend.install(child()), {
    name: 'XfrmError',
    code: 'EINVAL',
    message: /^add out policy 198\.51\.100\.0\/24 -> 203\.0\.113\.128\/25/,
  });
  t.same(
    channel.types(),
    [
      C.XFRM_MSG_NEWSA,
      C.XFRM_MSG_NEWSA,
      C.XFRM_MSG_NEWPOLICY,
      C.XFRM_MSG_NEWPOLICY,
      C.XFRM_MSG_NEWPOLICY,
      C.XFRM_MSG_DELPOLICY,
      C.XFRM_MSG_DELPOLICY,
      C.XFRM_MSG_DELSA,
      C.XFRM_MSG_DELSA,
    ],
    'in and fwd taken back, then both SAs',
  );
  t.same(backend.installed(), []);

  channel.clear();
  await t.rejects(backend.install(child({ suite: { encr: algorithm('encr', 'aes128') } })), {
    name: 'XfrmError',
    message: /install child SA 1 of 'office': 'aes128' needs an integrity algorithm for ESP/,
  });
  await t.rejects(
    backend.install(child({ keys: { ...KEYS, integIn: new Uint8Array(20) } })),
    /hmac\(sha256\) takes a 256-bit key/,
  );
  t.same(channel.sent, [], 'refused before asking the kernel');
  t.equal(host.messages('error').length, 0);
  t.equal(backend.problems()['install-refused'], 6, 'each of the six refusals is counted for the metrics');
});

t.test("NEWPOLICY EEXIST: a leftover of ours is replaced, anyone else's is refused", async (t) => {
  const existing = (reqid: number) => {
    const p = new Layout(168).u16(40, 2).u32(152, 500).u8(160, 0);
    return [nlmsg(C.XFRM_MSG_NEWPOLICY, join(p.bytes, attr(5, new Layout(64).u32(44, reqid).bytes)))];
  };
  {
    const { channel, backend, host } = setup();
    channel.answer = (r) =>
      r.type === C.XFRM_MSG_NEWPOLICY
        ? { errno: 17, code: 'EEXIST' }
        : r.type === C.XFRM_MSG_GETPOLICY
          ? existing(BASE + 9)
          : [];
    await backend.install(child());
    t.same(channel.types().slice(2, 5), [C.XFRM_MSG_NEWPOLICY, C.XFRM_MSG_GETPOLICY, C.XFRM_MSG_UPDPOLICY]);
    check(t, channel.sent[3]!, C.XFRM_MSG_GETPOLICY, policyIdBytes({ ...IN_SEL, dir: 0 }));
    check(t, channel.sent[4]!, C.XFRM_MSG_UPDPOLICY, childPolicies(BASE + 1, CHILD_PRIO)[0]!);
    t.match(host.messages('info')[0], /replaced a policy an earlier run left behind/);
  }
  {
    const { channel, backend } = setup();
    channel.answer = (r) =>
      r.type === C.XFRM_MSG_NEWPOLICY
        ? { errno: 17, code: 'EEXIST' }
        : r.type === C.XFRM_MSG_GETPOLICY
          ? existing(5)
          : [];
    await t.rejects(backend.install(child()), {
      name: 'XfrmError',
      code: 'EEXIST',
      message:
        /another policy for this selector is installed and is not ours \(priority 500, template reqid 5\)/,
    });
    t.same(channel.types().slice(-2), [C.XFRM_MSG_DELSA, C.XFRM_MSG_DELSA]);
    t.notOk(channel.types().includes(C.XFRM_MSG_UPDPOLICY), 'never overwritten');
  }
});

t.test('remove: SAs already gone (ESRCH) and policies already gone (ENOENT) are fine', async (t) => {
  const { channel, backend, host } = setup();
  await backend.install(child());
  channel.answer = (r) =>
    r.type === C.XFRM_MSG_DELSA
      ? { errno: 3, code: 'ESRCH' }
      : r.type === C.XFRM_MSG_DELPOLICY
        ? { errno: 2, code: 'ENOENT' }
        : [];
  await backend.remove(child());
  t.equal(host.messages('debug').filter((m) => m.endsWith('already gone')).length, 5);
  t.same(backend.installed(), []);
  channel.answer = () => [];
  await backend.install(child());
  channel.answer = (r) => (r.type === C.XFRM_MSG_DELSA ? { errno: 1, code: 'EPERM' } : []);
  await t.rejects(backend.remove(child()), {
    code: 'EPERM',
    message: /delete inbound SA spi c0000001 .*CAP_NET_ADMIN/,
  });
  t.same(backend.installed(), [], 'forgotten anyway: the engine considers it gone');
});

t.test('counters: GETSA for both SAs, bytes and packets from xfrm_lifetime_cur', async (t) => {
  const { channel, backend } = setup();
  await backend.install(child());
  channel.clear();
  channel.answer = (r) => {
    const inbound = r.payload[0] === 192;
    const info = new Layout(224).u64(160, inbound ? 1500n : 3000n).u64(168, inbound ? 10n : 20n);
    return [nlmsg(C.XFRM_MSG_NEWSA, info.bytes)];
  };
  t.same(await backend.counters(child()), { bytesIn: 1500, packetsIn: 10, bytesOut: 3000, packetsOut: 20 });
  check(t, channel.sent[0]!, C.XFRM_MSG_GETSA, saIdBytes('192.0.2.1', 0xc0000001));
  check(t, channel.sent[1]!, C.XFRM_MSG_GETSA, saIdBytes('203.0.113.9', 0xd0000001));
  t.equal(await backend.counters(child({ id: 9 })), undefined, 'not installed');
  channel.answer = () => ({ errno: 3, code: 'ESRCH' });
  t.equal(await backend.counters(child()), undefined, 'gone from the kernel');
});

t.test('cleanup: deletes only SAs and policies with a reqid of ours', async (t) => {
  const { channel, backend } = setup();
  const sa = (spi: number, reqid: number) =>
    nlmsg(
      C.XFRM_MSG_NEWSA,
      new Layout(224).put(56, ip4('192.0.2.1')).be32(72, spi).u8(76, 50).u32(208, reqid).u16(212, 2).bytes,
    );
  const policy = (dir: number, index: number, reqid?: number) => {
    const p = new Layout(168)
      .put(16, ip4('198.51.100.0'))
      .u16(40, 2)
      .u8(43, 24)
      .u32(152, PRIO + 5)
      .u32(156, index)
      .u8(160, dir);
    return nlmsg(
      C.XFRM_MSG_NEWPOLICY,
      reqid === undefined ? p.bytes : join(p.bytes, attr(5, new Layout(64).u32(44, reqid).bytes)),
    );
  };
  channel.answer = (r) => {
    if (r.type === C.XFRM_MSG_GETSA)
      return [sa(0xc0000005, BASE + 3), sa(0xc0000006, 42), sa(0, BASE + 3), sa(0xc0000007, BASE)];
    if (r.type === C.XFRM_MSG_GETPOLICY)
      return [
        policy(1, 0x19, BASE + 3),
        policy(1, 0x21, 42),
        policy(3, 0x0b),
        policy(0, 0x28),
        policy(2, 0x2a, BASE + 0xffff),
      ];
    return [];
  };
  t.same(await backend.cleanup(), { sas: 2, policies: 2, spis: [0xc0000005, 0xc0000007] });
  t.same(channel.types(), [
    C.XFRM_MSG_GETSA,
    C.XFRM_MSG_DELSA,
    C.XFRM_MSG_DELSA,
    C.XFRM_MSG_GETPOLICY,
    C.XFRM_MSG_DELPOLICY,
    C.XFRM_MSG_DELPOLICY,
  ]);
  t.equal(channel.sent[0]!.flags, NLM_F_REQUEST | NLM_F_DUMP);
  check(t, channel.sent[1]!, C.XFRM_MSG_DELSA, saIdBytes('192.0.2.1', 0xc0000005));
  check(t, channel.sent[2]!, C.XFRM_MSG_DELSA, saIdBytes('192.0.2.1', 0xc0000007), ACK);
  const byIndex = new Layout(64).put(16, ip4('198.51.100.0')).u16(40, 2).u8(43, 24).u32(56, 0x19).u8(60, 1);
  check(t, channel.sent[4]!, C.XFRM_MSG_DELPOLICY, byIndex.bytes);
  t.equal(new DataView(channel.sent[5]!.payload.buffer).getUint32(56, true), 0x2a);

  const host = new RecordingHost();
  const opened = await XfrmBackend.open(channel, undefined, host);
  t.ok(opened instanceof XfrmBackend, 'open() cleans up first');
  t.same(
    host.messages('info'),
    ['removed 2 SA(s) (SPIs c0000005, c0000007) and 2 policy(ies) left behind by an earlier run'],
    'open() says what it removed, the SAs by SPI',
  );
});

t.test('close: every child, trap and unused SPI goes, then the sockets', async (t) => {
  const { channel, subscription, backend } = setup();
  channel.answer = (r) =>
    r.type === C.XFRM_MSG_ALLOCSPI
      ? [nlmsg(C.XFRM_MSG_NEWSA, new Layout(224).be32(72, 0xc0000abc).bytes)]
      : [];
  backend.allocateSpi('192.0.2.1', '203.0.113.9');
  await backend.install(child());
  await backend.trap({
    connection: 'lab',
    mode: 'transport',
    local: '192.0.2.1',
    remote: '198.51.100.77',
    localTs: [parseTrafficSelector('192.0.2.1')],
    remoteTs: [parseTrafficSelector('198.51.100.77')],
  });
  channel.clear();
  await backend.close();
  t.same(channel.types(), [
    C.XFRM_MSG_DELSA,
    C.XFRM_MSG_DELSA,
    C.XFRM_MSG_DELPOLICY,
    C.XFRM_MSG_DELPOLICY,
    C.XFRM_MSG_DELPOLICY,
    C.XFRM_MSG_DELPOLICY,
    C.XFRM_MSG_DELPOLICY,
    C.XFRM_MSG_DELSA,
  ]);
  check(t, channel.sent[7]!, C.XFRM_MSG_DELSA, saIdBytes('192.0.2.1', 0xc0000abc));
  t.ok(channel.closed && subscription.closed);
  await t.rejects(backend.install(child()), /closed/);
  await backend.close();
});

t.test('configureSocket: bypass for in and out, UDP_ENCAP on the NAT-T port', async (t) => {
  const calls: [number, number, number, string][] = [];
  const { backend } = setup({
    setsockopt: (fd, level, name, value) => void calls.push([fd, level, name, hex(value)]),
  });
  backend.configureSocket(7, 4, false);
  backend.configureSocket(8, 6, true);
  const bypass = (family: number, dir: number) => {
    const l = new Layout(168).u16(40, family);
    defaultLifetimeCfg(l, 56);
    return hex(l.u8(160, dir).bytes);
  };
  t.same(calls, [
    [7, 0, 17, bypass(2, 0)], // SOL_IP, IP_XFRM_POLICY, dir in
    [7, 0, 17, bypass(2, 1)], // dir out
    [8, 41, 35, bypass(10, 0)], // SOL_IPV6, IPV6_XFRM_POLICY
    [8, 41, 35, bypass(10, 1)],
    [8, 17, 100, '02000000'], // SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP as a host-order int
  ]);
  t.throws(() => setup().backend.configureSocket(7, 4, false), /needs the setsockopt option/);
});

t.test('re-installing a child (new NAT port): old SAs out, new SAs in, policies untouched', async (t) => {
  const { channel, backend } = setup();
  await backend.install(child({ encapsulation: true, remote: { address: '203.0.113.9', port: 4500 } }));
  channel.clear();
  await backend.install(child({ encapsulation: true, remote: { address: '203.0.113.9', port: 1027 } }));
  t.same(channel.types(), [C.XFRM_MSG_DELSA, C.XFRM_MSG_DELSA, C.XFRM_MSG_NEWSA, C.XFRM_MSG_NEWSA]);
  t.equal(backend.installed().length, 1);
  t.equal(backend.installed()[0]!.remote.port, 1027);
});

t.test('options are checked, lifetimes in kilobytes become byte limits', async (t) => {
  t.throws(() => setup({ reqidBase: 0xffffff00, reqidCount: 0x1000 }), /reqid range/);
  t.throws(() => setup({ replayWindow: 5000 }), /replay window 5000/);
  t.throws(() => setup({ spiMin: 0xd0000000, spiMax: 0xc0000000 }), /SPI range/);
  const { channel, backend } = setup({ replayWindow: 128, hardLifetimeMargin: 0 });
  await backend.install(child({ lifetime: { seconds: 3600, kilobytes: 1000 } }));
  const p = new DataView(channel.sent[0]!.payload.buffer);
  t.equal(p.getBigUint64(96, true), 921600n, 'soft bytes: 90%');
  t.equal(p.getBigUint64(104, true), 1024000n, 'hard bytes');
  t.equal(p.getBigUint64(136, true), 3600n, 'hard seconds, no margin');
  t.equal(channel.sent[0]!.payload[215], 0, 'a 128-packet window is not in the struct');
  const esn = channel.sent[0]!.payload.subarray(224 + 88 + 108);
  t.equal(hex(esn), hex(attr(23, new Layout(24 + 16).u32(0, 4).u32(20, 128).bytes)));
});

t.test('trap again with other selectors: new policies in, the ones no longer wanted out', async (t) => {
  const { channel, backend } = setup();
  const trap = {
    connection: 'office',
    mode: 'tunnel' as const,
    local: '192.0.2.1',
    remote: '203.0.113.9',
    localTs: [parseTrafficSelector('198.51.100.0/24')],
    remoteTs: [parseTrafficSelector('203.0.113.128/25')],
  };
  await backend.trap(trap);
  const first = backend.reqidOf('office');
  channel.clear();
  await backend.trap({ ...trap, remoteTs: [parseTrafficSelector('203.0.113.0/25')] });
  t.same(channel.types(), [
    C.XFRM_MSG_NEWPOLICY,
    C.XFRM_MSG_NEWPOLICY,
    C.XFRM_MSG_NEWPOLICY,
    C.XFRM_MSG_DELPOLICY,
    C.XFRM_MSG_DELPOLICY,
    C.XFRM_MSG_DELPOLICY,
  ]);
  check(t, channel.sent[3]!, C.XFRM_MSG_DELPOLICY, policyIdBytes({ ...IN_SEL, dir: 0 }));
  t.equal(backend.reqidOf('office').length, 1, 'one reqid: the old one was released');
  t.not(backend.reqidOf('office')[0], first[0]);
  await t.rejects(backend.trap({ ...trap, remote: 'peer.example' }), /'peer\.example' is not an IP address/);
});

t.test('selectors that cannot pair (IPv4 with IPv6) are refused before the kernel is asked', async (t) => {
  const { channel, backend } = setup();
  await t.rejects(backend.install(child({ remoteTs: [parseTrafficSelector('2001:db8::/64')] })), {
    name: 'XfrmError',
    message: /no policy: local 198\.51\.100\.0\/24 and remote 2001:db8::\/64 have no pair of the same family/,
  });
  t.same(channel.sent, []);
  t.same(backend.reqidOf('office'), []);
});

// --- installInbound: the quick mode responder's inbound SA ahead of message 3 --------------------

t.test(
  'installInbound: the inbound SA alone (UPDSA of the larval SA); install adds the outbound SA and the policies',
  async (t) => {
    const { channel, backend } = setup();
    channel.answer = (request) =>
      request.type === C.XFRM_MSG_ALLOCSPI
        ? [nlmsg(C.XFRM_MSG_NEWSA, new Layout(224).put(56, ip4('192.0.2.1')).be32(72, 0xc0000001).bytes)]
        : [];
    const spi = backend.allocateSpi('192.0.2.1', '203.0.113.9');
    channel.clear();
    await backend.installInbound(child({ spiIn: spi }));
    t.same(channel.types(), [C.XFRM_MSG_UPDSA], 'the inbound SA and nothing else');
    check(t, channel.sent[0]!, C.XFRM_MSG_UPDSA, inboundSa());
    t.match(channel.sent[0]!.what, /^add inbound SA 203\.0\.113\.9->192\.0\.2\.1 spi c0000001 \(child SA 1 /);
    t.same(backend.installed(), [], 'not established yet');
    t.same(backend.reqidOf('office'), [BASE + 1]);

    channel.clear();
    await backend.install(child({ spiIn: spi }));
    t.same(channel.types(), [
      C.XFRM_MSG_NEWSA,
      C.XFRM_MSG_NEWPOLICY,
      C.XFRM_MSG_NEWPOLICY,
      C.XFRM_MSG_NEWPOLICY,
    ]);
    check(t, channel.sent[0]!, C.XFRM_MSG_NEWSA, outboundSa());
    childPolicies(BASE + 1, CHILD_PRIO).forEach((bytes, i) =>
      check(t, channel.sent[i + 1]!, C.XFRM_MSG_NEWPOLICY, bytes),
    );
    t.same(
      backend.installed().map((c) => c.id),
      [1],
    );

    channel.clear();
    await backend.remove(child({ spiIn: spi }));
    t.same(channel.types(), [
      C.XFRM_MSG_DELSA,
      C.XFRM_MSG_DELSA,
      C.XFRM_MSG_DELPOLICY,
      C.XFRM_MSG_DELPOLICY,
      C.XFRM_MSG_DELPOLICY,
    ]);
    t.same(backend.reqidOf('office'), [], 'one reqid reference, released once');
  },
);

t.test('installInbound, then remove: only the inbound SA is deleted, the reqid is released', async (t) => {
  const { channel, backend } = setup();
  await backend.installInbound(child());
  channel.clear();
  await backend.remove(child());
  t.same(channel.types(), [C.XFRM_MSG_DELSA]);
  check(t, channel.sent[0]!, C.XFRM_MSG_DELSA, saIdBytes('192.0.2.1', 0xc0000001));
  t.same(backend.reqidOf('office'), []);
  channel.clear();
  await backend.remove(child());
  t.same(channel.sent, [], 'nothing left to remove');

  // Already gone (the larval SA expired) is fine, and releases the reqid all the same.
  await backend.installInbound(child({ id: 2 }));
  t.same(backend.reqidOf('office'), [BASE + 2]);
  channel.answer = (r) => (r.type === C.XFRM_MSG_DELSA ? { errno: 3, code: 'ESRCH' } : []);
  await backend.remove(child({ id: 2 }));
  t.same(backend.reqidOf('office'), []);

  // A failure is reported, and the child is forgotten anyway.
  channel.answer = () => [];
  await backend.installInbound(child({ id: 3 }));
  channel.answer = (r) => (r.type === C.XFRM_MSG_DELSA ? { errno: 1, code: 'EPERM' } : []);
  await t.rejects(backend.remove(child({ id: 3 })), {
    code: 'EPERM',
    message: /delete inbound SA spi c0000001/,
  });
  t.same(backend.reqidOf('office'), []);
});

t.test('rekey: the new inbound SA ahead carries the old child reqid; no policy is touched', async (t) => {
  const { channel, backend } = setup();
  const old = child();
  const renewed = child({ id: 2, spiIn: 0xc0000002, spiOut: 0xd0000002 });
  await backend.install(old);
  channel.clear();
  await backend.installInbound(renewed);
  t.same(channel.types(), [C.XFRM_MSG_NEWSA]);
  check(t, channel.sent[0]!, C.XFRM_MSG_NEWSA, inboundSa({ spi: 0xc0000002 }));
  channel.clear();
  await backend.install(renewed);
  t.same(channel.types(), [C.XFRM_MSG_NEWSA], 'the outbound SA; the policies are there already');
  check(t, channel.sent[0]!, C.XFRM_MSG_NEWSA, outboundSa({ spi: 0xd0000002 }));
  channel.clear();
  await backend.remove(old);
  t.same(channel.types(), [C.XFRM_MSG_DELSA, C.XFRM_MSG_DELSA], 'the policies stay with the new child');
  channel.clear();
  await backend.remove(renewed);
  t.same(channel.types().slice(2), [C.XFRM_MSG_DELPOLICY, C.XFRM_MSG_DELPOLICY, C.XFRM_MSG_DELPOLICY]);
  t.same(backend.reqidOf('office'), []);

  // A trap's policies carry the reqid too: the inbound SA ahead matches them.
  await backend.trap({
    connection: 'office',
    mode: 'tunnel',
    local: '192.0.2.1',
    remote: '203.0.113.9',
    localTs: [parseTrafficSelector('198.51.100.0/24')],
    remoteTs: [parseTrafficSelector('203.0.113.128/25')],
  });
  const [trapReqid] = backend.reqidOf('office');
  channel.clear();
  await backend.installInbound(child({ id: 3 }));
  t.same(channel.types(), [C.XFRM_MSG_NEWSA]);
  check(t, channel.sent[0]!, C.XFRM_MSG_NEWSA, inboundSa({ reqid: trapReqid! }));
});

t.test('close: an inbound SA installed ahead is deleted too', async (t) => {
  const { channel, backend } = setup();
  await backend.installInbound(child());
  channel.clear();
  await backend.close();
  t.same(channel.types(), [C.XFRM_MSG_DELSA]);
  check(t, channel.sent[0]!, C.XFRM_MSG_DELSA, saIdBytes('192.0.2.1', 0xc0000001));
});

t.test('cleanup leaves an inbound SA installed ahead alone: it is ours and in use', async (t) => {
  const { channel, backend } = setup();
  await backend.installInbound(child());
  channel.answer = (r) =>
    r.type === C.XFRM_MSG_GETSA
      ? [
          nlmsg(
            C.XFRM_MSG_NEWSA,
            new Layout(224)
              .put(56, ip4('192.0.2.1'))
              .be32(72, 0xc0000001)
              .u8(76, 50)
              .u32(208, BASE + 1)
              .u16(212, 2).bytes,
          ),
        ]
      : [];
  t.same(await backend.cleanup(), { sas: 0, policies: 0, spis: [] });
  t.notOk(channel.types().includes(C.XFRM_MSG_DELSA));
});

t.test('install after installInbound fails: the inbound SA goes too, the reqid is released', async (t) => {
  const { channel, backend } = setup();
  await backend.installInbound(child());
  channel.clear();
  channel.answer = (r) => (r.type === C.XFRM_MSG_NEWSA ? { errno: 17, code: 'EEXIST' } : []);
  await t.rejects(backend.install(child()), {
    message: /^add outbound SA 192\.0\.2\.1->203\.0\.113\.9 spi d0000001/,
  });
  t.same(channel.types(), [C.XFRM_MSG_NEWSA, C.XFRM_MSG_DELSA]);
  check(t, channel.sent[0]!, C.XFRM_MSG_NEWSA, outboundSa());
  check(t, channel.sent[1]!, C.XFRM_MSG_DELSA, saIdBytes('192.0.2.1', 0xc0000001));
  t.same(backend.installed(), []);
  t.same(backend.reqidOf('office'), []);
  channel.clear();
  await backend.remove(child());
  t.same(channel.sent, [], 'nothing pending any more');

  // A policy the kernel refuses: both SAs go.
  channel.answer = () => [];
  await backend.installInbound(child());
  channel.clear();
  channel.answer = (r) => (r.type === C.XFRM_MSG_NEWPOLICY ? { errno: 22, code: 'EINVAL' } : []);
  await t.rejects(backend.install(child()), { code: 'EINVAL' });
  t.same(channel.types(), [C.XFRM_MSG_NEWSA, C.XFRM_MSG_NEWPOLICY, C.XFRM_MSG_DELSA, C.XFRM_MSG_DELSA]);
  t.same(backend.reqidOf('office'), []);
});

t.test('installInbound refused or failed: nothing pending, no reqid taken', async (t) => {
  const { channel, backend } = setup();
  await t.rejects(backend.installInbound(child({ suite: { encr: algorithm('encr', 'aes128') } })), {
    name: 'XfrmError',
    message: /^install the inbound SA of child SA 1 of 'office': 'aes128' needs an integrity algorithm/,
  });
  await t.rejects(backend.installInbound(child({ remoteTs: [parseTrafficSelector('2001:db8::/64')] })), {
    message: /no policy: local 198\.51\.100\.0\/24 and remote 2001:db8::\/64/,
  });
  await t.rejects(
    backend.installInbound(child({ remote: { address: 'peer.example', port: 500 } })),
    /'peer\.example' is not an IP address/,
  );
  t.same(channel.sent, [], 'refused before the kernel is asked');
  t.same(backend.reqidOf('office'), []);

  channel.answer = (r) => (r.type === C.XFRM_MSG_NEWSA ? { errno: 93, code: 'EPROTONOSUPPORT' } : []);
  await t.rejects(backend.installInbound(child()), {
    name: 'XfrmError',
    code: 'EPROTONOSUPPORT',
    message: /^add inbound SA 203\.0\.113\.9->192\.0\.2\.1 spi c0000001 /,
  });
  t.same(backend.reqidOf('office'), []);
  channel.answer = () => [];
  channel.clear();
  await backend.install(child());
  t.same(
    channel.types(),
    [C.XFRM_MSG_NEWSA, C.XFRM_MSG_NEWSA, C.XFRM_MSG_NEWPOLICY, C.XFRM_MSG_NEWPOLICY, C.XFRM_MSG_NEWPOLICY],
    'a full install: nothing was pending',
  );
  await t.rejects(backend.installInbound(child()), /the child SA is installed already/);
  await backend.installInbound(child({ id: 2 }));
  await t.rejects(backend.installInbound(child({ id: 2 })), /the child SA is installed already/);
});

t.test(
  'install with another SPI than the inbound SA ahead: that one goes, then a full install',
  async (t) => {
    const { channel, backend } = setup();
    await backend.installInbound(child());
    channel.clear();
    await backend.install(child({ spiIn: 0xc0000009 }));
    t.same(channel.types(), [
      C.XFRM_MSG_DELSA,
      C.XFRM_MSG_NEWSA,
      C.XFRM_MSG_NEWSA,
      C.XFRM_MSG_NEWPOLICY,
      C.XFRM_MSG_NEWPOLICY,
      C.XFRM_MSG_NEWPOLICY,
    ]);
    check(t, channel.sent[0]!, C.XFRM_MSG_DELSA, saIdBytes('192.0.2.1', 0xc0000001));
    check(t, channel.sent[1]!, C.XFRM_MSG_NEWSA, inboundSa({ spi: 0xc0000009 }));
    t.same(backend.reqidOf('office'), [BASE + 1], 'the same reqid, once');
    await backend.remove(child({ spiIn: 0xc0000009 }));
    t.same(backend.reqidOf('office'), []);

    // Another NAT port is another inbound SA too (its ESP-in-UDP ports).
    const natted = (port: number) => child({ encapsulation: true, remote: { address: '203.0.113.9', port } });
    await backend.installInbound(natted(4500));
    channel.clear();
    await backend.install(natted(1027));
    t.same(channel.types().slice(0, 3), [C.XFRM_MSG_DELSA, C.XFRM_MSG_NEWSA, C.XFRM_MSG_NEWSA]);
  },
);
