import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../../../src/cli/cli.js';
import { IMPORT_HELP, importCommand } from '../../../src/cli/import-command.js';
import { configWarnings } from '../../../src/config/effective.js';
import { parseConfig } from '../../../src/config/index.js';
import { FIXTURES } from './fixtures/helpers.js';

/** `ike-node import FORMAT FILE`: peers.json on stdout, warnings and errors on stderr. */

function run(format: string | undefined, file: string | undefined) {
  const out: string[] = [];
  const err: string[] = [];
  const code = importCommand(format, file, { stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

t.test('each format prints a peers.json that ike-node check accepts, warnings on stderr', async (t) => {
  for (const [format, name] of [
    ['isakmpd', 'isakmpd-l2tp.conf'],
    ['swanctl', 'swanctl-site.conf'],
    ['neutron', 'neutron-lists.json'],
  ] as const) {
    const result = run(format, join(FIXTURES, name));
    t.equal(result.code, 0, `${format}: exit 0 (${result.stderr})`);
    t.ok(result.stdout.endsWith('}\n'), `${format}: JSON and a newline`);
    t.match(result.stdout, /^\{\n {2}"/, `${format}: indented by two spaces`);
    t.doesNotThrow(
      () => parseConfig(result.stdout, 'out.json', {}),
      `${format}: the output passes parseConfig`,
    );
    t.match(result.stderr, /^(warning: .*\n)+$/, `${format}: stderr holds warnings only`);
  }
});

t.test('errors: on stderr with exit status 1, nothing on stdout', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-import-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'ipsec.conf');
  writeFileSync(bad, 'ike passive esp from 10.0.0.0/8 to any\n');
  // Imports cleanly, but ike-node check refuses the result: the local subnet is IPv4, the peer's IPv6.
  const mixed = join(dir, 'swanctl.conf');
  writeFileSync(
    mixed,
    `connections { c { version = 1
  remote_addrs = 2001:db8::7
  proposals = aes128-sha256-modp2048
  local { auth = psk }
  remote { auth = psk
    id = 2001:db8::7 }
  children { n { local_ts = 10.0.0.0/24
    remote_ts = 2001:db8:1::/64
    esp_proposals = aes128-sha256 } } } }
secrets { ike { secret = k } }
`,
  );
  const cases: [string | undefined, string | undefined, RegExp][] = [
    [undefined, undefined, /a format and a file are needed\n\nUsage: ike-node import/],
    ['openvpn', bad, /unknown format 'openvpn'; expected isakmpd, swanctl, neutron/],
    ['isakmpd', join(dir, 'missing.conf'), /missing\.conf: cannot read it \(ENOENT\)/],
    ['isakmpd', bad, /ipsec\.conf:1: expected psk "\.\.\." \(without it isakmpd uses RSA signatures/],
    ['swanctl', mixed, /does not pass ike-node check:\n.*swanctl\.conf \(imported\): connections\.n/],
  ];
  for (const [format, file, message] of cases) {
    const result = run(format, file);
    t.equal(result.code, 1, `${format} ${file}: exit 1`);
    t.equal(result.stdout, '', 'nothing on stdout');
    t.match(result.stderr, message);
  }
});

t.test('the help names the formats and asks for chmod 600', async (t) => {
  t.match(
    IMPORT_HELP,
    /^Usage: ike-node import isakmpd\|swanctl\|neutron FILE \[--listen ADDRESS,\.\.\.\]\n/,
  );
  for (const word of ['isakmpd', 'swanctl', 'neutron', 'stdout', 'stderr', 'chmod 600', '--listen'])
    t.match(IMPORT_HELP, word);
});

t.test('a wildcard listen address: a warning naming --listen, which sets the addresses', async (t) => {
  const l2tp = join(FIXTURES, 'isakmpd-l2tp.conf');
  const plain = run('isakmpd', l2tp);
  t.equal(plain.code, 0);
  t.same(parseConfig(plain.stdout, 'out.json', {}).listen.addresses, ['0.0.0.0'], 'the rule names no local');
  t.match(
    plain.stderr,
    /^warning: .*isakmpd-l2tp\.conf \(imported\): listen\.addresses: 0\.0\.0\.0 is a wildcard: .*--listen ADDRESS$/m,
  );

  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['import', 'isakmpd', l2tp, '--listen', '192.0.2.1'], {
    stdout: (s) => out.push(s),
    stderr: (s) => err.push(s),
  });
  t.equal(code, 0, err.join(''));
  const config = parseConfig(out.join(''), 'out.json', {});
  t.same(config.listen.addresses, ['192.0.2.1'], '--listen sets the listen addresses');
  t.notMatch(err.join(''), /wildcard/, 'and the warning goes');
  t.same(configWarnings(config, { available: true }), [], 'ike-node check has nothing to say');
  t.match(out.join(''), /^\{\n {2}"listen": \{/, 'listen stays the first key');

  const both = await runCli(['import', 'isakmpd', l2tp, '--listen', '192.0.2.1,2001:db8::1'], {
    stdout: (s) => out.splice(0, out.length, s),
    stderr: () => undefined,
  });
  t.equal(both, 0);
  t.same(parseConfig(out.join(''), 'out.json', {}).listen.addresses, ['192.0.2.1', '2001:db8::1'], 'a list');
});

t.test(
  'isakmpd: where the rules name the local address, ike-node listens there, without a warning',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ike-node-import-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'ipsec.conf');
    for (const [what, rule] of <[string, string][]>[
      ['local, in a tunnel rule', 'ike passive esp tunnel from 10.0.0.0/24 to any local 192.0.2.1 psk "k"'],
      // The README's L2TP line: a transport-mode SA protects its own endpoints.
      [
        'the single-host source of a transport-mode rule',
        'gw = "192.0.2.1"\nike passive esp transport proto udp from $gw port 1701 to any main group "modp1024" quick group "modp1024" psk "k"',
      ],
    ]) {
      writeFileSync(file, `${rule}\n`);
      const result = run('isakmpd', file);
      t.equal(result.code, 0, result.stderr);
      const config = parseConfig(result.stdout, 'out.json', {});
      t.same(config.listen.addresses, ['192.0.2.1'], what);
      t.equal(config.connections[0]!.local.address, '192.0.2.1');
      t.notMatch(result.stderr, /wildcard/);
    }
  },
);

t.test('--listen without an address a connection names as its local address is refused', async (t) => {
  let stderr = '';
  const result = importCommand(
    'isakmpd',
    join(FIXTURES, 'isakmpd-site.conf'),
    {
      stdout: () => undefined,
      stderr: (s) => (stderr += s),
    },
    { listen: ['203.0.113.9'] },
  );
  t.equal(result, 1);
  t.match(stderr, /does not pass ike-node check:\n.*local\.address/);
});
