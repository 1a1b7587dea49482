import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { runCli } from '../../src/cli/cli.js';

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
  t.equal(badOption.status, 2);
  t.match(badOption.stderr, /Unknown option '--frob'.*\nTry 'ike-node --help'/s);
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
