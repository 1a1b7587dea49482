import { rmSync } from 'node:fs';
import type { Test } from 'tap';
import type { Daemon } from '../../src/daemon/daemon.js';
import { freeUdpPorts } from '../../src/net/free-ports.js';

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

/** The IKE and NAT-T ports one daemon listens on. */
export interface ListenPorts {
  readonly port: number;
  readonly natPort: number;
}

/**
 * Ports the kernel hands out for each loopback address a test file's daemons listen on (or that a
 * peer entry names), so two runs of the suite on one machine never collide. Each address gets its
 * own pair: a daemon's peer entry names the other side's port.
 */
export async function listenPorts(addresses: readonly string[]): Promise<(address: string) => ListenPorts> {
  const ports = new Map<string, ListenPorts>();
  for (const address of addresses) {
    const [port, natPort] = await freeUdpPorts(address, 2);
    ports.set(address, { port: port!, natPort: natPort! });
  }
  return (address) => {
    const found = ports.get(address);
    if (!found) throw new Error(`no ports handed out for ${address}: add it to listenPorts()`);
    return found;
  };
}
