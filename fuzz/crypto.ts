import type { CryptoProvider } from '../src/crypto/provider.js';
import { createCryptoProvider } from '../src/crypto/providers/index.js';
import { Random } from './random.js';

/**
 * A crypto provider whose randomness comes from a seed (nonces, SPIs, IVs, DH private keys), so
 * that an engine given the same inputs does the same thing again: what makes a recorded history
 * of inputs a reproducer. With `seal`, what the engine encrypts is mutated before it is encrypted
 * (its MAC or AEAD tag then covers the mutation): how a mutation gets below the integrity check
 * to the decoders and state machines behind it.
 */

export interface SealMutation {
  readonly seed: number;
  /** Of each message this engine encrypts. */
  readonly probability: number;
}

export interface DeterministicCrypto {
  readonly provider: CryptoProvider;
  /** Messages sealed with a mutated plaintext since the last call (then reset). */
  takeMutated(): number;
}

export function deterministicCrypto(
  seed: number,
  seal?: SealMutation,
  mutate?: (rng: Random, plaintext: Uint8Array) => Uint8Array,
): DeterministicCrypto {
  const base = createCryptoProvider('node');
  const rng = new Random(seed);
  const sealRng = seal && new Random(seal.seed);
  let mutated = 0;
  const maybe = (plaintext: Uint8Array): Uint8Array => {
    if (!sealRng || !mutate || !sealRng.chance(seal.probability)) return plaintext;
    mutated++;
    return mutate(sealRng, plaintext);
  };
  const provider: CryptoProvider = {
    name: base.name,
    randomBytes: (length) => rng.bytes(length),
    hash: (alg, ...data) => base.hash(alg, ...data),
    hmac: (alg, key, ...data) => base.hmac(alg, key, ...data),
    cipher: (alg, direction, key, iv, data) =>
      base.cipher(alg, direction, key, iv, direction === 'encrypt' ? maybe(data) : data),
    aeadSeal: (alg, key, nonce, aad, plaintext, tagLength) =>
      base.aeadSeal(alg, key, nonce, aad, maybe(plaintext), tagLength),
    aeadOpen: (alg, key, nonce, aad, sealed, tagLength) =>
      base.aeadOpen(alg, key, nonce, aad, sealed, tagLength),
    keyPair: (group, privateKey) => {
      if (privateKey) return base.keyPair(group, privateKey);
      // A private key below every group's order: the top byte kept small.
      const length =
        group.family === 'modp'
          ? Math.ceil(group.exponentBits! / 8)
          : group.family === 'ecp'
            ? group.sharedLength
            : 32;
      const key = rng.bytes(length);
      key[0] = group.family === 'curve25519' ? key[0]! : 1 + (key[0]! & 0x3f);
      return base.keyPair(group, key);
    },
    supports: (primitive) => base.supports(primitive),
  };
  return {
    provider,
    takeMutated: () => {
      const n = mutated;
      mutated = 0;
      return n;
    },
  };
}
