import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { format, inspect } from 'node:util';
import t, { type Test } from 'tap';
import { ConfigErrors, parseConfig } from '../../src/config/index.js';
import { toHex } from '../../src/wire/bytes.js';
import { baseConfig, FILE, PSK, withValue } from './fixtures/helpers.js';

const C = 'connections.office';
const pskBytes = new TextEncoder().encode(PSK);

/** The key as text, as hex, and as the byte lists Uint8Array#toString and util.inspect print. */
function leaks(text: string): string[] {
  const found: string[] = [];
  if (text.includes(PSK)) found.push('the key text');
  if (text.includes(PSK.slice(0, 10))) found.push('a prefix of the key text');
  if (text.includes(toHex(pskBytes).slice(0, 12))) found.push('the key in hex');
  if (text.includes([...pskBytes.subarray(0, 6)].join(','))) found.push('the bytes, comma-separated');
  if (text.includes([...pskBytes.subarray(0, 6)].join(', '))) found.push('the bytes, as inspect lists them');
  return found;
}

function renderings(value: unknown): string[] {
  return [
    String(value),
    `${value as string}`,
    JSON.stringify(value),
    JSON.stringify({ nested: [value] }),
    inspect(value),
    inspect(value, { showHidden: true, depth: Number.POSITIVE_INFINITY }),
    inspect({ nested: [value] }, { showHidden: true, depth: Number.POSITIVE_INFINITY }),
    format('%o %O %j %s', value, value, value, value),
  ];
}

function assertNoLeak(t: Test, value: unknown, what: string): void {
  for (const text of renderings(value)) t.same(leaks(text), [], `${what}: ${text.slice(0, 70)}`);
}

/** Every message, and the errors as inspect and JSON show them, stay free of the key. */
function assertErrorsClean(t: Test, config: unknown, env: Record<string, string> = {}): ConfigErrors {
  const text = typeof config === 'string' ? config : JSON.stringify(config, null, 2);
  const error = t.throws(() => parseConfig(text, FILE, env)) as ConfigErrors;
  t.ok(error instanceof ConfigErrors, 'rejected');
  t.same(leaks(error.message), [], `message: ${error.message.slice(0, 300)}`);
  t.same(leaks(inspect(error, { depth: 5 })), [], 'inspect of the error');
  t.same(leaks(JSON.stringify(error.errors)), [], 'JSON of the errors');
  t.same(leaks(String(error.stack)), [], 'the stack');
  return error;
}

t.test('a loaded configuration never shows the key', async (t) => {
  const config = baseConfig();
  withValue(config, 'connections.fromEnv', {
    ...(config.connections as Record<string, object>).office,
    peer: { address: 'any' },
    start: 'respond',
    psk: { env: 'OFFICE_PSK' },
  });
  const loaded = parseConfig(JSON.stringify(config), FILE, { OFFICE_PSK: PSK });
  t.equal(loaded.connections.length, 2);
  for (const connection of loaded.connections) {
    t.equal(toHex(connection.psk), toHex(pskBytes), 'the bytes are all there');
    assertNoLeak(t, connection, connection.name);
    assertNoLeak(t, connection.psk, `${connection.name}.psk`);
    assertNoLeak(t, { ...connection }, `a copy of ${connection.name}`);
    t.match(inspect(connection), `psk: <secret ${pskBytes.length} bytes>`);
    t.match(JSON.stringify(connection), `"psk":"<secret ${pskBytes.length} bytes>"`);
    t.equal(String(connection.psk), `<secret ${pskBytes.length} bytes>`);
  }
  assertNoLeak(t, loaded, 'the whole configuration');
  assertNoLeak(t, loaded.connections, 'the connection list');
});

t.test('error messages never show the key', async (t) => {
  // A valid key next to other problems.
  const elsewhere = withValue(baseConfig(), `${C}.peer.address`, 'nowhere');
  withValue(elsewhere, `${C}.local.id`, '@');
  t.equal(assertErrorsClean(t, elsewhere).errors.length, 2);

  // A key that is itself wrong, in every way it can be.
  const hexish = `0x${PSK}`;
  for (const [psk, got] of [
    [hexish, 'the string, which starts with 0x but is not hex digits'],
    [`0x${'ab'.repeat(8)}c`, 'the string, which starts with 0x but has an odd number of hex digits'],
    [1234567890, 'a number'],
    [true, 'a boolean'],
    [[PSK], 'a list'],
    [{ text: PSK }, 'unknown key "text"'],
  ] as const) {
    const errors = assertErrorsClean(t, withValue(baseConfig(), `${C}.psk`, psk)).errors;
    t.ok(
      errors.some((e) => e.path.startsWith(`${C}.psk`) && e.got?.includes(got)),
      `${got}: ${errors.map((e) => e.got).join(' | ')}`,
    );
    t.notOk(
      errors.some((e) => e.got?.includes('1234567890')),
      'not even a numeric key',
    );
  }
  const fromEnv = assertErrorsClean(t, withValue(baseConfig(), `${C}.psk`, { env: 'K' }), { K: hexish });
  t.match(fromEnv.errors[0]?.got, 'the variable K');

  // Keys in the wrong place: only the key name is quoted.
  assertErrorsClean(t, withValue(baseConfig(), `${C}.pks`, PSK));
  assertErrorsClean(t, withValue(baseConfig(), `${C}.peer.psk`, PSK));
});

t.test('JSON syntax errors near the key do not quote it', async (t) => {
  const valid = JSON.stringify(baseConfig(), null, 2);
  const quoted = JSON.stringify(PSK);
  for (const broken of [
    valid.replace(quoted, PSK), // unquoted
    valid.replace(quoted, `'${PSK}'`), // single quotes
    valid.replace(quoted, `${quoted} ${quoted}`), // missing comma
    valid.replace(quoted, `"${PSK}\n"`), // raw newline in the string
    valid.replace(quoted, `"${PSK}\\q"`), // bad escape
    valid.slice(0, valid.indexOf(quoted) + 12), // cut inside the key
  ]) {
    const error = assertErrorsClean(t, broken);
    t.equal(error.errors.length, 1);
    t.match(error.message, /^\/etc\/ike-node\/peers\.json:\d+:\d+: invalid JSON: expected /);
  }
});

t.test('equal keys are one object, and no plain digest of a key stays in the heap', async (t) => {
  const first = parseConfig(JSON.stringify(baseConfig()), FILE);
  const second = parseConfig(JSON.stringify(baseConfig()), FILE);
  t.equal(second.connections[0]!.psk, first.connections[0]!.psk, 'the same key from two loads: one object');
  // A process of its own loads the configuration and writes its heap out (a snapshot of the test
  // runner's own process, with its instrumentation, does not finish in time). A digest anyone can
  // compute from a guess would let a reader of that heap test guesses.
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-secrets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const program = join(dir, 'load.mts');
  writeFileSync(
    program,
    [
      `import { writeHeapSnapshot } from 'node:v8';`,
      `import { parseConfig } from ${JSON.stringify(fileURLToPath(new URL('../../src/config/index.ts', import.meta.url)))};`,
      `const config = parseConfig(${JSON.stringify(JSON.stringify(baseConfig()))}, 'peers.json');`,
      `writeHeapSnapshot(${JSON.stringify(join(dir, 'heap.heapsnapshot'))});`,
      `if (!config.connections[0].psk.length) process.exit(1);`,
    ].join('\n'),
  );
  const child = spawnSync(process.execPath, ['--import', 'tsx', program], { encoding: 'utf8' });
  t.equal(child.status, 0, `the loading process ran: ${child.stderr.slice(0, 300)}`);
  const heap = readFileSync(join(dir, 'heap.heapsnapshot'), 'latin1');
  const digests = ['base64', 'hex', 'base64url'].flatMap((encoding) =>
    ['sha256', 'sha1', 'sha512'].map((hash) =>
      createHash(hash)
        .update(pskBytes)
        .digest(encoding as 'base64' | 'hex' | 'base64url'),
    ),
  );
  t.same(
    digests.filter((digest) => heap.includes(digest)),
    [],
    'no SHA digest of the key among the strings of its heap',
  );
});
