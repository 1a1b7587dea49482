import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freeUdpPorts } from '../../src/net/free-ports.js';
import { parseConfig } from '../../src/config/index.js';
import { type ControlHandler, controlRequest, listenControl } from '../../src/daemon/control.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { Logger } from '../../src/daemon/logger.js';
import { until } from '../helpers/daemon-pair.js';

/**
 * The control socket as a local attack surface and a stop hazard: one daemon per socket, bounded
 * clients (output, connections, subscriptions, idle time, empty lines), its final mode from the
 * first moment, and a stop that does not wait for idle clients.
 */

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-control-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function peersJson(dir: string, socket = join(dir, 'ctl.sock')): Promise<object> {
  const [port, natPort] = await freeUdpPorts('127.0.0.1', 2);
  return {
    listen: { addresses: ['127.0.0.1'], port, natPort },
    control: { socket },
    ikePolicies: { ike: { proposals: ['aes128-sha256-modp2048'] } },
    ipsecPolicies: { esp: { proposals: ['aes128-sha256'] } },
    connections: {
      site: {
        ikePolicy: 'ike',
        ipsecPolicy: 'esp',
        local: { address: '127.0.0.1', subnets: ['198.51.100.0/24'] },
        peer: { address: '127.0.0.9', subnets: ['203.0.113.0/24'] },
        psk: 'control-test-psk-5e1b',
        start: 'respond',
      },
    },
  };
}

const quiet = () => new Logger({ level: 'error', write: () => {} });

async function daemonOn(t: Test, dir: string, socket?: string): Promise<Daemon> {
  const config = parseConfig(JSON.stringify(await peersJson(dir, socket)), join(dir, 'peers.json'));
  const daemon = new Daemon(config, { logger: quiet() });
  t.teardown(() => daemon.stop());
  return daemon;
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => resolve(socket)).once('error', reject);
  });
}

const closed = (socket: Socket) => new Promise<void>((resolve) => socket.once('close', () => resolve()));

/** Rejects if `promise` takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>(
      (_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)),
    ),
  ]);
}

t.test(
  'a second daemon on the same control socket refuses to start; the first stays reachable',
  async (t) => {
    const dir = tempDir(t);
    const first = await daemonOn(t, dir);
    await first.start();
    const second = await daemonOn(t, dir);
    await t.rejects(second.start(), /another ike-node serves the control socket .*ctl\.sock \(pid \d+/);
    t.ok(existsSync(join(dir, 'ctl.sock')), "the refused daemon left the first one's socket alone");
    t.match(await controlRequest(join(dir, 'ctl.sock'), { command: 'status' }), [{ name: 'site' }]);
    await first.stop();
    t.notOk(existsSync(join(dir, 'ctl.sock')), 'stop removes the socket');
    t.notOk(existsSync(join(dir, 'ctl.sock.lock')), 'and the lock');
    const third = await daemonOn(t, dir);
    await third.start();
    t.pass('the socket is free again once the first stopped');
  },
);

t.test('something else serving the socket (no lock file) is not taken over either', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'ctl.sock');
  const other = await listenControl(path, () => 'mine');
  t.teardown(() => other.close());
  rmSync(`${path}.lock`, { force: true }); // listenControl alone takes no lock: as an older ike-node
  const daemon = await daemonOn(t, dir);
  await t.rejects(daemon.start(), /another ike-node serves the control socket .*it accepts connections/);
  t.equal(await controlRequest(path, { command: 'status' }), 'mine');
});

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;

/** The daemon as a process (`ike-node --config FILE`), reachable once its control socket answers. */
async function daemonProcess(t: Test, dir: string) {
  const file = join(dir, 'peers.json');
  writeFileSync(file, JSON.stringify(await peersJson(dir)), { mode: 0o600 });
  const child = spawn(process.execPath, ['--import', 'tsx', main, '--config', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const socket = join(dir, 'ctl.sock');
  await until(
    () =>
      controlRequest(socket, { command: 'status' }).then(
        () => true,
        () => false,
      ),
    20_000,
  );
  return { child, exited, socket, stderr: () => stderr };
}

t.test('a socket and lock left by a daemon killed with SIGKILL are stale: the next one starts', async (t) => {
  const dir = tempDir(t);
  const { child, exited, socket } = await daemonProcess(t, dir);
  child.kill('SIGKILL');
  t.match(await exited, { signal: 'SIGKILL' });
  t.ok(existsSync(socket) && existsSync(`${socket}.lock`), 'the killed daemon left its socket and lock');
  const next = await daemonOn(t, dir);
  await next.start();
  t.match(await controlRequest(socket, { command: 'status' }), [{ name: 'site', status: 'Down' }]);
});

t.test('SIGTERM with an idle control client and an event stream connected: exit 0 at once', async (t) => {
  const dir = tempDir(t);
  const { child, exited, socket, stderr } = await daemonProcess(t, dir);
  const idle = await connect(socket);
  const stream = await connect(socket);
  stream.write('{"command":"events"}\n');
  await new Promise((resolve) => stream.once('data', resolve));
  const disconnected = Promise.all([closed(idle), closed(stream)]);
  const started = Date.now();
  child.kill('SIGTERM');
  t.same(await within(exited, 4000, 'exit after SIGTERM'), { code: 0, signal: null }, 'exit status 0');
  t.comment(`stopped in ${Date.now() - started} ms`); // a figure, not an assertion: timings are bench's
  await disconnected;
  t.notMatch(stderr(), /exiting anyway/, 'within its bound, not by it');
  t.notOk(existsSync(socket), 'the socket is gone');
});

t.test('stop() disconnects idle clients instead of waiting for them', async (t) => {
  const dir = tempDir(t);
  const daemon = await daemonOn(t, dir);
  await daemon.start();
  const idle = await connect(join(dir, 'ctl.sock'));
  const gone = closed(idle);
  await within(daemon.stop(), 2000, 'stop with an idle client');
  await gone;
  t.pass('stopped, and the client was disconnected');
});

/** A handler whose `big` command answers `size` bytes; `events` streams `size`-byte events every ms. */
function bigHandler(size: number, calls: { count: number }): ControlHandler {
  return (request, session) => {
    calls.count++;
    if (request.command === 'events') {
      if (!session.stream()) throw new Error('this connection already receives events');
      const timer = setInterval(() => session.send({ event: 'x'.repeat(size) }), 1);
      session.onClose(() => clearInterval(timer));
      return { subscribed: true };
    }
    return 'x'.repeat(size);
  };
}

t.test('a client that sends requests but never reads holds the daemon to one answer at a time', async (t) => {
  const dir = tempDir(t);
  const calls = { count: 0 };
  const server = await listenControl(join(dir, 'c.sock'), bigHandler(64 * 1024, calls), {
    idleTimeoutMs: 1000,
  });
  t.teardown(() => server.close());
  const client = await connect(join(dir, 'c.sock'));
  client.pause();
  client.write('{"command":"big"}\n'.repeat(2000));
  await new Promise((resolve) => setTimeout(resolve, 500));
  // 2,000 answers of 64 kB would be 128 MB; the unread ones wait in the socket buffers.
  t.ok(calls.count < 40, `${calls.count} of 2000 requests answered while the client does not read`);
  await until(() => server.connections === 0, 3000);
  t.pass('and the stalled client is dropped after the idle timeout');
  client.destroy();
});

t.test('empty and blank lines cost nothing: no answer, no handler call', async (t) => {
  const dir = tempDir(t);
  const calls = { count: 0 };
  const server = await listenControl(join(dir, 'c.sock'), bigHandler(10, calls));
  t.teardown(() => server.close());
  const client = await connect(join(dir, 'c.sock'));
  client.setEncoding('utf8');
  let received = '';
  client.on('data', (chunk: string) => (received += chunk));
  for (let i = 0; i < 16; i++) client.write('\n'.repeat(64 * 1024) + ' \t\r\n'.repeat(1024));
  client.write('{"command":"big"}\n');
  await until(() => received.includes('\n'));
  t.equal(
    received,
    `${JSON.stringify({ ok: true, result: 'x'.repeat(10) })}\n`,
    'only the request is answered',
  );
  t.equal(calls.count, 1);
  client.destroy();
});

t.test('an event stream nobody reads is dropped once its unread output passes the bound', async (t) => {
  const dir = tempDir(t);
  const calls = { count: 0 };
  const server = await listenControl(join(dir, 'c.sock'), bigHandler(16 * 1024, calls), {
    maxOutputBytes: 512 * 1024,
  });
  t.teardown(() => server.close());
  const client = await connect(join(dir, 'c.sock'));
  client.pause();
  client.write('{"command":"events"}\n');
  await until(() => calls.count === 1);
  await until(() => server.connections === 0);
  t.pass('the daemon dropped the client that does not read');
  let received = 0;
  client.on('data', (chunk: Buffer) => (received += chunk.length)).resume();
  await within(closed(client), 2000, 'the client sees the end once it reads');
  t.ok(received < 2 * 1024 * 1024, `it got ${received} bytes before the end`);
});

t.test('connections are limited; idle ones time out; one event stream per connection', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'c.sock');
  const server = await listenControl(path, bigHandler(10, { count: 0 }), {
    maxConnections: 3,
    idleTimeoutMs: 300,
  });
  t.teardown(() => server.close());
  const stream = await connect(path);
  stream.setEncoding('utf8');
  let streamed = '';
  stream.on('data', (chunk: string) => (streamed += chunk));
  stream.write('{"command":"events"}\n{"command":"events"}\n');
  await until(() => streamed.includes('already receives events'));
  t.match(streamed, /^\{"ok":true,"result":\{"subscribed":true\}\}\n/, 'the first subscription is taken');
  const idle = [await connect(path), await connect(path)];
  const refused = await connect(path);
  refused.setEncoding('utf8');
  let said = '';
  refused.on('data', (chunk: string) => (said += chunk));
  await within(closed(refused), 2000, 'the fourth connection closed');
  t.match(said, /too many control connections \(3\)/);
  await within(Promise.all(idle.map(closed)), 2000, 'idle connections closed');
  t.notOk(stream.destroyed, 'an event stream is idle by design: it stays');
  await until(() => server.connections === 1);
  stream.destroy();
});

t.test('the socket has its final mode from the first moment, even under umask 000', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'c.sock');
  const seen: string[] = [];
  // Where the socket is bound, what could be reached at the final path right then.
  const listen = Server.prototype.listen;
  t.teardown(() => {
    Server.prototype.listen = listen;
  });
  Server.prototype.listen = function (this: Server, ...args: unknown[]) {
    this.once('listening', () => {
      seen.push(
        existsSync(path) ? `final path mode ${(statSync(path).mode & 0o777).toString(8)}` : 'not yet',
      );
    });
    return (listen as (...a: unknown[]) => Server).apply(this, args);
  } as typeof listen;
  const umask = process.umask(0);
  let server;
  try {
    server = await listenControl(path, () => 'ok');
  } finally {
    process.umask(umask);
  }
  t.teardown(() => server.close());
  t.same(seen, ['not yet'], 'nothing connectable at the final path while the mode is not yet set');
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(await controlRequest(path, { command: 'x' }), 'ok');
});

t.test('a request that takes longer than the idle timeout is answered, not cut off', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'c.sock');
  const server = await listenControl(
    path,
    () => new Promise((resolve) => setTimeout(() => resolve('late but here'), 500)),
    { idleTimeoutMs: 200 },
  );
  t.teardown(() => server.close());
  t.equal(await controlRequest(path, { command: 'slow' }), 'late but here');
  const idle = await connect(path);
  await within(closed(idle), 2000, 'an idle connection still times out');
});
