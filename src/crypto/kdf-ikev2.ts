import { concat, u8 } from '../wire/bytes.js';
import { InvalidLengthError } from './errors.js';
import { sealKeys } from './secret.js';
import type { Prf } from './transforms.js';

/** IKEv2 key derivation, RFC 7296 sections 2.13, 2.14, 2.17 and 2.18. */

/** prf+(K, S) = T1 | T2 | ..., T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n). */
export function prfPlus(prf: Prf, key: Uint8Array, seed: Uint8Array, length: number): Uint8Array {
  if (length > 255 * prf.outputLength) {
    throw new InvalidLengthError('prf+ output', `<= ${255 * prf.outputLength}`, length);
  }
  const blocks: Uint8Array[] = [];
  let previous: Uint8Array = new Uint8Array(0);
  for (let n = 1; blocks.length * prf.outputLength < length; n++) {
    previous = prf.compute(key, previous, seed, u8(n));
    blocks.push(previous);
  }
  return concat(...blocks).slice(0, length);
}

/** SKEYSEED = prf(Ni | Nr, g^ir) (section 2.14, for PRFs that take keys of any length). */
export function skeyseed(prf: Prf, Ni: Uint8Array, Nr: Uint8Array, gir: Uint8Array): Uint8Array {
  return prf.compute(concat(Ni, Nr), gir);
}

/** SKEYSEED of a rekeyed IKE SA = prf(SK_d (old), g^ir (new) | Ni | Nr) (section 2.18). */
export function rekeyedSkeyseed(
  prf: Prf,
  SK_d: Uint8Array,
  gir: Uint8Array,
  Ni: Uint8Array,
  Nr: Uint8Array,
): Uint8Array {
  return prf.compute(SK_d, gir, Ni, Nr);
}

export interface IkeSaKeys {
  readonly SK_d: Uint8Array;
  readonly SK_ai: Uint8Array;
  readonly SK_ar: Uint8Array;
  readonly SK_ei: Uint8Array;
  readonly SK_er: Uint8Array;
  readonly SK_pi: Uint8Array;
  readonly SK_pr: Uint8Array;
}

export interface IkeSaKeyInput {
  readonly Ni: Uint8Array;
  readonly Nr: Uint8Array;
  readonly SPIi: Uint8Array;
  readonly SPIr: Uint8Array;
  /** Encryption keying material per direction, salt included (0 never happens in IKE). */
  readonly encryptionKeyLength: number;
  /** Integrity key per direction; 0 with an AEAD cipher. */
  readonly integrityKeyLength: number;
}

/** {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr). */
export function deriveIkeSaKeys(prf: Prf, SKEYSEED: Uint8Array, input: IkeSaKeyInput): IkeSaKeys {
  const d = prf.outputLength;
  const a = input.integrityKeyLength;
  const e = input.encryptionKeyLength;
  const stream = prfPlus(
    prf,
    SKEYSEED,
    concat(input.Ni, input.Nr, input.SPIi, input.SPIr),
    3 * d + 2 * a + 2 * e,
  );
  let offset = 0;
  const take = (length: number): Uint8Array => {
    offset += length;
    return stream.slice(offset - length, offset);
  };
  return sealKeys('IkeSaKeys', {
    SK_d: take(d),
    SK_ai: take(a),
    SK_ar: take(a),
    SK_ei: take(e),
    SK_er: take(e),
    SK_pi: take(d),
    SK_pr: take(d),
  });
}

/** Child SA KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) (section 2.17). */
export function childSaKeymat(
  prf: Prf,
  SK_d: Uint8Array,
  Ni: Uint8Array,
  Nr: Uint8Array,
  length: number,
  gir?: Uint8Array,
): Uint8Array {
  return prfPlus(prf, SK_d, concat(gir ?? new Uint8Array(0), Ni, Nr), length);
}
