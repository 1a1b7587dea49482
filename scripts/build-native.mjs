#!/usr/bin/env node
// Builds the native socket shim (binding.gyp, src/native/shim.c) into build/Release/ike_native.node.
// npm runs it as the package's "install" script. A failed build does not fail the installation:
// only the kernel backends (xfrm, pfkey, userspace) need the shim; the memory backend works
// without it. The reason is kept in build/native-build-error.txt, which loadNative() quotes.
//
// node-gyp: the one npm bundles (npm tells its scripts where, in npm_config_node_gyp), else one
// found beside npm or in node_modules. Headers: npm's `nodedir` config when set (node-gyp reads
// it from the environment), else the headers installed with this node binary (<prefix>/include/node),
// so the build works offline; only without either does node-gyp try to download them.
// IKE_NODE_SKIP_NATIVE=1 skips the build.
import { spawnSync } from 'node:child_process';
import console from 'node:console';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const errorFile = join(root, 'build', 'native-build-error.txt');
const addon = join(root, 'build', 'Release', 'ike_native.node');

function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath)
    candidates.push(
      join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    );
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(
    join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  );
  try {
    candidates.push(createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally
  }
  return candidates.find((candidate) => existsSync(candidate));
}

function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

function fail(what, detail) {
  const text = [
    `ike-node: the native socket shim was not built: ${what}.`,
    'The kernel backends (xfrm, pfkey, userspace) need it; the memory backend works without it.',
    'To build it: install a C compiler, make, python3 and the Node.js headers, then run `npm rebuild ike-node`',
    '(or `node scripts/build-native.mjs` in a checkout).',
  ].join('\n');
  console.warn(`${text}${detail ? `\n--- last lines of the build output ---\n${detail}` : ''}`);
  try {
    mkdirSync(dirname(errorFile), { recursive: true });
    writeFileSync(errorFile, `${what}\n${detail ?? ''}`);
  } catch {
    // the message above is what matters
  }
  process.exit(0);
}

if (process.env.IKE_NODE_SKIP_NATIVE === '1') {
  console.warn('ike-node: IKE_NODE_SKIP_NATIVE=1, the native socket shim is not built.');
  process.exit(0);
}

const nodeGyp = findNodeGyp();
if (!nodeGyp) fail('node-gyp was not found (npm normally bundles it)');

const args = [nodeGyp, 'rebuild', ...nodedirArgs()];
const run = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 16 << 20 });
if (run.error || run.status !== 0 || !existsSync(addon)) {
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`
    .split('\n')
    .filter((line) => !line.startsWith('gyp info') && !line.startsWith('gyp ERR! stack at'));
  const detail = output.slice(-25).join('\n').trim();
  const reason = run.error
    ? `node-gyp could not be started (${run.error.message})`
    : run.status !== 0
      ? `node-gyp rebuild exited with status ${run.status ?? run.signal}`
      : `node-gyp succeeded but ${addon} is missing`;
  fail(reason, detail);
}
rmSync(errorFile, { force: true });
console.log(`ike-node: built the native socket shim (${addon}).`);
