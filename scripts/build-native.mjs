#!/usr/bin/env node
// Builds the native socket shim (binding.gyp, src/native/shim.c) into build/Release/ike_native.node.
// npm runs it as the package's "install" script. A build that cannot happen does not fail the
// installation: only the kernel backends (xfrm, pfkey, userspace) need the shim; the memory
// backend, and so a library user who embeds ike-node with it, works without it. The build is
// skipped with one line when a tool it needs is missing (a C compiler, make, python3), and a build
// that fails says so in one line too: the reason and the build's output are kept in
// build/native-build-error.txt, which loadNative() and `ike-node check` quote.
//
// node-gyp: the one npm bundles (npm tells its scripts where, in npm_config_node_gyp), else one
// found beside npm or in node_modules. Headers: npm's `nodedir` config when set (node-gyp reads
// it from the environment), else the headers installed with this node binary (<prefix>/include/node),
// so the build works offline; only without either does node-gyp try to download them.
// IKE_NODE_SKIP_NATIVE=1 skips the build.
import { spawnSync } from 'node:child_process';
import console from 'node:console';
import { accessSync, constants, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
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

/** Whether `command` (a name, or a path) is an executable file on PATH. */
function onPath(command) {
  const executable = (path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (isAbsolute(command)) return executable(command);
  return (process.env.PATH ?? '')
    .split(delimiter)
    .some((dir) => dir !== '' && executable(join(dir, command)));
}

/** The first tool node-gyp needs and this machine lacks, as words; undefined when all are there. */
function missingTool() {
  const cc = process.env.CC?.trim().split(/\s+/)[0];
  if (cc ? !onPath(cc) : !['cc', 'gcc', 'clang'].some(onPath))
    return cc ? `no C compiler (CC=${cc} is not on PATH)` : 'no C compiler (cc, gcc or clang) on PATH';
  if (!['make', 'gmake'].some(onPath)) return 'no make on PATH';
  const python = process.env.npm_config_python ?? process.env.PYTHON;
  if (python ? !onPath(python) : !['python3', 'python'].some(onPath))
    return 'no python3 on PATH (node-gyp runs gyp with it)';
  return undefined;
}

/** One line on stderr, the reason and the build's output in build/native-build-error.txt; exit 0. */
function skip(what, detail) {
  let kept = true;
  try {
    mkdirSync(dirname(errorFile), { recursive: true });
    writeFileSync(errorFile, `${what}\n${detail ?? ''}`);
  } catch {
    kept = false;
  }
  console.warn(
    `ike-node: native socket shim not built: ${what}; the memory backend works without it, xfrm, pfkey and userspace need it ` +
      `(install the tools, then \`npm rebuild ike-node\`${kept && detail ? '; the build output is in build/native-build-error.txt' : ''})`,
  );
  process.exit(0);
}

if (process.env.IKE_NODE_SKIP_NATIVE === '1') {
  console.warn('ike-node: IKE_NODE_SKIP_NATIVE=1, the native socket shim is not built.');
  process.exit(0);
}

const missing = missingTool();
if (missing) skip(missing);
const nodeGyp = findNodeGyp();
if (!nodeGyp) skip('node-gyp was not found (npm normally bundles it)');

const args = [nodeGyp, 'rebuild', ...nodedirArgs()];
const run = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 16 << 20 });
if (run.error || run.status !== 0 || !existsSync(addon)) {
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`
    .split('\n')
    .filter((line) => !line.startsWith('gyp info') && !line.startsWith('gyp ERR! stack at'));
  const detail = output.slice(-200).join('\n').trim();
  const reason = run.error
    ? `node-gyp could not be started (${run.error.message})`
    : run.status !== 0
      ? `node-gyp rebuild exited with status ${run.status ?? run.signal}`
      : `node-gyp succeeded but ${addon} is missing`;
  skip(reason, detail);
}
rmSync(errorFile, { force: true });
console.log(`ike-node: built the native socket shim (${addon}).`);
