import type { CryptoProvider } from '../crypto/provider.js';
import type { Encryption, Integrity } from '../crypto/transforms.js';
import { concat, equalBytes } from '../wire/bytes.js';
import {
  decodePayloads,
  type EncryptedPart,
  encodeEncryptedMessage,
  encodePayloads,
  type HeaderFields,
  type Payload,
  payloadType,
} from './codec.js';
import { PayloadType } from './constants.js';

/**
 * The Encrypted payload (RFC 7296 section 3.14; AEAD ciphers as RFC 5282 section 5 uses them;
 * fragments as RFC 7383 section 2.5 adds them): IV, the encrypted payload chain with its padding
 * and pad length, and the integrity checksum data. A message that fails its integrity check is
 * reported as such and nothing of it is decoded.
 */

export interface SkKeys {
  /** SK_ei and SK_ai for messages the initiator sends; SK_er and SK_ar for the responder's. */
  readonly SK_ei: Uint8Array;
  readonly SK_er: Uint8Array;
  readonly SK_ai: Uint8Array;
  readonly SK_ar: Uint8Array;
}

/** A protected message whose checksum or AEAD tag does not verify (forged, garbled, or other keys). */
export class IntegrityFailure extends Error {
  override readonly name = 'IntegrityFailure';
}

export class SkProtection {
  readonly #provider: CryptoProvider;
  readonly #encryption: Encryption;
  readonly #integrity: Integrity | undefined;
  readonly #keys: SkKeys;
  /** We are the IKE SA's original initiator: we send with SK_ei/SK_ai and read with SK_er/SK_ar. */
  readonly #initiator: boolean;

  constructor(
    provider: CryptoProvider,
    encryption: Encryption,
    integrity: Integrity | undefined,
    keys: SkKeys,
    initiator: boolean,
  ) {
    this.#provider = provider;
    this.#encryption = encryption;
    this.#integrity = encryption.isAead ? undefined : integrity;
    this.#keys = keys;
    this.#initiator = initiator;
  }

  /** Bytes of IV, padding and checksum a payload chain of `length` bytes grows by inside an SK payload. */
  overhead(length: number): number {
    return this.#bodyLength(length) - length;
  }

  /**
   * A message with `inner` encrypted in an SK payload (or, with `fragment`, an SKF payload that
   * carries the part `innerBytes` of a chain whose first payload is `innerFirst`).
   */
  seal(
    fields: HeaderFields,
    inner: readonly Payload[],
    fragment?: { number: number; total: number; innerFirst: number; innerBytes: Uint8Array },
  ): Uint8Array {
    const chain = fragment ? fragment.innerBytes : encodePayloads(inner);
    const innerFirst = fragment
      ? fragment.innerFirst
      : inner.length
        ? payloadType(inner[0]!)
        : PayloadType.NONE;
    const encryption = this.#encryption;
    const block = this.#alignment;
    const padLength = (block - ((chain.length + 1) % block)) % block;
    const plaintext = new Uint8Array(chain.length + padLength + 1);
    plaintext.set(chain);
    plaintext[plaintext.length - 1] = padLength;
    const iv = this.#provider.randomBytes(encryption.ivLength);
    const SK_e = this.#initiator ? this.#keys.SK_ei : this.#keys.SK_er;
    const SK_a = this.#initiator ? this.#keys.SK_ai : this.#keys.SK_ar;
    return encodeEncryptedMessage(
      fields,
      [],
      {
        type: fragment ? PayloadType.SKF : PayloadType.SK,
        innerFirst: fragment && fragment.number !== 1 ? PayloadType.NONE : innerFirst,
        ...(fragment && { fragment: { number: fragment.number, total: fragment.total } }),
        bodyLength: this.#bodyLength(chain.length),
      },
      (before) => {
        if (encryption.isAead) return concat(iv, encryption.encrypt(SK_e, iv, plaintext, before));
        const ciphertext = encryption.encrypt(SK_e, iv, plaintext);
        const icv = this.#integrity!.compute(SK_a, before, iv, ciphertext);
        return concat(iv, ciphertext, icv);
      },
    );
  }

  /**
   * The plaintext payload chain of a received SK or SKF payload (for SKF: this fragment's part,
   * to be reassembled). Throws IntegrityFailure when the message does not verify, and DecodeError
   * when it verifies but its padding or (for SK) its payloads are malformed.
   */
  open(datagram: Uint8Array, part: EncryptedPart): { chain: Uint8Array; payloads?: Payload[] } {
    const encryption = this.#encryption;
    const SK_e = this.#initiator ? this.#keys.SK_er : this.#keys.SK_ei;
    const SK_a = this.#initiator ? this.#keys.SK_ar : this.#keys.SK_ai;
    const headerEnd = part.offset + 4 + (part.fragment ? 4 : 0);
    const ivLength = encryption.ivLength;
    const icvLength = encryption.isAead ? encryption.icvLength : this.#integrity!.icvLength;
    const body = part.body;
    if (body.length < ivLength + icvLength + 1)
      throw new IntegrityFailure(`encrypted payload of ${body.length} bytes`);
    const iv = body.subarray(0, ivLength);
    let plaintext: Uint8Array;
    if (encryption.isAead) {
      try {
        plaintext = encryption.decrypt(SK_e, iv, body.subarray(ivLength), datagram.subarray(0, headerEnd));
      } catch {
        throw new IntegrityFailure('the AEAD tag does not verify');
      }
    } else {
      const ciphertext = body.subarray(ivLength, body.length - icvLength);
      const icv = body.subarray(body.length - icvLength);
      const expected = this.#integrity!.compute(SK_a, datagram.subarray(0, headerEnd), iv, ciphertext);
      if (!equalBytes(expected, icv)) throw new IntegrityFailure('the integrity checksum does not verify');
      if (ciphertext.length % this.#alignment !== 0)
        throw new IntegrityFailure(`ciphertext of ${ciphertext.length} bytes is not whole blocks`);
      plaintext = encryption.decrypt(SK_e, iv, ciphertext);
    }
    const padLength = plaintext[plaintext.length - 1]!;
    if (padLength + 1 > plaintext.length)
      throw new IntegrityFailure(`pad length ${padLength} longer than the plaintext`);
    const chain = plaintext.subarray(0, plaintext.length - padLength - 1);
    if (part.type === PayloadType.SKF) return { chain };
    return { chain, payloads: decodePayloads(chain, part.innerFirst, headerEnd + ivLength) };
  }

  /**
   * What the padded plaintext is a multiple of: a CBC cipher's block; 1 for counter modes and
   * AEADs, which need no padding in IKEv2 (RFC 5930 section 2, RFC 5282 section 3, RFC 7634
   * section 3) even where ESP aligns to 4 bytes.
   */
  get #alignment(): number {
    const { primitive } = this.#encryption.algorithm;
    return primitive === 'aes-cbc' || primitive === '3des-cbc' ? this.#encryption.blockSize : 1;
  }

  #bodyLength(chainLength: number): number {
    const encryption = this.#encryption;
    const block = this.#alignment;
    const padded = chainLength + 1 + ((block - ((chainLength + 1) % block)) % block);
    const icvLength = encryption.isAead ? encryption.icvLength : this.#integrity!.icvLength;
    return encryption.ivLength + padded + icvLength;
  }
}
