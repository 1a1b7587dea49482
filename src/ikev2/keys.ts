import type { Suite } from '../core/proposal.js';
import type { CryptoProvider } from '../crypto/provider.js';
import {
  childSaKeymat,
  deriveIkeSaKeys,
  type IkeSaKeys,
  rekeyedSkeyseed,
  skeyseed,
} from '../crypto/kdf-ikev2.js';
import { sealKeys } from '../crypto/secret.js';
import { encryptionOf, integrityOf, type Prf, prfOf } from '../crypto/transforms.js';
import { concat } from '../wire/bytes.js';
import { SkProtection } from './protection.js';

/**
 * IKEv2 keys (RFC 7296 sections 2.13 to 2.18): the IKE SA's SK_* from SKEYSEED, the AUTH payload
 * of a pre-shared key (section 2.15), and child SA keying material.
 */

export interface IkeKeys {
  readonly prf: Prf;
  readonly keys: IkeSaKeys;
  readonly protection: SkProtection;
}

/**
 * The keys of a new IKE SA: SKEYSEED from the nonces and g^ir (or, for a rekey, from the old
 * SA's SK_d), then {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}.
 */
export function deriveIkeKeys(
  provider: CryptoProvider,
  suite: Suite,
  input: {
    readonly gir: Uint8Array;
    readonly Ni: Uint8Array;
    readonly Nr: Uint8Array;
    readonly SPIi: Uint8Array;
    readonly SPIr: Uint8Array;
    /** An IKE SA rekey (section 2.18): the old SA's PRF and SK_d. */
    readonly rekeyOf?: { readonly prf: Prf; readonly SK_d: Uint8Array };
  },
  initiator: boolean,
): IkeKeys {
  const prf = prfOf(provider, suite.prf!);
  const encryption = encryptionOf(provider, suite.encr);
  const integrity = suite.integ ? integrityOf(provider, suite.integ) : undefined;
  const SKEYSEED = input.rekeyOf
    ? rekeyedSkeyseed(input.rekeyOf.prf, input.rekeyOf.SK_d, input.gir, input.Ni, input.Nr)
    : skeyseed(prf, input.Ni, input.Nr, input.gir);
  const keys = deriveIkeSaKeys(prf, SKEYSEED, {
    Ni: input.Ni,
    Nr: input.Nr,
    SPIi: input.SPIi,
    SPIr: input.SPIr,
    encryptionKeyLength: encryption.keyMaterialLength,
    integrityKeyLength: encryption.isAead ? 0 : (integrity?.keyLength ?? 0),
  });
  const protection = new SkProtection(provider, encryption, integrity, keys, initiator);
  return { prf, keys, protection };
}

const KEY_PAD = new TextEncoder().encode('Key Pad for IKEv2');

/**
 * AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>), where SignedOctets is the
 * sender's first message, the peer's nonce, and prf(SK_p, the sender's ID payload body)
 * (RFC 7296 section 2.15).
 */
export function pskAuth(
  prf: Prf,
  psk: Uint8Array,
  firstMessage: Uint8Array,
  peerNonce: Uint8Array,
  SK_p: Uint8Array,
  idBody: Uint8Array,
): Uint8Array {
  const macedId = prf.compute(SK_p, idBody);
  return prf.compute(prf.compute(psk, KEY_PAD), firstMessage, peerNonce, macedId);
}

/** An ID payload's body as AUTH covers it: ID type, three reserved bytes, the data. */
export function idBody(idType: number, data: Uint8Array): Uint8Array {
  return concat(Uint8Array.of(idType, 0, 0, 0), data);
}

/**
 * A child SA's keys (section 2.17): KEYMAT = prf+(SK_d, [g^ir |] Ni | Nr), taken in the order
 * initiator-to-responder encryption and integrity, then responder-to-initiator.
 */
export function childKeys(
  provider: CryptoProvider,
  prf: Prf,
  SK_d: Uint8Array,
  suite: Suite,
  nonces: { readonly Ni: Uint8Array; readonly Nr: Uint8Array },
  initiator: boolean,
  gir?: Uint8Array,
): { encrIn: Uint8Array; integIn: Uint8Array; encrOut: Uint8Array; integOut: Uint8Array } {
  const encryption = encryptionOf(provider, suite.encr);
  const integrityLength = suite.integ ? integrityOf(provider, suite.integ).keyLength : 0;
  const e = encryption.keyMaterialLength;
  const keymat = childSaKeymat(prf, SK_d, nonces.Ni, nonces.Nr, 2 * (e + integrityLength), gir);
  let at = 0;
  const take = (length: number) => keymat.subarray(at, (at += length));
  const ei = take(e);
  const ai = take(integrityLength);
  const er = take(e);
  const ar = take(integrityLength);
  return sealKeys('ChildSaKeys', {
    encrIn: initiator ? er : ei,
    integIn: initiator ? ar : ai,
    encrOut: initiator ? ei : er,
    integOut: initiator ? ai : ar,
  });
}
