import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { checkDocument } from '../../src/config/check.js';
import { Cursor } from '../../src/config/cursor.js';
import {
  CONFIG_DEFAULTS,
  KERNELS,
  LOG_FORMATS,
  LOG_LEVELS,
  LOG_SUBSYSTEMS,
} from '../../src/config/daemon-config.js';
import { Problems } from '../../src/config/errors.js';
import { parseConfig, SCHEMA_URL } from '../../src/config/index.js';
import { parseJson } from '../../src/config/json.js';
import { DPD_DEFAULTS, IKE_LIFETIME_DEFAULT, IPSEC_LIFETIME_DEFAULT } from '../../src/config/policies.js';
import { PEERS_SCHEMA, Schema } from '../../src/config/schema.js';
import { PROVIDER_NAMES } from '../../src/crypto/providers/index.js';
import { FILE, PSK } from './fixtures/helpers.js';

/**
 * schema/peers.schema.json is the one description of peers.json's structure: the validator
 * interprets it, the code reads only keys it defines (anything else throws), and these tests hold
 * the rest together: every key it defines is read by the code, its enums are the code's values,
 * its defaults are CONFIG_DEFAULTS, and it ships with the package.
 */

type Raw = Record<string, unknown>;
const raw = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as Raw;
const defs = raw.$defs as Record<string, Raw>;
const props = (node: Raw) => node.properties as Record<string, Raw>;

/** A valid file that uses every key of the schema (aliases in their own policies). */
const EVERYTHING = {
  $schema: './node_modules/ike-node/schema/peers.schema.json',
  listen: { addresses: ['192.0.2.1', '2001:db8::1'], port: 500, natPort: 4500 },
  kernel: 'memory',
  crypto: 'node',
  control: { socket: '/run/ike-node/ike-node.sock' },
  log: {
    level: 'info',
    format: 'json',
    subsystems: { ike: 'debug', cfg: 'info', net: 'warn', knl: 'error', crypto: 'info', ctl: 'debug' },
  },
  metrics: { listen: '127.0.0.1:9469' },
  debug: { keyLog: 'ike-keys' },
  retransmit: { timeout: 2, backoff: 1.8, tries: 5 },
  ike: { fragmentSize: 1280, cookieThreshold: 100, maxHalfOpen: 1024, maxHalfOpenPerAddress: 128 },
  endpointGroups: { 'hq-nets': ['10.0.0.0/16', '10.1.0.0/16'], branch: ['172.16.5.0/24'] },
  ikePolicies: {
    strongswan: {
      version: 2,
      mode: 'main',
      proposals: ['aes256-sha256-modp2048'],
      lifetime: { units: 'seconds', value: 3600 },
      rekeyMargin: 300,
      rekeyFuzz: 60,
      dpd: { delay: 30, timeout: 120, action: 'restart' },
    },
    neutron: {
      ikeVersion: 'v1',
      phase1NegotiationMode: 'main',
      encryptionAlgorithm: 'aes-256',
      authAlgorithm: 'sha256',
      dhGroup: 'group14',
    },
    ours: { encryption: 'aes-128', integrity: 'sha1', dhGroup: 'group2' },
  },
  ipsecPolicies: {
    strongswan: {
      protocol: 'esp',
      mode: 'tunnel',
      proposals: 'aes256-sha256',
      pfs: 'group14',
      acceptModes: ['tunnel', 'transport'],
      acceptPfs: ['group14', 'none'],
      lifetime: 3600,
      lifetimeKilobytes: 1000,
      rekeyMargin: 300,
      rekeyFuzz: 60,
    },
    neutron: {
      transformProtocol: 'esp',
      encapsulationMode: 'tunnel',
      encryptionAlgorithm: 'aes-256',
      authAlgorithm: 'sha256',
    },
    ours: { encryption: 'aes-128', integrity: 'sha1' },
  },
  connections: {
    office: {
      ikePolicy: 'strongswan',
      ipsecPolicy: 'strongswan',
      local: {
        address: '192.0.2.1',
        id: '@hq.example.net',
        subnets: ['10.9.0.0/24'],
        selectors: [{ subnet: '10.8.0.0/24', protocol: 'udp', port: 53 }],
      },
      peer: {
        address: '198.51.100.7',
        port: 500,
        natPort: 4500,
        id: '@branch.example.net',
        endpointGroup: 'branch',
      },
      psk: { file: 'office.psk' },
      start: 'initiate',
    },
    branch: {
      ikePolicy: { proposals: 'aes128-sha256-modp2048' },
      ipsecPolicy: { proposals: 'aes128-sha256' },
      local: { endpointGroup: 'hq-nets' },
      peer: { address: '198.51.100.8', subnets: ['172.16.6.0/24'] },
      psk: { env: 'BRANCH_PSK' },
    },
    neutron: {
      ikePolicy: 'neutron',
      ipsecPolicy: 'neutron',
      local: { subnets: ['10.7.0.0/24'] },
      peer: { address: '198.51.100.9', subnets: ['172.16.7.0/24'] },
      psk: PSK,
    },
    ours: {
      ikePolicy: 'ours',
      ipsecPolicy: 'ours',
      local: { subnets: ['10.6.0.0/24'] },
      peer: { address: '198.51.100.10', subnets: ['172.16.8.0/24'] },
      psk: PSK,
    },
  },
};

/** Every fixed key the schema defines, as the JSON pointer of its definition. */
function schemaKeys(node: unknown, pointer: string, out: Set<string>): Set<string> {
  if (Array.isArray(node)) node.forEach((item, i) => schemaKeys(item, `${pointer}/${i}`, out));
  else if (typeof node === 'object' && node !== null) {
    for (const [key, child] of Object.entries(node)) {
      const at = `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (key === 'properties') for (const name of Object.keys(child as object)) out.add(`${at}/${name}`);
      schemaKeys(child, at, out);
    }
  }
  return out;
}

t.test('the code reads every key the schema defines, and no other', async (t) => {
  const problems = new Problems(FILE);
  const reads = new Set<string>();
  const config = checkDocument(
    parseJson(JSON.stringify(EVERYTHING)),
    FILE,
    { env: { BRANCH_PSK: PSK }, readFile: () => PSK },
    problems,
    reads,
  );
  t.same(
    problems.list.map((e) => e.message),
    [],
  );
  t.equal(config?.connections.length, 4, 'the file that uses every key is valid');
  // Read by editors and by the validator only: the code has nothing to do with them.
  const schemaOnly = ['#/properties/$schema', '#/$defs/lifetime/oneOf/1/properties/units'];
  const defined = schemaKeys(raw, '#', new Set());
  t.same(
    [...defined].filter((key) => !reads.has(key) && !schemaOnly.includes(key)),
    [],
    'every key in the schema is read by the code',
  );
  t.same(
    [...reads].filter((key) => !defined.has(key)),
    [],
    'the code reads no key the schema lacks',
  );
  t.ok(
    schemaOnly.every((key) => defined.has(key)),
    'the exceptions exist',
  );
});

t.test('every key named in the code as .key(...) is defined somewhere in the schema', async (t) => {
  const dir = new URL('../../src/config/', import.meta.url);
  const names = new Set<string>();
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.ts'))) {
    const source = readFileSync(new URL(file, dir), 'utf8');
    for (const match of source.matchAll(/\.key\('([^']+)'\)/g)) names.add(match[1]!);
  }
  t.ok(names.size > 30, `${names.size} keys found`);
  const defined = new Set(
    [...schemaKeys(raw, '#', new Set())].map((pointer) => pointer.replace(/^.*\//, '')),
  );
  t.same(
    [...names].filter((name) => !defined.has(name)),
    [],
  );
});

t.test('reading a key the schema does not define is a bug, not a quiet undefined', async (t) => {
  const problems = new Problems(FILE);
  const root = new Cursor({ schema: PEERS_SCHEMA, problems }, [], parseJson('{}'), PEERS_SCHEMA.root);
  t.throws(
    () => root.key('listen').key('adresses'),
    /reads "adresses" at listen, which schema\/peers\.schema\.json does not define/,
  );
  t.doesNotThrow(() => root.key('connections').key('any-name').key('peer').key('address'));
});

t.test('"$schema" is allowed at the top, so that editors can find the schema', async (t) => {
  t.equal(raw.$schema, 'https://json-schema.org/draft/2020-12/schema', 'the schema is draft 2020-12');
  t.equal(props(raw).$schema?.type, 'string');
  const config = parseConfig(JSON.stringify({ $schema: 'peers.schema.json' }), FILE);
  t.same(config.connections, []);
});

t.test("the schema's enums are the values the code knows", async (t) => {
  const top = props(raw);
  t.same(top.kernel?.enum, KERNELS);
  t.same(top.crypto?.enum, PROVIDER_NAMES);
  t.same(defs.logLevel?.enum, LOG_LEVELS);
  t.same(props(defs.log!).format?.enum, LOG_FORMATS);
  t.same(Object.keys(props(props(defs.log!).subsystems!)), LOG_SUBSYSTEMS);
});

t.test("the schema's defaults are CONFIG_DEFAULTS and the policies' defaults", async (t) => {
  const top = props(raw);
  const listen = props(defs.listen!);
  t.same(
    {
      listen: {
        addresses: listen.addresses?.default,
        port: listen.port?.default,
        natPort: listen.natPort?.default,
      },
      kernel: top.kernel?.default,
      crypto: top.crypto?.default,
      workers: top.workers?.default,
      control: { socket: props(top.control!).socket?.default },
      log: Object.fromEntries(Object.entries(props(defs.log!)).map(([key, node]) => [key, node.default])),
      debug: {},
      dataPlane: Object.fromEntries(
        Object.entries(props(top.dataPlane!)).map(([key, node]) => [key, node.default]),
      ),
      retransmit: Object.fromEntries(
        Object.entries(props(top.retransmit!)).map(([key, node]) => [key, node.default]),
      ),
      ike: Object.fromEntries(Object.entries(props(top.ike!)).map(([key, node]) => [key, node.default])),
    },
    CONFIG_DEFAULTS,
  );
  t.equal(props(defs.ikePolicy!).lifetime?.default, IKE_LIFETIME_DEFAULT);
  t.equal(props(defs.ipsecPolicy!).lifetime?.default, IPSEC_LIFETIME_DEFAULT);
  const dpd = props((defs.dpd!.oneOf as Raw[])[1]!);
  t.same(
    { delay: dpd.delay?.default, timeout: dpd.timeout?.default, action: dpd.action?.default },
    DPD_DEFAULTS,
  );
});

t.test('the validator refuses a schema that uses what it does not implement', async (t) => {
  t.throws(() => new Schema({ type: 'object', minProperties: 1 }), /does not implement "minProperties"/);
  t.throws(
    () => new Schema({ properties: { a: { $ref: '#/$defs/missing' } } }),
    /not a local #\/\$defs\/ reference/,
  );
  t.throws(() => new Schema({ $ref: 'https://example.net/other.json' }), /not a local/);
  t.doesNotThrow(() => new Schema(raw), 'the shipped schema uses only what is implemented');
});

t.test('the schema ships with the package', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    files: string[];
  };
  t.ok(pkg.files.includes('schema'), 'package.json "files" lists schema');
  t.equal(SCHEMA_URL.pathname, new URL('../../schema/peers.schema.json', import.meta.url).pathname);
});
