import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ConfigErrors, parseConfig } from '../../src/config/index.js';
import { ImportError, IMPORTERS } from '../../src/config/import/index.js';
import { mutateText } from '../mutate.js';
import type { Random } from '../random.js';
import { bytesTarget, type Target, utf8 } from '../target.js';

/**
 * peers.json and the importers (swanctl.conf, isakmpd.conf/ipsec.conf, Neutron JSON) fed mutated
 * text. A problem in the input must come back as the typed error that names the file, where and
 * what was expected (ConfigErrors, ImportError); anything else thrown is a finding. Seeds: the
 * project's configuration fixtures and what the importers make of theirs.
 */

const ROOT = new URL('../../', import.meta.url).pathname;
const FILE = '/etc/ike-node/peers.json';

const read = (dir: string, filter: (name: string) => boolean): string[] =>
  readdirSync(join(ROOT, dir))
    .filter(filter)
    .sort()
    .map((name) => readFileSync(join(ROOT, dir, name), 'utf8'));

const importFixtures = (format: string) =>
  read('test/config/import/fixtures', (name) => name.startsWith(format) && !name.endsWith('.ts'));

function configSeeds(): Uint8Array[] {
  const valid = {
    listen: { addresses: ['192.0.2.1'] },
    ikePolicies: {
      ike1: { proposals: ['aes128-sha256-modp2048'], dpd: { delay: 30, timeout: 120, action: 'restart' } },
      ike2: { version: 2, proposals: ['aes256gcm16-prfsha256-curve25519'], lifetime: 3600 },
    },
    ipsecPolicies: { esp1: { proposals: ['aes128-sha256'], pfs: 'modp2048', lifetime: 1800 } },
    connections: {
      office: {
        ikePolicy: 'ike1',
        ipsecPolicy: 'esp1',
        local: { address: '192.0.2.1', subnets: ['10.0.0.0/24'] },
        peer: { address: '198.51.100.7', subnets: ['10.1.0.0/24', '2001:db8::/64'] },
        psk: 'correct horse battery staple',
        start: 'initiate',
      },
      road: {
        ikePolicy: 'ike2',
        ipsecPolicy: 'esp1',
        peer: { address: 'any', id: 'road@example.org' },
        psk: { env: 'ROAD_PSK' },
      },
      file: {
        ikePolicy: 'ike1',
        ipsecPolicy: 'esp1',
        peer: { address: '203.0.113.9' },
        psk: { file: 'k.psk' },
      },
    },
  };
  const imported = Object.entries(IMPORTERS).flatMap(([format, run]) =>
    importFixtures(format).map((text) => JSON.stringify(run(text, `fixture.${format}`).config, null, 2)),
  );
  return [
    JSON.stringify(valid, null, 2),
    ...imported,
    ...read('test/config/fixtures/broken', (name) => name.endsWith('.json')),
  ].map(utf8.encode);
}

function textTarget(spec: {
  name: string;
  description: string;
  seeds: () => Uint8Array[];
  check: (text: string) => void;
  typed: (error: unknown) => boolean;
}): Target {
  return bytesTarget({
    ...spec,
    mutate: (rng: Random, input: Uint8Array, seeds: readonly Uint8Array[]) =>
      utf8.encode(mutateText(rng, utf8.decode(input), rng.chance(0.1) ? seeds.map(utf8.decode) : [])),
    check: (input) => spec.check(utf8.decode(input)),
  });
}

export const configTarget = textTarget({
  name: 'config',
  description: 'peers.json: JSON syntax, schema, policies, connections, PSK sources',
  seeds: configSeeds,
  check: (text) =>
    parseConfig(
      text,
      FILE,
      { ROAD_PSK: 'an environment key of some length' },
      (path) => {
        if (path === '/etc/ike-node/k.psk') return utf8.encode('0x00112233445566778899aabbccddeeff\n');
        throw Object.assign(new Error(`no ${path}`), { code: 'ENOENT' });
      },
      () => 0o100600,
    ),
  typed: (error) => error instanceof ConfigErrors || error instanceof ConfigError,
});

export const importTargets: Target[] = Object.entries(IMPORTERS).map(([format, run]) =>
  textTarget({
    name: `import-${format}`,
    description: `the ${format} importer (src/config/import)`,
    seeds: () => importFixtures(format).map(utf8.encode),
    check: (text) => void run(text, `fuzz.${format}`),
    typed: (error) => error instanceof ImportError,
  }),
);
