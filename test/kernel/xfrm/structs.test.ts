import t from 'tap';
import { NetlinkParseError } from '../../../src/kernel/netlink/message.js';
import * as C from '../../../src/kernel/xfrm/constants.js';
import {
  addressBytes,
  decodeAlgo,
  decodeAlgoAead,
  decodeAlgoAuth,
  decodeEncapTmpl,
  decodeLifetimeCur,
  decodeMark,
  decodeReplayStateEsn,
  decodeSelector,
  decodeUserAcquire,
  decodeUserExpire,
  decodeUserMapping,
  decodeUserpolicyId,
  decodeUserpolicyInfo,
  decodeUsersaId,
  decodeUsersaInfo,
  decodeUserspiInfo,
  decodeUserTmpls,
  encodeAlgo,
  encodeAlgoAead,
  encodeAlgoAuth,
  encodeEncapTmpl,
  encodeId,
  encodeLifetimeCfg,
  encodeMark,
  encodeReplayStateEsn,
  encodeSelector,
  encodeUserAcquire,
  encodeUserExpire,
  encodeUserMapping,
  encodeUserpolicyId,
  encodeUserpolicyInfo,
  encodeUsersaId,
  encodeUsersaInfo,
  encodeUserspiInfo,
  encodeUserTmpls,
  type XfrmSelector,
  type XfrmUsersaInfo,
  type XfrmUserpolicyInfo,
  type XfrmUserTmpl,
} from '../../../src/kernel/xfrm/structs.js';
import { defaultLifetimeCfg, hex, INF, ip4, Layout } from './layout.js';

const A = Uint8Array.from(ip4('192.0.2.1'));
const B = Uint8Array.from(ip4('203.0.113.9'));
const NET_L = Uint8Array.from(ip4('198.51.100.0'));
const NET_R = Uint8Array.from(ip4('203.0.113.0'));
const V6 = Uint8Array.from(Buffer.from('20010db8000000000000000000000001', 'hex'));

/** 198.51.100.0/24 -> 203.0.113.0/24, tcp, to port 443. */
const SELECTOR: XfrmSelector = {
  daddr: NET_R,
  saddr: NET_L,
  dport: 443,
  dportMask: 0xffff,
  sport: 0,
  sportMask: 0,
  family: C.AF_INET,
  prefixlenD: 24,
  prefixlenS: 24,
  proto: C.IPPROTO_TCP,
  ifindex: 0,
  user: 0,
};

function selectorBytes(l: Layout, at: number): void {
  l.put(at + 0, ip4('203.0.113.0')); // daddr (xfrm_address_t, a4 in the first 4 bytes)
  l.put(at + 16, ip4('198.51.100.0')); // saddr
  l.be16(at + 32, 443); // dport (__be16)
  l.be16(at + 34, 0xffff); // dport_mask
  l.be16(at + 36, 0); // sport
  l.be16(at + 38, 0); // sport_mask
  l.u16(at + 40, 2); // family AF_INET
  l.u8(at + 42, 24); // prefixlen_d
  l.u8(at + 43, 24); // prefixlen_s
  l.u8(at + 44, 6); // proto tcp; 45-47 padding
  // 48: ifindex 0; 52: user 0
}

t.test('struct sizes are the x86_64 sizeof values of include/uapi/linux/xfrm.h', async (t) => {
  t.equal(C.XFRM_SELECTOR_SIZE, 56);
  t.equal(C.XFRM_ID_SIZE, 24);
  t.equal(C.XFRM_LIFETIME_CFG_SIZE, 64);
  t.equal(C.XFRM_LIFETIME_CUR_SIZE, 32);
  t.equal(C.XFRM_USERSA_INFO_SIZE, 224);
  t.equal(C.XFRM_USERSA_ID_SIZE, 24);
  t.equal(C.XFRM_USERSPI_INFO_SIZE, 232);
  t.equal(C.XFRM_USERPOLICY_INFO_SIZE, 168);
  t.equal(C.XFRM_USERPOLICY_ID_SIZE, 64);
  t.equal(C.XFRM_USER_TMPL_SIZE, 64);
  t.equal(C.XFRM_ENCAP_TMPL_SIZE, 24);
  t.equal(C.XFRM_USER_ACQUIRE_SIZE, 280);
  t.equal(C.XFRM_USER_EXPIRE_SIZE, 232);
  t.equal(C.XFRM_USER_MAPPING_SIZE, 64);
  t.equal(C.XFRM_ALGO_SIZE, 68);
  t.equal(C.XFRM_ALGO_AUTH_SIZE, 72);
  t.equal(C.XFRM_ALGO_AEAD_SIZE, 72);
  t.equal(C.XFRM_REPLAY_STATE_ESN_SIZE, 24);
  t.equal(C.XFRM_MSG_NEWSA, 16);
  t.equal(C.XFRM_MSG_MAPPING, 38);
  t.equal(C.XFRMA_ALG_AUTH_TRUNC, 20);
  t.equal(C.XFRMA_SA_EXTRA_FLAGS, 24);
  t.equal(C.XFRMA_IF_ID, 31);
  t.same(C.XFRM_EVENT_GROUPS, [1, 2, 8], 'ACQUIRE, EXPIRE, MAPPING group numbers');
});

t.test('xfrm_selector: 56 bytes, ports big-endian, family and prefixes in host order', async (t) => {
  const l = new Layout(56);
  selectorBytes(l, 0);
  const bytes = encodeSelector(SELECTOR);
  t.equal(hex(bytes), hex(l.bytes));
  const back = decodeSelector(bytes);
  t.same(addressBytes(back.daddr, back.family), NET_R);
  t.equal(back.dport, 443);
  t.equal(back.prefixlenS, 24);
  t.equal(back.proto, 6);
  t.equal(back.daddr.length, 16, 'decoded addresses keep the whole xfrm_address_t');
  t.throws(
    () => decodeSelector(bytes.subarray(0, 55)),
    /xfrm_selector of 55 bytes is truncated: it needs 56/,
  );

  const v6: XfrmSelector = { ...SELECTOR, daddr: V6, saddr: V6, family: C.AF_INET6, prefixlenD: 128 };
  const l6 = new Layout(56);
  l6.put(0, V6).put(16, V6).be16(32, 443).be16(34, 0xffff).u16(40, 10).u8(42, 128).u8(43, 24).u8(44, 6);
  t.equal(hex(encodeSelector(v6)), hex(l6.bytes), 'IPv6 fills all 16 address bytes');
  t.throws(() => encodeSelector({ ...SELECTOR, daddr: new Uint8Array(5) }), /4 or 16 bytes/);
});

t.test('xfrm_id: daddr, __be32 spi at 16, proto at 20, 3 bytes padding', async (t) => {
  const l = new Layout(24).put(0, ip4('203.0.113.9')).be32(16, 0xc0ffee01).u8(20, 50);
  t.equal(hex(encodeId({ daddr: B, spi: 0xc0ffee01, proto: C.IPPROTO_ESP })), hex(l.bytes));
});

t.test('xfrm_lifetime_cfg and xfrm_lifetime_cur: __u64 in host order', async (t) => {
  const l = new Layout(64);
  l.u64(0, 1n); // soft_byte_limit
  l.u64(8, 2n); // hard_byte_limit
  l.u64(16, INF); // soft_packet_limit
  l.u64(24, INF); // hard_packet_limit
  l.u64(32, 0n); // soft_add_expires_seconds
  l.u64(40, 3630n); // hard_add_expires_seconds
  l.u64(48, 5n); // soft_use_expires_seconds
  l.u64(56, 6n); // hard_use_expires_seconds
  const bytes = encodeLifetimeCfg({
    softByteLimit: 1n,
    hardByteLimit: 2n,
    softPacketLimit: INF,
    hardPacketLimit: INF,
    softAddExpiresSeconds: 0n,
    hardAddExpiresSeconds: 3630n,
    softUseExpiresSeconds: 5n,
    hardUseExpiresSeconds: 6n,
  });
  t.equal(hex(bytes), hex(l.bytes));
  const cur = new Layout(32).u64(0, 123456789012n).u64(8, 42n).u64(16, 1700000000n).u64(24, 1700000100n);
  t.same(decodeLifetimeCur(cur.bytes), {
    bytes: 123456789012n,
    packets: 42n,
    addTime: 1700000000n,
    useTime: 1700000100n,
  });
  t.throws(() => decodeLifetimeCur(new Uint8Array(31)), NetlinkParseError);
});

const SA_INFO: XfrmUsersaInfo = {
  sel: SELECTOR,
  id: { daddr: B, spi: 0xc0ffee01, proto: C.IPPROTO_ESP },
  saddr: A,
  lft: {
    softByteLimit: INF,
    hardByteLimit: INF,
    softPacketLimit: INF,
    hardPacketLimit: INF,
    softAddExpiresSeconds: 0n,
    hardAddExpiresSeconds: 3630n,
    softUseExpiresSeconds: 0n,
    hardUseExpiresSeconds: 0n,
  },
  curlft: { bytes: 1000n, packets: 10n, addTime: 1700000000n, useTime: 0n },
  stats: { replayWindow: 1, replay: 2, integrityFailed: 3 },
  seq: 7,
  reqid: 0x1ce00001,
  family: C.AF_INET,
  mode: C.XFRM_MODE_TUNNEL,
  replayWindow: 32,
  flags: C.XFRM_STATE_AF_UNSPEC,
};

function saInfoBytes(l: Layout, at: number): void {
  selectorBytes(l, at + 0); // sel 0..55
  l.put(at + 56, ip4('203.0.113.9')); // id.daddr
  l.be32(at + 72, 0xc0ffee01); // id.spi
  l.u8(at + 76, 50); // id.proto; 77-79 padding
  l.put(at + 80, ip4('192.0.2.1')); // saddr
  defaultLifetimeCfg(l, at + 96, { soft: 0n, hard: 3630n }); // lft 96..159
  l.u64(at + 160, 1000n); // curlft.bytes
  l.u64(at + 168, 10n); // curlft.packets
  l.u64(at + 176, 1700000000n); // curlft.add_time; 184 use_time 0
  l.u32(at + 192, 1); // stats.replay_window
  l.u32(at + 196, 2); // stats.replay
  l.u32(at + 200, 3); // stats.integrity_failed
  l.u32(at + 204, 7); // seq
  l.u32(at + 208, 0x1ce00001); // reqid
  l.u16(at + 212, 2); // family
  l.u8(at + 214, 1); // mode tunnel
  l.u8(at + 215, 32); // replay_window
  l.u8(at + 216, 32); // flags XFRM_STATE_AF_UNSPEC; 217-223 tail padding
}

t.test('xfrm_usersa_info: 224 bytes with the fields where x86_64 puts them', async (t) => {
  const l = new Layout(224);
  saInfoBytes(l, 0);
  const bytes = encodeUsersaInfo(SA_INFO);
  t.equal(bytes.length, 224);
  t.equal(hex(bytes), hex(l.bytes));
  const back = decodeUsersaInfo(bytes);
  t.equal(back.id.spi, 0xc0ffee01);
  t.equal(back.reqid, 0x1ce00001);
  t.equal(back.curlft.bytes, 1000n);
  t.equal(back.lft.hardAddExpiresSeconds, 3630n);
  t.equal(back.stats.integrityFailed, 3);
  t.equal(back.flags, 32);
  t.same(addressBytes(back.saddr, back.family), A);
  t.throws(() => decodeUsersaInfo(bytes.subarray(0, 220)), /xfrm_usersa_info of 220 bytes is truncated/);
});

t.test('xfrm_usersa_id and xfrm_userspi_info', async (t) => {
  const id = new Layout(24).put(0, ip4('203.0.113.9')).be32(16, 0xc0000001).u16(20, 2).u8(22, 50);
  const bytes = encodeUsersaId({ daddr: B, spi: 0xc0000001, family: C.AF_INET, proto: C.IPPROTO_ESP });
  t.equal(hex(bytes), hex(id.bytes));
  t.equal(decodeUsersaId(bytes).spi, 0xc0000001);

  const spi = new Layout(232);
  saInfoBytes(spi, 0);
  spi.u32(224, 0xc0000000); // min
  spi.u32(228, 0xcfffffff); // max
  const spiBytes = encodeUserspiInfo({ info: SA_INFO, min: 0xc0000000, max: 0xcfffffff });
  t.equal(hex(spiBytes), hex(spi.bytes));
  const back = decodeUserspiInfo(spiBytes);
  t.equal(back.max, 0xcfffffff);
  t.equal(back.info.reqid, 0x1ce00001);
});

const POLICY: XfrmUserpolicyInfo = {
  sel: SELECTOR,
  lft: {
    softByteLimit: INF,
    hardByteLimit: INF,
    softPacketLimit: INF,
    hardPacketLimit: INF,
    softAddExpiresSeconds: 0n,
    hardAddExpiresSeconds: 0n,
    softUseExpiresSeconds: 0n,
    hardUseExpiresSeconds: 0n,
  },
  curlft: { bytes: 0n, packets: 0n, addTime: 0n, useTime: 0n },
  priority: 0x1ce3ff,
  index: 0x11,
  dir: C.XFRM_POLICY_OUT,
  action: C.XFRM_POLICY_ALLOW,
  flags: 0,
  share: 0,
};

function policyBytes(l: Layout, at: number): void {
  selectorBytes(l, at + 0); // sel 0..55
  defaultLifetimeCfg(l, at + 56); // lft 56..119; curlft 120..151 zero
  l.u32(at + 152, 0x1ce3ff); // priority
  l.u32(at + 156, 0x11); // index
  l.u8(at + 160, 1); // dir out
  l.u8(at + 161, 0); // action allow
  l.u8(at + 162, 0); // flags
  l.u8(at + 163, 0); // share; 164-167 padding
}

t.test('xfrm_userpolicy_info (168) and xfrm_userpolicy_id (64)', async (t) => {
  const l = new Layout(168);
  policyBytes(l, 0);
  const bytes = encodeUserpolicyInfo(POLICY);
  t.equal(hex(bytes), hex(l.bytes));
  const back = decodeUserpolicyInfo(bytes);
  t.equal(back.priority, 0x1ce3ff);
  t.equal(back.index, 0x11);
  t.equal(back.dir, 1);

  const id = new Layout(64);
  selectorBytes(id, 0);
  id.u32(56, 0x11); // index
  id.u8(60, 1); // dir; 61-63 padding
  const idBytes = encodeUserpolicyId({ sel: SELECTOR, index: 0x11, dir: C.XFRM_POLICY_OUT });
  t.equal(hex(idBytes), hex(id.bytes));
  t.equal(decodeUserpolicyId(idBytes).dir, 1);
});

t.test('xfrm_user_tmpl: 64 bytes each, several in one XFRMA_TMPL', async (t) => {
  const template: XfrmUserTmpl = {
    id: { daddr: B, spi: 0, proto: C.IPPROTO_ESP },
    family: C.AF_INET,
    saddr: A,
    reqid: 0x1ce00002,
    mode: C.XFRM_MODE_TUNNEL,
    share: 0,
    optional: 0,
    aalgos: 0xffffffff,
    ealgos: 0xffffffff,
    calgos: 0xffffffff,
  };
  const l = new Layout(128);
  for (const at of [0, 64]) {
    l.put(at + 0, ip4('203.0.113.9')); // id.daddr
    l.be32(at + 16, 0); // id.spi
    l.u8(at + 20, 50); // id.proto
    l.u16(at + 24, 2); // family; 26-27 padding
    l.put(at + 28, ip4('192.0.2.1')); // saddr
    l.u32(at + 44, at === 0 ? 0x1ce00002 : 0x1ce00003); // reqid
    l.u8(at + 48, 1); // mode
    l.u8(at + 49, 0); // share
    l.u8(at + 50, 0); // optional; 51 padding
    l.u32(at + 52, 0xffffffff); // aalgos
    l.u32(at + 56, 0xffffffff); // ealgos
    l.u32(at + 60, 0xffffffff); // calgos
  }
  const bytes = encodeUserTmpls([template, { ...template, reqid: 0x1ce00003 }]);
  t.equal(hex(bytes), hex(l.bytes));
  const back = decodeUserTmpls(bytes);
  t.equal(back.length, 2);
  t.equal(back[1]!.reqid, 0x1ce00003);
  t.throws(() => decodeUserTmpls(bytes.subarray(0, 100)), /not a whole number of 64-byte xfrm_user_tmpl/);
});

t.test('xfrm_algo, xfrm_algo_auth, xfrm_algo_aead: name[64], key length in bits, key', async (t) => {
  const key = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  const algo = new Layout(68 + 16).ascii(0, 'cbc(aes)').u32(64, 128).put(68, key);
  t.equal(hex(encodeAlgo({ name: 'cbc(aes)', key })), hex(algo.bytes));
  t.same(decodeAlgo(algo.bytes), { name: 'cbc(aes)', key });

  const ikey = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
  const auth = new Layout(72 + 32).ascii(0, 'hmac(sha256)').u32(64, 256).u32(68, 128).put(72, ikey);
  t.equal(hex(encodeAlgoAuth({ name: 'hmac(sha256)', key: ikey, truncBits: 128 })), hex(auth.bytes));
  t.same(decodeAlgoAuth(auth.bytes), { name: 'hmac(sha256)', key: ikey, truncBits: 128 });

  const gkey = Uint8Array.from({ length: 20 }, (_, i) => 0x10 + i);
  const aead = new Layout(72 + 20).ascii(0, 'rfc4106(gcm(aes))').u32(64, 160).u32(68, 128).put(72, gkey);
  t.equal(hex(encodeAlgoAead({ name: 'rfc4106(gcm(aes))', key: gkey, icvBits: 128 })), hex(aead.bytes));
  t.same(decodeAlgoAead(aead.bytes), { name: 'rfc4106(gcm(aes))', key: gkey, icvBits: 128 });

  t.throws(() => encodeAlgo({ name: 'x'.repeat(64), key }), /does not fit alg_name\[64\]/);
  t.throws(
    () => decodeAlgo(algo.bytes.subarray(0, 80)),
    /xfrm_algo with a 128-bit key of 80 bytes is truncated/,
  );
});

t.test('xfrm_encap_tmpl, xfrm_mark, xfrm_replay_state_esn', async (t) => {
  const encap = new Layout(24).u16(0, 2).be16(2, 4500).be16(4, 31337); // 6-7 padding, oa at 8 zero
  const bytes = encodeEncapTmpl({
    type: C.UDP_ENCAP_ESPINUDP,
    sport: 4500,
    dport: 31337,
    oa: new Uint8Array(16),
  });
  t.equal(hex(bytes), hex(encap.bytes));
  t.same(decodeEncapTmpl(bytes), { type: 2, sport: 4500, dport: 31337, oa: new Uint8Array(16) });

  const mark = new Layout(8).u32(0, 0x42).u32(4, 0xffffffff);
  t.equal(hex(encodeMark({ value: 0x42, mask: 0xffffffff })), hex(mark.bytes));
  t.same(decodeMark(mark.bytes), { value: 0x42, mask: 0xffffffff });

  // bmp_len 2 (64 bits), replay_window 64, then two bitmap words.
  const esn = new Layout(32)
    .u32(0, 2)
    .u32(4, 1)
    .u32(8, 2)
    .u32(12, 3)
    .u32(16, 4)
    .u32(20, 64)
    .u32(24, 0xf0)
    .u32(28, 1);
  const state = { bmpLen: 2, oseq: 1, seq: 2, oseqHi: 3, seqHi: 4, replayWindow: 64, bmp: [0xf0, 1] };
  t.equal(hex(encodeReplayStateEsn(state)), hex(esn.bytes));
  t.same(decodeReplayStateEsn(esn.bytes), state);
  t.throws(() => decodeReplayStateEsn(esn.bytes.subarray(0, 28)), /bmp_len 2 of 28 bytes is truncated/);
});

t.test('events: xfrm_user_acquire (280), xfrm_user_expire (232), xfrm_user_mapping (64)', async (t) => {
  const acquire = new Layout(280);
  acquire.put(0, ip4('203.0.113.9')).be32(16, 0).u8(20, 50); // id
  acquire.put(24, ip4('192.0.2.1')); // saddr
  selectorBytes(acquire, 40); // sel 40..95
  policyBytes(acquire, 96); // policy 96..263
  acquire.u32(264, 0xffffffff).u32(268, 0xfffffffe).u32(272, 0xfffffffd).u32(276, 99); // aalgos, ealgos, calgos, seq
  const acquireValue = {
    id: { daddr: B, spi: 0, proto: 50 },
    saddr: A,
    sel: SELECTOR,
    policy: POLICY,
    aalgos: 0xffffffff,
    ealgos: 0xfffffffe,
    calgos: 0xfffffffd,
    seq: 99,
  };
  t.equal(hex(encodeUserAcquire(acquireValue)), hex(acquire.bytes));
  const a = decodeUserAcquire(acquire.bytes);
  t.equal(a.seq, 99);
  t.equal(a.policy.priority, 0x1ce3ff);
  t.equal(a.sel.dport, 443);

  const expire = new Layout(232);
  saInfoBytes(expire, 0);
  expire.u8(224, 1); // hard; 225-231 padding
  t.equal(hex(encodeUserExpire({ state: SA_INFO, hard: true })), hex(expire.bytes));
  const e = decodeUserExpire(expire.bytes);
  t.equal(e.hard, true);
  t.equal(e.state.id.spi, 0xc0ffee01);

  const mapping = new Layout(64);
  mapping.put(0, ip4('192.0.2.1')).be32(16, 0xc0000005).u16(20, 2).u8(22, 50); // id (xfrm_usersa_id)
  mapping.u32(24, 0x1ce00001); // reqid
  mapping.put(28, ip4('203.0.113.9')); // old_saddr
  mapping.put(44, ip4('203.0.113.10')); // new_saddr
  mapping.be16(60, 4500); // old_sport
  mapping.be16(62, 61000); // new_sport
  const mappingValue = {
    id: { daddr: A, spi: 0xc0000005, family: 2, proto: 50 },
    reqid: 0x1ce00001,
    oldSaddr: B,
    newSaddr: Uint8Array.from(ip4('203.0.113.10')),
    oldSport: 4500,
    newSport: 61000,
  };
  t.equal(hex(encodeUserMapping(mappingValue)), hex(mapping.bytes));
  const m = decodeUserMapping(mapping.bytes);
  t.equal(m.newSport, 61000);
  t.same(addressBytes(m.newSaddr, 2), Uint8Array.from(ip4('203.0.113.10')));
  t.throws(() => decodeUserMapping(mapping.bytes.subarray(0, 63)), /xfrm_user_mapping of 63 bytes/);
});
