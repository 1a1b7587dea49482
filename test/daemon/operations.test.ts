import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../../src/cli/cli.js';
import { parseConfig } from '../../src/config/index.js';
import type { ConnectionStatus } from '../../src/core/status.js';
import { controlEvents, controlRequest } from '../../src/daemon/control.js';
import { Daemon, type ReloadResult } from '../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../src/daemon/events.js';
import { Logger } from '../../src/daemon/logger.js';
import { listenPorts } from '../helpers/daemon-pair.js';

/**
 * What an operator does with a running daemon: watch its events (in process and over the control
 * socket), reload a changed configuration without disturbing unchanged tunnels, and stop it with
 * signals. Two daemons on loopback, memory kernel backend.
 */

const PSK = 'operations-test-psk-41c2';
const portsOf = await listenPorts(['127.0.0.5', '127.0.0.6']);

/** Side A (127.0.0.5) initiates, side B (127.0.0.6) answers; `nets` subnets pairs, one connection each. */
function peersJson(dir: string, self: 'a' | 'b', nets: Record<string, number>, extra: object = {}) {
  const [me, peer] = self === 'a' ? ['127.0.0.5', '127.0.0.6'] : ['127.0.0.6', '127.0.0.5'];
  const mine = (n: number) => (self === 'a' ? `198.51.${n}.0/24` : `203.0.${n}.0/24`);
  const theirs = (n: number) => (self === 'a' ? `203.0.${n}.0/24` : `198.51.${n}.0/24`);
  return {
    listen: { addresses: [me], ...portsOf(me) },
    control: { socket: join(dir, `${self}.sock`) },
    ikePolicies: { ike: { proposals: ['aes128-sha256-modp2048'] } },
    ipsecPolicies: { esp: { proposals: ['aes128-sha256'] } },
    connections: Object.fromEntries(
      Object.entries(nets).map(([name, n]) => [
        name,
        {
          ikePolicy: 'ike',
          ipsecPolicy: 'esp',
          local: { address: me, subnets: [mine(n)] },
          peer: { address: peer, port: portsOf(peer).port, subnets: [theirs(n)] },
          psk: PSK,
          start: self === 'a' ? 'initiate' : 'respond',
          ...extra,
        },
      ]),
    ),
  };
}

async function until(predicate: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const quiet = () =>
  new Logger({
    level: process.env.DEBUG_OPS ? 'debug' : 'error',
    write: (l) => {
      if (process.env.DEBUG_OPS) process.stderr.write(l);
    },
  });

t.test('typed events, the control event stream, and a reload that spares unchanged tunnels', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-ops-'));
  const file = (side: string) => join(dir, `${side}.json`);
  const write = (side: 'a' | 'b', nets: Record<string, number>) =>
    writeFileSync(file(side), JSON.stringify(peersJson(dir, side, nets)), { mode: 0o600 });
  write('a', { keep: 1, drop: 2 });
  write('b', { keep: 1, drop: 2, added: 3 });
  const load = (side: 'a' | 'b') =>
    parseConfig(
      JSON.stringify(
        peersJson(dir, side, side === 'a' ? { keep: 1, drop: 2 } : { keep: 1, drop: 2, added: 3 }),
      ),
      file(side),
    );
  const b = new Daemon(load('b'), { logger: quiet() });
  const a = new Daemon(load('a'), { logger: quiet() });
  const stream: { close?: () => void } = {};
  t.teardown(async () => {
    stream.close?.();
    await a.stop();
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const local: DaemonEvent[] = [];
  a.on('event', (event) => local.push(event));
  const childAdded: string[] = [];
  a.on('child-sa', (event) => {
    if (event.change === 'added') childAdded.push(event.connection);
  });
  await b.start();
  const streamed: DaemonEvent[] = [];
  stream.close = await controlEvents(join(dir, 'b.sock'), (event) => streamed.push(event as DaemonEvent));
  await a.start();
  await until(() => a.status().every((c) => c.status === 'Active'));

  const transitions = local
    .filter((e) => e.type === 'connection' && e.connection === 'keep')
    .map((e) => (e.type === 'connection' ? `${e.previous}->${e.status}` : ''));
  t.same(transitions, ['Down->Pending', 'Pending->Active'], 'connection events follow the status');
  t.same(childAdded.sort(), ['drop', 'keep'], "typed 'child-sa' listeners get each added child SA");
  t.ok(
    local.some(
      (e) => e.type === 'ike-sa' && e.change === 'added' && e.ikeSa.algorithms === 'aes128-sha256-modp2048',
    ),
    'IKE SA added, with its algorithms',
  );
  t.ok(local.some((e) => e.type === 'negotiation-started' && e.kind === 'ike'));
  await until(() => streamed.filter((e) => e.type === 'child-sa').length >= 2);
  t.ok(
    streamed.some((e) => e.type === 'connection' && e.connection === 'keep' && e.status === 'Active'),
    'the responder streams its events over the control socket',
  );
  t.notOk(JSON.stringify(streamed).includes(PSK), 'no key in the event stream');
  t.notOk(
    JSON.stringify(local).match(/"keys"|encr(In|Out)/),
    'SAs travel in their status form, without keys',
  );

  // `ike-node events` prints the same stream, one line per event, until interrupted.
  const printed: string[] = [];
  const watching = runCli(['events', '--socket', join(dir, 'a.sock')], {
    stdout: (s) => printed.push(s),
    stderr: (s) => printed.push(s),
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.match(await a.terminate('drop'), { connection: 'drop', state: 'down' }, 'terminate() resolves: down');
  await until(() => printed.join('').includes('drop: Active -> Down'));
  process.emit('SIGINT');
  t.equal(await watching, 0, 'ike-node events exits 0 on SIGINT');
  t.match(
    printed.join(''),
    /child-sa drop: child SA #\d+ deleted: terminated, SPIs [0-9a-f]{8}_i [0-9a-f]{8}_o/,
  );
  t.match(await a.initiate('drop'), { connection: 'drop', state: 'up' }, 'initiate() resolves: up');
  t.ok(a.status().every((c) => c.status === 'Active'));

  // Reload B first (it only answers), then A: 'keep' unchanged, 'drop' removed, 'added' new.
  const keepChild = a.status().find((c) => c.name === 'keep')!.childSas[0]!;
  write('a', { keep: 1, added: 3 });
  write('b', { keep: 1, added: 3 });
  const viaSocket = (await controlRequest(join(dir, 'b.sock'), { command: 'reload' })) as ReloadResult;
  t.same(viaSocket.removed, ['drop'], 'the reload command reports what it did');
  const out: string[] = [];
  const code = await runCli(['reload', '--socket', join(dir, 'a.sock')], {
    stdout: (s) => out.push(s),
    stderr: (s) => out.push(s),
  });
  t.equal(code, 0);
  t.equal(out.join(''), 'added: added\nchanged: -\nremoved: drop\nunchanged: keep\n');
  await until(() => a.status().every((c) => c.status === 'Active'));
  const after = a.status();
  t.same(
    after.map((c) => c.name),
    ['keep', 'added'],
  );
  t.same(after[0]!.childSas[0], keepChild, "'keep' kept its child SA, same SPIs and times");
  t.ok(
    local.some((e) => e.type === 'reload'),
    'a reload event',
  );

  // A broken file is refused and everything stays.
  writeFileSync(file('a'), '{ "connections": { "x": 1 } }', { mode: 0o600 });
  await t.rejects(controlRequest(join(dir, 'a.sock'), { command: 'reload' }), /connections\.x/);
  t.same(
    a.status().map((c) => c.status),
    ['Active', 'Active'],
    'a refused reload changes nothing',
  );
});

t.test('the daemon process: SIGHUP reloads, SIGTERM deletes and exits 0, JSON log lines', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-ops-'));
  const file = join(dir, 'a.json');
  const peer = new Daemon(
    parseConfig(JSON.stringify(peersJson(dir, 'b', { one: 4, two: 5 })), join(dir, 'b.json')),
    {
      logger: quiet(),
    },
  );
  t.teardown(async () => {
    await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await peer.start();
  writeFileSync(file, JSON.stringify(peersJson(dir, 'a', { one: 4 })), { mode: 0o600 });
  const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', main, '--config', file, '--log-format', 'json', '--log-level', 'info,net=warn'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const statusOf = async () =>
    (await controlRequest(join(dir, 'a.sock'), { command: 'status' }).catch(() => [])) as ConnectionStatus[];
  await until(async () => (await statusOf())[0]?.status === 'Active', 15000);

  writeFileSync(file, JSON.stringify(peersJson(dir, 'a', { one: 4, two: 5 })), { mode: 0o600 });
  child.kill('SIGHUP');
  await until(async () => (await statusOf()).map((c) => c.status).join() === 'Active,Active', 10000);
  t.pass('SIGHUP added connection two, which came up');
  t.equal(peer.kernel.installed().length, 2);

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM: exit status 0');
  await until(() => peer.kernel.installed().length === 0);
  t.pass('the peer got the Deletes');

  const lines = stderr
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  t.ok(
    lines.every((line) => typeof line['time'] === 'string' && typeof line['message'] === 'string'),
    'every line is a JSON object',
  );
  t.notOk(
    lines.some((line) => line['subsystem'] === 'net' && line['level'] === 'info'),
    'net=warn hides net info lines',
  );
  t.ok(lines.some((line) => line['subsystem'] === 'cfg' && /SIGHUP/.test(String(line['message']))));
  // The daemon's heap (heap-mode.ts): quiet once started, then V8's defaults once memory is given back.
  t.match(
    lines.map((line) => line['message']).filter((message) => /^V8 heap/.test(String(message))),
    [/^V8 heap: quiet, giving memory back/],
    'the heap mode is logged from the start',
  );
  const engineLines = lines.filter(
    (line) => line['subsystem'] === 'ike' && /established|installed/.test(String(line['message'])),
  );
  t.ok(engineLines.length >= 3);
  t.ok(
    engineLines.every((line) => typeof line['connection'] === 'string' && typeof line['sa'] === 'number'),
    'engine lines name their connection and IKE SA',
  );
  t.notOk(stderr.includes(PSK));
});

t.test('retransmit settings from the config reach the engine', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-ops-'));
  // Nobody listens at 127.0.0.6 (its IKE port from portsOf) in this test: one resend 0.2 s later, then give up.
  const config = {
    ...peersJson(dir, 'a', { lonely: 9 }),
    retransmit: { timeout: 0.2, backoff: 1, tries: 1 },
  };
  const daemon = new Daemon(parseConfig(JSON.stringify(config), join(dir, 'a.json')), { logger: quiet() });
  t.teardown(async () => {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const events: DaemonEvent[] = [];
  daemon.on('event', (event) => events.push(event));
  await daemon.start();
  // With the defaults (first resend after 2 s, 5 tries) nothing would have failed within 3 s.
  await until(() => events.some((e) => e.type === 'negotiation-failed'), 3000);
  t.equal(events.filter((e) => e.type === 'retransmit').length, 1, 'one retransmission, then given up');
  t.equal(daemon.status()[0]!.status, 'Error');
  // Terminating clears the error: no engine event says so, the status event still comes.
  t.match(await daemon.terminate('lonely'), { state: 'down' });
  t.match(events.at(-1), { type: 'connection', connection: 'lonely', previous: 'Error', status: 'Down' });
  await t.rejects(daemon.terminate('nobody'), /no connection named 'nobody'/);
});
