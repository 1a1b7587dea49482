import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../../src/cli/cli.js';
import { freeUdpPorts } from '../../src/net/free-ports.js';

async function run(...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const status = await runCli(argv, { stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
  return { status, stdout: out.join(''), stderr: err.join('') };
}

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));

t.test('--version prints the package version', async (t) => {
  t.same(await run('--version'), { status: 0, stdout: `ike-node ${version}\n`, stderr: '' });
});

t.test('--help lists the commands; no arguments prints usage and fails', async (t) => {
  const help = await run('--help');
  t.equal(help.status, 0);
  t.match(help.stdout, /ike-node algorithms/);
  t.equal((await run()).status, 1);
  t.match((await run('algorithms', '--help')).stdout, /Usage: ike-node algorithms/);
});

t.test('unknown commands and options fail with a pointer to --help', async (t) => {
  const unknown = await run('frobnicate');
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /unknown command 'frobnicate'/);
  const badOption = await run('--frob');
  t.same(badOption, {
    status: 2,
    stdout: '',
    stderr: "ike-node: unknown option '--frob'\nTry 'ike-node --help'.\n",
  });
});

t.test("option mistakes are said in ike-node's words, naming the option", async (t) => {
  const said = async (...argv: string[]) => {
    const { status, stderr } = await run(...argv);
    t.equal(status, 2, `${argv.join(' ')}: exit 2`);
    t.notMatch(
      stderr,
      /positional argument|argument missing|does not take an argument/,
      "not node:util's text",
    );
    return stderr;
  };
  t.equal(await said('status', '-x'), "ike-node: unknown option '-x'\nTry 'ike-node --help'.\n");
  t.equal(await said('status', '--config'), "ike-node: --config needs a value\nTry 'ike-node --help'.\n");
  t.equal(await said('status', '--json=yes'), "ike-node: --json takes no value\nTry 'ike-node --help'.\n");
  t.equal(
    await said('status', '--ikev1'),
    "ike-node: status does not take --ikev1\nTry 'ike-node status --help'.\n",
  );
  t.equal(
    await said('algorithms', '--socket', '/x'),
    "ike-node: algorithms does not take --socket\nTry 'ike-node algorithms --help'.\n",
  );
});

t.test('a metrics port in use: the address, the port and the key to change, exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => taken.close());
  const { port } = taken.address() as AddressInfo;
  const [ike, nat] = await freeUdpPorts('127.0.0.1', 2);
  const file = join(dir, 'peers.json');
  writeFileSync(
    file,
    JSON.stringify({
      listen: { addresses: ['127.0.0.1'], port: ike, natPort: nat },
      control: { socket: join(dir, 'ctl.sock') },
      metrics: { listen: `127.0.0.1:${port}` },
      log: { level: 'error' },
    }),
  );
  const { status, stderr } = await run('--config', file);
  t.equal(status, 1);
  t.equal(
    stderr,
    `ike-node: ${file}: metrics.listen: cannot serve metrics on 127.0.0.1:${port}: the port is in use (another ike-node or exporter? choose another port in metrics.listen)\n`,
  );
  t.same(readdirSync(dir), ['peers.json'], 'nothing left behind: no socket, no lock');
});

t.test('algorithms prints the registry with provider support', async (t) => {
  const { status, stdout } = await run('algorithms');
  t.equal(status, 0);
  t.match(stdout, /^encr\s+3des\s+3des-cbc\s+p1:5 esp:3\s+3\s+yes\s+no$/m, '3DES: node yes, noble no');
  t.match(stdout, /^dh\s+modp1024\s+group2\s+2\s+2\s+yes\s+yes$/m);
  t.match(stdout, /^encr\s+aes256gcm16\s.*esp:20\s+20\/256/m);
});

t.test('the built bin runs (npm ci builds it through prepare)', async (t) => {
  const out = execFileSync(process.execPath, [
    new URL('../../dist/cli/main.js', import.meta.url).pathname,
    '--version',
  ]);
  t.equal(out.toString(), `ike-node ${version}\n`);
});

t.test('every subcommand has --help', async (t) => {
  for (const command of [
    'run',
    'check',
    'status',
    'initiate',
    'terminate',
    'reload',
    'events',
    'list-conns',
    'import',
    'demo',
    'algorithms',
  ]) {
    const out: string[] = [];
    const code = await runCli([command, '--help'], {
      stdout: (s) => out.push(s),
      stderr: (s) => out.push(s),
    });
    t.equal(code, 0, `${command} --help exits 0`);
    t.match(out.join(''), /^Usage: ike-node/, `${command} --help prints its usage`);
  }
});
