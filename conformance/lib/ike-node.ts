import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlEvents } from '../../src/daemon/control.js';
import type { DaemonEvent } from '../../src/daemon/events.js';
import { delay, processEnd, signal, type Ns } from './netns.js';

/**
 * ike-node itself as a peer inside a namespace: the built CLI (`dist/cli/main.js`, so run
 * `npm run build` first) with a JSON configuration written by the test.
 */

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO_ROOT, 'dist', 'cli', 'main.js');

export interface IkeNodeOptions {
  /** Directory for peers.json and ike-node.log; created if missing. */
  dir: string;
  /** Milliseconds to wait for the control socket (default 10000). */
  readyTimeoutMs?: number;
  /** Log level passed as --log-level (default debug). */
  logLevel?: string;
  /** The daemon's stdout and stderr, a file name in dir (default ike-node.log). */
  logFile?: string;
}

export interface IkeNode {
  readonly pid: number;
  readonly dir: string;
  readonly configPath: string;
  /** `ike-node status --json` run inside the namespace, parsed. */
  status(): Promise<unknown>;
  /** stdout and stderr of the daemon so far. */
  log(): string;
  /**
   * Resolves with the log once `pattern` appears in it; rejects with the log's tail after `ms`.
   * The daemon gathers its lines for up to 50 ms before writing them, so a test that has just seen
   * the peer react waits for ike-node's line instead of reading the file at once.
   */
  logged(pattern: RegExp, ms?: number): Promise<string>;
  /** SIGTERM, waits up to 5 s (then SIGKILL); resolves with the exit code (128 + signal if killed). */
  stop(): Promise<number>;
  /** SIGKILL at once, as a crash would end it: nothing of its own clean-up runs. Resolves with 137. */
  kill(): Promise<number>;
}

interface ConfigWithControl {
  control?: { socket?: unknown };
}

function controlSocketOf(config: object): string {
  const socket = (config as ConfigWithControl).control?.socket;
  if (typeof socket !== 'string' || socket === '') {
    throw new Error('startIkeNode: config.control.socket must be set (a path inside dir)');
  }
  return socket;
}

export async function startIkeNode(ns: Ns, config: object, options: IkeNodeOptions): Promise<IkeNode> {
  const { dir } = options;
  mkdirSync(dir, { recursive: true });
  const socket = controlSocketOf(config);
  const configPath = join(dir, 'peers.json');
  const logPath = join(dir, options.logFile ?? 'ike-node.log');
  // It holds the pre-shared key: ike-node refuses a peers.json that others can read.
  writeFileSync(configPath, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  chmodSync(configPath, 0o600);
  if (!existsSync(CLI)) throw new Error(`startIkeNode: ${CLI} is missing; run npm run build`);

  // A daemon killed earlier leaves its socket behind: ready means a socket bound after this start
  // (the daemon binds beside it and renames, so a new one is a new inode).
  const staleSocket = socketInode(socket);
  const out = openSync(logPath, 'w');
  let child;
  try {
    child = ns.spawn(
      process.execPath,
      [CLI, '--config', configPath, '--log-level', options.logLevel ?? 'debug'],
      { stdio: ['ignore', out, out], cwd: dir },
    );
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error('startIkeNode: spawn failed');
  const { exit, exitCode, stop } = processEnd(child, 5000);
  const log = () => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const tail = () => log().split('\n').slice(-40).join('\n');

  ns.onDestroy(async () => {
    await stop();
  });

  const timeout = options.readyTimeoutMs ?? 10_000;
  const deadline = Date.now() + timeout;
  while (socketInode(socket) === undefined || socketInode(socket) === staleSocket) {
    if (exitCode() !== null)
      throw new Error(`ike-node exited with ${exitCode()} before its control socket appeared:\n${tail()}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`ike-node: no control socket ${socket} after ${timeout} ms:\n${tail()}`);
    }
    await delay(25);
  }

  return {
    pid,
    dir,
    configPath,
    async status() {
      // A second Node process: in the kernel lab on a busy host its start alone took over 10 s.
      const result = await ns.exec(process.execPath, [CLI, 'status', '--json', '--config', configPath], {
        allowFail: true,
        timeoutMs: 30_000,
      });
      if (result.code !== 0) throw new Error(`ike-node status failed (${result.code}): ${result.stderr}`);
      return JSON.parse(result.stdout) as unknown;
    },
    log,
    async logged(pattern, ms = 3000) {
      const until = Date.now() + ms;
      for (;;) {
        const text = log();
        if (pattern.test(text)) return text;
        if (Date.now() > until) throw new Error(`ike-node logged no ${pattern} within ${ms} ms:\n${tail()}`);
        await delay(25);
      }
    },
    stop,
    kill() {
      signal(pid, 'SIGKILL');
      return exit;
    },
  };
}

/**
 * Watches a daemon's event stream (its control socket, reachable from the test's own namespace):
 * per connection, seconds from its IKE negotiation starting to its first child SA, in the
 * daemon's clock. Subscribe before initiating; `close()` ends the subscription.
 */
export async function watchSetups(
  socket: string,
): Promise<{ setups: Map<string, number>; close: () => void }> {
  const started = new Map<string, number>();
  const setups = new Map<string, number>();
  const close = await controlEvents(socket, (raw) => {
    const event = raw as DaemonEvent;
    if (event.type === 'negotiation-started' && event.kind === 'ike' && event.connection !== undefined) {
      if (!started.has(event.connection)) started.set(event.connection, event.time);
    } else if (event.type === 'child-sa' && event.change === 'added') {
      const from = started.get(event.connection);
      if (from !== undefined && !setups.has(event.connection))
        setups.set(event.connection, event.time - from);
    }
  });
  return { setups, close };
}

function socketInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}
