import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runCli } from '../../src/cli/cli.js';
import { configWarnings } from '../../src/config/effective.js';
import { parseConfig } from '../../src/config/index.js';
import { nativeAvailability } from '../../src/native/index.js';

/**
 * `ike-node check` prints every setting in effect: each key the schema allows shows in its
 * output, with its default when the file leaves it out. The map below says where each schema key
 * shows; a key added to the schema and not here fails the first test, a key that check does not
 * print fails the second.
 */

type Schema = {
  properties?: Record<string, Schema>;
  $defs?: Record<string, Schema>;
  $ref?: string;
};
const schema = JSON.parse(
  readFileSync(new URL('../../schema/peers.schema.json', import.meta.url), 'utf8'),
) as Schema;
const resolve = (node: Schema): Schema =>
  node.$ref ? resolve(schema.$defs![node.$ref.replace('#/$defs/', '')]!) : node;

/** Where a schema key shows in check's output (`c.` is a connection); `written`: only when the file has it. */
const SHOWN: Record<string, { path: string; written?: true } | 'not a setting'> = {
  $schema: 'not a setting',
  endpointGroups: { path: 'c.local.endpointGroup', written: true },
  ikePolicies: { path: 'c.ike.name' },
  ipsecPolicies: { path: 'c.ipsec.name' },
  connections: { path: 'connections' },
  'connection.ikePolicy': { path: 'c.ike.name' },
  'connection.ipsecPolicy': { path: 'c.ipsec.name' },
  'connection.local': { path: 'c.local' },
  'connection.peer': { path: 'c.peer' },
  'connection.psk': { path: 'c.psk' },
  'connection.start': { path: 'c.start' },
  'local.address': { path: 'c.local.address' },
  'local.id': { path: 'c.local.id' },
  'local.subnets': { path: 'c.local.trafficSelectors' },
  'local.selectors': { path: 'c.local.trafficSelectors' },
  'local.endpointGroup': { path: 'c.local.endpointGroup', written: true },
  'peer.address': { path: 'c.peer.address' },
  'peer.port': { path: 'c.peer.port' },
  'peer.natPort': { path: 'c.peer.natPort' },
  'peer.id': { path: 'c.peer.id' },
  'peer.subnets': { path: 'c.peer.trafficSelectors' },
  'peer.selectors': { path: 'c.peer.trafficSelectors' },
  'peer.endpointGroup': { path: 'c.peer.endpointGroup', written: true },
  ...Object.fromEntries(
    ['version', 'ikeVersion', 'mode', 'phase1NegotiationMode', 'dpd'].map((key) => [
      `ikePolicy.${key}`,
      { path: `c.ike.${key === 'ikeVersion' ? 'version' : key === 'phase1NegotiationMode' ? 'mode' : key}` },
    ]),
  ),
  ...Object.fromEntries(
    ['protocol', 'transformProtocol', 'mode', 'encapsulationMode', 'acceptModes', 'acceptPfs', 'pfs'].map(
      (key) => [
        `ipsecPolicy.${key}`,
        {
          path: `c.ipsec.${{ transformProtocol: 'protocol', encapsulationMode: 'mode' }[key] ?? key}`,
        },
      ],
    ),
  ),
  ...Object.fromEntries(
    ['ikePolicy', 'ipsecPolicy'].flatMap((policy) => {
      const at = policy === 'ikePolicy' ? 'c.ike' : 'c.ipsec';
      return [
        ...['proposals', 'encryption', 'encryptionAlgorithm', 'integrity', 'authAlgorithm', 'dhGroup'].map(
          (key) => [`${policy}.${key}`, { path: `${at}.proposals` }],
        ),
        [`${policy}.lifetime`, { path: `${at}.lifetime.seconds` }],
        [`${policy}.rekeyMargin`, { path: `${at}.lifetime.rekeyMargin` }],
        [`${policy}.rekeyFuzz`, { path: `${at}.lifetime.rekeyFuzz` }],
      ];
    }),
  ),
  'ipsecPolicy.lifetimeKilobytes': { path: 'c.ipsec.lifetime.kilobytes', written: true },
  'metrics.listen': { path: 'metrics.listen', written: true },
};

/** Every key the schema allows, as `section.key` (top-level settings by their path). */
function schemaKeys(): string[] {
  const keys: string[] = [];
  const walk = (node: Schema, prefix: string) => {
    for (const [key, child] of Object.entries(resolve(node).properties ?? {})) {
      const path = prefix ? `${prefix}.${key}` : key;
      keys.push(path);
      if (['endpointGroups', 'ikePolicies', 'ipsecPolicies', 'connections'].includes(key)) continue;
      walk(child, path);
    }
  };
  walk(schema, '');
  for (const def of ['connection', 'local', 'peer', 'ikePolicy', 'ipsecPolicy']) {
    for (const key of Object.keys(resolve(schema.$defs![def]!).properties ?? {})) keys.push(`${def}.${key}`);
  }
  return keys;
}

function shownAt(key: string): { path: string; written?: true } | 'not a setting' {
  // Top-level settings show where the file writes them.
  return SHOWN[key] ?? (key.split('.')[0]! in (schema.properties ?? {}) ? { path: key } : undefined)!;
}

async function check(config: object, t: Test): Promise<{ status: number; output: unknown; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-effective-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'peers.json');
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  const out: string[] = [];
  const err: string[] = [];
  const status = await runCli(['check', '--config', file], {
    stdout: (s) => out.push(s),
    stderr: (s) => err.push(s),
  });
  return { status, output: status === 0 ? JSON.parse(out.join('')) : undefined, stderr: err.join('') };
}

function valueAt(output: unknown, path: string): unknown {
  const steps = path.startsWith('c.') ? ['connections', '0', ...path.slice(2).split('.')] : path.split('.');
  return steps.reduce<unknown>(
    (value, step) => (value as Record<string, unknown> | undefined)?.[step],
    output,
  );
}

const MINIMAL = {
  ikePolicies: { p: { proposals: ['aes128-sha256-modp2048'] } },
  ipsecPolicies: { q: { proposals: ['aes128-sha256'] } },
  connections: {
    c: {
      ikePolicy: 'p',
      ipsecPolicy: 'q',
      local: { subnets: ['10.0.0.0/24'] },
      peer: { address: '192.0.2.7', subnets: ['10.1.0.0/24'] },
      psk: 'a key',
    },
  },
};

t.test('every key of the schema has a place in check output', async (t) => {
  const unmapped = schemaKeys().filter((key) => shownAt(key) === undefined);
  t.same(unmapped, [], 'each schema key is shown somewhere (or is not a setting)');
});

t.test('check prints every setting in effect, defaults included, for a file that writes none', async (t) => {
  const { status, output } = await check(MINIMAL, t);
  t.equal(status, 0);
  for (const key of schemaKeys()) {
    const shown = shownAt(key);
    if (shown === 'not a setting' || shown.written) continue;
    t.not(valueAt(output, shown.path), undefined, `${key} shows as ${shown.path}`);
  }
  t.same(valueAt(output, 'c.ipsec.acceptModes'), ['tunnel'], 'acceptModes: the mode alone');
  t.same(valueAt(output, 'c.ipsec.acceptPfs'), ['none'], 'acceptPfs: pfs alone, here none');
  t.equal(valueAt(output, 'c.peer.natPort'), 4500);
  t.same(valueAt(output, 'metrics'), false, 'no metrics endpoint');
  t.same(valueAt(output, 'debug'), { keyLog: false, coreDumps: false }, 'no key log, no core dumps');
});

t.test('check prints the keys that show only when written', async (t) => {
  const { output } = await check(
    {
      ...MINIMAL,
      metrics: { listen: '[::1]:9469' },
      endpointGroups: { mine: ['10.0.0.0/24'], theirs: ['10.1.0.0/24'] },
      ipsecPolicies: {
        q: {
          proposals: ['aes128-sha256'],
          lifetimeKilobytes: 1000,
          acceptModes: ['tunnel', 'transport'],
          acceptPfs: ['none', 'modp2048'],
        },
      },
      connections: {
        c: {
          ...MINIMAL.connections.c,
          local: { endpointGroup: 'mine' },
          peer: { address: '192.0.2.7', endpointGroup: 'theirs' },
        },
      },
    },
    t,
  );
  for (const key of schemaKeys()) {
    const shown = shownAt(key);
    if (shown === 'not a setting' || !shown.written) continue;
    t.not(valueAt(output, shown.path), undefined, `${key} shows as ${shown.path}`);
  }
  t.same(valueAt(output, 'c.ipsec.acceptModes'), ['tunnel', 'transport']);
  t.same(valueAt(output, 'c.ipsec.acceptPfs'), ['none', 'modp2048']);
  t.same(valueAt(output, 'metrics'), { listen: '[::1]:9469' }, 'as peers.json writes it');
});

t.test('check warns about a wildcard listen address, and not about explicit ones', async (t) => {
  const wildcard = await check(MINIMAL, t);
  t.equal(wildcard.status, 0, 'a warning, not an error');
  t.match(
    wildcard.stderr,
    /^warning: .*peers\.json: listen\.addresses: 0\.0\.0\.0 is a wildcard: .*NAT detection/m,
  );
  const explicit = await check({ ...MINIMAL, listen: { addresses: ['192.0.2.1'] } }, t);
  t.equal(explicit.stderr, '');
});

t.test('check warns when the kernel backend needs the native shim and it is missing', async (t) => {
  const config = (kernel: string) =>
    parseConfig(JSON.stringify({ listen: { addresses: ['192.0.2.1'] }, kernel }), 'peers.json');
  const missing = {
    available: false,
    reason: 'the native socket shim is not available: build/Release/ike_native.node is missing',
  } as const;
  for (const kernel of ['xfrm', 'pfkey', 'userspace']) {
    t.same(
      configWarnings(config(kernel), missing),
      [`peers.json: kernel: "${kernel}" will not start here: ${missing.reason}`],
      kernel,
    );
    t.same(configWarnings(config(kernel), { available: true }), [], `${kernel} with the shim`);
  }
  t.same(configWarnings(config('memory'), missing), [], 'memory needs no shim');
});

t.test('check asks the real shim: a warning for xfrm exactly when it does not load here', async (t) => {
  const shim = nativeAvailability();
  const { status, stderr } = await check(
    { ...MINIMAL, listen: { addresses: ['192.0.2.1'] }, kernel: 'xfrm' },
    t,
  );
  t.equal(status, 0);
  if (shim.available) t.equal(stderr, '', 'the shim loads here: no warning');
  else
    t.match(
      stderr,
      /^warning: .*kernel: "xfrm" will not start here: the native socket shim is not available/m,
    );
});
