import t, { type Test } from 'tap';
import {
  ConfigErrors,
  createNode,
  MemoryBackend,
  type ChildSa,
  type LogLine,
  type PeersConfig,
} from '../../src/index.js';
import { freeTcpPort, freeUdpPorts } from '../../src/net/free-ports.js';

/** createNode: the library's way in, with the embedder's own backend and log sink. */

// Both nodes listen on the same ports (on 127.0.0.7 and 127.0.0.8), ports the kernel handed out.
const [PORT, NAT_PORT] = await freeUdpPorts('127.0.0.1', 2);

const site = (
  self: string,
  peer: string,
  start: 'initiate' | 'respond',
  esp = 'aes128-sha256',
  version: 1 | 2 = 1,
): PeersConfig => ({
  listen: { addresses: [self], port: PORT!, natPort: NAT_PORT! },
  connections: {
    lab: {
      ikePolicy: { proposals: ['aes128-sha256-modp2048'], ikeVersion: version },
      ipsecPolicy: { proposals: [esp] },
      local: { address: self, subnets: [self === '127.0.0.7' ? '198.51.100.0/24' : '203.0.113.0/24'] },
      peer: {
        address: peer,
        port: PORT!,
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
          // @ts-expect-error: the type knows the three values, as the schema does
          lab: { ...site('127.0.0.7', '127.0.0.8', 'initiate').connections!['lab']!, start: 'sometimes' },
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
  await t.rejects(a.initiate('nope'), /no connection named 'nope'/);
  t.same(await a.terminate('lab'), { connection: 'lab', state: 'down' }, 'terminate() resolves: down');
  t.equal(a.status()[0]!.status, 'Down', 'terminate() deletes at once');
});

/** Two started nodes, a initiating to b; both stopped at the test's end. */
async function pair(t: Test, a: PeersConfig, b: PeersConfig) {
  const nodes = { a: createNode(a), b: createNode(b) };
  t.teardown(async () => {
    await nodes.a.stop();
    await nodes.b.stop();
  });
  await nodes.b.start();
  await nodes.a.start();
  return nodes;
}

t.test('initiate() resolves with the outcome: up, then terminate() down', async (t) => {
  const { a } = await pair(
    t,
    site('127.0.0.7', '127.0.0.8', 'respond'),
    site('127.0.0.8', '127.0.0.7', 'respond'),
  );
  t.same(await a.initiate('lab'), { connection: 'lab', state: 'up' });
  t.equal(a.status()[0]!.status, 'Active', 'up means Active');
  t.same(await a.initiate('lab'), { connection: 'lab', state: 'up' }, 'already up: at once');
  t.same(await a.terminate('lab'), { connection: 'lab', state: 'down' });
});

for (const version of [1, 2] as const) {
  t.test(`IKEv${version}: initiate() resolves with the peer's refusal, typed, at once`, async (t) => {
    const { a } = await pair(
      t,
      site('127.0.0.7', '127.0.0.8', 'respond', 'aes128-sha256', version),
      site('127.0.0.8', '127.0.0.7', 'respond', 'aes256-sha256', version),
    );
    let retransmitted = 0;
    a.on('retransmit', () => retransmitted++);
    const outcome = await a.initiate('lab');
    t.match(outcome, { connection: 'lab', state: 'failed', failure: { cause: 'no-proposal' } });
    t.match(outcome.failure!.reason, /NO_PROPOSAL_CHOSEN/);
    t.equal(retransmitted, 0, "the peer's answer decided, not a timer");
    t.equal(a.status()[0]!.status, 'Error');
  });
}

t.test('initiate() times out with a typed failure, or stops waiting on an AbortSignal', async (t) => {
  // Nobody answers at 127.0.0.8 in this test.
  const a = createNode({ ...site('127.0.0.7', '127.0.0.8', 'respond'), retransmit: { timeout: 10 } });
  t.teardown(() => a.stop());
  await a.start();
  t.same(await a.initiate('lab', { timeout: 0.2 }), {
    connection: 'lab',
    state: 'timeout',
    failure: { cause: 'timeout', reason: 'no outcome within 0.2 s' },
  });
  await t.rejects(a.initiate('lab', { signal: AbortSignal.timeout(100) }), { name: 'TimeoutError' });
  // A wait cut short by stop() settles: down.
  const waiting = a.initiate('lab');
  await a.stop();
  t.same(await waiting, { connection: 'lab', state: 'down' });
});

t.test('reload() takes the configuration object createNode takes', async (t) => {
  const node = createNode(site('127.0.0.7', '127.0.0.8', 'respond'));
  const result = node.reload(site('127.0.0.7', '127.0.0.8', 'respond', 'aes256gcm16'));
  t.same(result.changed, ['lab']);
  t.equal(node.config.connections[0]!.ipsec.proposals[0]!.encr.name, 'aes256gcm16');
  t.throws(
    () => node.reload({ ...site('127.0.0.7', '127.0.0.8', 'respond'), workers: -1 }),
    ConfigErrors,
    'an invalid object is refused with ConfigErrors',
  );
  t.equal(node.config.connections[0]!.ipsec.proposals[0]!.encr.name, 'aes256gcm16', 'and nothing changed');
  t.throws(() => node.reload(), /configuration object/);
});

t.test('errors from start() carry their code; asyncDispose stops the node', async (t) => {
  const first = createNode(site('127.0.0.7', '127.0.0.8', 'respond'));
  {
    await using held = first;
    await held.start();
    const second = createNode(site('127.0.0.7', '127.0.0.8', 'respond'));
    const error = await second.start().then(
      () => undefined,
      (caught: NodeJS.ErrnoException) => caught,
    );
    t.equal(error?.code, 'EADDRINUSE', 'UDP port taken: EADDRINUSE');
    t.match(error?.message, /cannot listen on 127\.0\.0\.7 port \d+: the port is in use/);
    const metricsPort = await freeTcpPort('127.0.0.1');
    const metrics = createNode({
      ...site('127.0.0.8', '127.0.0.7', 'respond'),
      metrics: { listen: `127.0.0.1:${metricsPort}` },
    });
    await metrics.start();
    t.teardown(() => metrics.stop());
    const again = createNode({
      ...site('127.0.0.9', '127.0.0.7', 'respond'),
      metrics: { listen: `127.0.0.1:${metricsPort}` },
    });
    const taken = await again.start().then(
      () => undefined,
      (caught: NodeJS.ErrnoException) => caught,
    );
    t.equal(taken?.code, 'EADDRINUSE', 'metrics port taken: EADDRINUSE');
    t.match(taken?.message, /cannot serve metrics on 127\.0\.0\.1:\d+: the port is in use/);
  }
  // The scope ended: the node stopped and its ports are free again.
  const next = createNode(site('127.0.0.7', '127.0.0.8', 'respond'));
  await next.start();
  await next.stop();
  t.pass('the ports were released');
});
