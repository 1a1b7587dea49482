import { concat, equalBytes } from '../wire/bytes.js';
import { IntegrityCheckError, InvalidLengthError, UnsupportedAlgorithmError } from './errors.js';
import type { CryptoProvider } from './provider.js';
import {
  algorithm,
  type EncryptionAlgorithm,
  type HashName,
  type IntegrityAlgorithm,
  type PrfAlgorithm,
} from './registry.js';

/**
 * Negotiated transforms bound to a provider. These turn a registry row into the operation IKE and
 * ESP need (salted nonces, counter blocks, truncated ICVs); the provider only does primitives.
 */

export class Prf {
  readonly algorithm: PrfAlgorithm;
  readonly outputLength: number;
  readonly hash: HashName;

  constructor(
    readonly provider: CryptoProvider,
    alg: PrfAlgorithm | string,
  ) {
    this.algorithm = typeof alg === 'string' ? algorithm('prf', alg) : alg;
    this.outputLength = this.algorithm.outputLength;
    this.hash = this.algorithm.hash;
  }

  compute(key: Uint8Array, ...data: readonly Uint8Array[]): Uint8Array {
    return this.provider.hmac(this.hash, key, ...data);
  }
}

export class Integrity {
  readonly algorithm: IntegrityAlgorithm;
  readonly keyLength: number;
  readonly icvLength: number;

  constructor(
    readonly provider: CryptoProvider,
    alg: IntegrityAlgorithm | string,
  ) {
    this.algorithm = typeof alg === 'string' ? algorithm('integ', alg) : alg;
    this.keyLength = this.algorithm.keyLength;
    this.icvLength = this.algorithm.icvLength;
  }

  /** The HMAC truncated to the ICV length (RFC 2403, 2404, 4868). */
  compute(key: Uint8Array, ...data: readonly Uint8Array[]): Uint8Array {
    return this.provider.hmac(this.algorithm.hash, key, ...data).subarray(0, this.icvLength);
  }

  verify(key: Uint8Array, icv: Uint8Array, ...data: readonly Uint8Array[]): void {
    if (!equalBytes(this.compute(key, ...data), icv)) throw new IntegrityCheckError(this.algorithm.name);
  }
}

export class Encryption {
  readonly algorithm: EncryptionAlgorithm;
  /** Keying material to derive: the cipher key followed by the salt, if any. */
  readonly keyMaterialLength: number;
  readonly ivLength: number;
  readonly blockSize: number;
  readonly icvLength: number;
  readonly isAead: boolean;

  constructor(
    readonly provider: CryptoProvider,
    alg: EncryptionAlgorithm | string,
  ) {
    this.algorithm = typeof alg === 'string' ? algorithm('encr', alg) : alg;
    if (!provider.supports(this.algorithm.primitive)) {
      throw new UnsupportedAlgorithmError(this.algorithm.name, provider.name);
    }
    this.keyMaterialLength = this.algorithm.keyLength + this.algorithm.saltLength;
    this.ivLength = this.algorithm.ivLength;
    this.blockSize = this.algorithm.blockSize;
    this.icvLength = this.algorithm.icvLength;
    this.isAead = this.icvLength > 0;
  }

  /** For AEADs the result is ciphertext ‖ ICV and `aad` is authenticated; otherwise `aad` must be empty. */
  encrypt(
    keyMaterial: Uint8Array,
    iv: Uint8Array,
    plaintext: Uint8Array,
    aad: Uint8Array = EMPTY,
  ): Uint8Array {
    const { key, salt } = this.split(keyMaterial, iv);
    const { primitive } = this.algorithm;
    switch (primitive) {
      case 'aes-cbc':
      case '3des-cbc':
        this.checkBlocks(plaintext.length);
        return this.provider.cipher(primitive, 'encrypt', key, iv, plaintext);
      case 'aes-ctr':
        return this.provider.cipher(primitive, 'encrypt', key, counterBlock(salt, iv), plaintext);
      case 'aes-gcm':
      case 'chacha20-poly1305':
        return this.provider.aeadSeal(primitive, key, concat(salt, iv), aad, plaintext, this.icvLength);
    }
  }

  /** The inverse of encrypt; AEADs throw IntegrityCheckError on a bad ICV. */
  decrypt(
    keyMaterial: Uint8Array,
    iv: Uint8Array,
    ciphertext: Uint8Array,
    aad: Uint8Array = EMPTY,
  ): Uint8Array {
    const { key, salt } = this.split(keyMaterial, iv);
    const { primitive } = this.algorithm;
    switch (primitive) {
      case 'aes-cbc':
      case '3des-cbc':
        this.checkBlocks(ciphertext.length);
        return this.provider.cipher(primitive, 'decrypt', key, iv, ciphertext);
      case 'aes-ctr':
        return this.provider.cipher(primitive, 'decrypt', key, counterBlock(salt, iv), ciphertext);
      case 'aes-gcm':
      case 'chacha20-poly1305':
        return this.provider.aeadOpen(primitive, key, concat(salt, iv), aad, ciphertext, this.icvLength);
    }
  }

  private split(keyMaterial: Uint8Array, iv: Uint8Array): { key: Uint8Array; salt: Uint8Array } {
    if (keyMaterial.length !== this.keyMaterialLength) {
      throw new InvalidLengthError(
        `${this.algorithm.name} keying material`,
        String(this.keyMaterialLength),
        keyMaterial.length,
      );
    }
    if (iv.length !== this.ivLength)
      throw new InvalidLengthError(`${this.algorithm.name} IV`, String(this.ivLength), iv.length);
    return {
      key: keyMaterial.subarray(0, this.algorithm.keyLength),
      salt: keyMaterial.subarray(this.algorithm.keyLength),
    };
  }

  private checkBlocks(length: number): void {
    if (length % this.blockSize !== 0) {
      throw new InvalidLengthError(`${this.algorithm.name} data`, `a multiple of ${this.blockSize}`, length);
    }
  }
}

const EMPTY = new Uint8Array(0);

/** RFC 3686 section 4: nonce ‖ IV ‖ block counter, the counter starting at 1. */
function counterBlock(nonce: Uint8Array, iv: Uint8Array): Uint8Array {
  return concat(nonce, iv, Uint8Array.of(0, 0, 0, 1));
}

/**
 * One bound transform per provider and algorithm: they hold no keys, so every SA negotiating the
 * same algorithm can share one (a gateway may hold a hundred thousand SAs).
 */
const shared = new WeakMap<CryptoProvider, Map<unknown, unknown>>();

function sharedOf<A, T>(provider: CryptoProvider, alg: A, make: () => T): T {
  let byAlgorithm = shared.get(provider);
  if (!byAlgorithm) shared.set(provider, (byAlgorithm = new Map()));
  let instance = byAlgorithm.get(alg) as T | undefined;
  if (!instance) byAlgorithm.set(alg, (instance = make()));
  return instance;
}

export function prfOf(provider: CryptoProvider, alg: PrfAlgorithm): Prf {
  return sharedOf(provider, alg, () => new Prf(provider, alg));
}

export function encryptionOf(provider: CryptoProvider, alg: EncryptionAlgorithm): Encryption {
  return sharedOf(provider, alg, () => new Encryption(provider, alg));
}

export function integrityOf(provider: CryptoProvider, alg: IntegrityAlgorithm): Integrity {
  return sharedOf(provider, alg, () => new Integrity(provider, alg));
}
