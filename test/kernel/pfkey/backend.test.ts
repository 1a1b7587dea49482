import t from 'tap';
import type { ChildSa } from '../../../src/core/sa.js';
import { parseTrafficSelector } from '../../../src/core/traffic-selector.js';
import { algorithm } from '../../../src/crypto/registry.js';
import type { KernelEvent } from '../../../src/kernel/backend.js';
import { PfkeyBackend, type PfkeyBackendOptions } from '../../../src/kernel/pfkey/backend.js';
import { findExtension, type SadbMessage } from '../../../src/kernel/pfkey/codec.js';
import { FakeKernel } from './fake-kernel.js';
import {
  extAddress,
  extKey,
  extLifetime,
  extNatPort,
  extNatType,
  extSa,
  extSa2,
  hex,
  msg,
} from './helpers.js';

const PID = 777;
const ENCR_IN = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const INTEG_IN = Uint8Array.from({ length: 20 }, (_, i) => 0x40 + i);
const ENCR_OUT = Uint8Array.from({ length: 16 }, (_, i) => 0x80 + i);
const INTEG_OUT = Uint8Array.from({ length: 20 }, (_, i) => 0xc0 + i);

function child(overrides: Partial<ChildSa> = {}): ChildSa {
  return {
    id: 1,
    connection: 'site',
    ikeSaId: 1,
    protocol: 'esp',
    mode: 'tunnel',
    encapsulation: false,
    local: { address: '192.0.2.1', port: 500 },
    remote: { address: '192.0.2.2', port: 500 },
    spiIn: 0xc0000100,
    spiOut: 0x11223344,
    localTs: [parseTrafficSelector('10.1.0.0/16')],
    remoteTs: [parseTrafficSelector('10.2.0.0/24')],
    suite: { encr: algorithm('encr', 'aes128'), integ: algorithm('integ', 'sha1') },
    keys: { encrIn: ENCR_IN, integIn: INTEG_IN, encrOut: ENCR_OUT, integOut: INTEG_OUT },
    lifetime: { seconds: 3600 },
    installedAt: 1000,
    rekeyAt: 4240,
    expiresAt: 4600,
    ...overrides,
  };
}

async function open(
  flavour: 'linux' | 'openbsd',
  options: Partial<PfkeyBackendOptions> = {},
  prepare?: (kernel: FakeKernel) => void,
) {
  const kernel = new FakeKernel(flavour);
  prepare?.(kernel);
  const events: KernelEvent[] = [];
  const logs: [string, string][] = [];
  const backend = await PfkeyBackend.open({
    flavour,
    native: kernel.native,
    host: { onEvent: (event) => events.push(event), log: (level, text) => logs.push([level, text]) },
    pid: PID,
    littleEndian: true,
    timeoutMs: 500,
    ...options,
  });
  kernel.sent.length = 0;
  return { kernel, backend, events, logs };
}

const ticks = async (count = 3) => {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve));
};

function policyDirs(messages: SadbMessage[]): number[] {
  return messages.map((message) => findExtension(message, 'policy')!.dir);
}

t.test('Linux open: REGISTER for ESP, then remove only what carries our reqids', async (t) => {
  const kernel = new FakeKernel('linux');
  const leftover = (spi: number, reqid: number) => ({
    spi,
    src: '192.0.2.9',
    dst: '192.0.2.1',
    larval: false,
    reqid,
    message: {
      type: 3,
      satype: 3,
      seq: 1,
      pid: 1,
      extensions: [
        { kind: 'sa' as const, spi, replay: 0, state: 1, auth: 3, encrypt: 12, flags: 0 },
        { kind: 'address' as const, which: 'src' as const, address: '192.0.2.9', port: 0 },
        { kind: 'address' as const, which: 'dst' as const, address: '192.0.2.1', port: 0 },
        { kind: 'sa2' as const, mode: 2, sequence: 0, reqid },
      ],
    },
  });
  kernel.sas.set('192.0.2.1/a', leftover(0xa, 0x3c05));
  kernel.sas.set('192.0.2.1/b', leftover(0xb, 5));
  kernel.leftoverPolicies.push({ id: 0x209, reqid: 0x3c05 }, { id: 0x211, reqid: 9 });
  const logs: string[] = [];
  const backend = await PfkeyBackend.open({
    flavour: 'linux',
    native: kernel.native,
    host: { onEvent: () => undefined, log: (_level, text) => logs.push(text) },
    pid: PID,
    littleEndian: true,
  });
  t.same(kernel.types(), [7, 10, 4, 18, 22], 'REGISTER, DUMP, DELETE ours, SPDDUMP, SPDDELETE2 ours');
  t.equal(kernel.sent[0]?.satype, 3, 'REGISTER for Linux SADB_SATYPE_ESP');
  t.equal(findExtension(kernel.sent[2]!, 'sa')?.spi, 0xa);
  t.equal(findExtension(kernel.sent[4]!, 'policy')?.id, 0x209);
  t.same(
    [...kernel.sas.values()].map((sa) => sa.spi),
    [0xb],
    'the SA with reqid 5 is not ours',
  );
  t.same(kernel.leftoverPolicies, [{ id: 0x211, reqid: 9 }]);
  t.ok(
    logs.includes('PF_KEY: removed 1 SA(s) (SPIs 0000000a) and 1 policy(ies) left behind by an earlier run'),
    'open() says what it removed, the SA by SPI',
  );
  await backend.close();
});

t.test('Linux allocateSpi: a synchronous GETSPI from the peer to us in our SPI range', async (t) => {
  const { kernel, backend } = await open('linux');
  kernel.native.deliverAsync = false;
  const spi = backend.allocateSpi('192.0.2.1', '192.0.2.2');
  t.equal(spi, 0xc0000100);
  const getspi = kernel.sent[0]!;
  t.equal(getspi.type, 1);
  t.same(findExtension(getspi, 'spirange'), { kind: 'spirange', min: 0xc0000000, max: 0xcfffffff });
  t.equal(findExtension(getspi, 'address', 'src')?.address, '192.0.2.2');
  t.equal(findExtension(getspi, 'address', 'dst')?.address, '192.0.2.1');
  kernel.fail(1, 2);
  t.throws(() => backend.allocateSpi('192.0.2.1', '192.0.2.2'), { code: 'ENOENT' });
  kernel.native.deliverAsync = true;
  await backend.close();
});

t.test('Linux install: UPDATE the larval inbound SA, ADD the outbound, SPDADD out/in/fwd', async (t) => {
  const { kernel, backend } = await open('linux');
  kernel.native.deliverAsync = false;
  const spiIn = backend.allocateSpi('192.0.2.1', '192.0.2.2');
  kernel.native.deliverAsync = true;
  kernel.sent.length = 0;
  const sa = child({
    spiIn,
    encapsulation: true,
    local: { address: '192.0.2.1', port: 4500 },
    remote: { address: '192.0.2.2', port: 31000 },
  });
  await backend.install(sa);
  t.same(kernel.types(), [2, 3, 14, 14, 14], 'UPDATE, ADD, SPDADD x3');
  // The UPDATE, byte for byte (seq 5: REGISTER, DUMP, SPDDUMP and GETSPI came first).
  t.equal(
    hex(kernel.native.writes.at(-5)!),
    hex(
      msg(
        { type: 2, satype: 3, seq: 5, pid: PID },
        extSa({ spi: spiIn, replay: 32, auth: 3, encrypt: 12 }),
        extLifetime(3, { addtime: 3600n }), // expiresAt - installedAt
        extLifetime(4, { addtime: 3240n }), // rekeyAt - installedAt
        extAddress('linux', 5, '192.0.2.2'),
        extAddress('linux', 6, '192.0.2.1'),
        extKey(8, INTEG_IN),
        extKey(9, ENCR_IN),
        extSa2(2, 0x3c00),
        extNatType(2),
        extNatPort(21, 31000), // the peer sends from its (NATed) port
        extNatPort(22, 4500),
      ),
    ),
  );
  const add = kernel.sent[1]!;
  t.equal(findExtension(add, 'sa')?.spi, 0x11223344);
  t.equal(findExtension(add, 'address', 'src')?.address, '192.0.2.1');
  t.same(findExtension(add, 'key', 'encrypt')?.key, ENCR_OUT);
  t.equal(findExtension(add, 'natPort', 'sport')?.port, 4500);
  t.equal(findExtension(add, 'natPort', 'dport')?.port, 31000);
  const policies = kernel.sent.slice(2);
  t.same(policyDirs(policies), [2, 1, 3], 'out, in, fwd');
  const out = policies[0]!;
  t.same(findExtension(out, 'address', 'src'), {
    kind: 'address',
    which: 'src',
    address: '10.1.0.0',
    port: 0,
    proto: 255,
    prefixlen: 16,
  });
  t.same(findExtension(out, 'address', 'dst'), {
    kind: 'address',
    which: 'dst',
    address: '10.2.0.0',
    port: 0,
    proto: 255,
    prefixlen: 24,
  });
  t.same(findExtension(out, 'policy')?.requests, [
    { proto: 50, mode: 2, level: 3, reqid: 0x3c00, tunnel: { src: '192.0.2.1', dst: '192.0.2.2' } },
  ]);
  t.same(findExtension(policies[1]!, 'policy')?.requests[0]?.tunnel, { src: '192.0.2.2', dst: '192.0.2.1' });
  t.equal(findExtension(out, 'policy')?.priority, 2000 + (64 - 40) * 4 + 2 + 1);
  t.same(backend.installed(), [sa]);
  await t.rejects(backend.install(sa), /installed already/);
  await backend.close();
});

t.test('Linux rekey: the new child shares the policies; they go with the last child', async (t) => {
  const { kernel, backend } = await open('linux');
  const first = child({ id: 1 });
  const second = child({ id: 2, spiIn: 0xc0000200, spiOut: 0x55667788 });
  await backend.install(first);
  t.same(kernel.types(), [3, 3, 14, 14, 14], 'no larval SA: ADD both, then the policies');
  kernel.sent.length = 0;
  await backend.install(second);
  t.same(kernel.types(), [3, 3], 'the rekeyed child adds SAs only');
  t.equal(findExtension(kernel.sent[0]!, 'sa2')?.reqid, 0x3c00, 'same reqid as its group');
  kernel.sent.length = 0;
  await backend.remove(first);
  t.same(kernel.types(), [4, 4], 'the old child: its two SAs');
  t.same(
    kernel.sent.map((m) => [findExtension(m, 'sa')?.spi, findExtension(m, 'address', 'dst')?.address]),
    [
      [0xc0000100, '192.0.2.1'],
      [0x11223344, '192.0.2.2'],
    ],
  );
  kernel.sent.length = 0;
  await backend.remove(second);
  t.same(kernel.types(), [4, 4, 15, 15, 15], 'the last child: SAs and policies');
  t.equal(kernel.policies.size, 0);
  t.equal(kernel.sas.size, 0);
  await backend.remove(second);
  t.same(kernel.types(), [4, 4, 15, 15, 15], 'removing twice does nothing');
  await backend.close();
});

t.test('Linux install: an expired larval SA (ESRCH on UPDATE) is added instead', async (t) => {
  const { kernel, backend } = await open('linux');
  kernel.native.deliverAsync = false;
  const spiIn = backend.allocateSpi('192.0.2.1', '192.0.2.2');
  kernel.native.deliverAsync = true;
  kernel.sas.clear();
  kernel.sent.length = 0;
  await backend.install(child({ spiIn }));
  t.same(kernel.types().slice(0, 3), [2, 3, 3], 'UPDATE fails, ADD inbound, ADD outbound');
  await backend.close();
});

t.test('Linux install failure: what it added is removed, the error names the step', async (t) => {
  const { kernel, backend, logs } = await open('linux');
  kernel.fail(14, 17);
  await t.rejects(backend.install(child()), {
    message: /install child SA 1 of site .*: policies: .*SADB_X_SPDADD seq \d+\): EEXIST \(errno 17\)/,
  });
  t.same(kernel.types(), [3, 3, 14, 4, 4], 'ADD, ADD, SPDADD fails, DELETE both SAs');
  t.equal(kernel.sas.size, 0);
  t.same(backend.installed(), []);
  t.ok(logs.some(([level, text]) => level === 'error' && /EEXIST/.test(text)));
  kernel.sent.length = 0;
  kernel.fail(14, 17);
  kernel.policies.clear();
  // A failure on the second policy removes the first one too.
  kernel.failures.length = 0;
  const origin = kernel.native.responder;
  let count = 0;
  kernel.native.responder = (data) => {
    if (data[1] === 14 && ++count === 2) {
      kernel.sent.push(kernel.decode(data));
      return [kernel.encode({ ...kernel.decode(data), errno: 22, extensions: [] })];
    }
    return origin(data);
  };
  await t.rejects(backend.install(child()), /policies: .*EINVAL/);
  t.same(kernel.types(), [3, 3, 14, 14, 15, 4, 4]);
  t.equal(kernel.policies.size, 0);
  kernel.native.responder = origin;
  await backend.install(child());
  t.equal(
    findExtension(kernel.sent.at(-1)!, 'policy')?.requests[0]?.reqid,
    0x3c00,
    'the reqid was given back',
  );
  await backend.close();
});

t.test('what PF_KEY cannot say is refused before anything is sent', async (t) => {
  const { kernel, backend } = await open('linux');
  await t.rejects(
    backend.install(child({ suite: { encr: algorithm('encr', 'aes128gcm16') } })),
    /Linux af_key has no AEAD/,
  );
  await t.rejects(
    backend.install(
      child({ suite: { encr: algorithm('encr', 'aes128'), integ: algorithm('integ', 'sha256') } }),
    ),
    /truncates to 96 bits, the negotiated ICV is 128/,
  );
  await t.rejects(
    backend.install(
      child({
        localTs: [parseTrafficSelector('10.1.0.0/16', 6, 0)],
        remoteTs: [{ ...parseTrafficSelector('10.2.0.0/24', 6), startPort: 1000, endPort: 2000 }],
      }),
    ),
    /port range 1000-2000/,
  );
  t.same(kernel.types(), []);
  // A range that is not one prefix becomes several policies.
  await backend.install(child({ remoteTs: [parseTrafficSelector('10.2.0.0-10.2.0.5')] }));
  t.same(
    kernel.sent
      .filter((m) => m.type === 14 && findExtension(m, 'policy')?.dir === 2)
      .map(
        (m) =>
          `${findExtension(m, 'address', 'dst')?.address}/${findExtension(m, 'address', 'dst')?.prefixlen}`,
      ),
    ['10.2.0.0/30', '10.2.0.4/31'],
  );
  await backend.close();
});

t.test('Linux trap: policies without SAs; ACQUIRE by policy index; untrap; a child keeps them', async (t) => {
  const { kernel, backend, events } = await open('linux');
  const trap = {
    connection: 'site',
    mode: 'tunnel' as const,
    local: '192.0.2.1',
    remote: '192.0.2.2',
    localTs: [parseTrafficSelector('10.1.0.0/16')],
    remoteTs: [parseTrafficSelector('10.2.0.0/24')],
  };
  await backend.trap(trap);
  t.same(kernel.types(), [14, 14, 14]);
  const outId = [...kernel.policies.values()].find((p) => findExtension(p.message, 'policy')?.dir === 2)!.id;
  kernel.deliver({
    type: 6,
    satype: 3,
    seq: 1,
    extensions: [
      { kind: 'address', which: 'src', address: '192.0.2.1', port: 0 },
      { kind: 'address', which: 'dst', address: '192.0.2.2', port: 0 },
      { kind: 'policy', policyType: 2, dir: 2, id: outId, priority: 0, requests: [] },
    ],
  });
  t.same(events, [{ type: 'acquire', connection: 'site' }]);
  // An ACQUIRE for a policy we do not know, towards an address we do not trap: not ours.
  kernel.deliver({
    type: 6,
    satype: 3,
    seq: 2,
    extensions: [
      { kind: 'address', which: 'src', address: '192.0.2.1', port: 0 },
      { kind: 'address', which: 'dst', address: '198.51.100.1', port: 0 },
      { kind: 'policy', policyType: 2, dir: 2, id: 0x999, priority: 0, requests: [] },
    ],
  });
  t.equal(events.length, 1);
  kernel.sent.length = 0;
  await backend.install(child());
  t.same(kernel.types(), [3, 3], 'the child uses the trap policies');
  kernel.sent.length = 0;
  await backend.untrap('site');
  t.same(kernel.types(), [], 'the child still needs them');
  await backend.remove(child());
  t.same(kernel.types(), [4, 4, 15, 15, 15]);
  kernel.sent.length = 0;
  await backend.trap(trap);
  await backend.untrap('site');
  t.same(kernel.types(), [14, 14, 14, 15, 15, 15]);
  await backend.close();
});

t.test('EXPIRE: soft once per child, then hard; NEW_MAPPING moves the peer', async (t) => {
  const { kernel, backend, events } = await open('linux');
  await backend.install(
    child({
      encapsulation: true,
      local: { address: '192.0.2.1', port: 4500 },
      remote: { address: '192.0.2.2', port: 4500 },
    }),
  );
  const expire = (spi: number, src: string, dst: string, which: 'soft' | 'hard') =>
    kernel.deliver({
      type: 8,
      satype: 3,
      seq: 0,
      extensions: [
        { kind: 'sa', spi, replay: 32, state: 2, auth: 3, encrypt: 12, flags: 0 },
        { kind: 'lifetime', which, allocations: 0, bytes: 0n, addtime: 3240n, usetime: 0n },
        { kind: 'lifetime', which: 'current', allocations: 0, bytes: 0n, addtime: 0n, usetime: 0n },
        { kind: 'address', which: 'src', address: src, port: 0 },
        { kind: 'address', which: 'dst', address: dst, port: 0 },
      ],
    });
  expire(0xc0000100, '192.0.2.2', '192.0.2.1', 'soft');
  expire(0x11223344, '192.0.2.1', '192.0.2.2', 'soft');
  expire(0xdeadbeef, '192.0.2.1', '192.0.2.2', 'soft');
  t.same(
    events,
    [{ type: 'expire', child: 1, hard: false }],
    'one soft expire for the pair, none for a stranger',
  );
  expire(0x11223344, '192.0.2.1', '192.0.2.2', 'hard');
  t.same(events.at(-1), { type: 'expire', child: 1, hard: true });
  kernel.deliver({
    type: 23,
    satype: 3,
    seq: 9,
    extensions: [
      { kind: 'sa', spi: 0xc0000100, replay: 0, state: 0, auth: 0, encrypt: 0, flags: 0 },
      { kind: 'address', which: 'src', address: '192.0.2.2', port: 0 },
      { kind: 'natPort', which: 'sport', port: 4500 },
      { kind: 'address', which: 'dst', address: '198.51.100.20', port: 0 },
      { kind: 'natPort', which: 'dport', port: 40001 },
    ],
  });
  t.same(events.at(-1), { type: 'mapping', child: 1, remote: { address: '198.51.100.20', port: 40001 } });
  await backend.close();
});

t.test('events never throw into the socket; garbage is logged once per cause', async (t) => {
  const kernel = new FakeKernel('linux');
  const logs: [string, string][] = [];
  const backend = await PfkeyBackend.open({
    flavour: 'linux',
    native: kernel.native,
    host: {
      onEvent: () => {
        throw new Error('engine exploded');
      },
      log: (level, text) => logs.push([level, text]),
    },
    pid: PID,
    littleEndian: true,
  });
  await backend.trap({
    connection: 'site',
    mode: 'transport',
    local: '192.0.2.1',
    remote: '192.0.2.2',
    localTs: [parseTrafficSelector('192.0.2.1')],
    remoteTs: [parseTrafficSelector('192.0.2.2')],
  });
  const acquire = () =>
    kernel.deliver({
      type: 6,
      satype: 3,
      seq: 1,
      extensions: [
        { kind: 'address', which: 'src', address: '192.0.2.1', port: 0 },
        { kind: 'address', which: 'dst', address: '192.0.2.2', port: 0 },
      ],
    });
  t.doesNotThrow(acquire);
  t.doesNotThrow(acquire);
  t.equal(logs.filter(([, text]) => /engine exploded/.test(text)).length, 1, 'reported once');
  // A kernel ACQUIRE without a destination, and a datagram that is no PF_KEY at all.
  t.doesNotThrow(() => kernel.deliver({ type: 6, satype: 3, seq: 1, extensions: [] }));
  t.doesNotThrow(() => kernel.native.push(Uint8Array.from([1, 2, 3])));
  t.doesNotThrow(() => kernel.native.push(Uint8Array.from([1, 2, 3, 4])));
  t.ok(logs.some(([level, text]) => level === 'warn' && /without a destination address/.test(text)));
  t.equal(logs.filter(([, text]) => /PF_KEY socket: .*shorter than/.test(text)).length, 1);
  await backend.close();
});

t.test(
  'counters: Linux current lifetime bytes and packets (af_key puts packets in allocations)',
  async (t) => {
    const { backend } = await open('linux');
    const sa = child();
    t.equal(await backend.counters(sa), undefined, 'not installed: nothing');
    await backend.install(sa);
    t.same(await backend.counters(sa), { bytesIn: 500, packetsIn: 5, bytesOut: 500, packetsOut: 5 });
    await backend.close();
  },
);

t.test('configureSocket: Linux bypass policies and UDP_ENCAP; OpenBSD bypass levels', async (t) => {
  const { kernel, backend } = await open('linux');
  backend.configureSocket(11, 4, true);
  t.same(
    kernel.native.sockopts.map((o) => [o.fd, o.level, o.name, hex(o.value)]),
    [
      [11, 0, 16, '02001200040001000000000000000000'], // SOL_IP, IP_IPSEC_POLICY, bypass in
      [11, 0, 16, '02001200040002000000000000000000'], // bypass out
      [11, 17, 100, '02000000'], // SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP
    ],
  );
  kernel.native.sockopts.length = 0;
  backend.configureSocket(12, 6, false);
  t.same(
    kernel.native.sockopts.map((o) => [o.level, o.name]),
    [
      [41, 34],
      [41, 34],
    ],
    'SOL_IPV6, IPV6_IPSEC_POLICY; no UDP_ENCAP off the NAT-T port',
  );
  kernel.native.setsockopt = () => {
    throw new Error('EPERM');
  };
  t.throws(
    () => backend.configureSocket(13, 4, false),
    /configure IKE socket 13: IP_IPSEC_POLICY bypass in: EPERM/,
  );
  await backend.close();

  const obsd = await open('openbsd');
  obsd.backend.configureSocket(11, 4, true);
  t.same(
    obsd.kernel.native.sockopts.map((o) => [o.level, o.name, hex(o.value)]),
    [
      [0, 20, '00000000'],
      [0, 21, '00000000'],
      [0, 22, '00000000'],
      [0, 29, '00000000'],
    ],
    'IP_AUTH_LEVEL, IP_ESP_TRANS_LEVEL, IP_ESP_NETWORK_LEVEL, IP_IPCOMP_LEVEL = IPSEC_LEVEL_BYPASS',
  );
  obsd.kernel.native.sockopts.length = 0;
  obsd.backend.configureSocket(12, 6, false);
  t.same(
    obsd.kernel.native.sockopts.map((o) => o.name),
    [53, 54, 55, 60],
  );
  await obsd.backend.close();
});

t.test('close: every SA, policy and larval SA this instance made goes, then the socket', async (t) => {
  const { kernel, backend } = await open('linux');
  kernel.native.deliverAsync = false;
  const larval = backend.allocateSpi('192.0.2.1', '192.0.2.2');
  kernel.native.deliverAsync = true;
  await backend.install(child({ spiIn: 0xc0000500 }));
  await backend.trap({
    connection: 'other',
    mode: 'transport',
    local: '192.0.2.1',
    remote: '192.0.2.3',
    localTs: [parseTrafficSelector('192.0.2.1')],
    remoteTs: [parseTrafficSelector('192.0.2.3')],
  });
  kernel.sent.length = 0;
  await backend.close();
  t.same(kernel.types(), [4, 4, 15, 15, 15, 15, 15, 4]);
  t.equal(findExtension(kernel.sent.at(-1)!, 'sa')?.spi, larval);
  t.equal(kernel.sas.size, 0);
  t.equal(kernel.policies.size, 0);
  t.ok(kernel.native.closed);
  await t.rejects(backend.install(child()), /closed/);
  await backend.close();
});

// ---------------------------------------------------------------------------------------------
// installInbound: the quick mode responder's inbound SA ahead of message 3.

const sa2Reqid = (message: SadbMessage) => findExtension(message, 'sa2')?.reqid;

/** The reqid a new policy group gets now: the lowest one no group holds (then it goes again). */
async function freeReqid(backend: PfkeyBackend, kernel: FakeKernel): Promise<number | undefined> {
  const other = child({
    id: 99,
    connection: 'other',
    remote: { address: '192.0.2.3', port: 500 },
    localTs: [parseTrafficSelector('10.7.0.0/16')],
    remoteTs: [parseTrafficSelector('10.8.0.0/24')],
    spiIn: 0xc0000999,
    spiOut: 0x99999999,
  });
  const from = kernel.sent.length;
  await backend.install(other);
  await backend.remove(other);
  const reqid = sa2Reqid(kernel.sent[from]!);
  kernel.sent.length = from;
  return reqid;
}

t.test(
  'Linux installInbound: UPDATE of the larval SA alone; install adds the rest with its reqid',
  async (t) => {
    const { kernel, backend } = await open('linux');
    kernel.native.deliverAsync = false;
    const spiIn = backend.allocateSpi('192.0.2.1', '192.0.2.2');
    kernel.native.deliverAsync = true;
    kernel.sent.length = 0;
    const sa = child({ spiIn });
    await backend.installInbound(sa);
    t.same(kernel.types(), [2], 'UPDATE, nothing else');
    const update = kernel.sent[0]!;
    t.equal(findExtension(update, 'sa')?.spi, spiIn);
    t.equal(findExtension(update, 'address', 'src')?.address, '192.0.2.2');
    t.same(findExtension(update, 'key', 'encrypt')?.key, ENCR_IN);
    t.equal(sa2Reqid(update), 0x3c00);
    t.same(backend.installed(), [], 'not established yet');
    t.equal(await freeReqid(backend, kernel), 0x3c01, 'its group holds 0x3c00');

    await backend.install(sa);
    t.same(kernel.types(), [2, 3, 14, 14, 14], 'ADD outbound, SPDADD x3');
    const add = kernel.sent[1]!;
    t.equal(findExtension(add, 'sa')?.spi, 0x11223344);
    t.equal(sa2Reqid(add), 0x3c00);
    t.same(
      kernel.sent.slice(2).map((m) => findExtension(m, 'policy')?.requests[0]?.reqid),
      [0x3c00, 0x3c00, 0x3c00],
    );
    t.same(backend.installed(), [sa]);
    kernel.sent.length = 0;
    await backend.remove(sa);
    t.same(kernel.types(), [4, 4, 15, 15, 15]);
    t.equal(kernel.sas.size, 0);
    t.equal(await freeReqid(backend, kernel), 0x3c00, 'the group went once, with its reqid');
    await backend.close();
  },
);

t.test('Linux installInbound, then remove: the inbound SA goes, and the group with it', async (t) => {
  const { kernel, backend } = await open('linux');
  await backend.installInbound(child());
  t.same(kernel.types(), [3]);
  kernel.sent.length = 0;
  await backend.remove(child());
  t.same(kernel.types(), [4], 'no outbound SA, no policy');
  t.equal(findExtension(kernel.sent[0]!, 'sa')?.spi, 0xc0000100);
  t.equal(findExtension(kernel.sent[0]!, 'address', 'dst')?.address, '192.0.2.1');
  t.equal(kernel.sas.size, 0);
  t.equal(await freeReqid(backend, kernel), 0x3c00);
  await backend.remove(child());
  t.same(kernel.types(), [4], 'removing twice does nothing');

  // Already gone (the kernel expired it) is fine.
  await backend.installInbound(child());
  kernel.sas.clear();
  await backend.remove(child());
  t.equal(await freeReqid(backend, kernel), 0x3c00);
  await backend.close();
});

t.test('Linux rekey: the new inbound SA ahead has the group reqid; no policy is touched', async (t) => {
  const { kernel, backend } = await open('linux');
  const first = child({ id: 1 });
  const second = child({ id: 2, spiIn: 0xc0000200, spiOut: 0x55667788 });
  await backend.install(first);
  kernel.sent.length = 0;
  await backend.installInbound(second);
  t.same(kernel.types(), [3]);
  t.equal(findExtension(kernel.sent[0]!, 'sa')?.spi, 0xc0000200);
  t.equal(sa2Reqid(kernel.sent[0]!), 0x3c00, 'the reqid of the policies that exist');
  kernel.sent.length = 0;
  // The old child goes before the new one is done: the policies stay for it.
  await backend.remove(first);
  t.same(kernel.types(), [4, 4]);
  kernel.sent.length = 0;
  await backend.install(second);
  t.same(kernel.types(), [3], 'the outbound SA only');
  t.equal(findExtension(kernel.sent[0]!, 'sa')?.spi, 0x55667788);
  t.equal(sa2Reqid(kernel.sent[0]!), 0x3c00);
  kernel.sent.length = 0;
  await backend.remove(second);
  t.same(kernel.types(), [4, 4, 15, 15, 15]);
  t.equal(kernel.policies.size, 0);
  await backend.close();
});

t.test('Linux trap: the inbound SA ahead keeps the trap policies after untrap', async (t) => {
  const { kernel, backend } = await open('linux');
  await backend.trap({
    connection: 'site',
    mode: 'tunnel',
    local: '192.0.2.1',
    remote: '192.0.2.2',
    localTs: [parseTrafficSelector('10.1.0.0/16')],
    remoteTs: [parseTrafficSelector('10.2.0.0/24')],
  });
  kernel.sent.length = 0;
  await backend.installInbound(child());
  t.same(kernel.types(), [3]);
  t.equal(sa2Reqid(kernel.sent[0]!), 0x3c00);
  await backend.untrap('site');
  t.same(kernel.types(), [3], 'the child being negotiated still needs them');
  await backend.remove(child());
  t.same(kernel.types(), [3, 4, 15, 15, 15], 'its last user gone, the policies go');
  await backend.close();
});

t.test('close: an inbound SA installed ahead is deleted', async (t) => {
  const { kernel, backend } = await open('linux');
  await backend.installInbound(child());
  kernel.sent.length = 0;
  await backend.close();
  t.same(kernel.types(), [4]);
  t.equal(findExtension(kernel.sent[0]!, 'sa')?.spi, 0xc0000100);
  t.equal(kernel.sas.size, 0);
});

t.test('Linux install after installInbound fails: the inbound SA and the group go', async (t) => {
  const { kernel, backend } = await open('linux');
  await backend.installInbound(child());
  kernel.sent.length = 0;
  kernel.fail(3, 17);
  await t.rejects(backend.install(child()), {
    message: /install child SA 1 of site .*: outbound SA: .*EEXIST/,
  });
  t.same(kernel.types(), [3, 4], 'ADD outbound fails, DELETE the inbound SA');
  t.equal(findExtension(kernel.sent[1]!, 'sa')?.spi, 0xc0000100);
  t.equal(kernel.sas.size, 0);
  t.same(backend.installed(), []);
  t.equal(await freeReqid(backend, kernel), 0x3c00);
  await backend.remove(child());
  t.same(kernel.types(), [3, 4], 'nothing pending any more');

  // The policies refused: both SAs go.
  await backend.installInbound(child());
  kernel.sent.length = 0;
  kernel.fail(14, 22);
  await t.rejects(backend.install(child()), /policies: .*EINVAL/);
  t.same(kernel.types(), [3, 14, 4, 4]);
  t.equal(kernel.sas.size, 0);
  t.equal(await freeReqid(backend, kernel), 0x3c00);
  await backend.close();
});

t.test('Linux installInbound refused or failed: nothing pending, no group kept', async (t) => {
  const { kernel, backend } = await open('linux');
  await t.rejects(
    backend.installInbound(child({ suite: { encr: algorithm('encr', 'aes128gcm16') } })),
    /^install the inbound SA c0000100 of child SA 1 of site: .*Linux af_key has no AEAD/,
  );
  t.same(kernel.types(), []);
  kernel.fail(3, 17);
  await t.rejects(backend.installInbound(child()), /inbound SA: .*EEXIST/);
  t.equal(await freeReqid(backend, kernel), 0x3c00);
  kernel.sent.length = 0;
  await backend.install(child());
  t.same(kernel.types(), [3, 3, 14, 14, 14], 'a full install: nothing was pending');
  await t.rejects(backend.installInbound(child()), /installed already/);
  await backend.installInbound(child({ id: 2, spiIn: 0xc0000200 }));
  await t.rejects(backend.installInbound(child({ id: 2, spiIn: 0xc0000200 })), /installed already/);
  await backend.close();
});

t.test('Linux install with another SPI than the inbound SA ahead: that one goes first', async (t) => {
  const { kernel, backend } = await open('linux');
  await backend.installInbound(child());
  kernel.sent.length = 0;
  await backend.install(child({ spiIn: 0xc0000900 }));
  t.same(kernel.types(), [4, 3, 3, 14, 14, 14]);
  t.equal(findExtension(kernel.sent[0]!, 'sa')?.spi, 0xc0000100);
  t.equal(findExtension(kernel.sent[1]!, 'sa')?.spi, 0xc0000900);
  t.equal(sa2Reqid(kernel.sent[1]!), 0x3c00);
  kernel.sent.length = 0;
  await backend.remove(child({ spiIn: 0xc0000900 }));
  t.same(kernel.types(), [4, 4, 15, 15, 15]);
  t.equal(await freeReqid(backend, kernel), 0x3c00);

  // Other endpoints are another group: the one of the inbound SA ahead goes with it.
  await backend.installInbound(child());
  await backend.install(child({ local: { address: '192.0.2.5', port: 500 } }));
  t.equal(await freeReqid(backend, kernel), 0x3c00, "the first group's reqid is free");
  await backend.close();
});

// ---------------------------------------------------------------------------------------------
// OpenBSD.

t.test('OpenBSD install: tagged SAs with the tunnel flag, ADDFLOW out and in (require)', async (t) => {
  const { kernel, backend } = await open('openbsd');
  kernel.native.deliverAsync = false;
  const spiIn = backend.allocateSpi('192.0.2.1', '192.0.2.2');
  kernel.native.deliverAsync = true;
  t.equal(kernel.sent[0]?.satype, 2, 'OpenBSD SADB_SATYPE_ESP');
  kernel.sent.length = 0;
  const sa = child({
    spiIn,
    encapsulation: true,
    local: { address: '192.0.2.1', port: 4500 },
    remote: { address: '192.0.2.2', port: 4501 },
    suite: { encr: algorithm('encr', 'aes256gcm16') },
    keys: {
      encrIn: new Uint8Array(36),
      integIn: new Uint8Array(0),
      encrOut: new Uint8Array(36),
      integOut: new Uint8Array(0),
    },
  });
  await backend.install(sa);
  t.same(kernel.types(), [2, 3, 12, 12]);
  const update = kernel.sent[0]!;
  t.same(findExtension(update, 'sa'), {
    kind: 'sa',
    spi: spiIn,
    replay: 64,
    state: 1,
    auth: 0,
    encrypt: 20, // SADB_X_EALG_AESGCM16
    flags: 0x204, // SADB_X_SAFLAGS_TUNNEL | SADB_X_SAFLAGS_UDPENCAP
  });
  t.same(findExtension(update, 'udpencap'), { kind: 'udpencap', port: 4501 }, 'the peer port');
  t.same(findExtension(update, 'tag'), { kind: 'tag', tag: 'ike-node' });
  t.equal(findExtension(update, 'key', 'encrypt')?.bits, 288, 'AES-256 key and 4-byte salt');
  t.equal(findExtension(update, 'key', 'auth'), undefined);
  t.equal(findExtension(update, 'sa2'), undefined);
  const [out, inbound] = [kernel.sent[2]!, kernel.sent[3]!];
  t.same(findExtension(out, 'protocol', 'flowType'), {
    kind: 'protocol',
    which: 'flowType',
    proto: 3,
    direction: 2,
    flags: 0,
  });
  t.equal(findExtension(out, 'address', 'srcFlow')?.address, '10.1.0.0');
  t.equal(findExtension(out, 'address', 'srcMask')?.address, '255.255.0.0');
  t.equal(findExtension(out, 'address', 'dstMask')?.address, '255.255.255.0');
  t.equal(findExtension(out, 'address', 'dst')?.address, '192.0.2.2', 'the peer');
  t.equal(findExtension(inbound, 'protocol', 'flowType')?.direction, 1);
  t.equal(findExtension(inbound, 'address', 'srcFlow')?.address, '10.2.0.0');
  kernel.sent.length = 0;
  await backend.remove(sa);
  t.same(kernel.types(), [4, 4, 13, 13]);
  t.equal(kernel.flows.size, 0);
  await backend.close();
});

t.test("OpenBSD: ACQUIRE -> ASKPOLICY -> the trapped flow's connection; cleanup by tag", async (t) => {
  const { kernel, backend, events } = await open('openbsd', {}, (k) => {
    k.sas.set('192.0.2.1/99', {
      spi: 0x99,
      src: '192.0.2.2',
      dst: '192.0.2.1',
      larval: false,
      message: {
        type: 3,
        satype: 2,
        seq: 1,
        pid: 1,
        extensions: [
          { kind: 'sa', spi: 0x99, replay: 64, state: 1, auth: 3, encrypt: 12, flags: 0 },
          { kind: 'address', which: 'src', address: '192.0.2.2', port: 0 },
          { kind: 'address', which: 'dst', address: '192.0.2.1', port: 0 },
          { kind: 'tag', tag: 'ike-node' },
        ],
      },
    });
    k.sas.set('192.0.2.1/98', {
      spi: 0x98,
      src: '192.0.2.2',
      dst: '192.0.2.1',
      larval: false,
      message: {
        type: 3,
        satype: 2,
        seq: 1,
        pid: 1,
        extensions: [
          { kind: 'sa', spi: 0x98, replay: 64, state: 1, auth: 3, encrypt: 12, flags: 0 },
          { kind: 'address', which: 'src', address: '192.0.2.2', port: 0 },
          { kind: 'address', which: 'dst', address: '192.0.2.1', port: 0 },
        ],
      },
    });
  });
  t.same(
    [...kernel.sas.values()].map((sa) => sa.spi),
    [0x98],
    'only the tagged SA was removed at open',
  );
  await backend.trap({
    connection: 'branch',
    mode: 'tunnel',
    local: '192.0.2.1',
    remote: '192.0.2.2',
    localTs: [parseTrafficSelector('10.1.0.0/16')],
    remoteTs: [parseTrafficSelector('10.2.0.0/24')],
  });
  t.same(kernel.types(), [12, 12]);
  kernel.askPolicyAnswer = [
    { kind: 'address', which: 'dst', address: '192.0.2.2', port: 0 },
    { kind: 'protocol', which: 'flowType', proto: 3, direction: 2, flags: 0 },
    { kind: 'address', which: 'srcFlow', address: '10.1.0.0', port: 0 },
    { kind: 'address', which: 'srcMask', address: '255.255.0.0', port: 0 },
    { kind: 'address', which: 'dstFlow', address: '10.2.0.0', port: 0 },
    { kind: 'address', which: 'dstMask', address: '255.255.255.0', port: 0 },
    { kind: 'protocol', which: 'protocol', proto: 0, direction: 0, flags: 0 },
  ];
  kernel.deliver({
    type: 6,
    satype: 2,
    seq: 0x77,
    extensions: [{ kind: 'address', which: 'dst', address: '192.0.2.2', port: 0 }],
  });
  await ticks();
  const ask = kernel.sent.at(-1)!;
  t.equal(ask.type, 15, 'SADB_X_ASKPOLICY');
  t.same(findExtension(ask, 'policySeq'), { kind: 'policySeq', seq: 0x77 });
  t.same(events, [{ type: 'acquire', connection: 'branch' }]);
  kernel.askPolicyAnswer = undefined;
  kernel.deliver({
    type: 6,
    satype: 2,
    seq: 0x78,
    extensions: [{ kind: 'address', which: 'dst', address: '192.0.2.2', port: 0 }],
  });
  await ticks();
  t.same(events.at(-1), { type: 'acquire', connection: 'branch' }, 'ASKPOLICY failed: matched by the peer');
  t.equal(events.length, 2);
  kernel.sent.length = 0;
  await backend.untrap('branch');
  t.same(kernel.types(), [13, 13]);
  await backend.close();
});

t.test(
  'OpenBSD installInbound: the tagged inbound SA alone, then the outbound SA and the flows',
  async (t) => {
    const { kernel, backend } = await open('openbsd');
    await backend.installInbound(child());
    t.same(kernel.types(), [3]);
    t.same(findExtension(kernel.sent[0]!, 'tag'), { kind: 'tag', tag: 'ike-node' });
    t.equal(findExtension(kernel.sent[0]!, 'sa')?.spi, 0xc0000100);
    await backend.install(child());
    t.same(kernel.types(), [3, 3, 12, 12]);
    t.equal(findExtension(kernel.sent[1]!, 'sa')?.spi, 0x11223344);
    await backend.close();
    t.same(kernel.types(), [3, 3, 12, 12, 4, 4, 13, 13]);
  },
);

t.test('OpenBSD counters from sadb_x_counter; flow type use; no tag', async (t) => {
  const { kernel, backend } = await open('openbsd', { flowType: 'use', tag: false });
  const sa = child();
  await backend.install(sa);
  t.equal(findExtension(kernel.sent[0]!, 'tag'), undefined);
  t.equal(findExtension(kernel.sent[2]!, 'protocol', 'flowType')?.proto, 1, 'SADB_X_FLOW_TYPE_USE');
  t.same(await backend.counters(sa), { bytesIn: 700, packetsIn: 7, bytesOut: 800, packetsOut: 8 });
  await backend.close();
});

t.test('options are checked: reqids above IPSEC_MANUAL_REQID_MAX, SPI range, tag length', async (t) => {
  const kernel = new FakeKernel('linux');
  const base = {
    flavour: 'linux' as const,
    native: kernel.native,
    host: { onEvent: () => undefined, log: () => undefined },
  };
  await t.rejects(
    PfkeyBackend.open({ ...base, reqids: { first: 0x4000, last: 0x4100 } }),
    /IPSEC_MANUAL_REQID_MAX/,
  );
  await t.rejects(PfkeyBackend.open({ ...base, spiRange: { min: 0, max: 10 } }), /spiRange/);
  await t.rejects(PfkeyBackend.open({ ...base, flavour: 'openbsd', tag: 'x'.repeat(64) }), /tag/);
  kernel.fail(7, 1);
  await t.rejects(PfkeyBackend.open({ ...base, pid: 1, littleEndian: true }), { code: 'EPERM' });
  t.ok(kernel.native.closed, 'a failed open closes its socket');
});

t.test('the replay window fits sadb_sa_replay: 32 at most on Linux, 255 on OpenBSD', async (t) => {
  const linux = await open('linux', { replayWindow: 64 });
  await linux.backend.install(child());
  t.equal(findExtension(linux.kernel.sent[0]!, 'sa')?.replay, 32);
  await linux.backend.close();
  const openbsd = await open('openbsd', { replayWindow: 1024 });
  await openbsd.backend.install(child());
  t.equal(findExtension(openbsd.kernel.sent[0]!, 'sa')?.replay, 255);
  await openbsd.backend.close();
});
