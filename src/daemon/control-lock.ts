import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname } from 'node:path';

/**
 * One daemon per control socket. Without it a second daemon given the same socket removed the
 * first one's, served its own in its place and deleted it on exit, leaving the first unreachable.
 * The lock is a file beside the socket (`<socket>.lock`), created exclusively and holding the pid
 * of the daemon that owns the socket; a lock whose process is gone (kill -9) is stale and taken
 * over. Node has no flock(2): two daemons taking over the same stale lock in the same instant
 * could both succeed, so the socket itself is probed too, just before it is replaced.
 */

export interface ControlLock {
  readonly path: string;
  /** Removes the lock file, if it is still ours. */
  release(): void;
}

export class ControlSocketBusy extends Error {
  override readonly name = 'ControlSocketBusy';
}

export function lockControlSocket(socket: string): ControlLock {
  mkdirSync(dirname(socket), { recursive: true, mode: 0o700 });
  const path = `${socket}.lock`;
  // Twice at most: once more after removing a stale lock.
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' || attempt > 0)
        throw new Error(`cannot create ${path}: ${(error as Error).message}`);
      const holder = lockHolder(path);
      if (holder !== undefined && running(holder)) throw busy(socket, `pid ${holder}, see ${path}`);
      rmSync(path, { force: true }); // its process is gone: stale
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    return {
      path,
      release: () => {
        if (lockHolder(path) === process.pid) rmSync(path, { force: true });
      },
    };
  }
}

/**
 * Resolves when nobody answers on `socket` (absent, or left behind by a process that died);
 * rejects with ControlSocketBusy when something accepts a connection there.
 */
export function ensureUnserved(socket: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createConnection(socket);
    probe.once('connect', () => {
      probe.destroy();
      reject(busy(socket, 'it accepts connections'));
    });
    probe.once('error', () => resolve());
  });
}

function busy(socket: string, why: string): ControlSocketBusy {
  return new ControlSocketBusy(
    `another ike-node serves the control socket ${socket} (${why}): stop it first, or give this one another control.socket`,
  );
}

function lockHolder(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
