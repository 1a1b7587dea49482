import t from 'tap';
import { ConfigErrors, createNode, MemoryBackend, type ChildSa, type LogLine } from '../../src/index.js';

/** createNode: the library's way in, with the embedder's own backend and log sink. */

const site = (self: string, peer: string, start: string) => ({
  listen: { addresses: [self], port: 21600, natPort: 21601 },
  connections: {
    lab: {
      ikePolicy: { proposals: ['aes128-sha256-modp2048'] },
      ipsecPolicy: { proposals: ['aes128-sha256'] },
      local: { address: self, subnets: [self === '127.0.0.7' ? '198.51.100.0/24' : '203.0.113.0/24'] },
      peer: {
        address: peer,
        port: 21600,
        subnets: [self === '127.0.0.7' ? '203.0.113.0/24' : '198.51.100.0/24'],
      },
      psk: 'node-test-key',
      start,
    },
  },
});

t.test('an invalid configuration object throws ConfigErrors with JSON paths', async (t) => {
  const error = (() => {
    try {
      createNode({
        connections: {
          lab: { ...site('127.0.0.7', '127.0.0.8', 'initiate').connections.lab, start: 'sometimes' },
        },
      });
    } catch (caught) {
      return caught;
    }
  })();
  t.ok(error instanceof ConfigErrors);
  t.match(
    (error as Error).message,
    /<config object>: connections\.lab\.start: expected .*"initiate".*got "sometimes"/,
  );
});

t.test('own kernel backend, log lines as objects, no control socket unless configured', async (t) => {
  class CountingBackend extends MemoryBackend {
    installs: ChildSa[] = [];
    override async install(child: ChildSa): Promise<void> {
      this.installs.push(child);
      await super.install(child);
    }
  }
  const kernel = new CountingBackend();
  const lines: LogLine[] = [];
  const a = createNode(site('127.0.0.7', '127.0.0.8', 'initiate'), {
    kernel,
    onLog: (line) => lines.push(line),
  });
  const b = createNode(site('127.0.0.8', '127.0.0.7', 'respond'));
  t.teardown(async () => {
    await a.stop();
    await b.stop();
  });
  await b.start();
  await a.start();
  await new Promise<void>((resolve) => a.on('connection', (e) => e.status === 'Active' && resolve()));
  t.equal(kernel.installs.length, 1, 'the child SA went to our backend');
  t.equal(kernel.installs[0]!.keys.encrIn.length, 16, 'with its keys (aes128)');
  t.ok(
    lines.some(
      (line) => line.subsystem === 'ike' && line.connection === 'lab' && /established/.test(line.message),
    ),
  );
  t.notOk(
    lines.some((line) => line.subsystem === 'ctl'),
    'no control socket was opened',
  );
  t.throws(() => a.initiate('nope'), /no connection named 'nope'/);
  a.terminate('lab');
  t.equal(a.status()[0]!.status, 'Down', 'terminate() deletes at once');
});
