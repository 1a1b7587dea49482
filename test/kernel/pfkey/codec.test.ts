import t from 'tap';
import {
  type CodecOptions,
  decodeMessage,
  encodeMessage,
  PfkeyEncodeError,
  PfkeyParseError,
  type SadbMessage,
} from '../../../src/kernel/pfkey/codec.js';
import {
  buildAddFlow,
  buildAddSa,
  buildAskPolicy,
  buildDelFlow,
  buildDump,
  buildFlush,
  buildGetSpi,
  buildRegister,
  buildSaQuery,
  buildSpdAdd,
  buildSpdDelete,
  buildSpdDelete2,
  buildSpdDump,
  bypassPolicyOption,
  readAcquire,
  readCounters,
  readDumpedSa,
  readExpire,
  readFlow,
  readNewMapping,
  readPolicy,
  readSpi,
  readSupported,
  type SadbRequest,
  type SaSpec,
} from '../../../src/kernel/pfkey/messages.js';
import {
  B,
  extAddress,
  extCounter,
  extKey,
  extLifetime,
  extNatPort,
  extNatType,
  extPolicy,
  extPolicySeq,
  extProposal,
  extProtocol,
  extSa,
  extSa2,
  extSpirange,
  extSupported,
  extTag,
  extUdpencap,
  hex,
  ipsecRequest,
  msg,
} from './helpers.js';

const LINUX: CodecOptions = { flavour: 'linux', littleEndian: true };
const OPENBSD: CodecOptions = { flavour: 'openbsd', littleEndian: true };
const PID = 0x1234;

function encode(request: SadbRequest, options: CodecOptions, seq = 7): Uint8Array {
  return encodeMessage({ ...request, seq, pid: PID }, options);
}

const AUTH_KEY = Uint8Array.from({ length: 20 }, (_, i) => 0xa0 + i);
const ENC_KEY = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);

function outboundSpec(overrides: Partial<SaSpec> = {}): SaSpec {
  return {
    direction: 'out',
    spi: 0xc1234567,
    src: '192.0.2.1',
    dst: '192.0.2.2',
    auth: 3,
    encrypt: 12,
    authKey: AUTH_KEY,
    encryptKey: ENC_KEY,
    replay: 32,
    mode: 'tunnel',
    reqid: 0x3c00,
    lifetime: { hard: { seconds: 3600n, bytes: 0n }, soft: { seconds: 3240n, bytes: 0n } },
    udpEncap: { sport: 4500, dport: 4501 },
    ...overrides,
  };
}

t.test('struct sizes from the headers hold in the hand-built fixtures', async (t) => {
  t.equal(msg({ type: 1, satype: 3, seq: 0, pid: 0 }).length, 16, 'sizeof(struct sadb_msg) == 16');
  t.equal(extSa({ spi: 1 }).length, 16, 'sizeof(struct sadb_sa) == 16');
  t.equal(extLifetime(2, {}).length, 32, 'sizeof(struct sadb_lifetime) == 32');
  t.equal(extAddress('linux', 5, '192.0.2.1').length, 24, 'sadb_address + sockaddr_in = 8 + 16');
  t.equal(extAddress('linux', 5, '2001:db8::1').length, 40, 'sadb_address + sockaddr_in6 = 8 + 28 -> 40');
  t.equal(extSpirange(1, 2).length, 16, 'sizeof(struct sadb_spirange) == 16');
  t.equal(extSa2(2, 1).length, 16, 'sizeof(struct sadb_x_sa2) == 16');
  t.equal(extPolicy({ type: 2, dir: 1 }).length, 16, 'sizeof(struct sadb_x_policy) == 16 (Linux)');
  t.equal(ipsecRequest({ proto: 50, mode: 1, level: 3, reqid: 1 }).length, 16, 'sadb_x_ipsecrequest == 16');
  t.equal(extPolicySeq(1).length, 8, 'OpenBSD sadb_x_policy == 8');
  t.equal(extProtocol(19, 6).length, 8, 'OpenBSD sadb_protocol == 8');
  t.equal(extCounter(Array(8).fill(0n)).length, 72, 'OpenBSD sadb_x_counter == 72');
});

t.test(
  'SADB_GETSPI: spirange, then the inbound SA endpoints (Linux and OpenBSD sockaddr layouts)',
  async (t) => {
    const request = buildGetSpi('linux', {
      src: '192.0.2.2',
      dst: '192.0.2.1',
      min: 0xc0000000,
      max: 0xcfffffff,
    });
    t.equal(
      hex(encode(request, LINUX)),
      hex(
        msg(
          { type: 1, satype: 3, seq: 7, pid: PID }, // SADB_GETSPI, Linux SADB_SATYPE_ESP 3
          extSpirange(0xc0000000, 0xcfffffff),
          extAddress('linux', 5, '192.0.2.2'), // SADB_EXT_ADDRESS_SRC: the peer
          extAddress('linux', 6, '192.0.2.1'), // SADB_EXT_ADDRESS_DST: us
        ),
      ),
    );
    // Hand-checked: the Linux source address extension, byte by byte.
    t.equal(
      hex(extAddress('linux', 5, '192.0.2.2').done()),
      '0300' + '0500' + '00' + '20' + '0000' + '0200' + '0000' + 'c0000202' + '0000000000000000',
    );
    const openbsd = buildGetSpi('openbsd', {
      src: '192.0.2.2',
      dst: '192.0.2.1',
      min: 0x100,
      max: 0xffffffff,
    });
    t.equal(
      hex(encode(openbsd, OPENBSD)),
      hex(
        msg(
          { type: 1, satype: 2, seq: 7, pid: PID }, // OpenBSD SADB_SATYPE_ESP 2
          extSpirange(0x100, 0xffffffff),
          extAddress('openbsd', 5, '192.0.2.2'),
          extAddress('openbsd', 6, '192.0.2.1'),
        ),
      ),
    );
    t.equal(
      hex(extAddress('openbsd', 5, '192.0.2.2').done()),
      '0300' + '0500' + '00000000' + '10' + '02' + '0000' + 'c0000202' + '0000000000000000',
      'OpenBSD: reserved u32, then sin_len 16 and sin_family 2 as bytes',
    );
  },
);

t.test('SADB_ADD (Linux): SA, lifetimes, addresses, keys, sadb_x_sa2, NAT-T type and ports', async (t) => {
  const bytes = encode(buildAddSa('linux', 'add', outboundSpec()), LINUX, 9);
  const expected = msg(
    { type: 3, satype: 3, seq: 9, pid: PID },
    extSa({ spi: 0xc1234567, replay: 32, auth: 3, encrypt: 12 }),
    extLifetime(3, { addtime: 3600n }), // hard
    extLifetime(4, { addtime: 3240n }), // soft
    extAddress('linux', 5, '192.0.2.1'),
    extAddress('linux', 6, '192.0.2.2'),
    extKey(8, AUTH_KEY), // 8 + 20 -> 32
    extKey(9, ENC_KEY), // 8 + 16 = 24
    extSa2(2, 0x3c00), // IPSEC_MODE_TUNNEL 2
    extNatType(2), // UDP_ENCAP_ESPINUDP
    extNatPort(21, 4500),
    extNatPort(22, 4501),
  );
  t.equal(hex(bytes), hex(expected));
  t.equal(bytes.length, 240, '30 words');
  t.equal(bytes[4], 30, 'sadb_msg_len in 64-bit words');
  // The SA extension, hand-checked: spi in network order, replay 32, mature, sha1 3, aes 12.
  t.equal(hex(bytes.subarray(16, 32)), '0200' + '0100' + 'c1234567' + '20' + '01' + '03' + '0c' + '00000000');
  // The auth key: len 4 words, type 8, 160 bits, then 20 key bytes and 4 of padding.
  t.equal(hex(bytes.subarray(144, 152)), '0400' + '0800' + 'a000' + '0000');
});

t.test('SADB_UPDATE (Linux): transport mode, no lifetime, no NAT-T, AEAD-style (no auth key)', async (t) => {
  const spec: SaSpec = {
    direction: 'in',
    spi: 0xc0000001,
    src: '192.0.2.2',
    dst: '192.0.2.1',
    auth: 0,
    encrypt: 13,
    encryptKey: ENC_KEY,
    replay: 32,
    mode: 'transport',
    reqid: 0x3c01,
  };
  const bytes = encode(buildAddSa('linux', 'update', spec), LINUX);
  t.equal(
    hex(bytes),
    hex(
      msg(
        { type: 2, satype: 3, seq: 7, pid: PID }, // SADB_UPDATE
        extSa({ spi: 0xc0000001, replay: 32, encrypt: 13 }),
        extAddress('linux', 5, '192.0.2.2'),
        extAddress('linux', 6, '192.0.2.1'),
        extKey(9, ENC_KEY),
        extSa2(1, 0x3c01), // IPSEC_MODE_TRANSPORT 1
      ),
    ),
  );
});

t.test(
  'SADB_ADD and SADB_UPDATE (OpenBSD): tunnel and udpencap flags, the peer port, keys, tag',
  async (t) => {
    const add = encode(buildAddSa('openbsd', 'add', outboundSpec({ tag: 'ike-node' })), OPENBSD);
    t.equal(
      hex(add),
      hex(
        msg(
          { type: 3, satype: 2, seq: 7, pid: PID },
          // SADB_X_SAFLAGS_TUNNEL 0x004 | SADB_X_SAFLAGS_UDPENCAP 0x200
          extSa({ spi: 0xc1234567, replay: 32, auth: 3, encrypt: 12, flags: 0x204 }),
          extAddress('openbsd', 5, '192.0.2.1'),
          extAddress('openbsd', 6, '192.0.2.2'),
          extLifetime(3, { addtime: 3600n }),
          extLifetime(4, { addtime: 3240n }),
          extUdpencap(4501), // outbound: the peer is the destination
          extKey(9, ENC_KEY),
          extKey(8, AUTH_KEY),
          extTag('ike-node'), // taglen 9, 'ike-node\0' padded to 16
        ),
      ),
    );
    t.equal(
      hex(extTag('ike-node').done()),
      '0300' + '2100' + '09000000' + hex(Buffer.from('ike-node\0\0\0\0\0\0\0\0')),
    );
    const update = encode(
      buildAddSa(
        'openbsd',
        'update',
        outboundSpec({
          direction: 'in',
          src: '192.0.2.2',
          dst: '192.0.2.1',
          spi: 0xc0000002,
          mode: 'transport',
        }),
      ),
      OPENBSD,
    );
    t.equal(
      hex(update),
      hex(
        msg(
          { type: 2, satype: 2, seq: 7, pid: PID },
          extSa({ spi: 0xc0000002, replay: 32, auth: 3, encrypt: 12, flags: 0x200 }),
          extAddress('openbsd', 5, '192.0.2.2'),
          extAddress('openbsd', 6, '192.0.2.1'),
          extLifetime(3, { addtime: 3600n }),
          extLifetime(4, { addtime: 3240n }),
          extUdpencap(4500), // inbound: the peer is the source
          extKey(9, ENC_KEY),
          extKey(8, AUTH_KEY),
        ),
      ),
    );
  },
);

t.test('SADB_DELETE, SADB_GET, SADB_REGISTER, SADB_FLUSH, SADB_DUMP, both flavours', async (t) => {
  for (const [flavour, options, esp] of [
    ['linux', LINUX, 3],
    ['openbsd', OPENBSD, 2],
  ] as const) {
    const query = { spi: 0xc0000003, src: '2001:db8::1', dst: '2001:db8::2' };
    t.equal(
      hex(encode(buildSaQuery(flavour, 'delete', query), options)),
      hex(
        msg(
          { type: 4, satype: esp, seq: 7, pid: PID },
          extSa({ spi: 0xc0000003 }),
          extAddress(flavour, 5, '2001:db8::1'),
          extAddress(flavour, 6, '2001:db8::2'),
        ),
      ),
      `${flavour} DELETE (IPv6)`,
    );
    t.equal(
      hex(encode(buildSaQuery(flavour, 'get', query), options)),
      hex(
        msg(
          { type: 5, satype: esp, seq: 7, pid: PID },
          extSa({ spi: 0xc0000003 }),
          extAddress(flavour, 5, '2001:db8::1'),
          extAddress(flavour, 6, '2001:db8::2'),
        ),
      ),
      `${flavour} GET`,
    );
    t.equal(
      hex(encode(buildRegister(flavour), options)),
      hex(msg({ type: 7, satype: esp, seq: 7, pid: PID })),
    );
    t.equal(hex(encode(buildFlush(flavour), options)), hex(msg({ type: 9, satype: esp, seq: 7, pid: PID })));
    t.equal(hex(encode(buildDump(flavour), options)), hex(msg({ type: 10, satype: esp, seq: 7, pid: PID })));
  }
  // The IPv6 sockaddrs, hand-checked: Linux family 10 as u16; OpenBSD sin6_len 28, family 24.
  t.equal(
    hex(extAddress('linux', 6, '2001:db8::2').done()),
    '0500' +
      '0600' +
      '00' +
      '80' +
      '0000' +
      '0a00' +
      '0000' +
      '00000000' +
      '20010db8000000000000000000000002' +
      '00000000' +
      '00000000',
  );
  t.equal(
    hex(extAddress('openbsd', 6, '2001:db8::2').done()),
    '0500' +
      '0600' +
      '00000000' +
      '1c' +
      '18' +
      '0000' +
      '00000000' +
      '20010db8000000000000000000000002' +
      '00000000' +
      '00000000',
  );
});

t.test(
  'SADB_X_SPDADD (Linux): selector addresses with prefix and proto, policy, tunnel ipsecrequest',
  async (t) => {
    const request = buildSpdAdd({
      src: { address: '10.1.0.0', prefixlen: 16, port: 0 },
      dst: { address: '10.2.0.0', prefixlen: 24, port: 0 },
      proto: 0,
      dir: 'out',
      priority: 2100,
      requests: [
        { proto: 50, mode: 2, level: 3, reqid: 0x3c00, tunnel: { src: '192.0.2.1', dst: '192.0.2.2' } },
      ],
    });
    const expected = msg(
      { type: 14, satype: 0, seq: 7, pid: PID }, // SADB_X_SPDADD
      extAddress('linux', 5, '10.1.0.0', { proto: 255, prefixlen: 16 }), // IPSEC_ULPROTO_ANY
      extAddress('linux', 6, '10.2.0.0', { proto: 255, prefixlen: 24 }),
      extPolicy(
        { type: 2, dir: 2, priority: 2100 }, // IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND
        ipsecRequest({ proto: 50, mode: 2, level: 3, reqid: 0x3c00, tunnel: ['192.0.2.1', '192.0.2.2'] }),
      ),
    );
    const bytes = encode(request, LINUX);
    t.equal(hex(bytes), hex(expected));
    // The request: len 48 bytes (not words), proto 50, tunnel, unique, reqid, two sockaddr_in.
    const policyAt = 16 + 24 + 24;
    t.equal(
      hex(bytes.subarray(policyAt, policyAt + 8)),
      '0800' + '1200' + '0200' + '02' + '00',
      'policy: 8 words',
    );
    t.equal(
      hex(bytes.subarray(policyAt + 16, policyAt + 32)),
      '3000' + '3200' + '02' + '03' + '0000' + '003c0000' + '00000000',
    );

    const transport = buildSpdAdd({
      src: { address: '192.0.2.1', prefixlen: 32, port: 500 },
      dst: { address: '192.0.2.2', prefixlen: 32, port: 0 },
      proto: 17,
      dir: 'in',
      priority: 5,
      requests: [{ proto: 50, mode: 1, level: 3, reqid: 7 }],
    });
    t.equal(
      hex(encode(transport, LINUX)),
      hex(
        msg(
          { type: 14, satype: 0, seq: 7, pid: PID },
          extAddress('linux', 5, '192.0.2.1', { proto: 17, prefixlen: 32, port: 500 }),
          extAddress('linux', 6, '192.0.2.2', { proto: 17, prefixlen: 32 }),
          extPolicy(
            { type: 2, dir: 1, priority: 5 },
            ipsecRequest({ proto: 50, mode: 1, level: 3, reqid: 7 }),
          ),
        ),
      ),
    );
  },
);

t.test('SADB_X_SPDDELETE, SPDDELETE2, SPDDUMP (Linux) and the socket bypass policy', async (t) => {
  const del = buildSpdDelete({
    src: { address: '10.2.0.0', prefixlen: 24, port: 0 },
    dst: { address: '10.1.0.0', prefixlen: 16, port: 0 },
    proto: 0,
    dir: 'fwd',
  });
  t.equal(
    hex(encode(del, LINUX)),
    hex(
      msg(
        { type: 15, satype: 0, seq: 7, pid: PID },
        extAddress('linux', 5, '10.2.0.0', { proto: 255, prefixlen: 24 }),
        extAddress('linux', 6, '10.1.0.0', { proto: 255, prefixlen: 16 }),
        extPolicy({ type: 2, dir: 3 }), // IPSEC_DIR_FWD
      ),
    ),
  );
  t.equal(
    hex(encode(buildSpdDelete2(0x149), LINUX)),
    hex(msg({ type: 22, satype: 0, seq: 7, pid: PID }, extPolicy({ type: 0, dir: 0, id: 0x149 }))),
  );
  t.equal(hex(encode(buildSpdDump(), LINUX)), hex(msg({ type: 18, satype: 0, seq: 7, pid: PID })));
  // setsockopt(IP_IPSEC_POLICY): len 2, SADB_X_EXT_POLICY 18, IPSEC_POLICY_BYPASS 4, dir in 1 / out 2.
  t.equal(
    hex(bypassPolicyOption('in', true)),
    '0200' + '1200' + '0400' + '01' + '00' + '00000000' + '00000000',
  );
  t.equal(
    hex(bypassPolicyOption('out', true)),
    '0200' + '1200' + '0400' + '02' + '00' + '00000000' + '00000000',
  );
  t.equal(
    hex(bypassPolicyOption('out', false)),
    '0002' + '0012' + '0004' + '02' + '00' + '00000000' + '00000000',
  );
});

t.test('SADB_X_ADDFLOW, SADB_X_DELFLOW, SADB_X_ASKPOLICY (OpenBSD)', async (t) => {
  const flow = {
    src: { address: '10.1.0.0', mask: '255.255.0.0', port: 0 },
    dst: { address: '10.2.0.0', mask: '255.255.255.0', port: 443 },
    proto: 6,
    direction: 'out' as const,
    flowType: 3, // SADB_X_FLOW_TYPE_REQUIRE
    local: '192.0.2.1',
    peer: '192.0.2.2',
  };
  const flowPart = [
    extProtocol(20, 3, 2), // SADB_X_EXT_FLOW_TYPE: require, IPSP_DIRECTION_OUT
    extAddress('openbsd', 21, '10.1.0.0'), // SADB_X_EXT_SRC_FLOW
    extAddress('openbsd', 17, '255.255.0.0'), // SADB_X_EXT_SRC_MASK, port mask 0 (any)
    extAddress('openbsd', 22, '10.2.0.0', { port: 443 }), // SADB_X_EXT_DST_FLOW
    extAddress('openbsd', 18, '255.255.255.0', { port: 0xffff }), // SADB_X_EXT_DST_MASK
    extProtocol(19, 6), // SADB_X_EXT_PROTOCOL: tcp
  ];
  t.equal(
    hex(encode(buildAddFlow(flow), OPENBSD)),
    hex(
      msg(
        { type: 12, satype: 2, seq: 7, pid: PID }, // SADB_X_ADDFLOW
        ...flowPart,
        extAddress('openbsd', 5, '192.0.2.1'),
        extAddress('openbsd', 6, '192.0.2.2'),
      ),
    ),
  );
  t.equal(
    hex(encode(buildDelFlow(flow), OPENBSD)),
    hex(msg({ type: 13, satype: 2, seq: 7, pid: PID }, ...flowPart)),
    'DELFLOW: the flow without the SA endpoints',
  );
  t.equal(
    hex(encode(buildAskPolicy(0x55), OPENBSD)),
    hex(msg({ type: 15, satype: 0, seq: 7, pid: PID }, extPolicySeq(0x55))),
  );
});

t.test('extensions of the other flavour are refused, not mis-numbered', async (t) => {
  t.throws(() => encode(buildAskPolicy(1), LINUX), PfkeyEncodeError);
  t.throws(
    () =>
      encode(
        buildSpdAdd({
          src: { address: '10.0.0.0', prefixlen: 8, port: 0 },
          dst: { address: '10.0.0.0', prefixlen: 8, port: 0 },
          proto: 0,
          dir: 'out',
          priority: 0,
          requests: [],
        }),
        OPENBSD,
      ),
    PfkeyEncodeError,
  );
  t.throws(() => encode(buildAddSa('linux', 'add', outboundSpec({ spi: 2 ** 32 })), LINUX), PfkeyEncodeError);
  t.throws(
    () => encode(buildGetSpi('linux', { src: 'nonsense', dst: '192.0.2.1', min: 1, max: 2 }), LINUX),
    /not an IP/,
  );
});

// ---------------------------------------------------------------------------------------------
// Decoding.

t.test('a Linux GETSPI answer: the SPI, the larval state, sadb_x_sa2', async (t) => {
  const answer = msg(
    { type: 1, satype: 3, seq: 7, pid: PID },
    extSa({ spi: 0xc0abcdef, replay: 0, state: 0 }), // LARVAL
    extLifetime(3, {}),
    extLifetime(4, {}),
    extLifetime(2, { addtime: 1700000000n }),
    extAddress('linux', 5, '192.0.2.2'),
    extAddress('linux', 6, '192.0.2.1'),
    extSa2(0, 0),
  );
  const decoded = decodeMessage(answer, LINUX);
  t.equal(readSpi(decoded), 0xc0abcdef);
  t.equal(decoded.seq, 7);
  t.equal(decoded.pid, PID);
  t.same(decoded.extensions[0], {
    kind: 'sa',
    spi: 0xc0abcdef,
    replay: 0,
    state: 0,
    auth: 0,
    encrypt: 0,
    flags: 0,
  });
  t.same(decoded.extensions[6], { kind: 'sa2', mode: 0, sequence: 0, reqid: 0 });
  t.equal(hex(encodeMessage(decoded, LINUX)), hex(answer), 'encode is the inverse');
});

t.test('a REGISTER answer lists the algorithms', async (t) => {
  const answer = msg(
    { type: 7, satype: 3, seq: 1, pid: PID },
    extSupported(14, [
      [2, 0, 128, 128],
      [3, 0, 160, 160],
      [5, 0, 256, 256],
    ]),
    extSupported(15, [
      [3, 8, 192, 192],
      [12, 8, 128, 256],
      [13, 8, 160, 288],
    ]),
  );
  t.same(readSupported(decodeMessage(answer, LINUX)), { auth: [2, 3, 5], encrypt: [3, 12, 13] });
});

t.test('ACQUIRE: Linux names the policy index; OpenBSD only the peer', async (t) => {
  const linux = msg(
    { type: 6, satype: 3, seq: 0x11, pid: 0 },
    extAddress('linux', 5, '192.0.2.1'),
    extAddress('linux', 6, '192.0.2.2'),
    extPolicy({ type: 2, dir: 2, id: 0x1a9, priority: 2100 }),
    extProposal('linux', 32, [{ auth: 3, encrypt: 12 }]),
  );
  const decoded = decodeMessage(linux, LINUX);
  t.same(readAcquire(decoded), { seq: 0x11, src: '192.0.2.1', dst: '192.0.2.2', policyId: 0x1a9 });
  const proposal = decoded.extensions[3];
  t.equal(proposal?.kind, 'proposal');
  if (proposal?.kind === 'proposal') {
    t.equal(proposal.replay, 32);
    t.equal(proposal.combs[0]?.auth, 3);
    t.equal(proposal.combs[0]?.hardAddtime, 86400n);
  }
  t.equal(hex(encodeMessage(decoded, LINUX)), hex(linux));

  const openbsd = msg(
    { type: 6, satype: 2, seq: 0x22, pid: 0 },
    extAddress('openbsd', 5, '192.0.2.1'),
    extAddress('openbsd', 6, '192.0.2.2'),
    extProposal('openbsd', 64, [{ auth: 5, encrypt: 12 }]),
  );
  const obsd = decodeMessage(openbsd, OPENBSD);
  t.same(readAcquire(obsd), { seq: 0x22, src: '192.0.2.1', dst: '192.0.2.2' });
  t.equal(hex(encodeMessage(obsd, OPENBSD)), hex(openbsd));
});

t.test('EXPIRE: soft or hard by the lifetime extension present', async (t) => {
  const soft = msg(
    { type: 8, satype: 3, seq: 0, pid: 0 },
    extSa({ spi: 0xc0000001, replay: 32, auth: 3, encrypt: 12 }),
    extLifetime(4, { addtime: 3240n }),
    extLifetime(2, { bytes: 1000n, addtime: 1700000000n }),
    extAddress('linux', 5, '192.0.2.2'),
    extAddress('linux', 6, '192.0.2.1'),
    extSa2(2, 0x3c00),
  );
  t.same(readExpire(decodeMessage(soft, LINUX)), {
    spi: 0xc0000001,
    src: '192.0.2.2',
    dst: '192.0.2.1',
    hard: false,
  });
  const hard = msg(
    { type: 8, satype: 2, seq: 99, pid: 0 },
    extSa({ spi: 0xc0000002 }),
    extLifetime(2, {}),
    extLifetime(3, { addtime: 3600n }),
    extAddress('openbsd', 5, '192.0.2.1'),
    extAddress('openbsd', 6, '192.0.2.2'),
  );
  t.same(readExpire(decodeMessage(hard, OPENBSD)), {
    spi: 0xc0000002,
    src: '192.0.2.1',
    dst: '192.0.2.2',
    hard: true,
  });
  const neither = msg(
    { type: 8, satype: 3, seq: 0, pid: 0 },
    extSa({ spi: 1 }),
    extAddress('linux', 5, '192.0.2.2'),
    extAddress('linux', 6, '192.0.2.1'),
  );
  t.throws(() => readExpire(decodeMessage(neither, LINUX)), PfkeyParseError);
});

t.test('SADB_X_NAT_T_NEW_MAPPING (Linux): old and new address and port', async (t) => {
  const mapping = msg(
    { type: 23, satype: 3, seq: 5, pid: 0 },
    extSa({ spi: 0xc0000001, state: 0 }),
    extAddress('linux', 5, '198.51.100.7'),
    extNatPort(21, 4500),
    extAddress('linux', 6, '198.51.100.9'),
    extNatPort(22, 31000),
  );
  t.same(readNewMapping(decodeMessage(mapping, LINUX)), {
    spi: 0xc0000001,
    oldAddress: '198.51.100.7',
    oldPort: 4500,
    newAddress: '198.51.100.9',
    newPort: 31000,
  });
});

t.test(
  'GET answers: Linux counts packets in the current allocations, OpenBSD in sadb_x_counter',
  async (t) => {
    const linux = msg(
      { type: 5, satype: 3, seq: 3, pid: PID },
      extSa({ spi: 0xc0000001 }),
      extLifetime(2, { allocations: 12, bytes: 3456n }),
      extAddress('linux', 5, '192.0.2.2'),
      extAddress('linux', 6, '192.0.2.1'),
      extSa2(2, 0x3c00),
    );
    t.same(readCounters(decodeMessage(linux, LINUX), 'linux', 'in'), { bytes: 3456n, packets: 12n });
    t.same(readDumpedSa(decodeMessage(linux, LINUX)), {
      spi: 0xc0000001,
      src: '192.0.2.2',
      dst: '192.0.2.1',
      reqid: 0x3c00,
    });
    const openbsd = msg(
      { type: 5, satype: 2, seq: 3, pid: PID },
      extSa({ spi: 0xc0000001 }),
      extLifetime(2, { allocations: 1, bytes: 999n }),
      extAddress('openbsd', 5, '192.0.2.2'),
      extAddress('openbsd', 6, '192.0.2.1'),
      extTag('ike-node'),
      extCounter([10n, 20n, 1000n, 2000n, 0n, 0n, 0n, 0n]),
    );
    const decoded = decodeMessage(openbsd, OPENBSD);
    t.same(readCounters(decoded, 'openbsd', 'in'), { bytes: 1000n, packets: 10n });
    t.same(readCounters(decoded, 'openbsd', 'out'), { bytes: 2000n, packets: 20n });
    t.same(readDumpedSa(decoded), { spi: 0xc0000001, src: '192.0.2.2', dst: '192.0.2.1', tag: 'ike-node' });
    t.equal(hex(encodeMessage(decoded, OPENBSD)), hex(openbsd));
  },
);

t.test('an OpenBSD ASKPOLICY answer gives the flow', async (t) => {
  const answer = msg(
    { type: 15, satype: 0, seq: 4, pid: PID },
    extAddress('openbsd', 6, '192.0.2.2'),
    extProtocol(20, 3, 2),
    extAddress('openbsd', 21, '10.1.0.0'),
    extAddress('openbsd', 17, '255.255.0.0'),
    extAddress('openbsd', 22, '10.2.0.0'),
    extAddress('openbsd', 18, '255.255.255.0'),
    extProtocol(19, 0),
  );
  t.same(readFlow(decodeMessage(answer, OPENBSD)), {
    srcFlow: '10.1.0.0',
    srcMask: '255.255.0.0',
    srcPort: 0,
    dstFlow: '10.2.0.0',
    dstMask: '255.255.255.0',
    dstPort: 0,
    proto: 0,
    direction: 2,
    peer: '192.0.2.2',
  });
});

t.test('a Linux SPDDUMP entry: index, direction, reqids, tunnel endpoints', async (t) => {
  const entry = msg(
    { type: 18, satype: 0, seq: 0, pid: PID, reserved: 2 },
    extAddress('linux', 5, '10.2.0.0', { proto: 255, prefixlen: 24 }),
    extAddress('linux', 6, '10.1.0.0', { proto: 255, prefixlen: 16 }),
    extLifetime(3, {}),
    extLifetime(4, {}),
    extLifetime(2, {}),
    extPolicy(
      { type: 2, dir: 3, id: 0x14a, priority: 2100 },
      ipsecRequest({ proto: 50, mode: 2, level: 3, reqid: 0x3c00, tunnel: ['2001:db8::2', '2001:db8::1'] }),
    ),
  );
  const decoded = decodeMessage(entry, LINUX);
  t.same(readPolicy(decoded), { id: 0x14a, dir: 3, reqids: [0x3c00] });
  const policy = decoded.extensions[5];
  if (policy?.kind === 'policy')
    t.same(policy.requests[0]?.tunnel, { src: '2001:db8::2', dst: '2001:db8::1' });
  else t.fail('policy extension');
  t.equal(hex(encodeMessage(decoded, LINUX)), hex(entry), 'refcount in sadb_msg_reserved round-trips');
});

t.test('unknown extensions are kept raw and round-trip', async (t) => {
  const raw = new B().u16(2).u16(24).u8(1).u8(1).u16(4).bytes([1, 2, 3, 4]).zeros(4); // SADB_X_EXT_SEC_CTX
  const bytes = msg({ type: 3, satype: 3, seq: 1, pid: 1 }, raw);
  const decoded = decodeMessage(bytes, LINUX);
  t.equal(decoded.extensions[0]?.kind, 'raw');
  t.equal(hex(encodeMessage(decoded, LINUX)), hex(bytes));
});

t.test('garbage: typed errors with the offset, never a crash', async (t) => {
  const good = msg(
    { type: 3, satype: 3, seq: 1, pid: 1 },
    extSa({ spi: 1 }),
    extAddress('linux', 5, '192.0.2.1'),
    extAddress('linux', 6, '192.0.2.2'),
  );
  const cases: [string, Uint8Array, number, RegExp][] = [
    ['shorter than sadb_msg', good.subarray(0, 10), 10, /shorter than the 16-byte/],
    ['not PF_KEY_V2', Uint8Array.from([3, ...good.subarray(1)]), 0, /version 3/],
    ['truncated datagram', good.subarray(0, good.length - 8), 4, /only \d+ arrived/],
    [
      'trailing bytes',
      Uint8Array.from([...good, 0, 0, 0, 0, 0, 0, 0, 0]),
      good.length,
      /after the message's end/,
    ],
    [
      'message length below the header',
      Uint8Array.from([2, 3, 0, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
      4,
      /shorter than the header/,
    ],
  ];
  const zeroLength = Uint8Array.from(good);
  zeroLength[16] = 0; // the SA extension's length
  zeroLength[17] = 0;
  cases.push(['extension of length 0', zeroLength, 16, /length 0/]);
  const pastEnd = Uint8Array.from(good);
  pastEnd[16] = 40;
  cases.push(['extension past the end', pastEnd, 16, /runs past the message's end/]);
  const badFamily = Uint8Array.from(good);
  badFamily[32 + 8] = 99; // the first address's sa_family
  cases.push(['unknown address family', badFamily, 40, /family 99/]);
  const longPrefix = Uint8Array.from(good);
  longPrefix[32 + 5] = 33;
  cases.push(['prefix longer than the address', longPrefix, 37, /prefix length 33/]);
  const shortSa = msg({ type: 3, satype: 3, seq: 1, pid: 1 }, new B().u16(1).u16(1).u32(0));
  cases.push(['SA extension of 8 bytes', shortSa, 16, /needs 16/]);
  const longKey = msg({ type: 3, satype: 3, seq: 1, pid: 1 }, new B().u16(2).u16(8).u16(256).u16(0).zeros(8));
  cases.push(['a key longer than its extension', longKey, 20, /256-bit key runs past/]);
  const badRequest = msg(
    { type: 14, satype: 0, seq: 1, pid: 1 },
    extPolicy({ type: 2, dir: 2 }, new B().u16(200).u16(50).u32(0).u32(0).u32(0)),
  );
  cases.push(['ipsecrequest longer than the policy', badRequest, 32, /ipsecrequest length 200/]);
  for (const [name, bytes, offset, reason] of cases) {
    try {
      decodeMessage(bytes, LINUX);
      t.fail(`${name}: decoded`);
    } catch (error) {
      t.type(error, PfkeyParseError, name);
      t.equal((error as PfkeyParseError).offset, offset, `${name}: offset`);
      t.match((error as PfkeyParseError).message, reason, name);
    }
  }
  const openbsdBadLen = Uint8Array.from(
    msg({ type: 3, satype: 2, seq: 1, pid: 1 }, extAddress('openbsd', 5, '192.0.2.1')),
  );
  openbsdBadLen[24] = 15; // sin_len
  t.throws(() => decodeMessage(openbsdBadLen, OPENBSD), { name: 'PfkeyParseError', offset: 24 });
});

t.test('fuzz: truncations and random bytes only ever throw PfkeyParseError', async (t) => {
  const samples: SadbMessage[] = [
    { ...buildAddSa('linux', 'add', outboundSpec()), seq: 1, pid: 2 },
    {
      ...buildSpdAdd({
        src: { address: '2001:db8::', prefixlen: 32, port: 0 },
        dst: { address: '2001:db8:1::', prefixlen: 48, port: 0 },
        proto: 0,
        dir: 'out',
        priority: 1,
        requests: [
          { proto: 50, mode: 2, level: 3, reqid: 1, tunnel: { src: '2001:db8::1', dst: '2001:db8::2' } },
        ],
      }),
      seq: 1,
      pid: 2,
    },
  ];
  let random = 12345;
  const next = () => (random = (random * 1103515245 + 12345) >>> 0) >>> 16;
  let checked = 0;
  for (const sample of samples) {
    const bytes = encodeMessage(sample, LINUX);
    for (let length = 0; length < bytes.length; length++) {
      const cut = Uint8Array.from(bytes.subarray(0, length));
      // Keep the length field consistent with what is left, so extensions get parsed too.
      if (length >= 16) cut[4] = length >> 3;
      for (const flavour of [LINUX, OPENBSD]) {
        try {
          decodeMessage(cut.subarray(0, length & ~7 || length), flavour);
        } catch (error) {
          if (!(error instanceof PfkeyParseError)) t.fail(`unexpected ${String(error)}`);
        }
        checked++;
      }
    }
    for (let round = 0; round < 300; round++) {
      const mutated = Uint8Array.from(bytes);
      for (let i = 0; i < 4; i++) mutated[16 + (next() % (mutated.length - 16))] = next() & 0xff;
      for (const flavour of [LINUX, OPENBSD]) {
        try {
          decodeMessage(mutated, flavour);
        } catch (error) {
          if (!(error instanceof PfkeyParseError)) t.fail(`unexpected ${String(error)}`);
        }
        checked++;
      }
    }
  }
  t.ok(checked > 1000, `${checked} garbled messages decoded or refused cleanly`);
});
