import {
  chmodSync,
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../../src/cli/cli.js';

/**
 * Deliberately broken configurations (fixtures/broken/NN-name.json) and, in NN-name.expected,
 * exactly what `ike-node check --config peers.json` prints for each: every problem, one line each,
 * on stderr, and exit status 1. Each file is copied to a fresh directory as peers.json with mode
 * 0600, since git keeps no modes and most of them hold a pre-shared key (which must be private).
 */

const FIXTURES = new URL('./fixtures/broken/', import.meta.url).pathname;
const names = readdirSync(FIXTURES)
  .filter((name) => name.endsWith('.json'))
  .map((name) => name.slice(0, -'.json'.length))
  .sort();

const dir = mkdtempSync(join(tmpdir(), 'ike-node-broken-'));
const home = process.cwd();
// Relative to the directory, so that messages name the file as a user typing the command sees it.
process.chdir(dir);
t.teardown(() => {
  process.chdir(home);
  rmSync(dir, { recursive: true, force: true });
});

async function check(name: string): Promise<{ status: number; stdout: string; stderr: string }> {
  copyFileSync(join(FIXTURES, `${name}.json`), join(dir, 'peers.json'));
  chmodSync(join(dir, 'peers.json'), 0o600);
  const out: string[] = [];
  const err: string[] = [];
  const status = await runCli(['check', '--config', 'peers.json'], {
    stdout: (s) => out.push(s),
    stderr: (s) => err.push(s),
  });
  return { status, stdout: out.join(''), stderr: err.join('') };
}

t.test('the fixtures: at least 20, each with its expected messages', async (t) => {
  t.ok(names.length >= 20, `${names.length} fixtures`);
  t.ok(
    names.every((name) => /^\d\d-[a-z0-9-]+$/.test(name)),
    'named NN-short-name',
  );
  const expected = readdirSync(FIXTURES).filter((name) => name.endsWith('.expected'));
  t.same(expected.map((name) => name.slice(0, -'.expected'.length)).sort(), names, 'one .expected per .json');
});

for (const name of names) {
  t.test(name, async (t) => {
    const expected = readFileSync(join(FIXTURES, `${name}.expected`), 'utf8');
    const { status, stdout, stderr } = await check(name);
    t.equal(stderr, expected, 'every problem, exactly as expected');
    t.equal(status, 1, 'exit status 1');
    t.equal(stdout, '', 'nothing on stdout');
    t.ok(
      stderr
        .split('\n')
        .filter(Boolean)
        .every((line) => line.startsWith('peers.json')),
      'each line names the file',
    );
    t.notMatch(stderr, 'correct horse', 'no line shows the pre-shared key');
  });
}

t.test('a fixture repaired passes: the broken ones fail for their mistake, not for the base', async (t) => {
  const base = JSON.parse(readFileSync(join(FIXTURES, '05-lifetime-too-small.json'), 'utf8'));
  delete base.ikePolicies.ike.lifetime;
  writeFileSync(join(dir, 'fixed.json'), JSON.stringify(base));
  chmodSync(join(dir, 'fixed.json'), 0o600);
  const out: string[] = [];
  const status = await runCli(['check', '--config', 'fixed.json'], {
    stdout: (s) => out.push(s),
    stderr: () => {},
  });
  t.equal(status, 0);
  t.match(out.join(''), '"psk": "<secret 28 bytes>"');
});
