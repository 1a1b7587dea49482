/**
 * npm run bench:crypto [-- --seconds 0.3 --out bench/results/crypto.json]
 *
 * 1. Checks every algorithm of both providers against the published vectors (and stops on a mismatch).
 * 2. Measures, for both providers: MB/s of encryption (+ integrity) on 64 B, 1400 B and 16 KiB
 *    messages; DH operations/s; KDF operations/s.
 * 3. Measures OpenSSL in the same run with `openssl speed` for the same algorithms and prints the
 *    ratios node/openssl and noble/node. This is a benchmark, never a test: nothing here asserts a time.
 */
import { execFileSync } from 'node:child_process';
import * as nodeCrypto from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import {
  algorithmsOf,
  type CryptoProvider,
  childSaKeymat,
  createCryptoProvider,
  deriveIkeSaKeys,
  derivePhase1PskKeys,
  Encryption,
  Integrity,
  KeyExchange,
  PROVIDER_NAMES,
  Prf,
  quickModeKeymat,
  skeyseed,
  UnsupportedAlgorithmError,
} from '../src/crypto/index.js';
import { checkVector, loadVectorFiles } from '../src/crypto/known-answers.js';
import { MODP_PRIMES } from '../src/crypto/modp.js';

const { values: options } = parseArgs({
  options: {
    seconds: { type: 'string', default: '0.3' },
    'openssl-seconds': { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench/results/crypto.json' },
  },
});
const SECONDS = Number(options.seconds);
const OPENSSL_SECONDS = String(Math.max(1, Math.round(Number(options['openssl-seconds']))));
const SIZES = [64, 1400, 16384];
const providers = Object.fromEntries(
  PROVIDER_NAMES.map((name) => [name, createCryptoProvider(name)]),
) as Record<'node' | 'noble', CryptoProvider>;

/** Operations per second of `op`, after a short warm-up, timed on the wall clock in batches. */
function opsPerSecond(op: () => unknown): number {
  const warmUntil = performance.now() + Math.min(100, SECONDS * 300);
  while (performance.now() < warmUntil) op();
  let ops = 0;
  let batch = 1;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  let now = start;
  while (now < end) {
    for (let i = 0; i < batch; i++) op();
    ops += batch;
    now = performance.now();
    if (now - start < 50) batch *= 2;
  }
  return (ops * 1000) / (now - start);
}

/** `openssl speed` in wall-clock mode (-elapsed), so both sides are timed the same way. */
function opensslSpeed(args: string[]): string {
  try {
    return execFileSync('openssl', ['speed', '-elapsed', '-mr', '-seconds', OPENSSL_SECONDS, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return '';
  }
}

/** Bytes/s of one `openssl speed` cipher or HMAC run at one message size. */
function opensslBytesPerSecond(args: string[], size: number): number | undefined {
  const line = opensslSpeed([...args, '-bytes', String(size)])
    .split('\n')
    .find((l) => l.startsWith('+F:'));
  return line ? Number(line.split(':')[3]) : undefined;
}

const fmt = (n: number | undefined, digits = 1): string =>
  n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || b === 0 ? '-' : (a / b).toFixed(2);

function table(header: string[], rows: string[][]): string {
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((r) =>
      r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '),
    )
    .join('\n');
}

// 1. Known answers first: a fast wrong implementation is worth nothing.
const vectorSummary: Record<string, { passed: number; failed: number; unsupported: number }> = {};
for (const [name, provider] of Object.entries(providers)) {
  const tally = { passed: 0, failed: 0, unsupported: 0 };
  for (const file of loadVectorFiles()) {
    for (const vector of file.vectors) {
      try {
        const { comparisons } = checkVector(file.kind, provider, vector);
        const bad = comparisons.filter((c) => c.actual !== c.expected);
        for (const c of bad) console.error(`MISMATCH ${name} ${file.file} ${c.what}`);
        if (bad.length) tally.failed++;
        else tally.passed++;
      } catch (error) {
        if (!(error instanceof UnsupportedAlgorithmError)) throw error;
        tally.unsupported++;
      }
    }
  }
  vectorSummary[name] = tally;
  console.log(
    `vectors, ${name}: ${tally.passed} passed, ${tally.failed} failed, ${tally.unsupported} unsupported`,
  );
}
if (Object.values(vectorSummary).some((t) => t.failed > 0)) {
  console.error('known-answer checks failed: not benchmarking');
  process.exit(1);
}

// 2. Encryption and integrity throughput.
interface SymmetricRow {
  label: string;
  encr?: string;
  integ?: string;
  /** The `openssl speed` arguments for the cipher and for the HMAC part. */
  opensslCipher?: string[];
  opensslHmac?: string[];
}

const evp = (name: string) => ['-evp', name];
// AEADs are timed by OpenSSL in its per-record mode (-aead: new IV, AAD, tag per message), as IKE and ESP use them.
const aead = (name: string) => ['-aead', '-evp', name];
const hmacOf = (hash: string) => ['-hmac', hash];

const symmetricRows: SymmetricRow[] = [
  { label: 'aes128 (cbc)', encr: 'aes128', opensslCipher: evp('aes-128-cbc') },
  { label: 'aes256 (cbc)', encr: 'aes256', opensslCipher: evp('aes-256-cbc') },
  { label: '3des (cbc)', encr: '3des', opensslCipher: evp('des-ede3-cbc') },
  { label: 'aes128ctr', encr: 'aes128ctr', opensslCipher: evp('aes-128-ctr') },
  { label: 'aes128gcm16', encr: 'aes128gcm16', opensslCipher: aead('aes-128-gcm') },
  { label: 'aes256gcm16', encr: 'aes256gcm16', opensslCipher: aead('aes-256-gcm') },
  { label: 'chacha20poly1305', encr: 'chacha20poly1305', opensslCipher: aead('chacha20-poly1305') },
  ...['md5', 'sha1', 'sha256', 'sha384', 'sha512'].map((hash) => ({
    label: `hmac-${hash}`,
    integ: hash,
    opensslHmac: hmacOf(hash),
  })),
  {
    label: 'aes128-sha1',
    encr: 'aes128',
    integ: 'sha1',
    opensslCipher: evp('aes-128-cbc'),
    opensslHmac: hmacOf('sha1'),
  },
  {
    label: 'aes128-sha256',
    encr: 'aes128',
    integ: 'sha256',
    opensslCipher: evp('aes-128-cbc'),
    opensslHmac: hmacOf('sha256'),
  },
  {
    label: 'aes256-sha256',
    encr: 'aes256',
    integ: 'sha256',
    opensslCipher: evp('aes-256-cbc'),
    opensslHmac: hmacOf('sha256'),
  },
  {
    label: '3des-sha1',
    encr: '3des',
    integ: 'sha1',
    opensslCipher: evp('des-ede3-cbc'),
    opensslHmac: hmacOf('sha1'),
  },
];

/** One message: encrypt, then (for non-AEAD suites) the ICV over IV ‖ ciphertext, as ESP does. */
function messageOp(provider: CryptoProvider, row: SymmetricRow, size: number): (() => unknown) | undefined {
  try {
    const encryption = row.encr ? new Encryption(provider, row.encr) : undefined;
    const integrity = row.integ ? new Integrity(provider, row.integ) : undefined;
    const data = nodeCrypto.randomBytes(size);
    const key = nodeCrypto.randomBytes(encryption?.keyMaterialLength ?? 0);
    const iv = nodeCrypto.randomBytes(encryption?.ivLength ?? 0);
    const aad = nodeCrypto.randomBytes(encryption?.isAead ? 8 : 0);
    const integrityKey = nodeCrypto.randomBytes(integrity?.keyLength ?? 0);
    return () => {
      const ciphertext = encryption ? encryption.encrypt(key, iv, data, aad) : data;
      return integrity ? integrity.compute(integrityKey, iv, ciphertext) : ciphertext;
    };
  } catch (error) {
    if (error instanceof UnsupportedAlgorithmError) return undefined;
    throw error;
  }
}

/** Messages are whole cipher blocks, as after ESP padding: 1400 B becomes 1408 B for AES-CBC. */
function messageSize(row: SymmetricRow, size: number): number {
  const block = row.encr ? new Encryption(providers.node, row.encr).blockSize : 1;
  return Math.ceil(size / block) * block;
}

const opensslCache = new Map<string, number | undefined>();
function opensslRate(args: string[] | undefined, size: number): number | undefined {
  if (!args) return undefined;
  const key = `${args.join(' ')}@${size}`;
  if (!opensslCache.has(key)) opensslCache.set(key, opensslBytesPerSecond(args, size));
  return opensslCache.get(key);
}

interface SymmetricResult {
  suite: string;
  bytes: number;
  nodeMBps?: number;
  nobleMBps?: number;
  opensslMBps?: number;
  opensslMode: string;
}
const symmetricResults: SymmetricResult[] = [];
for (const row of symmetricRows) {
  for (const baseSize of SIZES) {
    const size = messageSize(row, baseSize);
    const rate = (provider: CryptoProvider) => {
      const op = messageOp(provider, row, size);
      return op ? (opsPerSecond(op) * size) / 1e6 : undefined;
    };
    const cipher = opensslRate(row.opensslCipher, size);
    const hmac = opensslRate(row.opensslHmac, size);
    // Cipher then HMAC over the same bytes: the times add up.
    const combined =
      row.opensslCipher && row.opensslHmac
        ? cipher && hmac
          ? 1 / (1 / cipher + 1 / hmac)
          : undefined
        : (cipher ?? hmac);
    symmetricResults.push({
      suite: row.label,
      bytes: size,
      nodeMBps: rate(providers.node),
      nobleMBps: rate(providers.noble),
      opensslMBps: combined === undefined ? undefined : combined / 1e6,
      opensslMode: [row.opensslCipher?.join(' '), row.opensslHmac?.join(' ')].filter(Boolean).join(' + '),
    });
  }
}

console.log('\nEncryption and integrity, MB/s (1 MB = 10^6 bytes)');
console.log(
  table(
    ['suite', 'bytes', 'node', 'noble', 'openssl', 'node/openssl', 'noble/node', 'openssl speed mode'],
    symmetricResults.map((r) => [
      r.suite,
      String(r.bytes),
      fmt(r.nodeMBps),
      r.nobleMBps === undefined ? 'n/a' : fmt(r.nobleMBps),
      fmt(r.opensslMBps),
      ratio(r.nodeMBps, r.opensslMBps),
      ratio(r.nobleMBps, r.nodeMBps),
      r.opensslMode,
    ]),
  ),
);

// 3. Diffie-Hellman. OpenSSL's speed test times the derivation only, so that is the compared column.
const opensslDh = new Map<string, number>();
for (const line of opensslSpeed([
  'ffdh2048',
  'ffdh3072',
  'ffdh4096',
  'ecdhp256',
  'ecdhp384',
  'ecdhx25519',
]).split('\n')) {
  const [tag, , bits, ops] = line.split(':');
  if (tag === '+F8') opensslDh.set(`modp${bits}`, Number(ops));
  if (tag === '+F5')
    opensslDh.set({ 256: 'ecp256', 384: 'ecp384', 253: 'curve25519' }[bits!] ?? `ecdh${bits}`, Number(ops));
}

interface DhResult {
  group: string;
  nodeExchange: number;
  nobleExchange: number;
  nodeDerive: number;
  nobleDerive: number;
  opensslDerive?: number;
  nodeSetupMs?: number;
}
const dhResults: DhResult[] = [];
for (const group of algorithmsOf('dh')) {
  const measure = (provider: CryptoProvider) => {
    const peer = new KeyExchange(provider, group.name).publicKey;
    const mine = new KeyExchange(provider, group.name);
    return {
      exchange: opsPerSecond(() => new KeyExchange(provider, group.name).computeSharedSecret(peer)),
      derive: opsPerSecond(() => mine.computeSharedSecret(peer)),
    };
  };
  const node = measure(providers.node);
  const noble = measure(providers.noble);
  // The node provider builds one DiffieHellman object per MODP group per process; this is what it costs.
  let nodeSetupMs: number | undefined;
  if (group.family === 'modp') {
    const prime = Buffer.from(MODP_PRIMES[group.name as keyof typeof MODP_PRIMES], 'hex');
    const start = performance.now();
    nodeCrypto.createDiffieHellman(prime, 2);
    nodeSetupMs = performance.now() - start;
  }
  dhResults.push({
    group: group.name,
    nodeExchange: node.exchange,
    nobleExchange: noble.exchange,
    nodeDerive: node.derive,
    nobleDerive: noble.derive,
    opensslDerive: opensslDh.get(group.name),
    nodeSetupMs,
  });
}

console.log(
  '\nDiffie-Hellman, operations/s (exchange = new key pair + shared secret; derive = shared secret only)',
);
console.log(
  table(
    [
      'group',
      'node exch',
      'noble exch',
      'noble/node',
      'node derive',
      'openssl derive',
      'node/openssl',
      'node one-time setup ms',
    ],
    dhResults.map((r) => [
      r.group,
      fmt(r.nodeExchange, 0),
      fmt(r.nobleExchange, 0),
      ratio(r.nobleExchange, r.nodeExchange),
      fmt(r.nodeDerive, 0),
      fmt(r.opensslDerive, 0),
      ratio(r.nodeDerive, r.opensslDerive),
      fmt(r.nodeSetupMs, 2),
    ]),
  ),
);
console.log(
  'openssl derive: `openssl speed ffdhN` (RFC 7919 ffdhe groups of the same size) and `ecdhp256/ecdhp384/ecdhx25519`;',
);
console.log('it has no speed test for 768-1536-bit MODP groups.');

// 4. Key derivation.
function kdfOps(provider: CryptoProvider): Record<string, number> {
  const random = (n: number) => nodeCrypto.randomBytes(n);
  const sha1 = new Prf(provider, 'prfsha1');
  const sha256 = new Prf(provider, 'prfsha256');
  const phase1 = {
    psk: random(16),
    Ni_b: random(16),
    Nr_b: random(16),
    gxy: random(128),
    CKY_I: random(8),
    CKY_R: random(8),
  };
  const qm = { protocol: 3, spi: random(4), Ni_b: random(16), Nr_b: random(16) };
  const v2 = { Ni: random(32), Nr: random(32), SPIi: random(8), SPIr: random(8) };
  const gir = random(256);
  return {
    'ikev1 phase 1 (sha1, 3des key)': opsPerSecond(() =>
      derivePhase1PskKeys(sha1, { ...phase1, encryptionKeyLength: 24 }),
    ),
    'ikev1 quick mode KEYMAT (sha1, 2 x 36 B)': opsPerSecond(() => {
      quickModeKeymat(sha1, phase1.psk, qm, 36);
      return quickModeKeymat(sha1, phase1.psk, qm, 36);
    }),
    'ikev2 SKEYSEED + SK_* (sha256, aes256-sha256)': opsPerSecond(() =>
      deriveIkeSaKeys(sha256, skeyseed(sha256, v2.Ni, v2.Nr, gir), {
        ...v2,
        encryptionKeyLength: 32,
        integrityKeyLength: 32,
      }),
    ),
    'ikev2 child KEYMAT (sha256, 2 x 64 B)': opsPerSecond(() =>
      childSaKeymat(sha256, gir, v2.Ni, v2.Nr, 128),
    ),
  };
}
const kdfNode = kdfOps(providers.node);
const kdfNoble = kdfOps(providers.noble);
console.log('\nKey derivation, operations/s (OpenSSL has no speed test for these)');
console.log(
  table(
    ['derivation', 'node', 'noble', 'noble/node'],
    Object.keys(kdfNode).map((name) => [
      name,
      fmt(kdfNode[name], 0),
      fmt(kdfNoble[name], 0),
      ratio(kdfNoble[name], kdfNode[name]),
    ]),
  ),
);

const opensslVersion = execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
const report = {
  date: new Date().toISOString(),
  node: process.version,
  openssl: opensslVersion,
  cpus: cpus().length,
  seconds: SECONDS,
  vectors: vectorSummary,
  symmetric: symmetricResults,
  dh: dhResults,
  kdf: { node: kdfNode, noble: kdfNoble },
};
mkdirSync(dirname(options.out!), { recursive: true });
writeFileSync(options.out!, `${JSON.stringify(report, null, 2)}\n`);
console.log(`\n${opensslVersion}, node ${process.version}; results written to ${options.out}`);
