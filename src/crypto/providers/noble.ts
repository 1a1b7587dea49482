import { cbc, ctr, gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { p256, p384 } from '@noble/curves/nist.js';
import { hmac } from '@noble/hashes/hmac.js';
import { md5, sha1 } from '@noble/hashes/legacy.js';
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { modPow } from 'bigint-mod-arith';
import { bigIntToBytes, bytesToBigInt, concat, equalBytes } from '../../wire/bytes.js';
import { IntegrityCheckError, InvalidLengthError, UnsupportedAlgorithmError } from '../errors.js';
import { type ModpGroupName, modpPrime, randomExponent } from '../modp.js';
import type { AeadCipher, CryptoProvider, RawKeyPair } from '../provider.js';
import type { DhAlgorithm, HashName } from '../registry.js';

const HASHES = { md5, sha1, sha256, sha384, sha512 } as const;

/**
 * Pure JavaScript: @noble/ciphers, @noble/hashes, @noble/curves, and bigint-mod-arith for MODP.
 * noble has no 3DES (and never will: it ships only modern ciphers), so this provider reports
 * 3des-cbc as unsupported rather than faking it.
 */
export function createNobleProvider(): CryptoProvider {
  return {
    name: 'noble',
    randomBytes: (length) => randomBytes(length),
    hash(alg, ...data) {
      const h = hashOf(alg).create();
      for (const part of data) h.update(part);
      return h.digest();
    },
    hmac(alg, key, ...data) {
      const h = hmac.create(hashOf(alg), key);
      for (const part of data) h.update(part);
      return h.digest();
    },
    cipher(alg, direction, key, iv, data) {
      if (alg === '3des-cbc')
        throw new UnsupportedAlgorithmError(alg, 'noble', '@noble/ciphers has no DES/3DES');
      checkAesKey(key);
      const c = alg === 'aes-cbc' ? cbc(key, iv, { disablePadding: true }) : ctr(key, iv);
      return direction === 'encrypt' ? c.encrypt(data) : c.decrypt(data);
    },
    aeadSeal(alg, key, nonce, aad, plaintext, tagLength) {
      const sealed = aead(alg, key, nonce, aad).encrypt(plaintext);
      // noble always produces the 16-byte tag; the short ICVs of RFC 4106 are its leading bytes.
      return sealed.subarray(0, plaintext.length + tagLength);
    },
    aeadOpen(alg, key, nonce, aad, sealed, tagLength) {
      if (sealed.length < tagLength)
        throw new InvalidLengthError(`${alg} sealed data`, `>= ${tagLength}`, sealed.length);
      const split = sealed.length - tagLength;
      if (tagLength === 16) {
        try {
          return aead(alg, key, nonce, aad).decrypt(sealed);
        } catch {
          throw new IntegrityCheckError(alg);
        }
      }
      // Truncated tag: decrypt with the GCM counter (which starts at J0 + 1 = nonce ‖ 2), then
      // recompute the full tag over the recovered plaintext and compare its prefix.
      const plaintext = ctr(key, concat(nonce, Uint8Array.of(0, 0, 0, 2))).decrypt(sealed.subarray(0, split));
      const expected = aead(alg, key, nonce, aad)
        .encrypt(plaintext)
        .subarray(split, split + tagLength);
      if (!equalBytes(expected, sealed.subarray(split))) throw new IntegrityCheckError(alg);
      return plaintext;
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
    supports: (primitive) => primitive !== '3des-cbc',
  };
}

function hashOf(alg: HashName) {
  return HASHES[alg];
}

function checkAesKey(key: Uint8Array): void {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new InvalidLengthError('AES key', '16, 24 or 32', key.length);
  }
}

function aead(alg: AeadCipher, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array) {
  if (alg === 'chacha20-poly1305') {
    if (key.length !== 32) throw new InvalidLengthError('chacha20-poly1305 key', '32', key.length);
    return chacha20poly1305(key, nonce, aad);
  }
  checkAesKey(key);
  return gcm(key, nonce, aad);
}

function modpKeyPair(group: DhAlgorithm, given?: Uint8Array): RawKeyPair {
  const p = modpPrime(group.name as ModpGroupName);
  const exponent = given ?? randomExponent(group.exponentBits!, randomBytes);
  const x = bytesToBigInt(exponent);
  return {
    privateKey: exponent,
    publicKey: bigIntToBytes(modPow(2n, x, p), group.publicLength),
    sharedSecret: (peerPublic) => bigIntToBytes(modPow(bytesToBigInt(peerPublic), x, p), group.sharedLength),
  };
}

function ecpKeyPair(group: DhAlgorithm, given?: Uint8Array): RawKeyPair {
  const curve = group.name === 'ecp256' ? p256 : p384;
  const secretKey = given ?? curve.utils.randomSecretKey();
  return {
    privateKey: secretKey,
    // Uncompressed points are 0x04 ‖ x ‖ y; IKE carries x ‖ y (RFC 5903 section 7).
    publicKey: curve.getPublicKey(secretKey, false).subarray(1),
    sharedSecret: (peerPublic) =>
      curve.getSharedSecret(secretKey, concat(Uint8Array.of(4), peerPublic), true).subarray(1),
  };
}

function x25519KeyPair(given?: Uint8Array): RawKeyPair {
  const secretKey = given ?? x25519.utils.randomSecretKey();
  return {
    privateKey: secretKey,
    publicKey: x25519.getPublicKey(secretKey),
    sharedSecret: (peerPublic) => x25519.getSharedSecret(secretKey, peerPublic),
  };
}
