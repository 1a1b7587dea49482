import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../../src/cli/cli.js';
import { parseConfig } from '../../src/config/index.js';
import type { ConnectionStatus } from '../../src/core/status.js';
import { controlRequest } from '../../src/daemon/control.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { Logger } from '../../src/daemon/logger.js';
import type { ChildSa } from '../../src/core/sa.js';
import { MemoryBackend } from '../../src/kernel/memory.js';
import { listenPorts, startDaemonPair, until } from '../helpers/daemon-pair.js';

/**
 * Two daemons on loopback (unprivileged ports, memory kernel backend): real UDP sockets, real
 * timers, the control socket and `ike-node status --json`.
 */

const PSK = 'daemon-test-psk-7f3a9c';
const portsOf = await listenPorts(['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']);

function config(
  dir: string,
  self: string,
  peer: string,
  start: 'initiate' | 'respond',
  workers: number | 'auto' = 'auto',
) {
  const subnet = (address: string) => (address === '127.0.0.1' ? '198.51.100.0/24' : '203.0.113.0/24');
  return parseConfig(
    JSON.stringify({
      listen: { addresses: [self], ...portsOf(self) },
      workers,
      control: { socket: join(dir, `${self}.sock`) },
      log: { level: 'debug' },
      ikePolicies: { ike: { proposals: ['aes256-sha256-modp2048'] } },
      ipsecPolicies: { esp: { proposals: ['aes256-sha256'], pfs: 'modp2048' } },
      connections: {
        site: {
          ikePolicy: 'ike',
          ipsecPolicy: 'esp',
          local: { address: self, subnets: [subnet(self)] },
          peer: { address: peer, port: portsOf(peer).port, subnets: [subnet(peer)] },
          psk: PSK,
          start,
        },
      },
    }),
    join(dir, `${self}.json`),
  );
}

t.test('two daemons negotiate over UDP and report through the control socket', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-daemon-'));
  const logs: string[] = [];
  const logger = (name: string) =>
    new Logger({ level: 'debug', write: (line) => logs.push(`${name} ${line}`) });
  const responder = new Daemon(config(dir, '127.0.0.2', '127.0.0.1', 'respond'), { logger: logger('R') });
  const initiator = new Daemon(config(dir, '127.0.0.1', '127.0.0.2', 'initiate'), { logger: logger('I') });
  await startDaemonPair(t, dir, responder, initiator);
  const socket = join(dir, '127.0.0.2.sock');
  t.equal(statSync(socket).mode & 0o777, 0o600, 'control socket is private');
  const statusOf = async (path: string) =>
    (await controlRequest(path, { command: 'status' })) as ConnectionStatus[];
  await until(async () => (await statusOf(socket))[0]!.status === 'Active');
  const [site] = await statusOf(socket);
  t.equal(site!.ikeSas[0]!.algorithms, 'aes256-sha256-modp2048');
  t.equal(site!.childSas[0]!.algorithms, 'aes256-sha256-modp2048');
  t.same(site!.childSas[0]!.localTs, ['203.0.113.0/24']);
  t.equal(initiator.kernel.installed().length, 1, 'the memory backend holds the child SA');

  const out: string[] = [];
  const code = await runCli(['status', '--json', '--socket', socket], {
    stdout: (s) => out.push(s),
    stderr: () => {},
  });
  t.equal(code, 0);
  const printed = JSON.parse(out.join('')) as ConnectionStatus[];
  t.equal(printed[0]!.status, 'Active', 'ike-node status --json reads the daemon');
  t.equal(printed[0]!.ikeSas[0]!.role, 'responder');
  const one: string[] = [];
  t.equal(
    await runCli(['status', 'site', '--json', '--socket', socket], {
      stdout: (s) => one.push(s),
      stderr: () => {},
    }),
    0,
  );
  t.same(
    (JSON.parse(one.join('')) as ConnectionStatus[]).map((c) => c.name),
    ['site'],
    'ike-node status NAME: that connection alone',
  );
  const unknown: string[] = [];
  t.not(
    await runCli(['status', 'nope', '--socket', socket], {
      stdout: () => {},
      stderr: (s) => unknown.push(s),
    }),
    0,
    'an unknown name fails',
  );
  t.match(unknown.join(''), /no connection named 'nope'/);

  // Stopping the initiator sends Deletes: the responder's SAs go too.
  await initiator.stop();
  await until(async () => (await statusOf(socket))[0]!.status === 'Down');
  t.equal(responder.kernel.installed().length, 0, 'the peer removed its child SA on Delete');
  const all = logs.join('');
  t.notOk(all.includes(PSK), 'the PSK never reaches the log, even at debug level');
  t.match(all, /ISAKMP SA established/);
});

t.test('key exchange on worker threads or on the event loop: the same tunnel either way', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-daemon-'));
  const said: string[] = [];
  const logger = (name: string) =>
    new Logger({ level: 'info', write: (line) => said.push(`${name} ${line}`) });
  // What the CLI's HeapMode is told: every negotiation started, in either role.
  const started = { R: 0, I: 0 };
  const load = (name: 'R' | 'I') => ({ negotiationStarted: () => started[name]++ });
  const responder = new Daemon(config(dir, '127.0.0.2', '127.0.0.1', 'respond', 2), {
    logger: logger('R'),
    load: load('R'),
  });
  const initiator = new Daemon(config(dir, '127.0.0.1', '127.0.0.2', 'initiate', 0), {
    logger: logger('I'),
    load: load('I'),
  });
  await startDaemonPair(t, dir, responder, initiator);
  await until(() => responder.status()[0]!.status === 'Active' && initiator.status()[0]!.status === 'Active');
  t.same(started, { R: 2, I: 2 }, 'each side told of its IKE SA and its child SA');
  t.match(said.join(''), /R .*Diffie-Hellman on 2 worker threads/, 'the responder computes on two threads');
  t.match(said.join(''), /I .*Diffie-Hellman on the event loop/, 'the initiator on its event loop');
  t.equal(responder.kernel.installed()[0]!.spiIn, initiator.kernel.installed()[0]!.spiOut, 'one tunnel');
  t.equal(responder.kernel.installed()[0]!.suite.dh?.name, 'modp2048', 'with PFS, computed by the pool');
});

/** A kernel that refuses every child SA, as one without the negotiated algorithm would. */
class RefusingBackend extends MemoryBackend {
  override async install(child: ChildSa): Promise<void> {
    throw new Error(`install child SA ${child.id}: the kernel has no aes256 (test)`);
  }
}

t.test('a child SA the kernel refuses: Error with the reason, and the peer is told', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-daemon-'));
  const quiet = new Logger({ level: 'error', write: () => {} });
  const said: string[] = [];
  const responder = new Daemon(config(dir, '127.0.0.2', '127.0.0.1', 'respond'), {
    logger: new Logger({ level: 'info', write: (line) => said.push(line) }),
  });
  const initiator = new Daemon(config(dir, '127.0.0.1', '127.0.0.2', 'initiate'), {
    logger: quiet,
    kernel: new RefusingBackend(),
  });
  await startDaemonPair(t, dir, responder, initiator);
  await until(async () => initiator.status()[0]!.status === 'Error');
  t.match(initiator.status()[0], { error: /the kernel refused the child SA: .*no aes256/, childSas: [] });
  await until(async () => said.some((line) => /child SA .* deleted: deleted by the peer/.test(line)));
  t.same(responder.status()[0]!.childSas, [], "the Delete removed the responder's child SA");
});

t.test('a bad request on the control socket gets an error, not a crash', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-daemon-'));
  const daemon = new Daemon(config(dir, '127.0.0.3', '127.0.0.4', 'respond'), {
    logger: new Logger({ level: 'error', write: () => {} }),
  });
  t.teardown(async () => {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await daemon.start();
  const socket = join(dir, '127.0.0.3.sock');
  await t.rejects(controlRequest(socket, { command: 'frobnicate' }), /unknown command 'frobnicate'/);
  await t.rejects(
    controlRequest(socket, { command: 'initiate', name: 'nope' }),
    /no connection named 'nope'/,
  );
  t.equal(((await controlRequest(socket, { command: 'status' })) as ConnectionStatus[])[0]!.status, 'Down');
});
