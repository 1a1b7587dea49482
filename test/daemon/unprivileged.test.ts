import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { ConnectionStatus } from '../../src/core/status.js';
import { controlRequest } from '../../src/daemon/control.js';
import { until } from '../helpers/daemon-pair.js';

/**
 * The daemon without root: an unprivileged uid (nobody, 65534) with CAP_NET_ADMIN and
 * CAP_NET_BIND_SERVICE as ambient capabilities (what the systemd unit's AmbientCapabilities gives),
 * started by util-linux setpriv in a network namespace this test creates and removes. Two such
 * daemons bring a tunnel up on ports 500 and 4500 (memory backend; the host kernel has no ESP for
 * XFRM states), the XFRM backend opens with them, and each capability is shown to be needed.
 * Ports 500 and 4500 are the point here: the namespace is the test's own, so nothing else holds them.
 */

const NOBODY = 65534;
const CAPS = '+net_admin,+net_bind_service';
const ROOT = new URL('../..', import.meta.url).pathname;
const PSK = 'unprivileged but well keyed 7f3a';
let runs = 0;

interface Run {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** ike-node as nobody in `namespace` with `caps` (a setpriv capability list, '' for none). */
function startAsNobody(t: Test, namespace: string, dir: string, config: object, caps: string): Run {
  const file = join(dir, `peers-${++runs}.json`);
  writeFileSync(file, JSON.stringify(config));
  chownSync(file, NOBODY, NOBODY);
  chmodSync(file, 0o600);
  const capabilities = caps ? [`--inh-caps=${caps}`, `--ambient-caps=${caps}`] : ['--inh-caps=-all'];
  const child = spawn(
    'ip',
    [
      ...['netns', 'exec', namespace, 'setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'],
      ...capabilities,
      ...['env', `HOME=${dir}`, process.execPath, '--import', 'tsx', 'src/cli/main.ts', '--config', file],
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  return { child, stderr: () => stderr, exited };
}

function peersJson(
  dir: string,
  self: string,
  peer: string,
  start: 'initiate' | 'respond',
  kernel = 'memory',
) {
  const subnet = (address: string) => (address === '192.0.2.1' ? '198.51.100.0/24' : '203.0.113.0/24');
  return {
    listen: { addresses: [self] },
    kernel,
    workers: 0,
    control: { socket: join(dir, `${self}-${kernel}.sock`) },
    ikePolicies: { ike: { version: 2, proposals: ['aes128-sha256-modp2048'] } },
    ipsecPolicies: { esp: { proposals: ['aes128-sha256'] } },
    connections: {
      [`to-${peer}`]: {
        ikePolicy: 'ike',
        ipsecPolicy: 'esp',
        local: { address: self, subnets: [subnet(self)] },
        peer: { address: peer, subnets: [subnet(peer)] },
        psk: PSK,
        start,
      },
    },
  };
}

t.test('without root: CAP_NET_ADMIN and CAP_NET_BIND_SERVICE are enough, and needed', async (t) => {
  t.equal(process.getuid?.(), 0, 'runs as root (network namespaces, setpriv)');
  const namespace = `ike-node-unpriv-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-unpriv-'));
  chownSync(dir, NOBODY, NOBODY);
  execFileSync('ip', ['netns', 'add', namespace]);
  t.teardown(() => {
    execFileSync('ip', ['netns', 'del', namespace]);
    rmSync(dir, { recursive: true, force: true });
  });
  execFileSync('ip', ['-n', namespace, 'link', 'set', 'lo', 'up']);
  for (const address of ['192.0.2.1/32', '192.0.2.2/32'])
    execFileSync('ip', ['-n', namespace, 'addr', 'add', address, 'dev', 'lo']);

  const b = startAsNobody(t, namespace, dir, peersJson(dir, '192.0.2.2', '192.0.2.1', 'respond'), CAPS);
  await until(() => /listening on 192\.0\.2\.2 ports 500 and 4500/.test(b.stderr()), 20000);
  const a = startAsNobody(t, namespace, dir, peersJson(dir, '192.0.2.1', '192.0.2.2', 'initiate'), CAPS);
  const status = async (address: string) =>
    (
      (await controlRequest(join(dir, `${address}-memory.sock`), { command: 'status' }).catch(
        () => [],
      )) as ConnectionStatus[]
    )[0];
  await until(async () => (await status('192.0.2.1'))?.status === 'Active', 20000);
  const [sa, sb] = [await status('192.0.2.1'), await status('192.0.2.2')];
  t.equal(sb?.status, 'Active', 'the tunnel is up at both ends');
  t.equal(sa?.ikeSas[0]?.local, '192.0.2.1:500', 'from port 500, bound without root');
  t.same(
    [sa?.childSas[0]?.spiIn, sa?.childSas[0]?.spiOut],
    [sb?.childSas[0]?.spiOut, sb?.childSas[0]?.spiIn],
    'one child SA, the same at both ends',
  );
  a.child.kill('SIGTERM');
  t.equal(await a.exited, 0, 'SIGTERM: exit status 0');

  // The XFRM backend opens its netlink socket (with multicast groups) on CAP_NET_ADMIN.
  const xfrm = (caps: string) =>
    startAsNobody(t, namespace, dir, peersJson(dir, '192.0.2.1', '192.0.2.2', 'respond', 'xfrm'), caps);
  const withAdmin = xfrm(CAPS);
  await until(() => /listening on 192\.0\.2\.1 ports 500 and 4500/.test(withAdmin.stderr()), 20000);
  t.pass('the xfrm backend starts with both capabilities');
  withAdmin.child.kill('SIGTERM');
  t.equal(await withAdmin.exited, 0);
  const bindOnly = xfrm('+net_bind_service');
  t.not(await bindOnly.exited, 0, 'without CAP_NET_ADMIN the xfrm backend does not start');
  t.match(bindOnly.stderr(), /Operation not permitted \(EPERM\)/, 'and says why');
  // And port 500 needs CAP_NET_BIND_SERVICE.
  const none = startAsNobody(t, namespace, dir, peersJson(dir, '192.0.2.1', '192.0.2.2', 'respond'), '');
  t.not(await none.exited, 0, 'without capabilities it cannot bind port 500');
  t.match(none.stderr(), /EACCES|permission denied/i, 'and says why');
});
