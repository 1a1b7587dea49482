import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../config/index.js';
import type { ConnectionStatus } from '../core/status.js';
import { Daemon } from '../daemon/daemon.js';
import { Logger } from '../daemon/logger.js';
import { freeUdpPorts } from '../net/free-ports.js';
import type { CliIo } from './cli.js';
import { statusTable } from './status-table.js';

/**
 * `ike-node demo`: two daemons in this process, a gateway and a branch office, on loopback with
 * unprivileged ports and the memory kernel backend, negotiate an IKEv2 site-to-site connection
 * (IKEv1 with --ikev1) over real UDP sockets; both sides' status is printed. No root, no
 * configuration.
 */

const LOOPBACK = '127.0.0.1';
/** Generated per run: the demo shows the flow, it protects nothing. */
const demoPsk = () => `demo-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;

interface Site {
  name: string;
  ports: [number, number];
  subnet: string;
  peer: { name: string; ports: [number, number]; subnet: string };
  start: 'initiate' | 'respond';
}

function siteConfig(site: Site, dir: string, psk: string, version: 1 | 2) {
  return parseConfig(
    JSON.stringify({
      listen: { addresses: [LOOPBACK], port: site.ports[0], natPort: site.ports[1] },
      control: { socket: join(dir, `${site.name}.sock`) },
      ikePolicies: { ike: { version, proposals: ['aes256-sha256-modp2048'] } },
      ipsecPolicies: { esp: { proposals: ['aes256gcm16', 'aes256-sha256'], pfs: 'modp2048' } },
      connections: {
        'site-to-site': {
          ikePolicy: 'ike',
          ipsecPolicy: 'esp',
          local: { address: LOOPBACK, id: `${site.name}.example`, subnets: [site.subnet] },
          peer: {
            address: LOOPBACK,
            id: `${site.peer.name}.example`,
            port: site.peer.ports[0],
            natPort: site.peer.ports[1],
            subnets: [site.peer.subnet],
          },
          psk,
          start: site.start,
        },
      },
    }),
    `<demo ${site.name}>`,
  );
}

export async function demoCommand(io: CliIo, version: 1 | 2 = 2, timeoutMs = 10_000): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-demo-'));
  const [g1, g2, b1, b2] = await freeUdpPorts(LOOPBACK, 4);
  const gateway: Site = {
    name: 'gateway',
    ports: [g1!, g2!],
    subnet: '198.51.100.0/24',
    peer: { name: 'branch', ports: [b1!, b2!], subnet: '203.0.113.0/24' },
    start: 'respond',
  };
  const branch: Site = {
    name: 'branch',
    ports: [b1!, b2!],
    subnet: '203.0.113.0/24',
    peer: { name: 'gateway', ports: [g1!, g2!], subnet: '198.51.100.0/24' },
    start: 'initiate',
  };
  const psk = demoPsk();
  const daemons = [gateway, branch].map(
    (site) =>
      new Daemon(siteConfig(site, dir, psk, version), {
        logger: new Logger({ write: (line) => io.stdout(`${site.name.padEnd(7)} ${line}`) }),
      }),
  );
  try {
    io.stdout(
      `Two ike-node daemons on ${LOOPBACK}: gateway (UDP ${g1}/${g2}, ${gateway.subnet}) answers, ` +
        `branch (UDP ${b1}/${b2}, ${branch.subnet}) initiates IKEv${version} with a pre-shared key.\n\n`,
    );
    for (const daemon of daemons) await daemon.start();
    const end = Date.now() + timeoutMs;
    const states = () => daemons.flatMap((daemon) => daemon.status().map((c) => c.status));
    while (!states().every((state) => state === 'Active')) {
      const failed = states().includes('Error');
      if (failed || Date.now() > end) {
        io.stderr(
          `ike-node demo: ${failed ? 'negotiation failed' : `no tunnel after ${timeoutMs / 1000} s`}\n`,
        );
        printStatus(io, daemons, [gateway, branch]);
        return 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    printStatus(io, daemons, [gateway, branch]);
    io.stdout('\nBoth sides are Active. Stopping: each side sends Deletes.\n');
    return 0;
  } finally {
    // Together: each side sends its Deletes before either reads the other's.
    await Promise.all(daemons.map((daemon) => daemon.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

function printStatus(io: CliIo, daemons: readonly Daemon[], sites: readonly Site[]): void {
  daemons.forEach((daemon, i) => {
    const status: ConnectionStatus[] = daemon.status();
    io.stdout(`\n${sites[i]!.name} status:\n${statusTable(status)}`);
  });
}
