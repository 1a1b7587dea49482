import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { configWarnings } from '../src/config/effective.js';
import { loadConfig, type DaemonConfig } from '../src/config/index.js';
import { MACOS_ESP_PROPOSALS, MACOS_IKE_PROPOSALS } from '../conformance/kernel-lab/ikev1-macos-offer.js';
import { EnginePair } from './helpers/engine-pair.js';
import { l2tpClient } from './helpers/l2tp-client.js';

/** The README's library example runs as written (only its import points at the source tree). */

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const index = new URL('../src/index.ts', import.meta.url).pathname;

t.test('the library example in the README runs and brings the tunnel up', async (t) => {
  const block = /<!-- example: library -->\s*```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  t.ok(block, 'the README has the example');
  t.match(block, /from 'ike-node';/);
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'example.mts');
  writeFileSync(file, block!.replace(`from 'ike-node';`, `from ${JSON.stringify(index)};`));
  const run = spawnSync(process.execPath, ['--import', 'tsx', file], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, OFFICE_PSK: 'readme-test-key' },
  });
  t.equal(run.status, 0, `exit 0 (${run.stderr})`);
  t.match(run.stdout, /^office: Down -> Pending$/m);
  t.match(run.stdout, /^office: child SA added, aes256gcm16-modp2048, SPIs [0-9a-f]{8}\/[0-9a-f]{8}$/m);
  t.match(run.stdout, /^office: Pending -> Active$/m);
  t.match(run.stdout, /^initiate office: up $/m, 'initiate() resolved with the outcome');
  t.match(run.stdout, /^office: Active -> Down$/m, 'disposing stopped the nodes, Deletes sent');
});

t.test('type definitions ship with the package', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    types: string;
    files: string[];
  };
  const types = readFileSync(new URL(`../${pkg.types}`, import.meta.url), 'utf8');
  t.match(types, /createNode/, `${pkg.types} declares createNode (built by npm ci)`);
  t.match(types, /createEngine/);
  t.match(types, /IkeEngine/);
  t.ok(pkg.files.includes('dist'));
});

/**
 * Every peers.json example in the README is loaded by the real loader (loadConfig, from a private
 * file in a temp dir), and the negotiation it describes runs in-process against the clients it
 * names. An example is marked `<!-- example: config NAME -->` somewhere between the previous code
 * block and its own; a JSON block whose top-level keys are all peers.json keys is an example, so
 * one added without a mark (and so without a test of what it says) fails here.
 */

interface ConfigExample {
  readonly name: string | undefined;
  readonly text: string;
}

const PEERS_KEYS = new Set(
  Object.keys(
    (
      JSON.parse(readFileSync(new URL('../schema/peers.schema.json', import.meta.url), 'utf8')) as {
        properties: object;
      }
    ).properties,
  ),
);

function configExamples(): ConfigExample[] {
  const examples: ConfigExample[] = [];
  const fence = /```(\w*)\n([\s\S]*?)```/g;
  let previousEnd = 0;
  for (let match = fence.exec(readme); match; match = fence.exec(readme)) {
    const [, language, body] = match;
    const before = readme.slice(previousEnd, match.index);
    previousEnd = match.index + match[0].length;
    if (language !== 'json') continue;
    let value: unknown;
    try {
      value = JSON.parse(body!);
    } catch {
      continue; // not a configuration (an excerpt); peers.json examples are whole files
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
    if (!Object.keys(value).every((key) => PEERS_KEYS.has(key))) continue;
    examples.push({ name: /<!-- example: config ([\w-]+) -->/.exec(before)?.[1], text: body! });
  }
  return examples;
}

const EXAMPLE_PSK = 'readme-example-key';

/** The example through loadConfig, as `ike-node check` and the daemon read it. */
function loadExample(t: Test, example: ConfigExample): DaemonConfig {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-readme-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'peers.json');
  writeFileSync(file, example.text, { mode: 0o600 });
  const json = example.text;
  for (const [, path] of json.matchAll(/"file":\s*"([^"]+)"/g)) {
    writeFileSync(join(dir, path!), `${EXAMPLE_PSK}\n`, { mode: 0o600 });
  }
  const saved = new Map<string, string | undefined>();
  for (const [, name] of json.matchAll(/"env":\s*"([^"]+)"/g)) {
    saved.set(name!, process.env[name!]);
    process.env[name!] = EXAMPLE_PSK;
  }
  try {
    return loadConfig(file);
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

const L2TP_GATEWAY = '192.0.2.1';
const L2TP_CLIENT = '198.51.100.20';

/**
 * The clients the L2TP example names. macOS/iOS: the offer of the kernel-lab scenario
 * (conformance/kernel-lab/ikev1-macos-offer.ts). Windows: its built-in client's fixed settings,
 * 3DES, SHA-1, Diffie-Hellman group 2, transport mode, ESP (Microsoft KB 325158), no PFS. And a
 * client that does ask for PFS with the gateway's group, which the example also accepts.
 */
const L2TP_CLIENTS = {
  'macOS/iOS': { ike: MACOS_IKE_PROPOSALS, esp: MACOS_ESP_PROPOSALS },
  Windows: { ike: ['3des-sha1-modp1024'], esp: ['3des-sha1'] },
  'a client with PFS': { ike: ['aes128-sha1-modp1024'], esp: ['aes128-sha1'], pfs: 'modp1024' },
} as const;

const NEGOTIATIONS: Record<string, (t: Test, config: DaemonConfig, example: ConfigExample) => void> = {
  'l2tp-gateway': (t, config) => {
    t.same(config.listen.addresses, [L2TP_GATEWAY], 'the gateway listens on its own address');
    for (const [client, offer] of Object.entries(L2TP_CLIENTS)) {
      const pair = new EnginePair();
      const gateway = pair.add('gateway', L2TP_GATEWAY, [...config.connections]);
      const side = pair.add(client, L2TP_CLIENT, [
        l2tpClient({ ...offer, client: L2TP_CLIENT, gateway: L2TP_GATEWAY, psk: EXAMPLE_PSK }),
      ]);
      pair.initiate(side, 'l2tp');
      const [status] = gateway.engine.status();
      t.equal(status?.status, 'Active', `${client}: the gateway is Active (${status?.error ?? ''})`);
      t.match(
        status?.childSas[0],
        { mode: 'transport', localTs: ['192.0.2.1/32[udp/1701]'], remoteTs: [`${L2TP_CLIENT}/32[udp/1701]`] },
        `${client}: a transport-mode child SA for udp/1701`,
      );
      t.equal(side.installed.size, 1, `${client}: the client installed its child SA`);
      t.notMatch(side.engine.status()[0]?.error ?? '', /NO_PROPOSAL_CHOSEN/);
    }
  },
  'site-to-site': (t, config, example) => {
    // The far end is the same file seen from the branch: ends swapped, answering.
    const json = JSON.parse(example.text) as {
      listen: { addresses: string[] };
      connections: Record<string, { local: { address: string }; peer: { address: string }; start?: string }>;
    };
    const [name, ours] = Object.entries(json.connections)[0]!;
    t.equal(ours.start, 'initiate', 'the example initiates');
    const branchAddress = ours.peer.address;
    const farEnd = {
      ...json,
      listen: { addresses: [branchAddress] },
      connections: { [name]: { ...ours, local: ours.peer, peer: ours.local, start: 'respond' } },
    };
    const branchConfig = loadExample(t, { name: 'far end', text: JSON.stringify(farEnd) });
    const pair = new EnginePair();
    const hq = pair.add('hq', ours.local.address, [...config.connections]);
    const branch = pair.add('branch', branchAddress, [...branchConfig.connections]);
    pair.initiate(hq, name);
    for (const side of [hq, branch]) {
      const [status] = side.engine.status();
      t.equal(status?.status, 'Active', `${side.name} is Active (${status?.error ?? ''})`);
      t.ok(status?.childSas.length, `${side.name} has its child SAs`);
    }
  },
};

t.test('every peers.json example in the README loads and negotiates what it describes', async (t) => {
  const examples = configExamples();
  t.ok(examples.length >= 2, `the README has its configuration examples (${examples.length})`);
  for (const example of examples) {
    t.test(example.name ?? 'an unmarked example', async (t) => {
      t.ok(example.name, `marked with <!-- example: config NAME -->:\n${example.text.slice(0, 200)}`);
      const config = loadExample(t, example);
      t.same(configWarnings(config, { available: true }), [], 'ike-node check has no warning for it');
      const negotiate = example.name === undefined ? undefined : NEGOTIATIONS[example.name];
      t.ok(negotiate, `a negotiation for ${example.name} in test/readme.test.ts`);
      negotiate?.(t, config, example);
    });
  }
});
