import { type DaemonConfig, parseConfig } from '../config/index.js';
import type { PeersConfig } from '../config/peers-config.js';
import type { CryptoProvider } from '../crypto/provider.js';
import type { KernelBackend } from '../kernel/backend.js';
import { Daemon, type DaemonOptions, type ReloadResult } from './daemon.js';
import { Logger, type LogLine } from './logger.js';

/**
 * The library's way in: a node from a configuration object, typed as peers.json is (PeersConfig,
 * written from its schema: a misspelt key is a compile error) and checked exactly as peers.json
 * is (ConfigErrors naming the JSON path of every problem), run in the embedder's process.
 */

export interface NodeOptions {
  /** Names the configuration in error messages and anchors relative `psk.file` paths. */
  readonly source?: string;
  /** Where `{ "env": ... }` pre-shared keys come from; process.env by default. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The embedder's own kernel backend or crypto provider, instead of those the config names. */
  readonly kernel?: KernelBackend;
  readonly crypto?: CryptoProvider;
  /** Each log line that passes the configured levels, as an object; nothing is written anywhere. */
  readonly onLog?: (line: LogLine) => void;
  /** Or write text/JSON lines somewhere (e.g. process.stderr). */
  readonly logWrite?: (line: string) => void;
  /** Seconds; wall-clock by default. */
  readonly clock?: () => number;
}

/**
 * An ike-node engine with its sockets, timers and kernel backend (see Daemon for the API), whose
 * reload takes a configuration object as createNode does.
 */
export class IkeNode extends Daemon {
  readonly #parse: (config: PeersConfig) => DaemonConfig;

  constructor(checked: DaemonConfig, parse: (config: PeersConfig) => DaemonConfig, options: DaemonOptions) {
    super(checked, options);
    this.#parse = parse;
  }

  /**
   * Applies a new configuration object, checked as createNode checks one (ConfigErrors, and
   * nothing changed, when it is invalid). A parsed DaemonConfig is taken as it is.
   */
  override reload(next?: PeersConfig | DaemonConfig): ReloadResult {
    if (next === undefined)
      throw new TypeError('reload(config): a node made by createNode reloads from a configuration object');
    return super.reload(isParsed(next) ? next : this.#parse(next));
  }
}

/** Parsed configurations hold their connections as a list, peers.json as an object by name. */
function isParsed(config: PeersConfig | DaemonConfig): config is DaemonConfig {
  return Array.isArray(config.connections);
}

/**
 * Creates a node (not yet started: call start()). Throws ConfigErrors when the configuration
 * is invalid. The control socket is served only if the configuration names one.
 */
export function createNode(config: PeersConfig, options: NodeOptions = {}): IkeNode {
  const source = options.source ?? '<config object>';
  const parse = (next: PeersConfig) => parseConfig(JSON.stringify(next), source, options.env ?? process.env);
  const checked = parse(config);
  const logger = new Logger({
    ...checked.log,
    write: options.logWrite ?? (() => {}),
    ...(options.onLog && { onLine: options.onLog }),
  });
  return new IkeNode(checked, parse, {
    logger,
    control: Object.hasOwn(config, 'control'),
    ...(options.kernel && { kernel: options.kernel }),
    ...(options.crypto && { crypto: options.crypto }),
    ...(options.clock && { clock: options.clock }),
  });
}
