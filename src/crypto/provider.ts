import type { CipherPrimitive, DhAlgorithm, DhGroupName, HashName } from './registry.js';

/**
 * The primitives a crypto provider implements. Everything above this interface (transform
 * construction, peer value validation, key derivation) is shared by all providers.
 */
export interface CryptoProvider {
  readonly name: ProviderName;
  randomBytes(length: number): Uint8Array;
  hash(alg: HashName, ...data: readonly Uint8Array[]): Uint8Array;
  hmac(alg: HashName, key: Uint8Array, ...data: readonly Uint8Array[]): Uint8Array;
  /**
   * A raw cipher without padding: CBC takes whole blocks and the IV; CTR takes the whole
   * 16-byte initial counter block.
   */
  cipher(
    alg: RawCipher,
    direction: 'encrypt' | 'decrypt',
    key: Uint8Array,
    iv: Uint8Array,
    data: Uint8Array,
  ): Uint8Array;
  /** Returns ciphertext ‖ tag, the tag `tagLength` bytes long (a truncation of the full tag). */
  aeadSeal(
    alg: AeadCipher,
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    tagLength: number,
  ): Uint8Array;
  /** Takes ciphertext ‖ tag; throws IntegrityCheckError when the tag does not verify. */
  aeadOpen(
    alg: AeadCipher,
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
    tagLength: number,
  ): Uint8Array;
  /**
   * A key pair for `group`, fresh, or from a given private key (known-answer tests; a computation
   * finishing on another thread, dh-job.ts), whose public value may then be computed only if read.
   */
  keyPair(group: DhAlgorithm, privateKey?: Uint8Array): RawKeyPair;
  /** Whether the provider implements a primitive at all; callers get UnsupportedAlgorithmError otherwise. */
  supports(primitive: CipherPrimitive | HashName | DhGroupName): boolean;
}

export type ProviderName = 'node' | 'noble';
export type RawCipher = Extract<CipherPrimitive, 'aes-cbc' | '3des-cbc' | 'aes-ctr'>;
export type AeadCipher = Extract<CipherPrimitive, 'aes-gcm' | 'chacha20-poly1305'>;

/**
 * A provider's key pair. The private key stays inside the provider's closure; the shared secret is
 * returned in IKE's form (MODP: padded g^xy, ECP: x-coordinate, X25519: the u-coordinate). Peer
 * values reach it only after the shared validation in dh.ts.
 */
export interface RawKeyPair {
  readonly publicKey: Uint8Array;
  /**
   * The private value in the form `keyPair(group, privateKey)` takes back (MODP exponent, ECP
   * scalar, X25519 scalar): so that a computation can finish on another thread (dh-job.ts).
   */
  readonly privateKey: Uint8Array;
  sharedSecret(peerPublic: Uint8Array): Uint8Array;
}
