import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { Logger } from '../../src/daemon/logger.js';
import type { TrapPolicy } from '../../src/kernel/backend.js';
import { MemoryBackend } from '../../src/kernel/memory.js';
import { listenPorts } from '../helpers/daemon-pair.js';

/** Connections that start on traffic: trap policies at start, and after a reload. */

class TrappingBackend extends MemoryBackend {
  readonly calls: string[] = [];
  async trap(policy: TrapPolicy): Promise<void> {
    this.calls.push(`trap ${policy.connection} ${policy.local}->${policy.remote} ${policy.mode}`);
  }
  async untrap(connection: string): Promise<void> {
    this.calls.push(`untrap ${connection}`);
  }
}

const NAMES = ['a', 'b', 'c'];
const portsOf = await listenPorts(['127.0.0.51', '127.0.0.60', '127.0.0.61', '127.0.0.62']);

function config(dir: string, names: string[], start = 'on-traffic') {
  return parseConfig(
    JSON.stringify({
      listen: { addresses: ['127.0.0.51'], ...portsOf('127.0.0.51') },
      control: { socket: join(dir, 'ike-node.sock') },
      ikePolicies: { ike: { proposals: ['aes128-sha256-modp2048'] } },
      ipsecPolicies: { esp: { proposals: ['aes128-sha256'] } },
      connections: Object.fromEntries(
        names.map((name) => [
          name,
          {
            ikePolicy: 'ike',
            ipsecPolicy: 'esp',
            local: { address: '127.0.0.51', subnets: ['198.51.100.0/24'] },
            // Each name its own peer, whatever else the file holds: b is unchanged across the reload.
            peer: {
              address: `127.0.0.${60 + NAMES.indexOf(name)}`,
              port: portsOf(`127.0.0.${60 + NAMES.indexOf(name)}`).port,
              subnets: [`203.0.113.${NAMES.indexOf(name) * 16}/28`],
            },
            psk: 'trap-test-psk-4e1a',
            start,
          },
        ]),
      ),
    }),
    join(dir, 'peers.json'),
  );
}

t.test('trap policies at start, and a reload removes and adds them with the connections', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-traps-'));
  const kernel = new TrappingBackend();
  const daemon = new Daemon(config(dir, ['a', 'b']), {
    kernel,
    control: false,
    logger: new Logger({ level: 'error', write: () => {} }),
  });
  t.teardown(async () => {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await daemon.start();
  t.same(kernel.calls, ['trap a 127.0.0.51->127.0.0.60 tunnel', 'trap b 127.0.0.51->127.0.0.61 tunnel']);
  t.same(
    daemon.status().map((c) => c.status),
    ['Down', 'Down'],
    'nothing negotiates before traffic',
  );
  kernel.calls.length = 0;
  daemon.reload(config(dir, ['b', 'c']));
  await new Promise((resolve) => setImmediate(resolve));
  t.same(kernel.calls, ['untrap a', 'trap c 127.0.0.51->127.0.0.62 tunnel'], 'a removed, c added, b kept');
});

t.test('a backend without trap policies: the connection initiates at start, with a warning', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-traps-'));
  const lines: string[] = [];
  const daemon = new Daemon(config(dir, ['a']), {
    kernel: new MemoryBackend(),
    control: false,
    logger: new Logger({ level: 'warn', write: (line) => lines.push(line) }),
  });
  t.teardown(async () => {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await daemon.start();
  t.ok(
    lines.some((line) => line.includes('has no trap policies: initiating at start instead of on traffic')),
    'the warning says what happens instead',
  );
  t.equal(daemon.status()[0]!.status, 'Pending', 'and the connection is negotiating');
});
