import t from 'tap';
import {
  algorithmsOf,
  createCryptoProvider,
  Encryption,
  Integrity,
  IntegrityCheckError,
  InvalidLengthError,
  UnsupportedAlgorithmError,
} from '../../src/crypto/index.js';
import { toHex } from '../../src/wire/bytes.js';

const node = createCryptoProvider('node');
const noble = createCryptoProvider('noble');

t.test('every encryption transform round-trips across providers', async (t) => {
  for (const alg of algorithmsOf('encr')) {
    const sender = new Encryption(node, alg);
    const key = node.randomBytes(sender.keyMaterialLength);
    const iv = node.randomBytes(sender.ivLength);
    const aad = sender.isAead ? node.randomBytes(8) : new Uint8Array(0);
    for (const length of [0, sender.blockSize, 1400 - (1400 % sender.blockSize)]) {
      const plaintext = node.randomBytes(length);
      const sealed = sender.encrypt(key, iv, plaintext, aad);
      t.equal(sealed.length, length + sender.icvLength, `${alg.name} output length`);
      if (!noble.supports(alg.primitive)) {
        t.throws(
          () => new Encryption(noble, alg),
          UnsupportedAlgorithmError,
          `${alg.name} unsupported in noble`,
        );
        continue;
      }
      const receiver = new Encryption(noble, alg);
      t.equal(toHex(receiver.encrypt(key, iv, plaintext, aad)), toHex(sealed), `${alg.name} same ciphertext`);
      t.equal(
        toHex(receiver.decrypt(key, iv, sealed, aad)),
        toHex(plaintext),
        `${alg.name} noble decrypts node`,
      );
      if (sender.isAead && length > 0) {
        const tampered = Uint8Array.from(sealed);
        tampered[0]! ^= 0x80;
        t.throws(() => receiver.decrypt(key, iv, tampered, aad), IntegrityCheckError);
        t.throws(() => sender.decrypt(key, iv, tampered, aad), IntegrityCheckError);
        t.throws(
          () => sender.decrypt(key, iv, sealed, new Uint8Array(8)),
          IntegrityCheckError,
          'AAD is authenticated',
        );
      }
    }
  }
});

t.test('wrong lengths are typed errors', async (t) => {
  const aes = new Encryption(node, 'aes128');
  t.throws(() => aes.encrypt(new Uint8Array(15), new Uint8Array(16), new Uint8Array(16)), InvalidLengthError);
  t.throws(() => aes.encrypt(new Uint8Array(16), new Uint8Array(8), new Uint8Array(16)), InvalidLengthError);
  t.throws(() => aes.encrypt(new Uint8Array(16), new Uint8Array(16), new Uint8Array(15)), InvalidLengthError);
  const gcm = new Encryption(node, 'aes256gcm16');
  t.throws(() => gcm.decrypt(new Uint8Array(36), new Uint8Array(8), new Uint8Array(10)), InvalidLengthError);
});

t.test('integrity transforms truncate the HMAC and verify in both providers', async (t) => {
  for (const alg of algorithmsOf('integ')) {
    const a = new Integrity(node, alg);
    const b = new Integrity(noble, alg);
    const key = node.randomBytes(a.keyLength);
    const data = node.randomBytes(100);
    const icv = a.compute(key, data);
    t.equal(icv.length, alg.icvLength, `${alg.name} ICV length`);
    t.equal(toHex(b.compute(key, data)), toHex(icv));
    t.equal(toHex(icv), toHex(node.hmac(alg.hash, key, data).subarray(0, alg.icvLength)));
    b.verify(key, icv, data);
    const bad = Uint8Array.from(icv);
    bad[0]! ^= 1;
    t.throws(() => a.verify(key, bad, data), IntegrityCheckError);
  }
});

t.test('hashes agree between providers on multi-part input', async (t) => {
  for (const hash of ['md5', 'sha1', 'sha256', 'sha384', 'sha512'] as const) {
    const parts = [node.randomBytes(3), node.randomBytes(64), new Uint8Array(0), node.randomBytes(129)];
    t.equal(toHex(noble.hash(hash, ...parts)), toHex(node.hash(hash, ...parts)), hash);
  }
});
