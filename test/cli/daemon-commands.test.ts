import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runCli } from '../../src/cli/cli.js';
import { freeUdpPorts } from '../../src/net/free-ports.js';
import { parseConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { Logger } from '../../src/daemon/logger.js';
import { until } from '../helpers/daemon-pair.js';

/**
 * The commands that talk to a running daemon, against an L2TP-style gateway (an "any" peer,
 * transport mode, udp/1701) with two clients: one client dropped by its SA's number, the others
 * kept; a config whose key comes from the environment usable by status and list-conns in a shell
 * without it; a reload refused through the socket logged; `events` failing when the daemon goes.
 */

const ENV_KEY = 'IKE_NODE_CLI_TEST_PSK';
const PSK = 'daemon-commands-psk-93be';

async function run(...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const status = await runCli(argv, { stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
  return { status, stdout: out.join(''), stderr: err.join('') };
}

const policies = {
  ikePolicies: { ike: { proposals: ['aes128-sha256-modp2048'] } },
  ipsecPolicies: { esp: { mode: 'transport', proposals: ['aes128-sha256'], pfs: 'modp2048' } },
};

interface Gateway {
  daemon: Daemon;
  file: string;
  socket: string;
  log: string[];
  port: number;
}

async function gateway(t: Test, dir: string, settings: { retransmit?: object } = {}): Promise<Gateway> {
  const [port, natPort] = await freeUdpPorts('127.0.0.1', 2);
  const file = join(dir, 'gateway.json');
  const socket = join(dir, 'gateway.sock');
  const text = JSON.stringify({
    listen: { addresses: ['127.0.0.2'], port, natPort },
    control: { socket },
    ...settings,
    ...policies,
    connections: {
      l2tp: {
        ikePolicy: 'ike',
        ipsecPolicy: 'esp',
        local: { address: '127.0.0.2', selectors: [{ protocol: 'udp', port: 1701 }] },
        peer: { address: 'any', selectors: [{ protocol: 'udp' }] },
        psk: { env: ENV_KEY },
        start: 'respond',
      },
    },
  });
  writeFileSync(file, text, { mode: 0o600 });
  const log: string[] = [];
  // The daemon's environment has the key; this process's (the shell running ike-node) has not.
  const daemon = new Daemon(parseConfig(text, file, { [ENV_KEY]: PSK }), {
    logger: new Logger({ level: 'info', write: (line) => log.push(line) }),
  });
  t.teardown(() => daemon.stop());
  await daemon.start();
  return { daemon, file, socket, log, port: port! };
}

async function client(
  t: Test,
  dir: string,
  address: string,
  gatewayPort: number,
  psk = PSK,
): Promise<Daemon> {
  const [port, natPort] = await freeUdpPorts(address, 2);
  const config = parseConfig(
    JSON.stringify({
      listen: { addresses: [address], port, natPort },
      control: { socket: join(dir, `${address}.sock`) },
      ...policies,
      connections: {
        vpn: {
          ikePolicy: 'ike',
          ipsecPolicy: 'esp',
          local: { address, selectors: [{ protocol: 'udp', port: 1701 }] },
          peer: { address: '127.0.0.2', port: gatewayPort, selectors: [{ protocol: 'udp', port: 1701 }] },
          psk,
          start: 'initiate',
        },
      },
    }),
    join(dir, `${address}.json`),
  );
  const daemon = new Daemon(config, { logger: new Logger({ level: 'error', write: () => {} }) });
  t.teardown(() => daemon.stop());
  await daemon.start();
  return daemon;
}

t.test('an L2TP gateway drops one client by its SA number; status and list-conns need no key', async (t) => {
  t.equal(process.env[ENV_KEY], undefined, 'the shell has no key');
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const gw = await gateway(t, dir);
  const first = await client(t, dir, '127.0.0.1', gw.port);
  const second = await client(t, dir, '127.0.0.3', gw.port);
  await until(() => gw.daemon.status()[0]!.childSas.length === 2, 10_000);

  const status = await run('status', 'l2tp', '--config', gw.file);
  t.equal(status.status, 0, `status --config with the key's variable unset: ${status.stderr}`);
  const { ikeSas, childSas } = gw.daemon.status()[0]!;
  for (const sa of ikeSas) {
    const child = childSas.find((c) => c.ikeSaId === sa.id)!;
    t.match(
      status.stdout,
      new RegExp(`  IKEv\\d SA #${sa.id} .*\\n(    .*\\n)*    child SA #${child.id} transport`),
      `child SA #${child.id} shown under IKE SA #${sa.id}`,
    );
  }
  const conns = await run('list-conns', '--config', gw.file);
  t.equal(conns.status, 0, conns.stderr);
  t.match(JSON.parse(conns.stdout), [
    { name: 'l2tp', peer: { address: 'any' }, psk: `<secret ${PSK.length} bytes>` },
  ]);
  t.notOk(conns.stdout.includes(PSK), 'never the key');

  // Drop the first client's child SA alone, then the second client's IKE SA (its child with it).
  const ofClient = (address: string) => ikeSas.find((sa) => sa.remote.startsWith(`${address}:`))!;
  const firstChild = childSas.find((c) => c.ikeSaId === ofClient('127.0.0.1').id)!;
  const dropped = await run('terminate', '--child-sa', String(firstChild.id), '--socket', gw.socket);
  t.same(dropped, { status: 0, stdout: `terminate: child SA #${firstChild.id}\n`, stderr: '' });
  t.same(
    gw.daemon.status()[0]!.childSas.map((c) => c.id),
    childSas.filter((c) => c !== firstChild).map((c) => c.id),
    'the other client keeps its child SA',
  );
  await until(() => first.status()[0]!.childSas.length === 0);
  t.pass('the dropped client got the Delete');
  t.equal(second.status()[0]!.status, 'Active');
  t.equal(gw.daemon.status()[0]!.ikeSas.length, 2, 'both IKE SAs stay');

  const secondSa = ofClient('127.0.0.3');
  t.equal((await run('terminate', '--ike-sa', String(secondSa.id), '--socket', gw.socket)).status, 0);
  t.notOk(
    gw.daemon.status()[0]!.ikeSas.some((sa) => sa.id === secondSa.id),
    'that IKE SA is gone',
  );
  t.notOk(
    gw.daemon.status()[0]!.childSas.some((c) => c.ikeSaId === secondSa.id),
    'and its child SAs with it',
  );
  await until(() => second.status()[0]!.childSas.length === 0);

  const unknown = await run('terminate', '--ike-sa', '999', '--socket', gw.socket);
  t.equal(unknown.status, 1);
  t.match(unknown.stderr, /no IKE SA #999/);
  t.match(
    (await run('terminate', '--child-sa', 'x1', '--socket', gw.socket)).stderr,
    /--child-sa: expected an SA number/,
  );
  t.match((await run('terminate', 'l2tp', '--ike-sa', '1', '--socket', gw.socket)).stderr, /not both/);
});

t.test(
  'a reload refused through the socket is logged as one on SIGHUP; events fail when the daemon goes',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ike-node-cli-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const gw = await gateway(t, dir);
    writeFileSync(gw.file, '{"connections": {"l2tp": {"peer": 7}}}', { mode: 0o600 });
    const reload = await run('reload', '--socket', gw.socket);
    t.equal(reload.status, 1);
    t.match(reload.stderr, /connections\.l2tp/);
    t.match(gw.log.join(''), /control socket: reloading .*gateway\.json/);
    t.match(gw.log.join(''), /error cfg +reload refused: .*gateway\.json: connections\.l2tp/);

    const events = run('events', '--socket', gw.socket);
    await until(() => gw.daemon.listenerCount('event') > 0);
    await gw.daemon.stop();
    const ended = await events;
    t.equal(ended.status, 1, 'events exits non-zero when the daemon goes away');
    t.match(ended.stderr, /lost the daemon at .*gateway\.sock: it closed the connection/);
  },
);

t.test("another client's failure is not shown beside Active", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The gateway drops the messages 5 it cannot verify (a forged one looks the same) and fails the
  // negotiation when its retransmissions run out: short ones here.
  const gw = await gateway(t, dir, { retransmit: { timeout: 0.5, backoff: 1, tries: 2 } });
  await client(t, dir, '127.0.0.1', gw.port);
  await until(() => gw.daemon.status()[0]!.status === 'Active', 10_000);
  const failures: string[] = [];
  gw.daemon.on('negotiation-failed', (event) => failures.push(event.connection ?? ''));
  await client(t, dir, '127.0.0.3', gw.port, 'not-the-gateway-key');
  await until(() => failures.length > 0, 10_000);
  t.same(failures, ['l2tp'], "the failure is the gateway connection's");
  const [l2tp] = gw.daemon.status();
  t.equal(l2tp!.status, 'Active', 'the first client is still up');
  t.equal(l2tp!.error, undefined, 'no error beside Active');
  t.match(
    (await run('status', '--socket', gw.socket)).stdout,
    /^l2tp: Active, peer any\n/,
    'nor in the table',
  );
});
