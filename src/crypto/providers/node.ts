import * as crypto from 'node:crypto';
import { asBuffer, bigIntToBytes, bytesToBigInt, concat } from '../../wire/bytes.js';
import { IntegrityCheckError, InvalidLengthError } from '../errors.js';
import { MODP_PRIMES, type ModpGroupName, randomExponent } from '../modp.js';
import type { AeadCipher, CryptoProvider, RawCipher, RawKeyPair } from '../provider.js';
import type { DhAlgorithm, DhGroupName, HashName } from '../registry.js';

/**
 * Random bytes for the many small values a handshake needs (cookies, nonces, SPIs, message IDs),
 * read ahead from OpenSSL's CSPRNG a few kilobytes at a time: one call into OpenSSL per hundred
 * values instead of one each. Each value is copied out and its bytes in the pool wiped. Larger
 * requests go straight to the CSPRNG.
 */
function pooledRandom(poolSize = 4096): (length: number) => Uint8Array {
  const pool = Buffer.alloc(poolSize);
  let used = poolSize;
  return (length) => {
    if (length > poolSize / 8) return crypto.randomBytes(length);
    if (used + length > poolSize) {
      crypto.randomFillSync(pool);
      used = 0;
    }
    // Its own ArrayBuffer (not Node's shared pool): callers may view `.buffer` from offset 0.
    const out = new Uint8Array(length);
    out.set(pool.subarray(used, used + length));
    pool.fill(0, used, used + length);
    used += length;
    return out;
  };
}

/** Input block sizes of the hash functions (FIPS 180-4 section 1; RFC 1321): HMAC's B. */
const BLOCK: Readonly<Record<HashName, number>> = { md5: 64, sha1: 64, sha256: 64, sha384: 128, sha512: 128 };

/**
 * HMAC as RFC 2104 section 2 defines it, H(K ^ opad, H(K ^ ipad, text)), from two one-shot hashes:
 * a handshake takes a dozen HMACs under as many keys, and a node:crypto Hmac object per call
 * (constructed, then finalized by the garbage collector) costs more than the hashing itself.
 * What was hashed is wiped at once: the padded key blocks, and the text, which may hold a secret
 * (g^xy goes into SKEYID_d) and sits in Node's shared buffer pool until overwritten otherwise.
 * Each hash input is one buffer from that pool, the key block written in place, rather than
 * `concat` of a padded block and the text: fresh buffers made that 5.3 µs per HMAC, this 3.5.
 */
function hmac(alg: HashName, key: Uint8Array, ...data: readonly Uint8Array[]): Uint8Array {
  const B = BLOCK[alg];
  const hashedKey = key.length > B ? crypto.hash(alg, key, 'buffer') : undefined;
  const K = hashedKey ?? key;
  let length = B;
  for (const part of data) length += part.length;
  const inner = Buffer.allocUnsafe(length);
  for (let i = 0; i < B; i++) inner[i] = (K[i] ?? 0) ^ 0x36;
  let at = B;
  for (const part of data) {
    inner.set(part, at);
    at += part.length;
  }
  const innerHash = crypto.hash(alg, inner, 'buffer');
  inner.fill(0);
  const outer = Buffer.allocUnsafe(B + innerHash.length);
  for (let i = 0; i < B; i++) outer[i] = (K[i] ?? 0) ^ 0x5c;
  outer.set(innerHash, B);
  const mac = crypto.hash(alg, outer, 'buffer');
  outer.fill(0);
  hashedKey?.fill(0);
  return mac;
}

/** OpenSSL through node:crypto: the default provider. */
export function createNodeProvider(): CryptoProvider {
  return {
    name: 'node',
    randomBytes: pooledRandom(),
    hash: (alg, ...data) => crypto.hash(alg, data.length === 1 ? data[0]! : concat(...data), 'buffer'),
    hmac,
    cipher(alg, direction, key, iv, data) {
      const name = rawCipherName(alg, key.length);
      const c =
        direction === 'encrypt'
          ? crypto.createCipheriv(name, key, iv)
          : crypto.createDecipheriv(name, key, iv);
      c.setAutoPadding(false);
      const out = c.update(data);
      const tail = c.final(); // empty without padding; checked rather than copied into a new buffer
      return tail.length === 0 ? out : concat(out, tail);
    },
    aeadSeal(alg, key, nonce, aad, plaintext, tagLength) {
      const c = crypto.createCipheriv(aeadName(alg, key.length), key, nonce, {
        authTagLength: tagLength,
      }) as crypto.CipherGCM;
      c.setAAD(aad);
      const ciphertext = c.update(plaintext);
      c.final(); // stream modes: no output
      return Buffer.concat([ciphertext, c.getAuthTag()]);
    },
    aeadOpen(alg, key, nonce, aad, sealed, tagLength) {
      if (sealed.length < tagLength)
        throw new InvalidLengthError(`${alg} sealed data`, `>= ${tagLength}`, sealed.length);
      const split = sealed.length - tagLength;
      const d = crypto.createDecipheriv(aeadName(alg, key.length), key, nonce, {
        authTagLength: tagLength,
      }) as crypto.DecipherGCM;
      d.setAAD(aad);
      d.setAuthTag(sealed.subarray(split));
      const plaintext = d.update(sealed.subarray(0, split));
      try {
        return Buffer.concat([plaintext, d.final()]);
      } catch {
        throw new IntegrityCheckError(alg);
      }
    },
    keyPair(group, privateKey) {
      switch (group.family) {
        case 'modp':
          return modpKeyPair(group, privateKey);
        case 'ecp':
          return ecpKeyPair(group, privateKey);
        case 'curve25519':
          return x25519KeyPair(privateKey);
      }
    },
    supports: () => true,
  };
}

function rawCipherName(alg: RawCipher, keyLength: number): string {
  if (alg === '3des-cbc') {
    if (keyLength !== 24) throw new InvalidLengthError('3des-cbc key', '24', keyLength);
    return 'des-ede3-cbc';
  }
  return `aes-${aesBits(keyLength)}-${alg === 'aes-cbc' ? 'cbc' : 'ctr'}`;
}

function aeadName(alg: AeadCipher, keyLength: number): crypto.CipherGCMTypes {
  if (alg === 'chacha20-poly1305') {
    if (keyLength !== 32) throw new InvalidLengthError('chacha20-poly1305 key', '32', keyLength);
    return 'chacha20-poly1305' as crypto.CipherGCMTypes;
  }
  return `aes-${aesBits(keyLength)}-gcm` as crypto.CipherGCMTypes;
}

function aesBits(keyLength: number): number {
  if (keyLength !== 16 && keyLength !== 24 && keyLength !== 32) {
    throw new InvalidLengthError('AES key', '16, 24 or 32', keyLength);
  }
  return keyLength * 8;
}

/**
 * One DiffieHellman object per MODP group for the whole process: constructing one makes OpenSSL
 * verify the prime, which costs ~37 ms for the RFC 2409 primes it does not know by name. Each
 * exchange then only loads its own private key into it (the calls are synchronous, so sharing
 * the object cannot interleave).
 */
const modpEngines = new Map<DhGroupName, crypto.DiffieHellman>();

function modpEngine(group: DhAlgorithm): crypto.DiffieHellman {
  let engine = modpEngines.get(group.name);
  if (!engine) {
    engine = crypto.createDiffieHellman(Buffer.from(MODP_PRIMES[group.name as ModpGroupName], 'hex'), 2);
    modpEngines.set(group.name, engine);
  }
  return engine;
}

function modpKeyPair(group: DhAlgorithm, given?: Uint8Array): RawKeyPair {
  const engine = modpEngine(group);
  const privateKey = asBuffer(given ?? randomExponent(group.exponentBits!, crypto.randomBytes));
  let publicKey: Uint8Array | undefined;
  // g^x is a modular exponentiation as costly as the shared secret: made at once for a fresh pair,
  // for a given private key only if read (an initiator finishing its exchange already sent it).
  const g_x = () => {
    engine.setPrivateKey(privateKey);
    engine.generateKeys();
    return pad(engine.getPublicKey(), group.publicLength);
  };
  if (!given) publicKey = g_x();
  return {
    get publicKey() {
      return (publicKey ??= g_x());
    },
    privateKey,
    sharedSecret(peerPublic) {
      engine.setPrivateKey(privateKey);
      return pad(engine.computeSecret(asBuffer(peerPublic)), group.sharedLength);
    },
  };
}

/** OpenSSL drops leading zero bytes; IKE wants values at their full length. */
function pad(bytes: Uint8Array, length: number): Uint8Array {
  return bytes.length === length ? bytes : bigIntToBytes(bytesToBigInt(bytes), length);
}

const ECP_CURVES: Partial<Record<DhGroupName, string>> = { ecp256: 'prime256v1', ecp384: 'secp384r1' };

function ecpKeyPair(group: DhAlgorithm, given?: Uint8Array): RawKeyPair {
  const ecdh = crypto.createECDH(ECP_CURVES[group.name]!);
  if (given) ecdh.setPrivateKey(asBuffer(given));
  else ecdh.generateKeys();
  // Uncompressed points are 0x04 ‖ x ‖ y; IKE carries x ‖ y (RFC 5903 section 7).
  const publicKey = ecdh.getPublicKey().subarray(1);
  return {
    publicKey,
    privateKey: pad(ecdh.getPrivateKey(), group.sharedLength),
    sharedSecret: (peerPublic) =>
      pad(ecdh.computeSecret(Buffer.concat([Buffer.of(4), peerPublic])), group.sharedLength),
  };
}

// DER prefix of an X25519 PKCS#8 private key (RFC 8410 section 7), for known-answer tests only.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * X25519 through KeyObjects. Public keys go in and out as JWK: OpenSSL 3's DER decoder costs
 * ~110 µs per key, JWK ~10 µs (bench/crypto.ts shows the effect).
 */
function x25519KeyPair(given?: Uint8Array): RawKeyPair {
  const privateKey = given
    ? crypto.createPrivateKey({
        key: Buffer.concat([X25519_PKCS8_PREFIX, given]),
        format: 'der',
        type: 'pkcs8',
      })
    : crypto.generateKeyPairSync('x25519').privateKey;
  const { x, d } = privateKey.export({ format: 'jwk' });
  return {
    publicKey: Buffer.from(x!, 'base64url'),
    privateKey: Buffer.from(d!, 'base64url'),
    sharedSecret(peerPublic) {
      const publicKey = crypto.createPublicKey({
        key: { kty: 'OKP', crv: 'X25519', x: asBuffer(peerPublic).toString('base64url') },
        format: 'jwk',
      });
      return crypto.diffieHellman({ privateKey, publicKey });
    },
  };
}
