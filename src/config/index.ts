import { readFileSync, statSync } from 'node:fs';
import { checkDocument } from './check.js';
import { CONFIG_DEFAULTS as DEFAULTS, type DaemonConfig } from './daemon-config.js';
import { ConfigError, ConfigErrors, Problems } from './errors.js';
import { type DuplicateKeyHandler, isJsonObject, type Json, JsonSyntaxError, parseJson } from './json.js';
import type { FileMode } from './permissions.js';
import type { Environment, ReadFile } from './psk.js';

/**
 * peers.json: the daemon's configuration, checked completely and turned into immutable,
 * normalised Connection objects (ARCHITECTURE.md, property 5). The structure is checked against
 * schema/peers.schema.json, the rest by code; every problem is collected and thrown at once as
 * ConfigErrors, in file order, each naming the file, the JSON path and what was expected.
 */

export type { ConfigSources } from './check.js';
export {
  CONFIG_DEFAULTS,
  type DaemonConfig,
  type KernelBackendName,
  type LogFormat,
  type LogLevel,
  type LogSubsystem,
} from './daemon-config.js';
export { ConfigError, ConfigErrors } from './errors.js';
export { parseIdentity } from './identity.js';
export type { FileMode } from './permissions.js';
export type { Environment, ReadFile } from './psk.js';
export { SCHEMA_URL } from './schema.js';
export { connectionSummary, type ConnectionSummary } from './summary.js';

/**
 * Reads and checks a peers.json file; throws ConfigErrors listing every problem. Files holding
 * pre-shared keys (this one, when a key is written in it, and key files) must not be readable by
 * group or others.
 */
export function loadConfig(path: string): DaemonConfig {
  return parseConfig(
    readConfigText(path),
    path,
    process.env,
    (file) => readFileSync(file),
    (file) => statSync(file).mode,
  );
}

/**
 * Checks the text of a peers.json file. `file` names it in messages and anchors relative paths;
 * `env` and `readFile` are where `{ "env": ... }` and `{ "file": ... }` keys come from; `fileMode`
 * (fs.statSync(path).mode in loadConfig) checks that files holding keys are private; without it,
 * as for text that never was a file, nothing is checked.
 */
export function parseConfig(
  text: string,
  file: string,
  env: Environment = process.env,
  readFile: ReadFile = (path) => readFileSync(path),
  fileMode?: FileMode,
): DaemonConfig {
  const problems = new Problems(file);
  const json = parseConfigJson(text, file, (path) =>
    problems.add(path, 'each key once in its object', `${JSON.stringify(path[path.length - 1])} again`),
  );
  const config = checkDocument(json, file, { env, readFile, fileMode }, problems);
  if (!config) throw new ConfigErrors(file, problems.inFileOrder(json));
  return config;
}

/**
 * The control socket a peers.json names, and nothing else of it: the commands that only talk to
 * the running daemon (status, reload, events...) need no more, and checking the whole file would
 * fail them for what the daemon alone must have (a pre-shared key from `{ "env": ... }` set in
 * the service's environment, a key file only root may read). Throws ConfigErrors naming the file
 * (and `control.socket` when it is not a path).
 */
export function readControlSocket(path: string): string {
  const json = parseConfigJson(readConfigText(path), path);
  const control = isJsonObject(json) ? json.get('control') : undefined;
  const socket = isJsonObject(control) ? control.get('socket') : undefined;
  if (socket === undefined) return DEFAULTS.control.socket;
  if (typeof socket === 'string' && socket !== '') return socket;
  throw new ConfigErrors(path, [
    new ConfigError(path, 'control.socket', 'the path of a Unix socket', JSON.stringify(socket)),
  ]);
}

function readConfigText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
    throw new ConfigErrors(path, [new ConfigError(path, '', 'a readable configuration file', code)]);
  }
}

/** The JSON of a configuration; a syntax error is thrown as ConfigErrors with its line and column. */
function parseConfigJson(text: string, file: string, onDuplicateKey?: DuplicateKeyHandler): Json {
  try {
    return parseJson(text, onDuplicateKey);
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    throw new ConfigErrors(file, [
      new ConfigError(file, '', error.expected, error.got, error.line, error.column),
    ]);
  }
}
