import { randomBytes } from 'node:crypto';
import t from 'tap';
import type { Suite } from '../../../src/core/proposal.js';
import { UnsupportedAlgorithmError } from '../../../src/crypto/errors.js';
import { createCryptoProvider } from '../../../src/crypto/providers/index.js';
import { algorithm, algorithmsOf, type EncryptionAlgorithm } from '../../../src/crypto/registry.js';
import {
  EspInbound,
  type EspOpenResult,
  type EspOptions,
  EspOutbound,
  type EspSaParams,
  SequenceExhaustedError,
} from '../../../src/kernel/userspace/esp.js';
import { createEspTransform } from '../../../src/kernel/userspace/esp-crypto.js';
import { toHex } from '../../../src/wire/bytes.js';

const node = createCryptoProvider('node');
const noble = createCryptoProvider('noble');

type Impl = { label: string; provider: typeof node; options: EspOptions };
const IMPLS: Impl[] = [
  { label: 'node', provider: node, options: { implementation: 'node' } },
  { label: 'node-provider', provider: node, options: { implementation: 'provider' } },
  { label: 'noble', provider: noble, options: { implementation: 'provider' } },
];

function params(suite: Pick<Suite, 'encr' | 'integ'>, spi = 0xc0ffee01): EspSaParams {
  const { encr, integ } = suite;
  return {
    spi,
    suite,
    keys: {
      encryption: randomBytes(encr.keyLength + encr.saltLength),
      ...(integ && { integrity: randomBytes(integ.keyLength) }),
    },
  };
}

/** Every encryption algorithm with every integrity algorithm it pairs with (none for AEADs). */
function allSuites(): Pick<Suite, 'encr' | 'integ'>[] {
  const suites: Pick<Suite, 'encr' | 'integ'>[] = [];
  for (const encr of algorithmsOf('encr')) {
    if (encr.icvLength > 0) suites.push({ encr });
    else for (const integ of algorithmsOf('integ')) suites.push({ encr, integ });
  }
  return suites;
}

const name = (suite: Pick<Suite, 'encr' | 'integ'>): string =>
  suite.integ ? `${suite.encr.name}-${suite.integ.name}` : suite.encr.name;

function expectOk(result: EspOpenResult): asserts result is Extract<EspOpenResult, { ok: true }> {
  if (!result.ok) throw new Error(`dropped: ${result.cause}`);
}

const SIZES = [0, 1, 2, 3, 13, 14, 15, 16, 17, 100, 1400];

t.test('round trip: every algorithm pair, every implementation, both directions across them', async (t) => {
  let pairs = 0;
  for (const suite of allSuites()) {
    pairs++;
    const p = params(suite);
    for (const sender of IMPLS) {
      let outbound: EspOutbound;
      try {
        outbound = new EspOutbound(sender.provider, p, sender.options);
      } catch (error) {
        // Only noble lacks an algorithm (3DES), and says so.
        t.ok(
          error instanceof UnsupportedAlgorithmError &&
            sender.label === 'noble' &&
            suite.encr.name === '3des',
          `${name(suite)} ${sender.label}: ${String(error)}`,
        );
        continue;
      }
      const receivers = IMPLS.flatMap((impl) => {
        try {
          return [{ impl, inbound: new EspInbound(impl.provider, p, impl.options) }];
        } catch {
          return [];
        }
      });
      for (const size of SIZES) {
        const payload = randomBytes(size);
        const packet = outbound.seal(payload, 4);
        const { encr, integ } = suite;
        const icv = encr.icvLength || integ!.icvLength;
        const align = Math.max(4, encr.blockSize);
        t.equal(packet.length, outbound.sealedLength(size));
        t.equal((packet.length - 8 - encr.ivLength - icv) % align, 0, 'aligned');
        t.ok(packet.length - 8 - encr.ivLength - icv - size - 2 < align, 'minimal padding');
        t.equal(packet.readUInt32BE(0), p.spi);
        for (const { impl, inbound } of receivers) {
          const opened = inbound.open(packet);
          expectOk(opened);
          t.equal(
            toHex(opened.payload),
            toHex(payload),
            `${name(suite)} ${sender.label}->${impl.label} ${size}`,
          );
          t.equal(opened.nextHeader, 4);
        }
      }
      t.equal(outbound.packets, SIZES.length);
      t.equal(
        outbound.bytes,
        SIZES.reduce((a, b) => a + b),
      );
    }
  }
  t.equal(
    pairs,
    3 * 5 + 3 * 5 + 5 + 9 + 1,
    'CBC and CTR with 5 HMACs each, 3DES with 5, 9 GCM, ChaCha20-Poly1305',
  );
});

function suiteOf(encr: string, integ?: string): Pick<Suite, 'encr' | 'integ'> {
  return { encr: algorithm('encr', encr), ...(integ && { integ: algorithm('integ', integ) }) };
}

const TAMPER_SUITES = [
  suiteOf('aes128', 'sha256'),
  suiteOf('3des', 'sha1'),
  suiteOf('aes256ctr', 'sha512'),
  suiteOf('aes128gcm16'),
  suiteOf('aes256gcm8'),
  suiteOf('chacha20poly1305'),
];

t.test('tampering is caught by the ICV check, before the window moves', async (t) => {
  for (const suite of TAMPER_SUITES) {
    for (const impl of IMPLS.filter((i) => i.label !== 'noble' || suite.encr.name !== '3des')) {
      const p = params(suite);
      const outbound = new EspOutbound(impl.provider, p, impl.options);
      const inbound = new EspInbound(impl.provider, p, impl.options);
      const packet = outbound.seal(randomBytes(64), 4);
      const label = `${name(suite)} ${impl.label}`;
      for (const [what, offset] of [
        ['SPI', 1],
        ['sequence number', 6],
        ['IV', 9],
        ['ciphertext', packet.length - 20],
        ['ICV', packet.length - 1],
      ] as const) {
        const bad = Buffer.from(packet);
        bad[offset]! ^= 0x01;
        t.same(inbound.open(bad), { ok: false, cause: 'icv' }, `${label}: ${what}`);
      }
      t.equal(inbound.highestSequence, 0, `${label}: a forged packet does not move the window`);
      expectOk(inbound.open(packet));
      t.same(inbound.open(packet), { ok: false, cause: 'replay' }, `${label}: the same packet again`);
    }
  }
});

t.test('truncated and misaligned packets', async (t) => {
  for (const suite of TAMPER_SUITES) {
    const p = params(suite);
    const outbound = new EspOutbound(node, p);
    const inbound = new EspInbound(node, p);
    const packet = outbound.seal(randomBytes(40), 4);
    for (const length of [0, 7, 8, 12, 8 + suite.encr.ivLength]) {
      t.same(inbound.open(packet.subarray(0, length)), { ok: false, cause: 'truncated' }, `${length} bytes`);
    }
    t.same(
      inbound.open(packet.subarray(0, packet.length - 1)),
      { ok: false, cause: 'truncated' },
      'one byte short',
    );
    expectOk(inbound.open(packet));
  }
});

/** An authentic packet around an arbitrary plaintext (trailer included), to test trailer checks. */
function sealRaw(p: EspSaParams, seq: number, plaintext: Uint8Array): Buffer {
  const transform = createEspTransform(node, p.suite, p.keys);
  const packet = Buffer.alloc(8 + transform.ivLength + plaintext.length + transform.icvLength);
  packet.writeUInt32BE(p.spi, 0);
  packet.writeUInt32BE(seq, 4);
  packet.set(plaintext, 8 + transform.ivLength);
  transform.seal(packet, seq);
  return packet;
}

t.test('padding, pad length and next header are checked after the ICV', async (t) => {
  for (const suite of [suiteOf('aes128', 'sha1'), suiteOf('aes128gcm16')]) {
    const p = params(suite);
    const align = Math.max(4, suite.encr.blockSize);
    const inbound = new EspInbound(node, p, { mode: 'tunnel' });
    const plain = (payload: number[], pad: number[], padLength: number, nh: number): Uint8Array => {
      const bytes = [...payload, ...pad, padLength, nh];
      if (bytes.length % align) throw new Error('test plaintext must be aligned');
      return Uint8Array.from(bytes);
    };
    const inner = Array<number>(2 * align - 6).fill(0x45);
    let seq = 1;
    const open = (bytes: Uint8Array): EspOpenResult => inbound.open(sealRaw(p, seq++, bytes));
    const good = open(plain(inner, [1, 2, 3, 4], 4, 4));
    expectOk(good);
    t.equal(good.payload.length, inner.length);
    t.same(open(plain(inner, [1, 2, 4, 3], 4, 4)), { ok: false, cause: 'padding' }, 'padding not 1, 2, 3...');
    t.same(open(plain(inner, [0, 0, 0, 0], 4, 4)), { ok: false, cause: 'padding' }, 'zero padding');
    t.same(
      open(plain(inner, [1, 2, 3, 4], align - 1, 4)),
      { ok: false, cause: 'padding' },
      'pad length beyond the plaintext',
    );
    t.same(open(plain(inner, [1, 2, 3, 4], 4, 59)), { ok: false, cause: 'dummy' }, 'next header 59');
    t.same(open(plain(inner, [1, 2, 3, 4], 4, 6)), { ok: false, cause: 'next-header' }, 'TCP in tunnel mode');
    const v6 = open(plain(inner, [1, 2, 3, 4], 4, 41));
    t.ok(v6.ok, 'IPv6 in tunnel mode');
    t.equal(inbound.packets, 2, 'only accepted packets are counted');
    // Authentic packets move the window even when their trailer is refused.
    t.equal(inbound.highestSequence, seq - 1);
    const transport = new EspInbound(node, p, { mode: 'transport' });
    const tcp = transport.open(sealRaw(p, 1, plain(inner, [1, 2, 3, 4], 4, 6)));
    t.ok(tcp.ok && tcp.nextHeader === 6, 'TCP in transport mode');
  }
});

t.test('the anti-replay window of an inbound SA', async (t) => {
  const p = params(suiteOf('aes128gcm16'));
  const outbound = new EspOutbound(node, p);
  const inbound = new EspInbound(node, p, { replayWindow: 64 });
  const packets = Array.from({ length: 200 }, () => outbound.seal(randomBytes(20), 4));
  // Out of order inside the window: accepted.
  for (const i of [0, 5, 3, 4, 1, 2]) t.ok(inbound.open(packets[i]!).ok, `seq ${i + 1}`);
  t.ok(inbound.open(packets[199]!).ok, 'far ahead');
  t.equal(inbound.highestSequence, 200);
  t.ok(inbound.open(packets[200 - 64]!).ok, 'seq 137: the left edge of the window');
  t.same(inbound.open(packets[200 - 65]!), { ok: false, cause: 'replay' }, 'seq 136: left of the window');
  t.same(inbound.open(packets[199]!), { ok: false, cause: 'replay' }, 'duplicate of the top');
});

t.test('the outbound sequence number never cycles', async (t) => {
  const p = params(suiteOf('aes128', 'sha256'));
  const outbound = new EspOutbound(node, p, { firstSequence: 0xfffffffe });
  const inbound = new EspInbound(node, p);
  t.notOk(outbound.exhausted);
  const a = outbound.seal(randomBytes(10), 4);
  const b = outbound.seal(randomBytes(10), 4);
  t.equal(a.readUInt32BE(4), 0xfffffffe);
  t.equal(b.readUInt32BE(4), 0xffffffff);
  t.ok(outbound.exhausted);
  t.equal(outbound.nextSequence, 2 ** 32);
  t.throws(() => outbound.seal(randomBytes(10), 4), SequenceExhaustedError);
  t.equal(outbound.packets, 2);
  t.ok(inbound.open(b).ok);
  t.ok(inbound.open(a).ok);
});

t.test('IVs: random for CBC, never repeating for the counter modes', async (t) => {
  for (const suite of [suiteOf('aes128', 'sha1'), suiteOf('aes128ctr', 'sha1'), suiteOf('aes128gcm16')]) {
    for (const impl of IMPLS) {
      const p = params(suite);
      const outbound = new EspOutbound(impl.provider, p, impl.options);
      const ivs = new Set<string>();
      for (let i = 0; i < 300; i++) {
        ivs.add(toHex(outbound.seal(new Uint8Array(32), 4).subarray(8, 8 + suite.encr.ivLength)));
      }
      t.equal(ivs.size, 300, `${name(suite)} ${impl.label}: 300 packets, 300 IVs`);
      if (suite.encr.primitive !== 'aes-cbc') {
        // Same payload, same key: the ciphertexts differ because the nonces do.
        const x = outbound.seal(new Uint8Array(32), 4).subarray(16);
        const y = outbound.seal(new Uint8Array(32), 4).subarray(16);
        t.not(toHex(x), toHex(y));
      }
    }
  }
});

t.test('keys of the wrong length and missing integrity are refused at construction', async (t) => {
  const gcm = suiteOf('aes128gcm16');
  t.throws(() => new EspOutbound(node, { spi: 300, suite: gcm, keys: { encryption: randomBytes(16) } }), {
    message: /must be 20 bytes/,
  });
  const cbc = suiteOf('aes128', 'sha256');
  t.throws(
    () =>
      new EspOutbound(node, {
        spi: 300,
        suite: cbc,
        keys: { encryption: randomBytes(16), integrity: randomBytes(20) },
      }),
    { message: /integrity key must be 32 bytes/ },
  );
  t.throws(
    () =>
      new EspOutbound(node, { spi: 300, suite: { encr: cbc.encr }, keys: { encryption: randomBytes(16) } }),
    { message: /needs an integrity algorithm/ },
  );
  t.throws(
    () =>
      new EspOutbound(node, {
        spi: 300,
        suite: { encr: gcm.encr, integ: cbc.integ! },
        keys: { encryption: randomBytes(20), integrity: randomBytes(32) },
      }),
    { message: /AEAD/ },
  );
  t.throws(() => new EspOutbound(node, { ...params(gcm), spi: 2 ** 32 }), RangeError);
  t.throws(() => new EspInbound(node, params(gcm), { replayWindow: 100 }), RangeError);
});

t.test('the CBC fast path keeps its chaining state right over many packets of mixed sizes', async (t) => {
  // The node path reuses one OpenSSL context per direction; the provider path creates one per
  // packet. Interleave both directions and check every packet against the other implementation.
  for (const encr of ['aes128', 'aes192', 'aes256', '3des'] as const) {
    const suite = suiteOf(encr, 'sha1');
    const p = params(suite);
    const fast = new EspOutbound(node, p, { implementation: 'node' });
    const slowIn = new EspInbound(node, p, { implementation: 'provider' });
    const slow = new EspOutbound(node, p, { implementation: 'provider' });
    const fastIn = new EspInbound(node, p, { implementation: 'node' });
    let ok = 0;
    for (let i = 0; i < 200; i++) {
      const payload = randomBytes((i * 37) % 1500);
      const a = slowIn.open(fast.seal(payload, 4));
      const b = fastIn.open(slow.seal(payload, 4));
      if (a.ok && b.ok && a.payload.equals(payload) && b.payload.equals(payload)) ok++;
    }
    t.equal(ok, 200, encr);
  }
});

t.test('a provider without the algorithm says so', async (t) => {
  const encr: EncryptionAlgorithm = algorithm('encr', '3des');
  t.throws(
    () => new EspOutbound(noble, params({ encr, integ: algorithm('integ', 'sha1') })),
    UnsupportedAlgorithmError,
  );
});
