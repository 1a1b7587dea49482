import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';

/**
 * scripts/build-native.mjs, npm's install script, on a machine that cannot build the shim: a
 * library user on the memory backend needs no compiler, so the installation goes on (exit 0) with
 * one line that says what is missing, and the reason is kept for loadNative() and `check`. The
 * script runs from a copy of the package's build inputs in a temp dir (it builds beside itself),
 * with a PATH that holds node and whatever tools the case gives it.
 */

const root = new URL('../..', import.meta.url).pathname;

function copyPackage(t: Test, tools: Record<string, string> = {}): { dir: string; bin: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-native-build-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const file of ['scripts/build-native.mjs', 'binding.gyp', 'src/native/shim.c', 'package.json']) {
    mkdirSync(join(dir, file, '..'), { recursive: true });
    copyFileSync(join(root, file), join(dir, file));
  }
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  for (const [name, script] of Object.entries(tools)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${script}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  return { dir, bin };
}

function install(dir: string, bin: string, env: Record<string, string> = {}) {
  const run = spawnSync(process.execPath, [join(dir, 'scripts', 'build-native.mjs')], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 60_000,
    // No CC, no npm_config_*: only what the case sets. nodedir keeps node-gyp from downloading headers.
    env: { PATH: bin, HOME: dir, npm_config_nodedir: join(dir, 'no-headers'), ...env },
  });
  const lines = `${run.stdout}${run.stderr}`.split('\n').filter((line) => line !== '');
  return { status: run.status, lines, error: join(dir, 'build', 'native-build-error.txt') };
}

t.test('no C compiler: one line, exit 0, the reason kept', async (t) => {
  const { dir, bin } = copyPackage(t);
  const run = install(dir, bin);
  t.equal(run.status, 0, 'the installation goes on');
  t.equal(run.lines.length, 1, `one line:\n${run.lines.join('\n')}`);
  t.match(
    run.lines[0],
    /^ike-node: native socket shim not built: no C compiler \(cc, gcc or clang\) on PATH; the memory backend works without it/,
  );
  t.match(readFileSync(run.error, 'utf8'), /^no C compiler/, 'the reason for loadNative() and check');
  t.notOk(existsSync(join(dir, 'build', 'Release', 'ike_native.node')));
});

t.test('CC names a compiler that is not there: said so', async (t) => {
  const { dir, bin } = copyPackage(t);
  const run = install(dir, bin, { CC: 'clang-99 -O2' });
  t.equal(run.status, 0);
  t.equal(run.lines.length, 1);
  t.match(run.lines[0], /no C compiler \(CC=clang-99 is not on PATH\)/);
});

t.test('a compiler but no make, then no python: one line each', async (t) => {
  const noMake = copyPackage(t, { cc: 'exit 1' });
  const withoutMake = install(noMake.dir, noMake.bin);
  t.same([withoutMake.status, withoutMake.lines.length], [0, 1]);
  t.match(withoutMake.lines[0], /not built: no make on PATH;/);
  const noPython = copyPackage(t, { cc: 'exit 1', make: 'exit 2' });
  const withoutPython = install(noPython.dir, noPython.bin);
  t.same([withoutPython.status, withoutPython.lines.length], [0, 1]);
  t.match(withoutPython.lines[0], /not built: no python3 on PATH/);
});

t.test('every tool there but the build fails: one line, the output in the error file', async (t) => {
  // Tools that run and fail: node-gyp (or its absence) ends the build, whichever comes first.
  const { dir, bin } = copyPackage(t, {
    cc: 'exit 1',
    make: 'exit 2',
    python3: 'echo broken python >&2; exit 3',
  });
  const run = install(dir, bin);
  t.equal(run.status, 0);
  t.equal(run.lines.length, 1, `one line:\n${run.lines.join('\n')}`);
  t.match(
    run.lines[0],
    /^ike-node: native socket shim not built: (node-gyp rebuild exited with status \d+|node-gyp was not found)/,
  );
  t.ok(existsSync(run.error));
});
