import { inspect } from 'node:util';
import t, { type Test } from 'tap';
import {
  createCryptoProvider,
  deriveIkeSaKeys,
  derivePhase1PskKeys,
  KeyExchange,
  Prf,
  skeyseed,
} from '../../src/crypto/index.js';
import { sealKeys } from '../../src/crypto/secret.js';
import { toHex } from '../../src/wire/bytes.js';

const provider = createCryptoProvider('node');
const prf = new Prf(provider, 'prfsha256');

/** Every rendering a log line or a JSON dump could use. */
function renderings(value: object): string[] {
  return [
    String(value),
    `${value}`,
    JSON.stringify(value),
    JSON.stringify({ nested: { value } }),
    inspect(value),
    inspect(value, { showHidden: true, depth: Number.POSITIVE_INFINITY }),
    inspect({ nested: [value] }, { showHidden: true, depth: Number.POSITIVE_INFINITY }),
  ];
}

/** Neither the hex nor the decimal byte list of any secret may appear. */
function assertHidden(t: Test, value: object, secrets: Uint8Array[]): void {
  for (const text of renderings(value)) {
    for (const secret of secrets) {
      t.notOk(text.includes(toHex(secret)), 'no hex');
      t.notOk(text.includes([...secret.subarray(0, 6)].join(', ')), 'no byte list');
    }
    t.notOk(text.includes('Uint8Array'), `no raw bytes in: ${text.slice(0, 80)}`);
  }
}

t.test('IKEv1 phase 1 keys never render', async (t) => {
  const keys = derivePhase1PskKeys(prf, {
    psk: Buffer.from('correct horse battery staple'),
    Ni_b: provider.randomBytes(16),
    Nr_b: provider.randomBytes(16),
    gxy: provider.randomBytes(128),
    CKY_I: provider.randomBytes(8),
    CKY_R: provider.randomBytes(8),
    encryptionKeyLength: 32,
  });
  assertHidden(t, keys, [keys.SKEYID, keys.SKEYID_d, keys.SKEYID_a, keys.SKEYID_e, keys.encryptionKey]);
  t.match(String(keys), /SKEYID_d: <secret 32 bytes>/, 'names and lengths are shown');
  t.ok(Object.isFrozen(keys));
});

t.test('IKEv2 SA keys never render', async (t) => {
  const seed = skeyseed(prf, provider.randomBytes(32), provider.randomBytes(32), provider.randomBytes(256));
  const keys = deriveIkeSaKeys(prf, seed, {
    Ni: provider.randomBytes(32),
    Nr: provider.randomBytes(32),
    SPIi: provider.randomBytes(8),
    SPIr: provider.randomBytes(8),
    encryptionKeyLength: 32,
    integrityKeyLength: 32,
  });
  assertHidden(t, keys, Object.values(keys));
  t.match(inspect(keys), /SK_ei: <secret 32 bytes>/);
});

t.test('a key exchange shows its group, never its private key', async (t) => {
  for (const name of ['node', 'noble'] as const) {
    const p = createCryptoProvider(name);
    for (const group of ['modp1024', 'ecp256', 'curve25519'] as const) {
      const privateKey = group === 'modp1024' ? p.randomBytes(20) : undefined;
      const kex = new KeyExchange(p, group, privateKey);
      const peer = new KeyExchange(p, group);
      const shared = kex.computeSharedSecret(peer.publicKey);
      assertHidden(t, kex, privateKey ? [privateKey, shared] : [shared]);
      t.equal(String(kex), `KeyExchange(${group})`);
    }
  }
});

t.test('sealed keys are copies held in one buffer, each view its own length', async (t) => {
  const a = Uint8Array.of(1, 2, 3);
  const b = Uint8Array.of(4, 5);
  const sealed = sealKeys('Test', { a, b });
  t.same([...sealed.a], [1, 2, 3]);
  t.same([...sealed.b], [4, 5]);
  t.equal(sealed.a.buffer, sealed.b.buffer, 'one allocation for the record');
  a[0] = 9;
  t.equal(sealed.a[0], 1, 'a copy: the caller may reuse or wipe what it passed');
  t.ok(Object.isFrozen(sealed));
  t.notMatch(String(sealed), /1,2,3|010203/, 'still redacted');
});

t.test("HMAC leaves no copy of its key or text in Node's shared buffer pool", async (t) => {
  // The node provider builds HMAC from one-shot hashes over buffers from the pool; the text may
  // hold a secret (g^xy goes into SKEYID_d), so what was hashed must not stay there.
  const text = new Uint8Array(48).fill(0xa7);
  for (const length of [20, 64, 200]) {
    const key = new Uint8Array(length).fill(0x5b);
    // The pool is the same before and after the call: its buffers came from that pool.
    let pool: ArrayBufferLike;
    do {
      pool = Buffer.allocUnsafe(1).buffer;
      provider.hmac('sha1', key, text);
    } while (Buffer.allocUnsafe(1).buffer !== pool);
    // Searched in place: a Buffer made of the needle would itself come from the pool.
    const haystack = new Uint8Array(pool);
    const holds = (bytes: Uint8Array) =>
      haystack.some((_, at) => bytes.every((byte, i) => haystack[at + i] === byte));
    t.notOk(holds(text), `${length}-byte key: the text is not left in the pool`);
    // A key longer than the block is hashed first (RFC 2104 section 2): no K XOR ipad to look for.
    if (length <= 64) t.notOk(holds(key.map((b) => b ^ 0x36)), `${length}-byte key: nor K XOR ipad`);
  }
});
