import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { formatAddress, parseAddress } from '../core/address.js';
import type { Connection, IkePolicy, IpsecPolicy } from '../core/connection.js';
import type { ProviderName } from '../crypto/provider.js';
import { PROVIDER_NAMES } from '../crypto/providers/index.js';
import { checkAmbiguousPairs, NAME_EXPECTED, NAME_PATTERN, readConnection } from './connections.js';
import { Cursor } from './cursor.js';
import { ConfigError, ConfigErrors, Problems } from './errors.js';
import { type Json, JsonSyntaxError, parseJson } from './json.js';
import { readIkePolicy, readIpsecPolicy } from './policies.js';
import type { Environment, ReadFile } from './psk.js';
import { deepFreeze, sealConnection } from './summary.js';

/**
 * peers.json: the daemon's configuration, checked completely and turned into immutable,
 * normalised Connection objects (ARCHITECTURE.md, property 5). Every problem is collected and
 * thrown at once as ConfigErrors, each naming the file, the JSON path and what was expected.
 */

export { ConfigError, ConfigErrors } from './errors.js';
export { parseIdentity } from './identity.js';
export type { Environment, ReadFile } from './psk.js';
export { connectionSummary, type ConnectionSummary } from './summary.js';

export type KernelBackendName = 'memory' | 'xfrm' | 'pfkey' | 'userspace';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface DaemonConfig {
  readonly file: string;
  readonly listen: { readonly addresses: string[]; readonly port: number; readonly natPort: number };
  readonly kernel: KernelBackendName;
  readonly crypto: ProviderName;
  readonly control: { readonly socket: string };
  readonly log: { readonly level: LogLevel };
  readonly connections: Connection[];
}

export const CONFIG_DEFAULTS = {
  listen: { addresses: ['0.0.0.0'], port: 500, natPort: 4500 },
  kernel: 'memory',
  crypto: 'node',
  control: { socket: '/run/ike-node/ike-node.sock' },
  log: { level: 'info' },
} as const;

const TOP_KEYS = [
  'listen',
  'kernel',
  'crypto',
  'control',
  'log',
  'ikePolicies',
  'ipsecPolicies',
  'connections',
];
const KERNELS = ['memory', 'xfrm', 'pfkey', 'userspace'] as const;
const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;

/** Reads and checks a peers.json file; throws ConfigErrors listing every problem. */
export function loadConfig(path: string): DaemonConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
    throw new ConfigErrors(path, [new ConfigError(path, '', 'a readable configuration file', code)]);
  }
  return parseConfig(text, path);
}

/**
 * Checks the text of a peers.json file. `file` names it in messages and anchors relative key
 * file paths; `env` and `readFile` are where `{ "env": ... }` and `{ "file": ... }` keys come from.
 */
export function parseConfig(
  text: string,
  file: string,
  env: Environment = process.env,
  readFile: ReadFile = (path) => readFileSync(path),
): DaemonConfig {
  const problems = new Problems(file);
  let json: Json;
  try {
    json = parseJson(text, (path) =>
      problems.add(path, 'each key once in its object', `${JSON.stringify(path[path.length - 1])} again`),
    );
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    throw new ConfigErrors(file, [
      new ConfigError(file, '', error.expected, error.got, error.line, error.column),
    ]);
  }
  const root = new Cursor(problems, [], json);
  root.object(TOP_KEYS, `an object with the keys ${TOP_KEYS.join(', ')}`);

  const listen = readListen(root.key('listen'));
  const kernel = readChoice(root.key('kernel'), KERNELS, CONFIG_DEFAULTS.kernel);
  const crypto = readChoice(root.key('crypto'), PROVIDER_NAMES, CONFIG_DEFAULTS.crypto);
  const controlAt = root.key('control');
  if (controlAt.present) controlAt.object(['socket']);
  const socketAt = controlAt.key('socket');
  const socket = socketAt.present
    ? socketAt.string('the path of the control socket')
    : CONFIG_DEFAULTS.control.socket;
  const logAt = root.key('log');
  if (logAt.present) logAt.object(['level']);
  const level = readChoice(logAt.key('level'), LOG_LEVELS, CONFIG_DEFAULTS.log.level);

  const providerName = crypto ?? CONFIG_DEFAULTS.crypto;
  const ikePolicies = new Map<string, IkePolicy | undefined>();
  for (const at of sectionEntries(root.key('ikePolicies'), 'IKE policies')) {
    ikePolicies.set(at.name, readIkePolicy(at, at.name, providerName));
  }
  const ipsecPolicies = new Map<string, IpsecPolicy | undefined>();
  for (const at of sectionEntries(root.key('ipsecPolicies'), 'IPsec policies')) {
    ipsecPolicies.set(at.name, readIpsecPolicy(at, at.name, providerName));
  }
  const built: { at: Cursor; connection: Connection }[] = [];
  const context = {
    crypto: providerName,
    psk: { file, env, readFile },
    listen: listen?.addresses,
    ikePolicies,
    ipsecPolicies,
  };
  for (const at of sectionEntries(root.key('connections'), 'connections')) {
    const connection = readConnection(at, context);
    if (connection) built.push({ at, connection });
  }
  checkAmbiguousPairs(built);

  if (problems.count || !listen || !kernel || !crypto || !socket || !level) {
    throw new ConfigErrors(file, problems.list);
  }
  return deepFreeze({
    file,
    listen,
    kernel,
    crypto,
    control: { socket },
    log: { level },
    connections: built.map(({ connection }) => sealConnection(connection)),
  });
}

function readChoice<T extends string>(at: Cursor, options: readonly T[], fallback: T): T | undefined {
  return at.present ? at.oneOf(options) : fallback;
}

/** The entries of ikePolicies, ipsecPolicies or connections (absent means none), names checked. */
function sectionEntries(at: Cursor, what: string): Cursor[] {
  if (!at.present) return [];
  const entries = at.entries(`an object of ${what} by name`);
  for (const entry of entries) {
    if (!NAME_PATTERN.test(entry.name)) entry.fail(NAME_EXPECTED, `the name ${JSON.stringify(entry.name)}`);
  }
  return entries;
}

function readListen(at: Cursor): DaemonConfig['listen'] | undefined {
  const defaults = CONFIG_DEFAULTS.listen;
  if (at.present && !at.object(['addresses', 'port', 'natPort'])) return undefined;
  const addressesAt = at.key('addresses');
  let addresses: string[] | undefined = [...defaults.addresses];
  if (addressesAt.present) {
    const expected = 'a list of IPv4 or IPv6 addresses to receive IKE on (0.0.0.0 or :: for all)';
    const items = addressesAt.list(expected, { nonEmpty: true });
    addresses = items && [];
    for (const item of items ?? []) {
      const text = item.string('an IPv4 or IPv6 address');
      if (text !== undefined && !isIP(text)) item.fail('an IPv4 or IPv6 address');
      if (text === undefined || !isIP(text)) {
        addresses = undefined;
        continue;
      }
      const address = formatAddress(parseAddress(text));
      if (addresses?.includes(address)) item.fail('each address once', JSON.stringify(text));
      addresses?.push(address);
    }
  }
  const portAt = at.key('port');
  const port = portAt.present ? portAt.integer(1, 65535) : defaults.port;
  const natPortAt = at.key('natPort');
  const natPort = natPortAt.present ? natPortAt.integer(1, 65535) : defaults.natPort;
  if (port !== undefined && port === natPort) {
    (natPortAt.present ? natPortAt : portAt).fail('different ports for port and natPort', String(port));
  }
  if (!addresses || port === undefined || natPort === undefined) return undefined;
  return { addresses, port, natPort };
}
