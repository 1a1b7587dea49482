import { writeFileSync } from 'node:fs';
import { format, resolveConfig } from 'prettier';
import { PEERS_SCHEMA } from '../src/config/schema.js';
import { schemaTypes } from '../src/config/schema-types.js';

/** Writes src/config/peers-config.ts, the TypeScript type of peers.json, from the schema. */
const path = new URL('../src/config/peers-config.ts', import.meta.url);
const options = await resolveConfig(path.pathname);
writeFileSync(path, await format(schemaTypes(PEERS_SCHEMA.root), { ...options, filepath: path.pathname }));
