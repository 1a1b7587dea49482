/**
 * npx tsx bench/esp-seal.ts [--seconds 1] [--size 1400]
 *
 * Userspace ESP (src/kernel/userspace) on one core: packets/s and MB/s of seal, open, and seal +
 * open of `size`-byte payloads for AES-128-GCM-16 and AES-128-CBC + HMAC-SHA-256-128, through
 * node:crypto directly (the fast path), the generic provider path over node and over noble, and
 * through two UserspaceBackends back to back (SPD lookup, ESP, selector check, fake I/O).
 *
 * The reference is OpenSSL measured in the same run: `openssl speed -evp aes-128-gcm` (and
 * aes-128-cbc, hmac sha256) at the same size. Seal alone is compared with one OpenSSL operation,
 * seal + open with half of it (two operations per packet). A benchmark, never a test.
 *
 * Both sides are timed in CPU time by default (this process's user + system time, and `openssl
 * speed`'s own CPU timing), so other load on a shared machine does not skew the ratios; --wall
 * times both by the wall clock (`openssl speed -elapsed`), as bench/crypto.ts does.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { parseAddress } from '../src/core/address.js';
import type { Suite } from '../src/core/proposal.js';
import type { ChildSa } from '../src/core/sa.js';
import { parseTrafficSelector } from '../src/core/traffic-selector.js';
import { createCryptoProvider } from '../src/crypto/providers/index.js';
import type { CryptoProvider } from '../src/crypto/provider.js';
import { algorithm } from '../src/crypto/registry.js';
import { UserspaceBackend } from '../src/kernel/userspace/backend.js';
import { EspInbound, EspOutbound, type EspSaParams } from '../src/kernel/userspace/esp.js';
import type { EspTransformImplementation } from '../src/kernel/userspace/esp-crypto.js';
import { buildPacket } from '../src/kernel/userspace/packet.js';

const { values: options } = parseArgs({
  // `npm run x -- --seconds 2` and `tsx bench/esp-seal.ts -- --seconds 2` both work.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    seconds: { type: 'string', default: '1' },
    size: { type: 'string', default: '1400' },
    wall: { type: 'boolean', default: false },
  },
});
const WALL = options.wall;
/** Milliseconds of the chosen clock. */
const clock = WALL
  ? () => performance.now()
  : () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1000;
    };
const SECONDS = Number(options.seconds);
const SIZE = Number(options.size);

function opsPerSecond(op: () => unknown): number {
  const warmUntil = clock() + Math.min(200, SECONDS * 200);
  while (clock() < warmUntil) op();
  let ops = 0;
  let batch = 16;
  const start = clock();
  const end = start + SECONDS * 1000;
  let now = start;
  while (now < end) {
    for (let i = 0; i < batch; i++) op();
    ops += batch;
    now = clock();
    if (now - start < 50) batch *= 2;
  }
  return (ops * 1000) / (now - start);
}

/** Bytes/s of `openssl speed` for one algorithm at one size, timed by the same kind of clock as ours. */
function opensslBytesPerSecond(args: string[]): number | undefined {
  try {
    const out = execFileSync(
      'openssl',
      [
        'speed',
        ...(WALL ? ['-elapsed'] : []),
        '-mr',
        '-seconds',
        String(Math.max(1, Math.round(SECONDS))),
        '-bytes',
        String(SIZE),
        ...args,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const line = out.split('\n').find((l) => l.startsWith('+F:'));
    return line ? Number(line.split(':')[3]) : undefined;
  } catch {
    return undefined;
  }
}

function suiteOf(encr: string, integ?: string): Pick<Suite, 'encr' | 'integ'> {
  return { encr: algorithm('encr', encr), ...(integ && { integ: algorithm('integ', integ) }) };
}

function params(suite: Pick<Suite, 'encr' | 'integ'>): EspSaParams {
  return {
    spi: 0x1234,
    suite,
    keys: {
      encryption: randomBytes(suite.encr.keyLength + suite.encr.saltLength),
      ...(suite.integ && { integrity: randomBytes(suite.integ.keyLength) }),
    },
  };
}

interface Row {
  label: string;
  seal: number;
  open: number;
  both: number;
}

function measureEsp(
  label: string,
  provider: CryptoProvider,
  suite: Pick<Suite, 'encr' | 'integ'>,
  implementation: EspTransformImplementation,
): Row {
  const p = params(suite);
  const payload = randomBytes(SIZE);
  const out = new EspOutbound(provider, p, { implementation });
  const seal = opsPerSecond(() => out.seal(payload, 4));
  // Open: a window wide enough that pre-sealed packets replayed in order are all new.
  const sealed = Array.from({ length: 4096 }, () => out.seal(payload, 4));
  let inbound = new EspInbound(provider, p, { implementation, replayWindow: 8192 });
  let i = 0;
  const open = opsPerSecond(() => {
    if (i === sealed.length) {
      i = 0;
      inbound = new EspInbound(provider, p, { implementation, replayWindow: 8192 });
    }
    if (!inbound.open(sealed[i++]!).ok) throw new Error('open failed');
  });
  const out2 = new EspOutbound(provider, p, { implementation });
  const in2 = new EspInbound(provider, p, { implementation });
  const both = opsPerSecond(() => {
    if (!in2.open(out2.seal(payload, 4)).ok) throw new Error('round trip failed');
  });
  return { label, seal, open, both };
}

/** Like opsPerSecond, yielding to the microtask queue after each op (B flushes its TUN writes there). */
async function asyncOpsPerSecond(op: () => unknown): Promise<number> {
  const warmUntil = clock() + Math.min(200, SECONDS * 200);
  while (clock() < warmUntil) {
    op();
    await null;
  }
  let ops = 0;
  const start = clock();
  const end = start + SECONDS * 1000;
  let now = start;
  while (now < end) {
    op();
    await null;
    ops++;
    now = clock();
  }
  return (ops * 1000) / (now - start);
}

/** Two backends back to back: A's TUN batch → SPD → seal → B.receiveEsp → open → selectors → B's TUN. */
async function measureBackend(label: string, suite: Pick<Suite, 'encr' | 'integ'>): Promise<Row> {
  const provider = createCryptoProvider('node');
  const { encr, integ } = suite;
  const k = (n: number) => randomBytes(n);
  const keys = {
    encrIn: k(encr.keyLength + encr.saltLength),
    encrOut: k(encr.keyLength + encr.saltLength),
    integIn: integ ? k(integ.keyLength) : new Uint8Array(0),
    integOut: integ ? k(integ.keyLength) : new Uint8Array(0),
  };
  const A = { address: '192.0.2.1', port: 4500 };
  const B = { address: '192.0.2.2', port: 4500 };
  const base = {
    connection: 'bench',
    ikeSaId: 1,
    protocol: 'esp' as const,
    mode: 'tunnel' as const,
    encapsulation: true,
    suite: suite as Suite,
    lifetime: { seconds: 3600 },
    installedAt: 0,
    rekeyAt: 0,
    expiresAt: 0,
  };
  const tsA = [parseTrafficSelector('10.1.0.0/16')];
  const tsB = [parseTrafficSelector('10.2.0.0/16')];
  const childA: ChildSa = {
    ...base,
    id: 1,
    local: A,
    remote: B,
    spiIn: 0x1000,
    spiOut: 0x2000,
    localTs: tsA,
    remoteTs: tsB,
    keys,
  };
  const childB: ChildSa = {
    ...base,
    id: 2,
    local: B,
    remote: A,
    spiIn: 0x2000,
    spiOut: 0x1000,
    localTs: tsB,
    remoteTs: tsA,
    keys: { encrIn: keys.encrOut, encrOut: keys.encrIn, integIn: keys.integOut, integOut: keys.integIn },
  };
  let delivered = 0;
  let listener: ((packets: readonly Uint8Array[]) => void) | undefined;
  const routes = { add: async () => {}, remove: async () => {} };
  const b = new UserspaceBackend(
    provider,
    { onEvent: () => {}, log: () => {}, sendDatagram: () => {} },
    {
      tun: { write: (packets) => (delivered += packets.length), onPackets: () => {}, close: () => {} },
      routes,
    },
    { replayWindow: 1024 },
  );
  const a = new UserspaceBackend(
    provider,
    { onEvent: () => {}, log: () => {}, sendDatagram: (_from, to, data) => b.receiveEsp(data, to, A) },
    { tun: { write: () => {}, onPackets: (l) => (listener = l), close: () => {} }, routes },
  );
  await a.install(childA);
  await b.install(childB);
  const segment = randomBytes(SIZE - 20);
  segment.writeUInt16BE(0, 6); // UDP checksum "none"
  const packet = buildPacket(parseAddress('10.1.0.5'), parseAddress('10.2.0.7'), 17, segment);
  const batch = Array.from({ length: 32 }, () => packet);
  // One op = one batch of 32 packets read from the TUN device, all delivered synchronously to B.
  const batches = await asyncOpsPerSecond(() => listener!(batch));
  const drops = Object.entries(b.drops()).filter(([, n]) => n > 0);
  if (drops.length || delivered === 0)
    throw new Error(`backend bench lost packets: ${JSON.stringify(drops)}`);
  const pps = batches * 32;
  return { label, seal: Number.NaN, open: Number.NaN, both: pps };
}

const fmt = (n: number | undefined, digits = 0): string =>
  n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
const mbps = (pps: number): number => (pps * SIZE) / 1e6;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((r) =>
      r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '),
    )
    .join('\n');
}

const node = createCryptoProvider('node');
const noble = createCryptoProvider('noble');
const gcm = suiteOf('aes128gcm16');
const cbc = suiteOf('aes128', 'sha256');

console.log(
  `userspace ESP, ${SIZE}-byte payloads, ${SECONDS} s of ${WALL ? 'wall-clock' : 'CPU'} time per measurement, ` +
    `node ${process.version}, openssl ${execFileSync('openssl', ['version'], { encoding: 'utf8' }).split(' ')[1]}\n`,
);
const rows: Row[] = [
  measureEsp('aes128gcm16 node (fast path)', node, gcm, 'node'),
  measureEsp('aes128gcm16 node provider', node, gcm, 'provider'),
  measureEsp('aes128gcm16 noble provider', noble, gcm, 'provider'),
  measureEsp('aes128-sha256 node (fast path)', node, cbc, 'node'),
  measureEsp('aes128-sha256 node provider', node, cbc, 'provider'),
  measureEsp('aes128-sha256 noble provider', noble, cbc, 'provider'),
  await measureBackend('aes128gcm16 backend A->B pipeline', gcm),
  await measureBackend('aes128-sha256 backend A->B pipeline', cbc),
];

const gcmRef = opensslBytesPerSecond(['-evp', 'aes-128-gcm']);
const cbcRef = opensslBytesPerSecond(['-evp', 'aes-128-cbc']);
const hmacRef = opensslBytesPerSecond(['-hmac', 'sha256']);
// CBC then HMAC over the same bytes: the two rates combine harmonically.
const cbcHmacRef = cbcRef && hmacRef ? 1 / (1 / cbcRef + 1 / hmacRef) : undefined;

console.log(
  table(
    ['', 'seal pkt/s', 'seal MB/s', 'open pkt/s', 'open MB/s', 'seal+open pkt/s', 'seal+open MB/s'],
    rows.map((r) => [
      r.label,
      fmt(r.seal),
      fmt(mbps(r.seal)),
      fmt(r.open),
      fmt(mbps(r.open)),
      fmt(r.both),
      fmt(mbps(r.both)),
    ]),
  ),
);

console.log(`\nreference, same run: openssl speed ${WALL ? '-elapsed ' : ''}-bytes ${SIZE}`);
const refRows: [string, number | undefined, Row | undefined][] = [
  ['-evp aes-128-gcm', gcmRef, rows[0]],
  ['-evp aes-128-cbc + -hmac sha256 (combined)', cbcHmacRef, rows[3]],
];
console.log(
  table(
    ['', 'openssl MB/s', 'seal / openssl', 'seal+open / (openssl / 2)'],
    refRows.map(([label, ref, row]) => [
      label,
      fmt(ref === undefined ? undefined : ref / 1e6),
      ref && row ? fmt(mbps(row.seal) / (ref / 1e6), 2) : '-',
      ref && row ? fmt(mbps(row.both) / (ref / 2e6), 2) : '-',
    ]),
  ),
);
