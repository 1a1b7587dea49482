import { rmSync } from 'node:fs';
import type { Test } from 'tap';
import type { Daemon } from '../../src/daemon/daemon.js';

/** Polls `predicate` every 20 ms until it holds; throws after `ms`. */
export async function until(predicate: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Starts the responder, then the initiator (so its first message finds someone listening). The
 * test's teardown stops both, initiator first, and removes `dir`, whatever the test's outcome.
 */
export async function startDaemonPair(
  t: Test,
  dir: string,
  responder: Daemon,
  initiator: Daemon,
): Promise<void> {
  t.teardown(async () => {
    await initiator.stop();
    await responder.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await responder.start();
  await initiator.start();
}
