import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigErrors, loadConfig, parseConfig } from '../../src/config/index.js';
import { baseConfig, FILE, PSK, withValue } from './fixtures/helpers.js';

/**
 * A file that holds a pre-shared key (peers.json with the key written in it, or a key file) must
 * be readable by its owner only; keys from the environment have no file to protect.
 */

const C = 'connections.office';
const OWNER_ONLY = 'to be readable by its owner only';
const DIR = '/etc/ike-node';

/** The messages parseConfig gives with these file modes (path to mode), and the paths it asked about. */
function check(
  config: object,
  modes: Record<string, number>,
  env = {},
): { messages: string[]; asked: string[] } {
  const asked: string[] = [];
  const fileMode = (path: string) => {
    asked.push(path);
    const mode = modes[path];
    if (mode === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return 0o100000 | mode; // a regular file
  };
  try {
    parseConfig(JSON.stringify(config), FILE, env, () => `${PSK}\n`, fileMode);
    return { messages: [], asked };
  } catch (error) {
    if (!(error instanceof ConfigErrors)) throw error;
    return { messages: error.errors.map((e) => e.message), asked };
  }
}

t.test('a key written in peers.json needs peers.json readable by its owner only', async (t) => {
  t.same(check(baseConfig(), { [FILE]: 0o600 }), { messages: [], asked: [FILE, DIR] });
  t.same(check(baseConfig(), { [FILE]: 0o400 }).messages, []);
  t.same(
    check(baseConfig(), { [FILE]: 0o620 }).messages,
    [],
    'group-writable is not a leak (and not this check)',
  );
  t.same(check(baseConfig(), { [FILE]: 0o644 }).messages, [
    `${FILE}: ${C}.psk: expected ${FILE} to be readable by its owner only (chmod 600 ${FILE}) because it holds a pre-shared key, got mode 0644`,
  ]);
  for (const mode of [0o640, 0o604, 0o444, 0o4640]) {
    const { messages } = check(baseConfig(), { [FILE]: mode });
    t.equal(messages.length, 1, mode.toString(8));
    t.match(
      messages[0],
      `${OWNER_ONLY} (chmod 600 ${FILE}) because it holds a pre-shared key, got mode ${mode.toString(8).padStart(4, '0')}`,
    );
  }
});

t.test('one message per file, at the first key in it', async (t) => {
  const config = baseConfig();
  const office = (config.connections as Record<string, object>).office!;
  withValue(config, 'connections.second', {
    ...office,
    peer: { address: '198.51.100.8', subnets: ['10.2.0.0/24'] },
  });
  const { messages } = check(config, { [FILE]: 0o644 });
  t.equal(messages.length, 1);
  t.match(messages[0], `${C}.psk: expected ${FILE} ${OWNER_ONLY}`);
});

t.test('key files follow the same rule; keys from the environment have no file', async (t) => {
  const keyFile = '/etc/ike-node/office.psk';
  const fromFile = withValue(baseConfig(), `${C}.psk`, { file: 'office.psk' });
  t.same(
    check(fromFile, { [FILE]: 0o644, [keyFile]: 0o600 }),
    { messages: [], asked: [keyFile, DIR] },
    'peers.json then holds no key',
  );
  t.same(check(fromFile, { [keyFile]: 0o640 }).messages, [
    `${FILE}: ${C}.psk.file: expected ${keyFile} to be readable by its owner only (chmod 600 ${keyFile}) because it holds a pre-shared key, got mode 0640`,
  ]);
  const fromEnv = withValue(baseConfig(), `${C}.psk`, { env: 'OFFICE_PSK' });
  t.same(check(fromEnv, { [FILE]: 0o644 }, { OFFICE_PSK: PSK }), { messages: [], asked: [] });
});

t.test('a key file writable by everyone, or in a directory everyone may write, is refused', async (t) => {
  const keyFile = `${DIR}/office.psk`;
  const fromFile = withValue(baseConfig(), `${C}.psk`, { file: 'office.psk' });
  for (const mode of [0o602, 0o622, 0o402]) {
    t.same(
      check(fromFile, { [keyFile]: mode, [DIR]: 0o40755 }).messages,
      [
        `${FILE}: ${C}.psk.file: expected ${keyFile} to be writable by its owner only (chmod 600 ${keyFile}) because it holds a pre-shared key, got mode ${mode.toString(8).padStart(4, '0')}`,
      ],
      `key file mode ${mode.toString(8)}`,
    );
  }
  t.same(check(baseConfig(), { [FILE]: 0o602 }).messages.length, 1, 'peers.json with its key too');
  const inOpenDirectory = check(fromFile, { [keyFile]: 0o600, [DIR]: 0o40777 }).messages;
  t.same(inOpenDirectory, [
    `${FILE}: ${C}.psk.file: expected ${DIR}, which holds ${keyFile} with a pre-shared key, to be writable by its owner only (chmod o-w ${DIR}) because anyone may replace the file in it, got mode 0777`,
  ]);
  t.same(
    check(fromFile, { [keyFile]: 0o600, [DIR]: 0o41777 }).messages,
    [],
    'sticky (like /tmp): owners only',
  );
  t.same(check(fromFile, { [keyFile]: 0o600, [DIR]: 0o40775 }).messages, [], 'group-writable: not everyone');
  t.same(
    check(baseConfig(), { [FILE]: 0o600, [DIR]: 0o40777 }).messages.length,
    1,
    'peers.json with its key too',
  );
});

t.test('parseConfig without fileMode checks nothing (its text need not come from a file)', async (t) => {
  t.same(parseConfig(JSON.stringify(baseConfig()), FILE).connections.length, 1);
});

t.test('loadConfig checks the real files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-permissions-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'peers.json');
  const write = (file: string, text: string, mode: number) => {
    writeFileSync(file, text);
    chmodSync(file, mode); // explicitly: writeFileSync's mode is subject to the umask
  };
  write(path, JSON.stringify(baseConfig()), 0o644);
  const error = t.throws(() => loadConfig(path)) as ConfigErrors;
  t.same(
    error.errors?.map((e) => e.message),
    [
      `${path}: ${C}.psk: expected ${path} to be readable by its owner only (chmod 600 ${path}) because it holds a pre-shared key, got mode 0644`,
    ],
  );
  t.notMatch(error.message, PSK, 'the key is not in the message');
  chmodSync(path, 0o600);
  t.equal(loadConfig(path).connections.length, 1, 'after chmod 600 it loads');

  const keyPath = join(dir, 'office.psk');
  write(keyPath, `${PSK}\n`, 0o644);
  write(path, JSON.stringify(withValue(baseConfig(), `${C}.psk`, { file: 'office.psk' })), 0o644);
  const keyError = t.throws(() => loadConfig(path)) as ConfigErrors;
  t.match(keyError.message, `${C}.psk.file: expected ${keyPath} ${OWNER_ONLY} (chmod 600 ${keyPath})`);
  t.equal(keyError.errors?.length, 1, 'peers.json itself holds no key now');
  chmodSync(keyPath, 0o602);
  t.match(
    (t.throws(() => loadConfig(path)) as ConfigErrors).message,
    `expected ${keyPath} to be writable by its owner only`,
    'world-writable',
  );
  chmodSync(keyPath, 0o600);
  t.equal(loadConfig(path).connections.length, 1);
  chmodSync(dir, 0o777);
  t.teardown(() => chmodSync(dir, 0o700));
  t.match(
    (t.throws(() => loadConfig(path)) as ConfigErrors).message,
    `expected ${dir}, which holds ${keyPath} with a pre-shared key, to be writable by its owner only`,
    'in a directory everyone may write',
  );
  chmodSync(dir, 0o1777);
  t.equal(loadConfig(path).connections.length, 1, 'with the sticky bit it loads');
});
