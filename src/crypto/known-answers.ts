import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { concat, fromHex, toHex } from '../wire/bytes.js';
import { KeyExchange } from './dh.js';
import { CryptoError } from './errors.js';
import { derivePhase1PskKeys, phase1Iv, quickModeKeymat } from './kdf-ikev1.js';
import { childSaKeymat, prfPlus, rekeyedSkeyseed, skeyseed } from './kdf-ikev2.js';
import { MODP_PRIMES } from './modp.js';
import type { CryptoProvider } from './provider.js';
import type { DhGroupName, HashName } from './registry.js';
import { Encryption, Integrity, Prf } from './transforms.js';

/**
 * Known-answer checks over the vector files in vectors/ (see vectors/README.md for their format).
 * They compute and report; the caller (the test suite, the benchmark) decides what a mismatch means.
 */

export const VECTOR_DIR = fileURLToPath(new URL('../../vectors/', import.meta.url));

export type Vector = Record<string, unknown> & { name: string };

export interface VectorFile {
  readonly file: string;
  readonly source: string;
  readonly kind: string;
  readonly vectors: readonly Vector[];
}

export interface Comparison {
  readonly what: string;
  readonly expected: string;
  readonly actual: string;
}

export interface VectorResult {
  /** Registry names of the algorithms the vector exercised (or a label where there is none). */
  readonly exercised: readonly string[];
  readonly comparisons: readonly Comparison[];
}

export function loadVectorFiles(dir: string = VECTOR_DIR): VectorFile[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((file) => ({
      file,
      ...(JSON.parse(readFileSync(join(dir, file), 'utf8')) as Omit<VectorFile, 'file'>),
    }));
}

export const VECTOR_KINDS = [
  'cipher',
  'ctr',
  'aead',
  'hmac',
  'dh',
  'modp-prime',
  'kdf-ikev2',
  'kdf-ikev1',
] as const;

/** Runs one vector; throws UnsupportedAlgorithmError where the provider lacks the algorithm. */
export function checkVector(kind: string, provider: CryptoProvider, vector: Vector): VectorResult {
  const check = CHECKS[kind];
  if (!check) throw new RangeError(`unknown vector kind '${kind}'`);
  const comparisons: Comparison[] = [];
  const expect = (what: string, expected: unknown, actual: Uint8Array | string | number): void => {
    comparisons.push({
      what: `${vector.name}: ${what}`,
      expected: String(expected),
      actual: typeof actual === 'object' ? toHex(actual) : String(actual),
    });
  };
  const exercised = check(provider, vector, expect);
  return { exercised, comparisons };
}

type Expect = (what: string, expected: unknown, actual: Uint8Array | string | number) => void;
type Check = (p: CryptoProvider, v: Vector, expect: Expect) => string[];

const bytes = (v: Vector, field: string): Uint8Array => fromHex(String(v[field] ?? ''));

/** The error code a failing call throws, or 'no error'. */
function errorCode(call: () => unknown): string {
  try {
    call();
    return 'no error';
  } catch (error) {
    return error instanceof CryptoError ? error.code : String(error);
  }
}

const CHECKS: Record<string, Check> = {
  cipher(p, v, expect) {
    const key = bytes(v, 'key');
    const name = v.algorithm === '3des-cbc' ? '3des' : `aes${key.length * 8}`;
    const enc = new Encryption(p, name);
    expect('encrypt', v.ciphertext, enc.encrypt(key, bytes(v, 'iv'), bytes(v, 'plaintext')));
    expect('decrypt', v.plaintext, enc.decrypt(key, bytes(v, 'iv'), bytes(v, 'ciphertext')));
    return [name];
  },
  ctr(p, v, expect) {
    const key = bytes(v, 'key');
    const name = `aes${key.length * 8}ctr`;
    const enc = new Encryption(p, name);
    const material = concat(key, bytes(v, 'nonce'));
    expect('encrypt', v.ciphertext, enc.encrypt(material, bytes(v, 'iv'), bytes(v, 'plaintext')));
    expect('decrypt', v.plaintext, enc.decrypt(material, bytes(v, 'iv'), bytes(v, 'ciphertext')));
    return [name];
  },
  aead(p, v, expect) {
    const key = bytes(v, 'key');
    const material = concat(key, bytes(v, 'salt'));
    const [iv, aad] = [bytes(v, 'iv'), bytes(v, 'aad')];
    const names =
      v.algorithm === 'chacha20-poly1305'
        ? ['chacha20poly1305']
        : [16, 12, 8].map((icv) => `aes${key.length * 8}gcm${icv}`);
    for (const name of names) {
      const enc = new Encryption(p, name);
      // The 8- and 12-byte ICVs of RFC 4106 are the leading bytes of the 16-byte tag.
      const sealed = String(v.ciphertext) + String(v.tag).slice(0, enc.icvLength * 2);
      expect(`${name} seal`, sealed, enc.encrypt(material, iv, bytes(v, 'plaintext'), aad));
      expect(`${name} open`, v.plaintext, enc.decrypt(material, iv, fromHex(sealed), aad));
      const forged = fromHex(sealed);
      forged[forged.length - 1]! ^= 1;
      expect(
        `${name} rejects a forged ICV`,
        'INTEGRITY_CHECK_FAILED',
        errorCode(() => enc.decrypt(material, iv, forged, aad)),
      );
    }
    return names;
  },
  hmac(p, v, expect) {
    const hash = v.hash as HashName;
    const mac = bytes(v, 'mac');
    const [key, data] = [bytes(v, 'key'), bytes(v, 'data')];
    const prf = new Prf(p, `prf${hash}`);
    const integ = new Integrity(p, hash);
    if (mac.length === prf.outputLength) {
      expect('PRF', v.mac, prf.compute(key, data));
      return [prf.algorithm.name];
    }
    if (mac.length === integ.icvLength) {
      expect('integrity ICV', v.mac, integ.compute(key, data));
      return [integ.algorithm.name];
    }
    expect(`HMAC truncated to ${mac.length} bytes`, v.mac, p.hmac(hash, key, data).subarray(0, mac.length));
    return [`hmac-${hash}-${mac.length * 8}`];
  },
  dh(p, v, expect) {
    const kex = new KeyExchange(p, v.group as DhGroupName, bytes(v, 'privateKey'));
    if (v.publicKey !== undefined) expect('public value', v.publicKey, kex.publicKey);
    expect('shared secret', v.shared, kex.computeSharedSecret(bytes(v, 'peerPublic')));
    return [String(v.group)];
  },
  'modp-prime'(_p, v, expect) {
    const ours = MODP_PRIMES[v.group as keyof typeof MODP_PRIMES];
    expect('prime', v.prime, ours ?? 'missing');
    expect('size in bits', v.bits, (ours?.length ?? 0) * 4);
    expect('generator', v.generator, 2);
    return [`${v.group} prime`];
  },
  'kdf-ikev2'(p, v, expect) {
    const prf = new Prf(p, `prf${v.hash}`);
    const [Ni, Nr, gir, girNew] = [bytes(v, 'nInit'), bytes(v, 'nResp'), bytes(v, 'gir'), bytes(v, 'girNew')];
    const SKEYSEED = skeyseed(prf, Ni, Nr, gir);
    expect('SKEYSEED', v.sKeySeed, SKEYSEED);
    const dkm = prfPlus(
      prf,
      SKEYSEED,
      concat(Ni, Nr, bytes(v, 'spiInit'), bytes(v, 'spiResp')),
      Number(v.dkmLength) / 8,
    );
    expect('DKM', v.derivedKeyingMaterial, dkm);
    const SK_d = dkm.subarray(0, prf.outputLength);
    const child = bytes(v, 'derivedKeyingMaterialChild');
    expect('child KEYMAT', v.derivedKeyingMaterialChild, childSaKeymat(prf, SK_d, Ni, Nr, child.length));
    const childDh = bytes(v, 'derivedKeyingMaterialDh');
    expect(
      'child KEYMAT with DH',
      v.derivedKeyingMaterialDh,
      childSaKeymat(prf, SK_d, Ni, Nr, childDh.length, girNew),
    );
    expect('rekeyed SKEYSEED', v.sKeySeedReKey, rekeyedSkeyseed(prf, SK_d, girNew, Ni, Nr));
    return [`ikev2-kdf-${v.hash}`];
  },
  'kdf-ikev1'(p, v, expect) {
    const prf = new Prf(p, `prf${v.hash}`);
    const keys = derivePhase1PskKeys(prf, {
      psk: bytes(v, 'psk'),
      Ni_b: bytes(v, 'Ni_b'),
      Nr_b: bytes(v, 'Nr_b'),
      gxy: bytes(v, 'gxy'),
      CKY_I: bytes(v, 'CKY_I'),
      CKY_R: bytes(v, 'CKY_R'),
      encryptionKeyLength: Number(v.encKeyLength),
    });
    for (const name of ['SKEYID', 'SKEYID_d', 'SKEYID_a', 'SKEYID_e'] as const)
      expect(name, v[name], keys[name]);
    expect('encryption key', v.encKey, keys.encryptionKey);
    expect('phase 1 IV', v.phase1Iv, phase1Iv(prf, bytes(v, 'gxi'), bytes(v, 'gxr'), Number(v.blockSize)));
    const qm = v.quickMode as Vector;
    const keymat = quickModeKeymat(
      prf,
      keys.SKEYID_d,
      {
        ...(qm.gqm === undefined ? {} : { gqm: bytes(qm, 'gqm') }),
        protocol: Number(qm.protocol),
        spi: bytes(qm, 'spi'),
        Ni_b: bytes(qm, 'Ni_b'),
        Nr_b: bytes(qm, 'Nr_b'),
      },
      Number(qm.keymatLength),
    );
    expect('quick mode KEYMAT', qm.keymat, keymat);
    return [`ikev1-kdf-${v.hash}`];
  },
};
