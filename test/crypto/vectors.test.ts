import t, { type Test } from 'tap';
import {
  algorithmsOf,
  type CryptoProvider,
  childSaKeymat,
  createCryptoProvider,
  type DhGroupName,
  derivePhase1PskKeys,
  Encryption,
  type HashName,
  Integrity,
  KeyExchange,
  PROVIDER_NAMES,
  Prf,
  phase1Iv,
  prfPlus,
  quickModeKeymat,
  rekeyedSkeyseed,
  skeyseed,
  UnsupportedAlgorithmError,
} from '../../src/crypto/index.js';
import { MODP_PRIMES } from '../../src/crypto/modp.js';
import { concat, fromHex, toHex } from '../../src/wire/bytes.js';
import { loadVectorFiles, type Vector } from './vector-files.js';

/**
 * Runs every published vector in vectors/ against both providers and prints how many vectors
 * each algorithm passed per provider. Where a provider lacks an algorithm it must say so with
 * UnsupportedAlgorithmError; that is asserted and reported, never silently skipped.
 */

const files = loadVectorFiles();
const counts = new Map<string, Record<string, number | string>>();

function count(label: string, provider: string, outcome: 'pass' | 'unsupported'): void {
  const row = counts.get(label) ?? {};
  if (outcome === 'unsupported') row[provider] = 'unsupported';
  else row[provider] = ((row[provider] as number | undefined) ?? 0) + 1;
  counts.set(label, row);
}

const h = (v: Vector, field: string): Uint8Array => fromHex(String(v[field] ?? ''));
const hex = (bytes: Uint8Array): string => toHex(bytes);

/** Runs one vector and returns the names of what it exercised (registry names where there is one). */
type Check = (t: Test, p: CryptoProvider, v: Vector) => string[];

const checks: Record<string, Check> = {
  cipher(t, p, v) {
    const key = h(v, 'key');
    const name = v.algorithm === '3des-cbc' ? '3des' : `aes${key.length * 8}`;
    const enc = new Encryption(p, name);
    t.equal(hex(enc.encrypt(key, h(v, 'iv'), h(v, 'plaintext'))), v.ciphertext, `${v.name} encrypt`);
    t.equal(hex(enc.decrypt(key, h(v, 'iv'), h(v, 'ciphertext'))), v.plaintext, `${v.name} decrypt`);
    return [name];
  },
  ctr(t, p, v) {
    const key = h(v, 'key');
    const enc = new Encryption(p, `aes${key.length * 8}ctr`);
    const material = concat(key, h(v, 'nonce'));
    t.equal(hex(enc.encrypt(material, h(v, 'iv'), h(v, 'plaintext'))), v.ciphertext, `${v.name} encrypt`);
    t.equal(hex(enc.decrypt(material, h(v, 'iv'), h(v, 'ciphertext'))), v.plaintext, `${v.name} decrypt`);
    return [`aes${key.length * 8}ctr`];
  },
  aead(t, p, v) {
    const key = h(v, 'key');
    const material = concat(key, h(v, 'salt'));
    const names =
      v.algorithm === 'chacha20-poly1305'
        ? ['chacha20poly1305']
        : [16, 12, 8].map((icv) => `aes${key.length * 8}gcm${icv}`);
    for (const name of names) {
      const enc = new Encryption(p, name);
      // The 8- and 12-byte ICVs of RFC 4106 are the leading bytes of the 16-byte tag.
      const expected = String(v.ciphertext) + String(v.tag).slice(0, enc.icvLength * 2);
      t.equal(
        hex(enc.encrypt(material, h(v, 'iv'), h(v, 'plaintext'), h(v, 'aad'))),
        expected,
        `${v.name} ${name} seal`,
      );
      t.equal(
        hex(enc.decrypt(material, h(v, 'iv'), fromHex(expected), h(v, 'aad'))),
        v.plaintext,
        `${v.name} ${name} open`,
      );
      const forged = fromHex(expected);
      forged[forged.length - 1]! ^= 1;
      t.throws(() => enc.decrypt(material, h(v, 'iv'), forged, h(v, 'aad')), {
        code: 'INTEGRITY_CHECK_FAILED',
      });
    }
    return names;
  },
  hmac(t, p, v) {
    const hash = v.hash as HashName;
    const mac = h(v, 'mac');
    const prf = new Prf(p, `prf${hash}`);
    const integ = new Integrity(p, hash);
    let computed: Uint8Array;
    let label: string;
    if (mac.length === prf.outputLength) {
      computed = prf.compute(h(v, 'key'), h(v, 'data'));
      label = prf.algorithm.name;
    } else if (mac.length === integ.icvLength) {
      computed = integ.compute(h(v, 'key'), h(v, 'data'));
      label = integ.algorithm.name;
    } else {
      computed = p.hmac(hash, h(v, 'key'), h(v, 'data')).subarray(0, mac.length);
      label = `hmac-${hash}-${mac.length * 8}`;
    }
    t.equal(hex(computed), v.mac, String(v.name));
    return [label];
  },
  dh(t, p, v) {
    const kex = new KeyExchange(p, v.group as DhGroupName, h(v, 'privateKey'));
    if (v.publicKey !== undefined) t.equal(hex(kex.publicKey), v.publicKey, `${v.name} public value`);
    t.equal(hex(kex.computeSharedSecret(h(v, 'peerPublic'))), v.shared, `${v.name} shared secret`);
    return [String(v.group)];
  },
  'modp-prime'(t, _p, v) {
    const ours = MODP_PRIMES[v.group as keyof typeof MODP_PRIMES];
    t.equal(ours, v.prime, `${v.group} prime`);
    t.equal(ours.length * 4, v.bits, `${v.group} size`);
    t.equal(v.generator, 2);
    return [`${v.group} prime`];
  },
  'kdf-ikev2'(t, p, v) {
    const prf = new Prf(p, `prf${v.hash}`);
    const [Ni, Nr, gir, girNew] = [h(v, 'nInit'), h(v, 'nResp'), h(v, 'gir'), h(v, 'girNew')];
    const SKEYSEED = skeyseed(prf, Ni, Nr, gir);
    t.equal(hex(SKEYSEED), v.sKeySeed, `${v.name} SKEYSEED`);
    const dkm = prfPlus(
      prf,
      SKEYSEED,
      concat(Ni, Nr, h(v, 'spiInit'), h(v, 'spiResp')),
      Number(v.dkmLength) / 8,
    );
    t.equal(hex(dkm), v.derivedKeyingMaterial, `${v.name} DKM`);
    const SK_d = dkm.subarray(0, prf.outputLength);
    const child = h(v, 'derivedKeyingMaterialChild');
    t.equal(
      hex(childSaKeymat(prf, SK_d, Ni, Nr, child.length)),
      v.derivedKeyingMaterialChild,
      `${v.name} child`,
    );
    const childDh = h(v, 'derivedKeyingMaterialDh');
    t.equal(
      hex(childSaKeymat(prf, SK_d, Ni, Nr, childDh.length, girNew)),
      v.derivedKeyingMaterialDh,
      `${v.name} child DH`,
    );
    t.equal(hex(rekeyedSkeyseed(prf, SK_d, girNew, Ni, Nr)), v.sKeySeedReKey, `${v.name} rekey SKEYSEED`);
    return [`ikev2-kdf-${v.hash}`];
  },
  'kdf-ikev1'(t, p, v) {
    const prf = new Prf(p, `prf${v.hash}`);
    const keys = derivePhase1PskKeys(prf, {
      psk: h(v, 'psk'),
      Ni_b: h(v, 'Ni_b'),
      Nr_b: h(v, 'Nr_b'),
      gxy: h(v, 'gxy'),
      CKY_I: h(v, 'CKY_I'),
      CKY_R: h(v, 'CKY_R'),
      encryptionKeyLength: Number(v.encKeyLength),
    });
    for (const name of ['SKEYID', 'SKEYID_d', 'SKEYID_a', 'SKEYID_e'] as const) {
      t.equal(hex(keys[name]), v[name], `${v.name} ${name}`);
    }
    t.equal(hex(keys.encryptionKey), v.encKey, `${v.name} encryption key`);
    t.equal(
      hex(phase1Iv(prf, h(v, 'gxi'), h(v, 'gxr'), Number(v.blockSize))),
      v.phase1Iv,
      `${v.name} phase 1 IV`,
    );
    const qm = v.quickMode as Vector;
    const keymat = quickModeKeymat(
      prf,
      keys.SKEYID_d,
      {
        ...(qm.gqm === undefined ? {} : { gqm: h(qm, 'gqm') }),
        protocol: Number(qm.protocol),
        spi: h(qm, 'spi'),
        Ni_b: h(qm, 'Ni_b'),
        Nr_b: h(qm, 'Nr_b'),
      },
      Number(qm.keymatLength),
    );
    t.equal(hex(keymat), qm.keymat, `${v.name} quick mode KEYMAT`);
    return [`ikev1-kdf-${v.hash}`];
  },
};

for (const file of files) {
  t.test(file.file, async (t) => {
    t.ok(typeof file.source === 'string' && file.source.length > 20, 'names its source');
    t.ok(Array.isArray(file.vectors) && file.vectors.length > 0, 'has vectors');
    const check = checks[file.kind];
    if (!check) {
      t.fail(`unknown vector kind '${file.kind}'`);
      return;
    }
    for (const providerName of PROVIDER_NAMES) {
      const provider = createCryptoProvider(providerName);
      for (const vector of file.vectors) {
        try {
          for (const label of check(t, provider, vector)) count(label, providerName, 'pass');
        } catch (error) {
          if (!(error instanceof UnsupportedAlgorithmError)) throw error;
          // Only 3DES may be missing, and only from noble (see README).
          t.equal(
            `${providerName}:${error.algorithm}`,
            'noble:3des',
            `${providerName} declares ${error.algorithm} unsupported`,
          );
          count(error.algorithm, providerName, 'unsupported');
        }
      }
    }
  });
}

t.test('every algorithm of the registry is exercised by a published vector', async (t) => {
  for (const kind of ['encr', 'integ', 'prf', 'dh'] as const) {
    for (const alg of algorithmsOf(kind)) t.ok(counts.get(alg.name)?.node, `${kind} ${alg.name}`);
  }
  printCounts();
});

function printCounts(): void {
  const rows = [...counts.entries()].sort(([a], [b]) => a.localeCompare(b));
  const lines = rows.map(
    ([label, row]) =>
      `${label.padEnd(30)} ${PROVIDER_NAMES.map((p) => String(row[p] ?? 0).padStart(12)).join('')}`,
  );
  process.stderr.write(
    `\nvectors passed per algorithm\n${'algorithm'.padEnd(30)} ${PROVIDER_NAMES.map((p) => p.padStart(12)).join('')}\n${lines.join('\n')}\n`,
  );
}
