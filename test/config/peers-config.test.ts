import { readFileSync } from 'node:fs';
import { format, resolveConfig } from 'prettier';
import t from 'tap';
import { PEERS_SCHEMA } from '../../src/config/schema.js';
import { schemaTypes } from '../../src/config/schema-types.js';
import { ConfigErrors, createNode, type PeersConfig } from '../../src/index.js';

/**
 * PeersConfig, the type createNode takes, is written from schema/peers.schema.json; this file is
 * also type-checked by `npm run lint` (tsc), where each `@ts-expect-error` below must meet an
 * error: a misspelt key that stops being a compile error fails the lint.
 */

const path = new URL('../../src/config/peers-config.ts', import.meta.url).pathname;

t.test('src/config/peers-config.ts is what the schema gives (npm run schema:types)', async (t) => {
  const expected = await format(schemaTypes(PEERS_SCHEMA.root), {
    ...(await resolveConfig(path)),
    filepath: path,
  });
  t.equal(readFileSync(path, 'utf8'), expected);
});

t.test('every top-level key of the schema is a key of the type', async (t) => {
  const text = readFileSync(path, 'utf8');
  for (const key of Object.keys(PEERS_SCHEMA.root.properties!))
    t.match(text, new RegExp(`readonly ${key.replace('$', '\\$')}\\?: `), key);
});

const valid: PeersConfig = {
  listen: { addresses: ['192.0.2.1'] },
  connections: {
    office: {
      ikePolicy: { proposals: ['aes256-sha256-modp2048'], ikeVersion: 2 },
      ipsecPolicy: { proposals: 'aes256gcm16', pfs: 'modp2048' },
      local: { subnets: ['198.51.100.0/24'] },
      peer: { address: '203.0.113.1', subnets: ['203.0.113.0/24'] },
      psk: { env: 'OFFICE_PSK' },
    },
  },
};

t.test('misspelt keys fail at compile time and at run time', async (t) => {
  const env = { OFFICE_PSK: 'a key for a test only' };
  t.ok(createNode(valid, { env }), 'the valid object is accepted');
  const mistakes: [string, () => unknown][] = [
    [
      'connections',
      // @ts-expect-error: "conections" is not a key of PeersConfig
      () => createNode({ conections: valid.connections }, { env }),
    ],
    [
      'connections.office.peer.adress',
      () =>
        createNode(
          {
            connections: {
              office: {
                ...valid.connections!['office']!,
                // @ts-expect-error: "adress" is not a key of a peer
                peer: { adress: '203.0.113.1' },
              },
            },
          },
          { env },
        ),
    ],
    [
      'connections.office.start',
      () =>
        createNode(
          // @ts-expect-error: "start" is one of three values
          { connections: { office: { ...valid.connections!['office']!, start: 'always' } } },
          { env },
        ),
    ],
  ];
  for (const [key, make] of mistakes) {
    t.throws(make, ConfigErrors, `${key}: refused at run time too`);
    t.throws(make, new RegExp(key.replace(/\./g, '\\.')));
  }
});
