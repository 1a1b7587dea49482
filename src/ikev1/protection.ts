import type { Encryption, Prf } from '../crypto/transforms.js';
import { concat, u32be } from '../wire/bytes.js';
import { phase1Iv, phase2Iv } from '../crypto/kdf-ikev1.js';

/**
 * Encryption of ISAKMP message bodies under the phase 1 SA (RFC 2409 section 5 and appendix B):
 * CBC with IVs chained across messages. Main mode (message ID 0) starts from hash(g^xi | g^xr);
 * every later exchange starts from hash(last phase 1 block | M-ID) and chains within itself.
 * An IV moves forward only when the caller accepts a decrypted message, so a forged or garbled
 * packet cannot desynchronise the chain.
 */
/** A body that cannot be decrypted at all: not whole blocks, or an exchange before its IV exists. */
export class UndecryptableMessage extends Error {
  override readonly name = 'UndecryptableMessage';
}

export class Phase1Protection {
  readonly #encryption: Encryption;
  #key: Uint8Array;
  readonly #prf: Prf;
  /** IVs of the exchanges under way, by message ID; none (no Map at all) while the SA sits idle. */
  #ivs: Map<number, Uint8Array> | undefined;
  /**
   * The last CBC block of main mode, once it is over, as a one-byte string (a character per byte):
   * it stays for the SA's lifetime and is read once per exchange, and 16 characters cost 32 bytes
   * of heap where a Uint8Array of its own costs about 200 (view, buffer object, backing store).
   */
  #phase1LastBlock: string | undefined;

  constructor(encryption: Encryption, key: Uint8Array, prf: Prf, gxi: Uint8Array, gxr: Uint8Array) {
    this.#encryption = encryption;
    this.#key = key;
    this.#prf = prf;
    this.#ivs = new Map([[0, phase1Iv(prf, gxi, gxr, encryption.blockSize)]]);
  }

  /**
   * Main mode is complete: later exchanges derive their IVs from its last block. `key` is the same
   * encryption key held where the SA keeps what outlives main mode (sealed keys share one buffer,
   * so holding the original would keep SKEYID and SKEYID_e beside it).
   */
  finishPhase1(key: Uint8Array): void {
    this.#key = key;
    const last = this.#ivs?.get(0);
    this.#phase1LastBlock = last && String.fromCharCode(...last);
    this.#drop(0);
  }

  /** Pads (RFC 2409 section 5.3: zeros, the last byte counting the others) and encrypts. */
  encrypt(messageId: number, payloads: Uint8Array): Uint8Array {
    const block = this.#encryption.blockSize;
    const padLength = block - (payloads.length % block);
    const padding = new Uint8Array(padLength);
    padding[padLength - 1] = padLength - 1;
    const ciphertext = this.#encryption.encrypt(this.#key, this.#iv(messageId), concat(payloads, padding));
    (this.#ivs ??= new Map()).set(messageId, ciphertext.slice(-block));
    return ciphertext;
  }

  /** Decrypts; the IV chain advances only when `accept` is called. */
  decrypt(messageId: number, ciphertext: Uint8Array): { plaintext: Uint8Array; accept(): void } {
    const block = this.#encryption.blockSize;
    if (ciphertext.length === 0 || ciphertext.length % block !== 0)
      throw new UndecryptableMessage(
        `encrypted body of ${ciphertext.length} bytes is not a whole number of blocks`,
      );
    const plaintext = this.#encryption.decrypt(this.#key, this.#iv(messageId), ciphertext);
    const next = ciphertext.slice(-block);
    return { plaintext, accept: () => (this.#ivs ??= new Map()).set(messageId, next) };
  }

  /** Drops the IV state of a finished exchange. */
  forget(messageId: number): void {
    if (messageId !== 0) this.#drop(messageId);
  }

  #drop(messageId: number): void {
    this.#ivs?.delete(messageId);
    if (this.#ivs?.size === 0) this.#ivs = undefined;
  }

  #iv(messageId: number): Uint8Array {
    const known = this.#ivs?.get(messageId);
    if (known) return known;
    const last = this.#phase1LastBlock;
    if (last === undefined)
      throw new UndecryptableMessage(`exchange ${messageId} before main mode completed`);
    const block = Uint8Array.from(last, (c) => c.charCodeAt(0));
    return phase2Iv(this.#prf, block, u32be(messageId), this.#encryption.blockSize);
  }
}
