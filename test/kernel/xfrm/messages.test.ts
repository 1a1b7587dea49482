import t from 'tap';
import type { NetlinkMessage } from '../../../src/kernel/netlink/message.js';
import { NetlinkParseError } from '../../../src/kernel/netlink/message.js';
import { algorithm } from '../../../src/crypto/registry.js';
import { algorithmAttributes, kernelAlgorithms } from '../../../src/kernel/xfrm/algorithms.js';
import * as C from '../../../src/kernel/xfrm/constants.js';
import {
  buildAllocSpi,
  buildPolicy,
  buildPolicyId,
  buildSa,
  buildSaId,
  buildSocketBypass,
  decodePolicyMessage,
  decodeSaMessage,
  decodeXfrmEvent,
  lifetimeCfg,
} from '../../../src/kernel/xfrm/messages.js';
import { anySelector, type XfrmSelector } from '../../../src/kernel/xfrm/structs.js';
import { attr, defaultLifetimeCfg, hex, INF, ip4, join, Layout } from './layout.js';

const LOCAL = Uint8Array.from(ip4('192.0.2.1'));
const REMOTE = Uint8Array.from(ip4('203.0.113.9'));
const KEY = Uint8Array.from({ length: 16 }, (_, i) => i);
const IKEY = Uint8Array.from({ length: 20 }, (_, i) => 0x80 + i);

const SELECTOR: XfrmSelector = {
  ...anySelector(C.AF_INET),
  daddr: Uint8Array.from(ip4('198.51.100.0')),
  saddr: Uint8Array.from(ip4('203.0.113.0')),
  prefixlenD: 24,
  prefixlenS: 24,
};

function message(type: number, payload: Uint8Array): NetlinkMessage {
  return { type, flags: 0, seq: 0, pid: 0, payload };
}

/** The algorithm attributes for aes128-sha1 with KEY and IKEY, built from the header layout. */
function cbcSha1(): Uint8Array {
  return join(
    attr(2, new Layout(68 + 16).ascii(0, 'cbc(aes)').u32(64, 128).put(68, KEY).bytes), // XFRMA_ALG_CRYPT
    attr(20, new Layout(72 + 20).ascii(0, 'hmac(sha1)').u32(64, 160).u32(68, 96).put(72, IKEY).bytes), // XFRMA_ALG_AUTH_TRUNC
  );
}

t.test('NEWSA payload: inbound tunnel SA with ESP-in-UDP, 32-packet window, hard lifetime', async (t) => {
  const suite = { encr: algorithm('encr', 'aes128'), integ: algorithm('integ', 'sha1') };
  const payload = buildSa({
    src: REMOTE,
    dst: LOCAL,
    spi: 0xc0000001,
    mode: C.XFRM_MODE_TUNNEL,
    reqid: 0x1ce00001,
    selector: anySelector(),
    lifetime: lifetimeCfg({ hardAddSeconds: 3630 }),
    replayWindow: 32,
    algorithms: algorithmAttributes(kernelAlgorithms(suite), KEY, IKEY),
    encap: { sport: 31337, dport: 4500 },
  });
  const info = new Layout(224);
  // sel 0..55: all zero (the kernel gives an SA's empty selector the SA's family)
  info.put(56, ip4('192.0.2.1')); // id.daddr: inbound, so ours
  info.be32(72, 0xc0000001); // id.spi
  info.u8(76, 50); // id.proto ESP
  info.put(80, ip4('203.0.113.9')); // saddr: the peer
  defaultLifetimeCfg(info, 96, { soft: 0n, hard: 3630n }); // lft
  // curlft 160..191 and stats 192..203 zero; seq 204 zero
  info.u32(208, 0x1ce00001); // reqid
  info.u16(212, 2); // family AF_INET
  info.u8(214, 1); // mode tunnel
  info.u8(215, 32); // replay_window
  info.u8(216, 0); // flags
  const encap = new Layout(24).u16(0, 2).be16(2, 31337).be16(4, 4500); // UDP_ENCAP_ESPINUDP, sport, dport
  const expected = join(info.bytes, cbcSha1(), attr(4, encap.bytes)); // XFRMA_ENCAP
  t.equal(hex(payload), hex(expected));
  t.equal(payload.length, 224 + 88 + 96 + 28);
});

t.test(
  'NEWSA payload: a window above 32 goes in XFRMA_REPLAY_ESN_VAL, the struct field stays 0',
  async (t) => {
    const suite = { encr: algorithm('encr', 'aes128'), integ: algorithm('integ', 'sha1') };
    const payload = buildSa({
      src: LOCAL,
      dst: REMOTE,
      spi: 0xc0000002,
      mode: C.XFRM_MODE_TRANSPORT,
      reqid: 0x1ce00002,
      selector: SELECTOR,
      lifetime: lifetimeCfg({ softBytes: 900n, hardBytes: 1000n }),
      replayWindow: 64,
      algorithms: algorithmAttributes(kernelAlgorithms(suite), KEY, IKEY),
    });
    const info = new Layout(224);
    info.put(0, ip4('198.51.100.0')).put(16, ip4('203.0.113.0')).u16(40, 2).u8(42, 24).u8(43, 24); // sel
    info.put(56, ip4('203.0.113.9')).be32(72, 0xc0000002).u8(76, 50); // id
    info.put(80, ip4('192.0.2.1')); // saddr
    info.u64(96, 900n).u64(104, 1000n).u64(112, INF).u64(120, INF); // byte and packet limits
    info.u32(208, 0x1ce00002).u16(212, 2).u8(214, 0).u8(215, 0); // reqid, family, transport, window 0
    const esn = new Layout(32).u32(0, 2).u32(20, 64); // bmp_len 2, replay_window 64, bitmap zero
    t.equal(hex(payload), hex(join(info.bytes, cbcSha1(), attr(23, esn.bytes)))); // XFRMA_REPLAY_ESN_VAL
    t.throws(
      () =>
        buildSa({
          src: LOCAL,
          dst: REMOTE,
          spi: 1,
          mode: 0,
          reqid: 1,
          lifetime: lifetimeCfg(),
          replayWindow: 5000,
          algorithms: [],
        }),
      /replay window 5000/,
    );
  },
);

t.test('DELSA/GETSA, ALLOCSPI, policy, policy id and socket bypass payloads', async (t) => {
  const id = new Layout(24).put(0, ip4('203.0.113.9')).be32(16, 0xc0000003).u16(20, 2).u8(22, 50);
  t.equal(hex(buildSaId(REMOTE, 0xc0000003)), hex(id.bytes));
  const src = new Layout(16).put(0, ip4('192.0.2.1'));
  t.equal(
    hex(buildSaId(REMOTE, 0xc0000003, LOCAL)),
    hex(join(id.bytes, attr(13, src.bytes))),
    'XFRMA_SRCADDR',
  );

  const spi = new Layout(232);
  // info.sel zero
  spi.put(56, ip4('192.0.2.1')).be32(72, 0).u8(76, 50); // id: the larval inbound SA, spi 0
  spi.put(80, ip4('203.0.113.9')); // saddr
  defaultLifetimeCfg(spi, 96);
  spi.u32(208, 0x1ce00000).u16(212, 2).u8(214, 1); // reqid (larval), family, tunnel
  spi.u32(224, 0xc0000000).u32(228, 0xcfffffff); // min, max
  t.equal(
    hex(
      buildAllocSpi({
        src: REMOTE,
        dst: LOCAL,
        reqid: 0x1ce00000,
        mode: 1,
        min: 0xc0000000,
        max: 0xcfffffff,
      }),
    ),
    hex(spi.bytes),
  );

  const template = {
    id: { daddr: LOCAL, spi: 0, proto: 50 },
    family: 2,
    saddr: REMOTE,
    reqid: 0x1ce00001,
    mode: 1,
    share: 0,
    optional: 0,
    aalgos: 0xffffffff,
    ealgos: 0xffffffff,
    calgos: 0xffffffff,
  };
  const policy = new Layout(168);
  policy.put(0, ip4('198.51.100.0')).put(16, ip4('203.0.113.0')).u16(40, 2).u8(42, 24).u8(43, 24); // sel
  defaultLifetimeCfg(policy, 56); // lft; curlft zero
  policy.u32(152, 0x1ce3cf); // priority
  policy.u32(156, 0); // index: the kernel picks
  policy.u8(160, 2).u8(161, 0).u8(162, 0).u8(163, 0); // dir fwd, allow, flags, share
  const tmpl = new Layout(64);
  tmpl
    .put(0, ip4('192.0.2.1'))
    .u8(20, 50)
    .u16(24, 2)
    .put(28, ip4('203.0.113.9'))
    .u32(44, 0x1ce00001)
    .u8(48, 1);
  tmpl.u32(52, 0xffffffff).u32(56, 0xffffffff).u32(60, 0xffffffff);
  t.equal(
    hex(
      buildPolicy({ selector: SELECTOR, dir: C.XFRM_POLICY_FWD, priority: 0x1ce3cf, templates: [template] }),
    ),
    hex(join(policy.bytes, attr(5, tmpl.bytes))), // XFRMA_TMPL
  );

  const pid = new Layout(64);
  pid.put(0, ip4('198.51.100.0')).put(16, ip4('203.0.113.0')).u16(40, 2).u8(42, 24).u8(43, 24);
  pid.u8(60, 1); // dir out, index 0
  t.equal(hex(buildPolicyId(SELECTOR, C.XFRM_POLICY_OUT)), hex(pid.bytes));

  const bypass = new Layout(168);
  bypass.u16(40, 10); // sel.family AF_INET6 (xfrm_compile_policy -> verify_newpolicy_info wants it)
  defaultLifetimeCfg(bypass, 56);
  bypass.u8(160, 1); // dir out, action allow, no template
  t.equal(hex(buildSocketBypass(C.AF_INET6, C.XFRM_POLICY_OUT)), hex(bypass.bytes));
});

/** An SA as the kernel returns it to GETSA: xfrm_usersa_info, then XFRMA_REPLAY_VAL. */
function getsaAnswer(): Uint8Array {
  const info = new Layout(224);
  info.put(0, ip4('203.0.113.9')).put(16, ip4('192.0.2.1')).u16(40, 2).u8(42, 32).u8(43, 32); // sel filled in
  info.put(56, ip4('192.0.2.1')).be32(72, 0xc0000001).u8(76, 50);
  info.put(80, ip4('203.0.113.9'));
  defaultLifetimeCfg(info, 96, { soft: 0n, hard: 3630n });
  info.u64(160, 123456n).u64(168, 789n).u64(176, 1700000000n); // curlft bytes, packets, add_time
  info.u32(208, 0x1ce00001).u16(212, 2).u8(214, 1).u8(215, 32);
  return join(info.bytes, attr(10, new Layout(12).u32(4, 789).u32(8, 0xffffffff).bytes)); // XFRMA_REPLAY_VAL
}

t.test('a GETSA answer decodes with its counters and attributes', async (t) => {
  const sa = decodeSaMessage(message(C.XFRM_MSG_NEWSA, getsaAnswer()));
  t.equal(sa.info.id.spi, 0xc0000001);
  t.equal(sa.info.curlft.bytes, 123456n);
  t.equal(sa.info.curlft.packets, 789n);
  t.equal(sa.info.reqid, 0x1ce00001);
  t.same(
    sa.attributes.map((a) => a.type),
    [C.XFRMA_REPLAY_VAL],
  );
  t.throws(() => decodeSaMessage(message(C.XFRM_MSG_NEWSA, getsaAnswer().subarray(0, 200))), {
    name: 'NetlinkParseError',
    message: /XFRM_MSG_NEWSA: xfrm_usersa_info of 200 bytes is truncated: it needs 224/,
  });
  const garbled = getsaAnswer();
  garbled[224] = 200; // the attribute claims 200 bytes
  t.throws(
    () => decodeSaMessage(message(C.XFRM_MSG_NEWSA, garbled)),
    /XFRM_MSG_NEWSA: attribute length 200 does not fit/,
  );
});

t.test('a policy from a dump decodes with its templates', async (t) => {
  const policy = new Layout(168);
  policy.u16(40, 2).u32(152, 0x1ce3ff).u32(156, 0x19).u8(160, 1);
  const tmpl = new Layout(64).u8(20, 50).u16(24, 2).u32(44, 0x1ce00007).u8(48, 0);
  const decoded = decodePolicyMessage(message(C.XFRM_MSG_NEWPOLICY, join(policy.bytes, attr(5, tmpl.bytes))));
  t.equal(decoded.info.index, 0x19);
  t.equal(decoded.templates.length, 1);
  t.equal(decoded.templates[0]!.reqid, 0x1ce00007);
  t.throws(
    () =>
      decodePolicyMessage(
        message(C.XFRM_MSG_NEWPOLICY, join(policy.bytes, attr(5, tmpl.bytes.subarray(0, 60)))),
      ),
    /XFRM_MSG_NEWPOLICY: XFRMA_TMPL of 60 bytes is not a whole number/,
  );
});

function acquirePayload(reqid: number): Uint8Array {
  const a = new Layout(280);
  a.put(0, ip4('203.0.113.9')).u8(20, 50); // id: where the SA should go
  a.put(24, ip4('192.0.2.1')); // saddr
  a.put(40, ip4('203.0.113.7')).put(56, ip4('198.51.100.7')).u16(80, 2).u8(82, 32).u8(83, 32).u8(84, 1); // sel: the packet
  a.u16(96 + 40, 2)
    .u32(96 + 152, 0x1ce7ff)
    .u32(96 + 156, 0x21)
    .u8(96 + 160, 1); // policy
  a.u32(264, 0xffffffff).u32(268, 0xffffffff).u32(272, 0xffffffff).u32(276, 5); // algos, seq
  const tmpl = new Layout(64).put(0, ip4('203.0.113.9')).u8(20, 50).u16(24, 2).put(28, ip4('192.0.2.1'));
  tmpl.u32(44, reqid).u8(48, 1);
  return join(a.bytes, attr(5, tmpl.bytes), attr(16, new Layout(8).bytes)); // XFRMA_TMPL, XFRMA_POLICY_TYPE
}

t.test('ACQUIRE, EXPIRE and MAPPING events decode; others are "other"', async (t) => {
  const acquire = decodeXfrmEvent(message(C.XFRM_MSG_ACQUIRE, acquirePayload(0x1ce00004)));
  t.equal(acquire.kind, 'acquire');
  if (acquire.kind === 'acquire') {
    t.equal(acquire.templates[0]!.reqid, 0x1ce00004);
    t.equal(acquire.acquire.seq, 5);
    t.equal(acquire.acquire.sel.proto, 1);
    t.equal(acquire.acquire.policy.index, 0x21);
  }

  const expire = new Layout(232);
  expire.put(56, ip4('203.0.113.9')).be32(72, 0xc0000010).u8(76, 50).u16(212, 2).u32(208, 0x1ce00004);
  expire.u8(224, 0); // soft
  const soft = decodeXfrmEvent(message(C.XFRM_MSG_EXPIRE, join(expire.bytes, attr(21, new Layout(8).bytes))));
  t.equal(soft.kind, 'expire');
  if (soft.kind === 'expire') {
    t.equal(soft.expire.hard, false);
    t.equal(soft.expire.state.id.spi, 0xc0000010);
  }

  const mapping = new Layout(64).put(0, ip4('192.0.2.1')).be32(16, 0xc0000011).u16(20, 2).u8(22, 50);
  mapping.put(28, ip4('203.0.113.9')).put(44, ip4('203.0.113.10')).be16(60, 4500).be16(62, 1025);
  const moved = decodeXfrmEvent(message(C.XFRM_MSG_MAPPING, mapping.bytes));
  t.equal(moved.kind, 'mapping');
  if (moved.kind === 'mapping') t.equal(moved.mapping.newSport, 1025);

  const polexpire = new Layout(176).u16(40, 2).u8(168, 1);
  t.equal(decodeXfrmEvent(message(C.XFRM_MSG_POLEXPIRE, polexpire.bytes)).kind, 'polexpire');
  t.same(decodeXfrmEvent(message(C.XFRM_MSG_NEWSA, new Uint8Array(0))), {
    kind: 'other',
    type: C.XFRM_MSG_NEWSA,
  });
});

t.test('truncated or garbled events are NetlinkParseErrors naming the message', async (t) => {
  t.throws(() => decodeXfrmEvent(message(C.XFRM_MSG_ACQUIRE, acquirePayload(1).subarray(0, 279))), {
    name: 'NetlinkParseError',
    message: /^XFRM_MSG_ACQUIRE: xfrm_user_acquire of 279 bytes is truncated: it needs 280 \(at byte 16\)$/,
  });
  t.throws(
    () => decodeXfrmEvent(message(C.XFRM_MSG_EXPIRE, new Uint8Array(224))),
    /XFRM_MSG_EXPIRE: xfrm_user_expire of 224 bytes/,
  );
  t.throws(
    () => decodeXfrmEvent(message(C.XFRM_MSG_MAPPING, new Uint8Array(10))),
    /XFRM_MSG_MAPPING: xfrm_user_mapping of 10 bytes/,
  );
  const garbled = acquirePayload(1);
  garbled[280] = 3; // an attribute shorter than its own header
  t.throws(() => decodeXfrmEvent(message(C.XFRM_MSG_ACQUIRE, garbled)), NetlinkParseError);
  t.throws(
    () => decodeXfrmEvent(message(C.XFRM_MSG_ACQUIRE, garbled)),
    /XFRM_MSG_ACQUIRE: attribute length 3 does not fit \(at byte 296\)/,
  );
  const badTemplate = join(acquirePayload(1).subarray(0, 280), attr(5, new Uint8Array(10)));
  t.throws(() => decodeXfrmEvent(message(C.XFRM_MSG_ACQUIRE, badTemplate)), /XFRMA_TMPL of 10 bytes/);
});
