import { type DaemonConfig, parseConfig } from '../config/index.js';
import type { CryptoProvider } from '../crypto/provider.js';
import type { KernelBackend } from '../kernel/backend.js';
import { Daemon } from './daemon.js';
import { Logger, type LogLine } from './logger.js';

/**
 * The library's way in: a node from a configuration object, checked exactly as peers.json is
 * (ConfigErrors naming the JSON path of every problem), run in the embedder's process.
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

/** An ike-node engine with its sockets, timers and kernel backend: see Daemon for the API. */
export type IkeNode = Daemon;

/**
 * Creates a node (not yet started: call start()). Throws ConfigErrors when the configuration
 * is invalid. The control socket is served only if the configuration names one.
 */
export function createNode(config: object, options: NodeOptions = {}): IkeNode {
  const source = options.source ?? '<config object>';
  const checked: DaemonConfig = parseConfig(JSON.stringify(config), source, options.env ?? process.env);
  const logger = new Logger({
    ...checked.log,
    write: options.logWrite ?? (() => {}),
    ...(options.onLog && { onLine: options.onLog }),
  });
  return new Daemon(checked, {
    logger,
    control: Object.hasOwn(config, 'control'),
    ...(options.kernel && { kernel: options.kernel }),
    ...(options.crypto && { crypto: options.crypto }),
    ...(options.clock && { clock: options.clock }),
  });
}
