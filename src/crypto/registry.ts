/**
 * The transform registry: one row per algorithm, with its IKEv1 and IKEv2 identifiers.
 * Adding a cipher is adding a row (and, if it is a new primitive, teaching the providers).
 *
 * Identifier sources:
 *  - IKEv1 phase 1: RFC 2409 appendix A and IANA "IKE Attributes" (Encryption Algorithm class 1,
 *    Hash Algorithm class 2, Group Description class 4; AES: RFC 3602 section 5.2 / RFC 3526).
 *  - IKEv1 phase 2 (ESP): IANA "IPsec DOI" (RFC 2407 section 4.4.4 ESP transform identifiers,
 *    section 4.5 Authentication Algorithm attribute class 5; AES-CTR RFC 3686, AES-GCM RFC 4106).
 *  - IKEv2: RFC 7296 section 3.3.2 and IANA "IKEv2 Transform Type 1/2/3/4" (RFC 3686, 4106, 4868,
 *    5903, 7634, 8031).
 */

export type HashName = 'md5' | 'sha1' | 'sha256' | 'sha384' | 'sha512';

export const HASH_LENGTH: Readonly<Record<HashName, number>> = {
  md5: 16,
  sha1: 20,
  sha256: 32,
  sha384: 48,
  sha512: 64,
};

/** The primitive a provider must implement for an encryption transform. */
export type CipherPrimitive = 'aes-cbc' | '3des-cbc' | 'aes-ctr' | 'aes-gcm' | 'chacha20-poly1305';

export type DhGroupName =
  | 'modp768'
  | 'modp1024'
  | 'modp1536'
  | 'modp2048'
  | 'modp3072'
  | 'modp4096'
  | 'ecp256'
  | 'ecp384'
  | 'curve25519';

interface AlgorithmRow {
  /** strongSwan's proposal keyword, which is also what configs and status use. */
  readonly name: string;
  readonly aliases: readonly string[];
}

export interface EncryptionAlgorithm extends AlgorithmRow {
  readonly kind: 'encr';
  readonly primitive: CipherPrimitive;
  /** Cipher key length in bytes, without the salt. */
  readonly keyLength: number;
  /** Bytes of keying material appended to the key as a nonce salt (RFC 3686, 4106, 7634). */
  readonly saltLength: number;
  /** Length of the explicit IV carried in each message. */
  readonly ivLength: number;
  /** Plaintext (with padding) must be a multiple of this. */
  readonly blockSize: number;
  /** Length of the AEAD integrity check value; 0 for non-AEAD ciphers. */
  readonly icvLength: number;
  readonly ikev1?: { readonly phase1?: number; readonly esp?: number; readonly keyLengthAttribute: boolean };
  readonly ikev2: { readonly id: number; readonly keyLengthAttribute: boolean };
}

export interface IntegrityAlgorithm extends AlgorithmRow {
  readonly kind: 'integ';
  readonly hash: HashName;
  readonly keyLength: number;
  readonly icvLength: number;
  /** IPsec DOI Authentication Algorithm (phase 2 attribute class 5). */
  readonly ikev1?: { readonly esp: number };
  readonly ikev2: { readonly id: number };
}

export interface PrfAlgorithm extends AlgorithmRow {
  readonly kind: 'prf';
  readonly hash: HashName;
  readonly outputLength: number;
  /** IKEv1 negotiates a hash (phase 1 attribute class 2); the PRF is its HMAC. */
  readonly ikev1?: { readonly hash: number };
  readonly ikev2: { readonly id: number };
}

export interface DhAlgorithm extends AlgorithmRow {
  readonly kind: 'dh';
  readonly name: DhGroupName;
  readonly family: 'modp' | 'ecp' | 'curve25519';
  /** Length of the KE payload's public value and of the shared secret, in bytes. */
  readonly publicLength: number;
  readonly sharedLength: number;
  /**
   * MODP private exponent length in bits: twice the group's strength estimate (RFC 3526 section 8,
   * the lower column; 160 bits for the RFC 2409 groups), the usual short-exponent choice.
   */
  readonly exponentBits?: number;
  /** IKE Attributes Group Description; RFC 8031 registered curve25519 for IKEv2 only. */
  readonly ikev1?: number;
  readonly ikev2: number;
}

export type Algorithm = EncryptionAlgorithm | IntegrityAlgorithm | PrfAlgorithm | DhAlgorithm;

function aes(
  mode: 'cbc' | 'ctr',
  bits: 128 | 192 | 256,
  ids: { v1?: number; esp: number; v2: number },
): EncryptionAlgorithm {
  const cbc = mode === 'cbc';
  return {
    kind: 'encr',
    name: cbc ? `aes${bits}` : `aes${bits}ctr`,
    aliases: [`aes-${mode}-${bits}`],
    primitive: cbc ? 'aes-cbc' : 'aes-ctr',
    keyLength: bits / 8,
    saltLength: cbc ? 0 : 4,
    ivLength: cbc ? 16 : 8,
    blockSize: cbc ? 16 : 4,
    icvLength: 0,
    ikev1: { ...(ids.v1 === undefined ? {} : { phase1: ids.v1 }), esp: ids.esp, keyLengthAttribute: true },
    ikev2: { id: ids.v2, keyLengthAttribute: true },
  };
}

function aesGcm(bits: 128 | 192 | 256, icv: 8 | 12 | 16): EncryptionAlgorithm {
  const id = { 8: 18, 12: 19, 16: 20 }[icv];
  return {
    kind: 'encr',
    name: `aes${bits}gcm${icv}`,
    aliases: [`aes${bits}gcm${icv * 8}`, `aes-gcm-${icv}-${bits}`],
    primitive: 'aes-gcm',
    keyLength: bits / 8,
    saltLength: 4,
    ivLength: 8,
    blockSize: 4,
    icvLength: icv,
    ikev1: { esp: id, keyLengthAttribute: true },
    ikev2: { id, keyLengthAttribute: true },
  };
}

function integrity(
  name: string,
  hash: HashName,
  icvLength: number,
  esp: number,
  v2: number,
): IntegrityAlgorithm {
  const keyLength = HASH_LENGTH[hash];
  return {
    kind: 'integ',
    name,
    aliases: [`hmac-${hash.replace(/^sha(\d{3})$/, 'sha2-$1')}-${icvLength * 8}`],
    hash,
    keyLength,
    icvLength,
    ikev1: { esp },
    ikev2: { id: v2 },
  };
}

function prf(hash: HashName, v1: number, v2: number): PrfAlgorithm {
  return {
    kind: 'prf',
    name: `prf${hash}`,
    aliases: [`hmac-${hash}`],
    hash,
    outputLength: HASH_LENGTH[hash],
    ikev1: { hash: v1 },
    ikev2: { id: v2 },
  };
}

function modp(bits: number, exponentBits: number, id: number): DhAlgorithm {
  return {
    kind: 'dh',
    name: `modp${bits}` as DhGroupName,
    aliases: [`group${id}`],
    family: 'modp',
    publicLength: bits / 8,
    sharedLength: bits / 8,
    exponentBits,
    ikev1: id,
    ikev2: id,
  };
}

export const ALGORITHMS: readonly Algorithm[] = [
  {
    kind: 'encr',
    name: '3des',
    aliases: ['3des-cbc'],
    primitive: '3des-cbc',
    keyLength: 24,
    saltLength: 0,
    ivLength: 8,
    blockSize: 8,
    icvLength: 0,
    ikev1: { phase1: 5, esp: 3, keyLengthAttribute: false },
    ikev2: { id: 3, keyLengthAttribute: false },
  },
  aes('cbc', 128, { v1: 7, esp: 12, v2: 12 }),
  aes('cbc', 192, { v1: 7, esp: 12, v2: 12 }),
  aes('cbc', 256, { v1: 7, esp: 12, v2: 12 }),
  aes('ctr', 128, { esp: 13, v2: 13 }),
  aes('ctr', 192, { esp: 13, v2: 13 }),
  aes('ctr', 256, { esp: 13, v2: 13 }),
  ...([128, 192, 256] as const).flatMap((bits) => ([8, 12, 16] as const).map((icv) => aesGcm(bits, icv))),
  {
    kind: 'encr',
    name: 'chacha20poly1305',
    aliases: ['chacha20-poly1305'],
    primitive: 'chacha20-poly1305',
    keyLength: 32,
    saltLength: 4,
    ivLength: 8,
    blockSize: 4,
    icvLength: 16,
    ikev2: { id: 28, keyLengthAttribute: false },
  },
  integrity('md5', 'md5', 12, 1, 1),
  integrity('sha1', 'sha1', 12, 2, 2),
  integrity('sha256', 'sha256', 16, 5, 12),
  integrity('sha384', 'sha384', 24, 6, 13),
  integrity('sha512', 'sha512', 32, 7, 14),
  prf('md5', 1, 1),
  prf('sha1', 2, 2),
  prf('sha256', 4, 5),
  prf('sha384', 5, 6),
  prf('sha512', 6, 7),
  modp(768, 160, 1),
  modp(1024, 160, 2),
  modp(1536, 180, 5),
  modp(2048, 220, 14),
  modp(3072, 260, 15),
  modp(4096, 300, 16),
  {
    kind: 'dh',
    name: 'ecp256',
    aliases: ['group19'],
    family: 'ecp',
    publicLength: 64,
    sharedLength: 32,
    ikev1: 19,
    ikev2: 19,
  },
  {
    kind: 'dh',
    name: 'ecp384',
    aliases: ['group20'],
    family: 'ecp',
    publicLength: 96,
    sharedLength: 48,
    ikev1: 20,
    ikev2: 20,
  },
  {
    kind: 'dh',
    name: 'curve25519',
    aliases: ['x25519', 'group31'],
    family: 'curve25519',
    publicLength: 32,
    sharedLength: 32,
    ikev2: 31,
  },
];

type ByKind = {
  encr: EncryptionAlgorithm;
  integ: IntegrityAlgorithm;
  prf: PrfAlgorithm;
  dh: DhAlgorithm;
};

const byName = new Map<string, Algorithm[]>();
for (const row of ALGORITHMS) {
  for (const key of [row.name, ...row.aliases]) {
    const list = byName.get(key) ?? [];
    list.push(row);
    byName.set(key, list);
  }
}

/** Look an algorithm up by its keyword or alias ("aes256", "aes-cbc-256", "group14"...). */
export function findAlgorithm<K extends keyof ByKind>(kind: K, name: string): ByKind[K] | undefined {
  return byName.get(name.toLowerCase())?.find((row): row is ByKind[K] => row.kind === kind);
}

export function algorithm<K extends keyof ByKind>(kind: K, name: string): ByKind[K] {
  const row = findAlgorithm(kind, name);
  if (!row) throw new RangeError(`unknown ${kind} algorithm '${name}'`);
  return row;
}

export function algorithmsOf<K extends keyof ByKind>(kind: K): ByKind[K][] {
  return ALGORITHMS.filter((row): row is ByKind[K] => row.kind === kind);
}

/** IKEv2 transform id (plus key length in bits for the ciphers that carry one) to a row. */
export function findIkev2<K extends keyof ByKind>(
  kind: K,
  id: number,
  keyBits?: number,
): ByKind[K] | undefined {
  return algorithmsOf(kind).find((row) => {
    if (row.ikev2 === undefined) return false;
    const rowId = typeof row.ikev2 === 'number' ? row.ikev2 : row.ikev2.id;
    if (rowId !== id) return false;
    return row.kind !== 'encr' || !row.ikev2.keyLengthAttribute || row.keyLength * 8 === keyBits;
  });
}

export function dhGroup(name: DhGroupName): DhAlgorithm {
  return algorithm('dh', name);
}
