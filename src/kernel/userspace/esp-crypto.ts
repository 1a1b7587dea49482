import * as crypto from 'node:crypto';
import type { Suite } from '../../core/proposal.js';
import { IntegrityCheckError } from '../../crypto/errors.js';
import type { CryptoProvider } from '../../crypto/provider.js';
import type { HashName } from '../../crypto/registry.js';
import { Encryption, Integrity } from '../../crypto/transforms.js';
import { equalBytes } from '../../wire/bytes.js';
import { CounterIv, randomPool, SPI_SEQ } from './esp-iv.js';

/**
 * The cryptographic half of an ESP SA: one object per SA and direction, built once at install,
 * working in place on the packet buffer. The packet is laid out as RFC 4303 section 2 draws it:
 *
 *     SPI (4) | Sequence Number (4) | IV | plaintext or ciphertext | ICV
 *
 * where the plaintext is payload, padding, pad length and next header. Non-AEAD ciphers are
 * encrypt-then-MAC: the ICV is the truncated HMAC over SPI to the end of the ciphertext (section
 * 2.8, 3.3.2). AEADs take SPI ‖ sequence number as AAD and salt ‖ IV as the nonce (RFC 4106
 * sections 4-5 for GCM, RFC 7634 section 2-3 for ChaCha20-Poly1305); AES-CTR's counter block is
 * salt ‖ IV ‖ 1 (RFC 3686 section 4).
 *
 * IVs: CBC takes unpredictable IVs (RFC 3602 section 3, RFC 2451 for 3DES), drawn from a pool of
 * random bytes. The counter modes need an IV that never repeats under a key (RFC 3686 section
 * 2.1, RFC 4106 section 3.1, RFC 7634 section 2): a random 64-bit value fixed per SA plus the
 * sequence number in the low 32 bits, unique within the SA because the sequence number never
 * cycles, and unique across two SAs that might share keys by the random part.
 *
 * Two implementations produce the same bytes: `node` works on node:crypto directly (the fast
 * path: CBC keeps one OpenSSL context per direction for the SA's lifetime instead of one per
 * packet), and `provider` goes through the generic Encryption/Integrity transforms of any
 * CryptoProvider (noble...).
 */
export interface EspTransform {
  readonly ivLength: number;
  /** Plaintext (payload ‖ padding ‖ pad length ‖ next header) is a multiple of this (>= 4). */
  readonly alignment: number;
  readonly icvLength: number;
  /**
   * `packet` holds SPI, sequence number and the plaintext at its place, with room for the IV
   * before it and the ICV after it. Writes the IV (`iv` if given: known-answer tests), encrypts
   * in place and writes the ICV.
   */
  seal(packet: Buffer, seq: number, iv?: Uint8Array): void;
  /** Verifies the ICV, then decrypts: the plaintext, or undefined when the ICV does not verify. */
  open(packet: Buffer): Buffer | undefined;
}

export type EspTransformImplementation = 'node' | 'provider';

export interface EspKeys {
  /** The cipher key followed by the salt (CTR, GCM, ChaCha20-Poly1305). */
  readonly encryption: Uint8Array;
  /** Absent for AEADs. */
  readonly integrity?: Uint8Array;
}

/** Validates key lengths and builds the transform; `node` is used when the provider is node's. */
export function createEspTransform(
  provider: CryptoProvider,
  suite: Suite,
  keys: EspKeys,
  implementation: EspTransformImplementation = provider.name === 'node' ? 'node' : 'provider',
): EspTransform {
  const { encr, integ } = suite;
  const aead = encr.icvLength > 0;
  if (keys.encryption.length !== encr.keyLength + encr.saltLength) {
    throw new RangeError(
      `${encr.name}: encryption key must be ${encr.keyLength + encr.saltLength} bytes, not ${keys.encryption.length}`,
    );
  }
  if (aead && integ) throw new RangeError(`${encr.name} is an AEAD and takes no integrity algorithm`);
  if (!aead) {
    if (!integ) throw new RangeError(`${encr.name} needs an integrity algorithm (no encryption-only ESP)`);
    if (keys.integrity?.length !== integ.keyLength) {
      throw new RangeError(
        `${integ.name}: integrity key must be ${integ.keyLength} bytes, not ${keys.integrity?.length ?? 0}`,
      );
    }
  }
  if (implementation === 'provider') return new ProviderTransform(provider, suite, keys);
  switch (encr.primitive) {
    case 'aes-gcm':
    case 'chacha20-poly1305':
      return new NodeAead(suite, keys);
    case 'aes-ctr':
      return new NodeCtr(suite, keys);
    case 'aes-cbc':
    case '3des-cbc':
      return new NodeCbc(suite, keys);
  }
}

function copyKey(key: Uint8Array): Buffer {
  return Buffer.from(key);
}

function aesName(keyLength: number, mode: 'cbc' | 'ctr' | 'gcm'): string {
  return `aes-${keyLength * 8}-${mode}`;
}

/** The block size of each hash, for HMAC's padded keys (RFC 2104 section 2). */
const HASH_BLOCK: Readonly<Record<HashName, number>> = {
  md5: 64,
  sha1: 64,
  sha256: 64,
  sha384: 128,
  sha512: 128,
};

/**
 * HMAC (RFC 2104) truncated to the ICV length (RFC 2404, 4868), with a constant-time comparison:
 * H(K ⊕ opad ‖ H(K ⊕ ipad ‖ m)) as two one-shot crypto.hash calls. At packet sizes node:crypto's
 * cost per call, not the hash, dominates, and two one-shot hashes cost less than one createHmac
 * object with its update and digest. The padded keys are computed once; each sits in front of a
 * buffer that takes the message (the inner hash) or the inner digest (the outer one). Exported
 * for its tests (against createHmac and RFC 4231).
 */
export class NodeHmac {
  readonly #hash: HashName;
  readonly #block: number;
  readonly #length: number;
  /** K ⊕ ipad, then room for the message: grown when a longer one comes. */
  #inner: Buffer;
  /** K ⊕ opad ‖ the inner digest. */
  readonly #outer: Buffer;

  constructor(hash: HashName, key: Uint8Array, length: number) {
    this.#hash = hash;
    this.#block = HASH_BLOCK[hash];
    this.#length = length;
    const block = this.#block;
    // A key longer than the block is hashed first (RFC 2104 section 2); ESP's keys never are.
    const k = key.length > block ? crypto.hash(hash, key, 'buffer') : key;
    const ipad = Buffer.alloc(block, 0x36);
    this.#outer = Buffer.alloc(block + crypto.hash(hash, '', 'buffer').length, 0x5c);
    for (let i = 0; i < k.length; i++) {
      ipad[i]! ^= k[i]!;
      this.#outer[i]! ^= k[i]!;
    }
    this.#inner = ipad;
  }

  /** The full HMAC of packet[0, end). */
  mac(packet: Uint8Array, end: number): Buffer {
    const block = this.#block;
    let inner = this.#inner;
    if (inner.length < block + end) {
      // Room for the longest message so far, rounded up: few growths, then none.
      const grown = Buffer.allocUnsafeSlow(block + ((end + 2047) & ~2047));
      grown.set(inner.subarray(0, block));
      this.#inner = inner = grown;
    }
    inner.set(end === packet.length ? packet : packet.subarray(0, end), block);
    const digest = crypto.hash(this.#hash, inner.subarray(0, block + end), 'buffer');
    this.#outer.set(digest, block);
    return crypto.hash(this.#hash, this.#outer, 'buffer');
  }

  /** Writes the ICV of packet[0, end) at packet[end, end + icv). */
  write(packet: Buffer, end: number): void {
    const mac = this.mac(packet, end);
    for (let i = 0; i < this.#length; i++) packet[end + i] = mac[i]!;
  }

  /** Whether packet[end, end + icv) is the ICV of packet[0, end), in constant time. */
  verify(packet: Buffer, end: number): boolean {
    const mac = this.mac(packet, end);
    let diff = 0;
    for (let i = 0; i < this.#length; i++) diff |= mac[i]! ^ packet[end + i]!;
    return diff === 0;
  }
}

class NodeAead implements EspTransform {
  readonly ivLength: number;
  readonly alignment: number;
  readonly icvLength: number;
  readonly #cipher: crypto.CipherGCMTypes;
  readonly #key: Buffer;
  /** salt ‖ IV; createCipheriv copies it, so one buffer serves every packet. */
  readonly #nonce = Buffer.alloc(12);
  readonly #iv: CounterIv;
  readonly #tag: { readonly authTagLength: number };

  constructor(suite: Suite, keys: EspKeys) {
    const { encr } = suite;
    this.#tag = { authTagLength: encr.icvLength };
    this.ivLength = encr.ivLength;
    this.alignment = Math.max(4, encr.blockSize);
    this.icvLength = encr.icvLength;
    this.#cipher = (
      encr.primitive === 'chacha20-poly1305' ? 'chacha20-poly1305' : aesName(encr.keyLength, 'gcm')
    ) as crypto.CipherGCMTypes;
    this.#key = copyKey(keys.encryption.subarray(0, encr.keyLength));
    this.#nonce.set(keys.encryption.subarray(encr.keyLength), 0);
    this.#iv = new CounterIv(crypto.randomBytes(8));
  }

  seal(packet: Buffer, seq: number, iv?: Uint8Array): void {
    if (iv) packet.set(iv, SPI_SEQ);
    else this.#iv.write(packet, seq);
    const start = SPI_SEQ + 8;
    const end = packet.length - this.icvLength;
    packet.copy(this.#nonce, 4, SPI_SEQ, start);
    const cipher = crypto.createCipheriv(this.#cipher, this.#key, this.#nonce, this.#tag);
    cipher.setAAD(packet.subarray(0, SPI_SEQ));
    packet.set(cipher.update(packet.subarray(start, end)), start);
    cipher.final();
    packet.set(cipher.getAuthTag(), end);
  }

  open(packet: Buffer): Buffer | undefined {
    const start = SPI_SEQ + 8;
    const end = packet.length - this.icvLength;
    packet.copy(this.#nonce, 4, SPI_SEQ, start);
    const decipher = crypto.createDecipheriv(this.#cipher, this.#key, this.#nonce, this.#tag);
    decipher.setAAD(packet.subarray(0, SPI_SEQ));
    decipher.setAuthTag(packet.subarray(end));
    const plaintext = decipher.update(packet.subarray(start, end));
    try {
      decipher.final();
    } catch {
      return undefined;
    }
    return plaintext;
  }
}

class NodeCtr implements EspTransform {
  readonly ivLength = 8;
  readonly alignment = 4;
  readonly icvLength: number;
  readonly #cipher: string;
  readonly #key: Buffer;
  /** salt ‖ IV ‖ 00000001 (RFC 3686 section 4). */
  readonly #block = Buffer.alloc(16);
  readonly #iv: CounterIv;
  readonly #hmac: NodeHmac;

  constructor(suite: Suite, keys: EspKeys) {
    const { encr, integ } = suite;
    this.icvLength = integ!.icvLength;
    this.#cipher = aesName(encr.keyLength, 'ctr');
    this.#key = copyKey(keys.encryption.subarray(0, encr.keyLength));
    this.#block.set(keys.encryption.subarray(encr.keyLength), 0);
    this.#block[15] = 1;
    this.#iv = new CounterIv(crypto.randomBytes(8));
    this.#hmac = new NodeHmac(integ!.hash, keys.integrity!, integ!.icvLength);
  }

  #crypt(packet: Buffer, end: number): void {
    const start = SPI_SEQ + 8;
    packet.copy(this.#block, 4, SPI_SEQ, start);
    const cipher = crypto.createCipheriv(this.#cipher, this.#key, this.#block);
    cipher.update(packet.subarray(start, end)).copy(packet, start);
  }

  seal(packet: Buffer, seq: number, iv?: Uint8Array): void {
    if (iv) packet.set(iv, SPI_SEQ);
    else this.#iv.write(packet, seq);
    const end = packet.length - this.icvLength;
    this.#crypt(packet, end);
    this.#hmac.write(packet, end);
  }

  open(packet: Buffer): Buffer | undefined {
    const end = packet.length - this.icvLength;
    if (!this.#hmac.verify(packet, end)) return undefined;
    const start = SPI_SEQ + 8;
    packet.copy(this.#block, 4, SPI_SEQ, start);
    return crypto.createDecipheriv(this.#cipher, this.#key, this.#block).update(packet.subarray(start, end));
  }
}

/**
 * CBC with one OpenSSL context per direction for the SA's whole life. A CBC context carries the
 * last ciphertext block C' as its chaining value; feeding it P1 ⊕ IV ⊕ C' as the first block
 * yields E(P1 ⊕ IV), the first block of CBC under IV, and the rest of the packet chains as usual.
 * Decrypting, the first block comes out as D(C1) ⊕ C' and is corrected to D(C1) ⊕ IV. The output
 * is byte for byte standard CBC (checked against RFC 3602's sample packets), without creating a
 * cipher per packet (about half the cost of a 1400-byte packet).
 */
class NodeCbc implements EspTransform {
  readonly ivLength: number;
  readonly alignment: number;
  readonly icvLength: number;
  readonly #block: number;
  readonly #encrypt: crypto.Cipher;
  readonly #decrypt: crypto.Decipher;
  readonly #encryptChain: Buffer;
  readonly #decryptChain: Buffer;
  readonly #hmac: NodeHmac;

  constructor(suite: Suite, keys: EspKeys) {
    const { encr, integ } = suite;
    this.#block = encr.blockSize;
    this.ivLength = encr.ivLength;
    this.alignment = Math.max(4, encr.blockSize);
    this.icvLength = integ!.icvLength;
    const name = encr.primitive === '3des-cbc' ? 'des-ede3-cbc' : aesName(encr.keyLength, 'cbc');
    const key = copyKey(keys.encryption);
    this.#encryptChain = Buffer.alloc(this.#block);
    this.#decryptChain = Buffer.alloc(this.#block);
    this.#encrypt = crypto.createCipheriv(name, key, this.#encryptChain).setAutoPadding(false);
    this.#decrypt = crypto.createDecipheriv(name, key, this.#decryptChain).setAutoPadding(false);
    this.#hmac = new NodeHmac(integ!.hash, keys.integrity!, integ!.icvLength);
  }

  seal(packet: Buffer, _seq: number, iv?: Uint8Array): void {
    const block = this.#block;
    packet.set(iv ?? randomPool.take(block), SPI_SEQ);
    const start = SPI_SEQ + block;
    const end = packet.length - this.icvLength;
    const chain = this.#encryptChain;
    for (let i = 0; i < block; i++) packet[start + i]! ^= packet[SPI_SEQ + i]! ^ chain[i]!;
    const ciphertext = this.#encrypt.update(packet.subarray(start, end));
    ciphertext.copy(packet, start);
    ciphertext.copy(chain, 0, ciphertext.length - block);
    this.#hmac.write(packet, end);
  }

  open(packet: Buffer): Buffer | undefined {
    const block = this.#block;
    const end = packet.length - this.icvLength;
    if (!this.#hmac.verify(packet, end)) return undefined;
    const start = SPI_SEQ + block;
    const chain = this.#decryptChain;
    const plaintext = this.#decrypt.update(packet.subarray(start, end));
    for (let i = 0; i < block; i++) plaintext[i]! ^= chain[i]! ^ packet[SPI_SEQ + i]!;
    packet.copy(chain, 0, end - block, end);
    return plaintext;
  }
}

/** Any provider, through the shared Encryption and Integrity transforms. */
class ProviderTransform implements EspTransform {
  readonly ivLength: number;
  readonly alignment: number;
  readonly icvLength: number;
  readonly #provider: CryptoProvider;
  readonly #encryption: Encryption;
  readonly #integrity: Integrity | undefined;
  readonly #keys: EspKeys;
  readonly #iv: CounterIv | undefined;

  constructor(provider: CryptoProvider, suite: Suite, keys: EspKeys) {
    this.#provider = provider;
    this.#encryption = new Encryption(provider, suite.encr);
    this.#integrity = suite.integ && new Integrity(provider, suite.integ);
    this.#keys = { encryption: Uint8Array.from(keys.encryption), integrity: keys.integrity?.slice() };
    this.ivLength = suite.encr.ivLength;
    this.alignment = Math.max(4, suite.encr.blockSize);
    this.icvLength = this.#encryption.isAead ? this.#encryption.icvLength : this.#integrity!.icvLength;
    const cbc = suite.encr.primitive === 'aes-cbc' || suite.encr.primitive === '3des-cbc';
    this.#iv = cbc ? undefined : new CounterIv(provider.randomBytes(8));
  }

  seal(packet: Buffer, seq: number, iv?: Uint8Array): void {
    if (iv) packet.set(iv, SPI_SEQ);
    else if (this.#iv) this.#iv.write(packet, seq);
    else packet.set(this.#provider.randomBytes(this.ivLength), SPI_SEQ);
    const start = SPI_SEQ + this.ivLength;
    const end = packet.length - this.icvLength;
    const ivBytes = packet.subarray(SPI_SEQ, start);
    const plaintext = packet.subarray(start, end);
    if (this.#encryption.isAead) {
      const aad = packet.subarray(0, SPI_SEQ);
      packet.set(this.#encryption.encrypt(this.#keys.encryption, ivBytes, plaintext, aad), start);
    } else {
      packet.set(this.#encryption.encrypt(this.#keys.encryption, ivBytes, plaintext), start);
      packet.set(this.#integrity!.compute(this.#keys.integrity!, packet.subarray(0, end)), end);
    }
  }

  open(packet: Buffer): Buffer | undefined {
    const start = SPI_SEQ + this.ivLength;
    const end = packet.length - this.icvLength;
    const ivBytes = packet.subarray(SPI_SEQ, start);
    let plaintext: Uint8Array;
    if (this.#encryption.isAead) {
      try {
        const aad = packet.subarray(0, SPI_SEQ);
        plaintext = this.#encryption.decrypt(this.#keys.encryption, ivBytes, packet.subarray(start), aad);
      } catch (error) {
        if (error instanceof IntegrityCheckError) return undefined;
        throw error;
      }
    } else {
      const icv = this.#integrity!.compute(this.#keys.integrity!, packet.subarray(0, end));
      if (!equalBytes(icv, packet.subarray(end))) return undefined;
      plaintext = this.#encryption.decrypt(this.#keys.encryption, ivBytes, packet.subarray(start, end));
    }
    return Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  }
}
