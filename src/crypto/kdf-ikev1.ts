import { concat, u8 } from '../wire/bytes.js';
import { InvalidLengthError } from './errors.js';
import { sealKeys } from './secret.js';
import type { Prf } from './transforms.js';

/**
 * IKEv1 key derivation for pre-shared-key authentication, RFC 2409 section 5 and appendix B.
 * `prf` is the HMAC of the negotiated phase 1 hash.
 */

export interface Phase1Keys {
  readonly SKEYID: Uint8Array;
  readonly SKEYID_d: Uint8Array;
  readonly SKEYID_a: Uint8Array;
  readonly SKEYID_e: Uint8Array;
  /** The phase 1 encryption key: SKEYID_e, expanded per appendix B when it is too short. */
  readonly encryptionKey: Uint8Array;
}

export interface Phase1PskInput {
  readonly psk: Uint8Array;
  readonly Ni_b: Uint8Array;
  readonly Nr_b: Uint8Array;
  readonly gxy: Uint8Array;
  readonly CKY_I: Uint8Array;
  readonly CKY_R: Uint8Array;
  readonly encryptionKeyLength: number;
}

export function derivePhase1PskKeys(prf: Prf, input: Phase1PskInput): Phase1Keys {
  const { gxy, CKY_I, CKY_R } = input;
  // SKEYID = prf(pre-shared-key, Ni_b | Nr_b)
  const SKEYID = prf.compute(input.psk, input.Ni_b, input.Nr_b);
  const SKEYID_d = prf.compute(SKEYID, gxy, CKY_I, CKY_R, u8(0));
  const SKEYID_a = prf.compute(SKEYID, SKEYID_d, gxy, CKY_I, CKY_R, u8(1));
  const SKEYID_e = prf.compute(SKEYID, SKEYID_a, gxy, CKY_I, CKY_R, u8(2));
  const encryptionKey = phase1EncryptionKey(prf, SKEYID_e, input.encryptionKeyLength);
  return sealKeys('Phase1Keys', { SKEYID, SKEYID_d, SKEYID_a, SKEYID_e, encryptionKey });
}

/** Appendix B: K1 = prf(SKEYID_e, 0), K(n) = prf(SKEYID_e, K(n-1)), Ka = K1 | K2 | ... */
export function phase1EncryptionKey(prf: Prf, SKEYID_e: Uint8Array, length: number): Uint8Array {
  if (SKEYID_e.length >= length) return SKEYID_e.slice(0, length);
  const blocks: Uint8Array[] = [];
  let block: Uint8Array = u8(0);
  for (let produced = 0; produced < length; produced += prf.outputLength) {
    block = prf.compute(SKEYID_e, block);
    blocks.push(block);
  }
  return concat(...blocks).slice(0, length);
}

/** The phase 1 IV: hash(g^xi | g^xr), truncated to the cipher's block size (section 5). */
export function phase1Iv(prf: Prf, gxi: Uint8Array, gxr: Uint8Array, blockSize: number): Uint8Array {
  return prf.provider.hash(prf.hash, gxi, gxr).slice(0, blockSize);
}

/**
 * The IV of a new phase 2 or informational exchange: hash(last phase 1 CBC block | M-ID),
 * truncated to the block size (appendix B).
 */
export function phase2Iv(
  prf: Prf,
  lastPhase1Block: Uint8Array,
  messageId: Uint8Array,
  blockSize: number,
): Uint8Array {
  if (messageId.length !== 4) throw new InvalidLengthError('message ID', '4', messageId.length);
  return prf.provider.hash(prf.hash, lastPhase1Block, messageId).slice(0, blockSize);
}

export interface QuickModeKeymatInput {
  /** The quick mode g^xy, with PFS only. */
  readonly gqm?: Uint8Array;
  readonly protocol: number;
  readonly spi: Uint8Array;
  readonly Ni_b: Uint8Array;
  readonly Nr_b: Uint8Array;
}

/**
 * KEYMAT for one direction of an IPsec SA (section 5.5): with S = [g(qm)^xy |] protocol | SPI |
 * Ni_b | Nr_b, K1 = prf(SKEYID_d, S), K(n) = prf(SKEYID_d, K(n-1) | S), KEYMAT = K1 | K2 | ...
 */
export function quickModeKeymat(
  prf: Prf,
  SKEYID_d: Uint8Array,
  input: QuickModeKeymatInput,
  length: number,
): Uint8Array {
  const seed = concat(input.gqm ?? new Uint8Array(0), u8(input.protocol), input.spi, input.Ni_b, input.Nr_b);
  const blocks: Uint8Array[] = [];
  let previous: Uint8Array = new Uint8Array(0);
  for (let produced = 0; produced < length; produced += prf.outputLength) {
    previous = prf.compute(SKEYID_d, previous, seed);
    blocks.push(previous);
  }
  return concat(...blocks).slice(0, length);
}
