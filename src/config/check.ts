import type { Connection, IkePolicy, IpsecPolicy } from '../core/connection.js';
import { checkAmbiguousPairs, readConnection } from './connections.js';
import { type CheckContext, Cursor } from './cursor.js';
import type { DaemonConfig } from './daemon-config.js';
import type { Problems } from './errors.js';
import type { Json } from './json.js';
import { PrivacyCheck, type FileMode } from './permissions.js';
import { readIkePolicy, readIpsecPolicy } from './policies.js';
import type { Environment, ReadFile } from './psk.js';
import { PEERS_SCHEMA } from './schema.js';
import { readEndpointGroups } from './selectors.js';
import { readSettings } from './settings.js';
import { deepFreeze, sealConnection } from './summary.js';
import { validate } from './validate.js';

/** Where the parts of a configuration that live outside its text come from. */
export interface ConfigSources {
  readonly env: Environment;
  readonly readFile: ReadFile;
  /** Absent: the text did not come from a file, and no file permissions are checked. */
  readonly fileMode?: FileMode | undefined;
}

/**
 * Checks a parsed peers.json: first its structure against the schema, then what a schema cannot
 * say (addresses, references between entries, proposal strings, key sources). Every problem goes
 * to `problems`; the configuration is returned when there are none. `reads`, when given, collects
 * the schema pointer of every key the code reads.
 */
export function checkDocument(
  json: Json,
  file: string,
  sources: ConfigSources,
  problems: Problems,
  reads?: Set<string>,
): DaemonConfig | undefined {
  validate(PEERS_SCHEMA, json, problems);
  const context: CheckContext = { schema: PEERS_SCHEMA, problems, ...(reads && { reads }) };
  const root = new Cursor(context, [], json, PEERS_SCHEMA.root);

  const { listen, ...settings } = readSettings(root, file);
  const ikePolicies = new Map<string, IkePolicy | undefined>();
  for (const at of root.key('ikePolicies').entries()) {
    ikePolicies.set(at.name, readIkePolicy(at, at.name, settings.crypto));
  }
  const ipsecPolicies = new Map<string, IpsecPolicy | undefined>();
  for (const at of root.key('ipsecPolicies').entries()) {
    ipsecPolicies.set(at.name, readIpsecPolicy(at, at.name, settings.crypto));
  }
  const endpointGroups = readEndpointGroups(root.key('endpointGroups'));
  const built: { at: Cursor; connection: Connection }[] = [];
  const connectionContext = {
    crypto: settings.crypto,
    psk: {
      file,
      env: sources.env,
      readFile: sources.readFile,
      ...(sources.fileMode && { privacy: new PrivacyCheck(sources.fileMode) }),
    },
    listen: listen?.addresses,
    ikePolicies,
    ipsecPolicies,
    endpointGroups,
    addressIdentities: new Map(),
    shared: new Map(),
  };
  const entries = root.key('connections').entries();
  for (const at of entries) {
    const connection = readConnection(at, connectionContext);
    if (connection) built.push({ at, connection });
  }
  checkAmbiguousPairs(built);

  if (problems.count) return undefined;
  // Whatever was not built must have been reported: a silent gap is a bug, not a valid file.
  if (!listen || built.length !== entries.length) {
    throw new Error('ike-node bug: part of the configuration was not read, yet no problem was reported');
  }
  return deepFreeze({
    file,
    listen,
    ...settings,
    connections: built.map(({ connection }) => sealConnection(connection)),
  });
}
