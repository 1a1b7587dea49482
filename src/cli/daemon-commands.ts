import {
  CONFIG_DEFAULTS,
  ConfigErrors,
  type DaemonConfig,
  loadConfig,
  readControlSocket,
} from '../config/index.js';
import { configWarnings, effectiveConfig } from '../config/effective.js';
import type { ConnectionStatus } from '../core/status.js';
import { controlEvents, controlRequest } from '../daemon/control.js';
import { Daemon, type ReloadResult } from '../daemon/daemon.js';
import { type DaemonEvent, describeEvent } from '../daemon/events.js';
import { HeapMode, type HeapModeName } from '../daemon/heap-mode.js';
import { nativeAvailability } from '../native/index.js';
import { batchedWriter, Logger, type LoggerOptions, type LogLine, parseLogLevels } from '../daemon/logger.js';
import { DEFAULT_OUTCOME_TIMEOUT, type Goal, type Outcome, type OutcomeState } from '../daemon/outcome.js';
import type { CliIo } from './cli.js';
import { statusTable } from './status-table.js';

/** The commands that run or talk to the daemon. */

export interface CommandOptions {
  readonly config?: string | undefined;
  readonly socket?: string | undefined;
  readonly json?: boolean | undefined;
  readonly 'log-level'?: string | undefined;
  readonly 'log-format'?: string | undefined;
}

function load(options: CommandOptions, io: CliIo): DaemonConfig | undefined {
  if (!options.config) {
    io.stderr('ike-node: --config FILE is required\n');
    return undefined;
  }
  const file = options.config;
  return reported(io, () => loadConfig(file));
}

/** What `read` returns, or undefined once the ConfigErrors it threw have been printed. */
function reported<T>(io: CliIo, read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof ConfigErrors)) throw error;
    io.stderr(`${error.message}\n`);
    return undefined;
  }
}

/** What the daemon's log says of each heap mode (heap-mode.ts). */
const HEAP_MODES: Readonly<Record<HeapModeName, string>> = {
  speed: 'negotiations under way, V8 defaults',
  memory: 'quiet, giving memory back (--optimize-for-size)',
  rest: 'memory given back, V8 defaults',
};

/** SIGTERM/SIGINT: after this long the process exits even if a Delete or the kernel hangs. */
const STOP_BOUND_MS = 5000;

export async function runDaemon(options: CommandOptions, io: CliIo): Promise<number> {
  const config = load(options, io);
  if (!config) return 1;
  let logger: Logger;
  try {
    logger = new Logger({ ...loggerOptions(config, options), write: batchedWriter(io.stderr) });
  } catch (error) {
    io.stderr(`ike-node: ${(error as Error).message}\n`);
    return 2;
  }
  // The daemon's process is ours to tune (heap-mode.ts), once the configuration is read (its parse
  // is a burst of its own, left to V8's defaults).
  const heapMode = new HeapMode({
    onSwitch: (mode) =>
      logger.log({
        level: 'info',
        subsystem: 'ike',
        message: `V8 heap: ${HEAP_MODES[mode]}`,
      }),
  });
  const daemon = new Daemon(config, { logger, load: heapMode });
  try {
    await daemon.start();
  } catch (error) {
    heapMode.close();
    // Said once, on stderr, whatever the log format: the daemon did not start.
    io.stderr(`ike-node: ${(error as Error).message}\n`);
    return 1;
  }
  const onHup = () => {
    try {
      daemon.reloadFile('SIGHUP');
    } catch {
      // Logged, every problem of the new file; the running configuration stays.
    }
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      daemon.logger.log({ level: 'info', subsystem: 'ike', message: `${signal}: deleting SAs and exiting` });
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.off('SIGHUP', onHup);
      const bound = setTimeout(() => {
        daemon.logger.log({
          level: 'warn',
          subsystem: 'ike',
          message: `not stopped after ${STOP_BOUND_MS / 1000} s: exiting anyway`,
        });
        // Whatever still holds the event loop (a hung kernel call) must not hold the exit.
        setTimeout(() => process.exit(process.exitCode ?? 0), 100).unref();
        resolve();
      }, STOP_BOUND_MS);
      heapMode.close();
      void daemon.stop().then(() => {
        clearTimeout(bound);
        resolve();
      });
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
  return 0;
}

/** The config's log settings, overridden by --log-level and --log-format. */
function loggerOptions(config: DaemonConfig, options: CommandOptions): LoggerOptions {
  const fromConfig: LoggerOptions = config.log;
  let levels: ReturnType<typeof parseLogLevels> | undefined;
  try {
    levels = options['log-level'] === undefined ? undefined : parseLogLevels(options['log-level']);
  } catch (error) {
    throw new RangeError(`--log-level: ${(error as Error).message}`);
  }
  const format = options['log-format'] ?? fromConfig.format ?? 'text';
  if (format !== 'text' && format !== 'json')
    throw new RangeError(`--log-format: expected text or json, got '${format}'`);
  return {
    ...fromConfig,
    ...(levels?.level && { level: levels.level }),
    subsystems: { ...fromConfig.subsystems, ...levels?.subsystems },
    format,
  };
}

/** Every setting in effect on stdout; what is valid but will not work as meant on stderr. */
export function checkCommand(options: CommandOptions, io: CliIo): number {
  const config = load(options, io);
  if (!config) return 1;
  io.stdout(`${JSON.stringify(effectiveConfig(config), null, 2)}\n`);
  for (const warning of configWarnings(config, nativeAvailability())) io.stderr(`warning: ${warning}\n`);
  return 0;
}

/** --socket, or the control socket --config names (nothing else of that file is read). */
function socketPath(options: CommandOptions, io: CliIo): string | undefined {
  if (options.socket) return options.socket;
  const file = options.config;
  if (!file) return CONFIG_DEFAULTS.control.socket;
  return reported(io, () => readControlSocket(file));
}

export async function statusCommand(
  name: string | undefined,
  options: CommandOptions,
  io: CliIo,
): Promise<number> {
  const path = socketPath(options, io);
  if (!path) return 1;
  const status = (await controlRequest(path, {
    command: 'status',
    ...(name !== undefined && { name }),
  })) as ConnectionStatus[];
  io.stdout(options.json ? `${JSON.stringify(status, null, 2)}\n` : statusTable(status));
  return 0;
}

export async function reloadCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const path = socketPath(options, io);
  if (!path) return 1;
  const result = (await controlRequest(path, { command: 'reload' })) as ReloadResult;
  for (const key of ['added', 'changed', 'removed', 'unchanged'] as const) {
    io.stdout(`${key}: ${result[key].length ? result[key].join(', ') : '-'}\n`);
  }
  if (result.needsRestart.length)
    io.stderr(`ike-node: ${result.needsRestart.join(', ')} changed: restart the daemon to apply\n`);
  return 0;
}

/** Prints the daemon's events as they happen, until SIGINT/SIGTERM or the daemon goes away. */
export async function eventsCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const path = socketPath(options, io);
  if (!path) return 1;
  let lost: Error | undefined;
  let quitting = false;
  await new Promise<void>((resolve, reject) => {
    const quit = () => {
      quitting = true;
      process.off('SIGINT', quit);
      process.off('SIGTERM', quit);
      close?.();
      resolve();
    };
    let close: (() => void) | undefined;
    controlEvents(
      path,
      (event) =>
        io.stdout(options.json ? `${JSON.stringify(event)}\n` : `${describeEvent(event as DaemonEvent)}\n`),
      (error) => {
        // The stream ends when we close it, or when the daemon goes (stopped, or dropped us).
        if (!quitting) lost = error ?? new Error('it closed the connection (stopped?)');
        quit();
      },
    ).then((closer) => {
      close = closer;
      process.on('SIGINT', quit);
      process.on('SIGTERM', quit);
    }, reject);
  });
  if (lost) io.stderr(`ike-node: lost the daemon at ${path}: ${lost.message}\n`);
  return lost ? 1 : 0;
}

/**
 * `ike-node initiate|terminate NAME`: waits for the outcome (up, failed with its cause, down, or a
 * timeout), printing the connection's log lines meanwhile as swanctl --initiate does; the exit
 * status says which (OUTCOME_EXIT). `--no-wait` returns once the daemon took the command.
 */
export async function controlCommand(
  command: 'initiate' | 'terminate',
  name: string | undefined,
  options: CommandOptions & {
    readonly 'no-wait'?: boolean | undefined;
    readonly timeout?: string | undefined;
  },
  io: CliIo,
): Promise<number> {
  if (!name) {
    io.stderr(`ike-node: ${command} needs a connection name\n`);
    return 2;
  }
  const timeout = options.timeout === undefined ? DEFAULT_OUTCOME_TIMEOUT : Number(options.timeout);
  if (!(Number.isFinite(timeout) && timeout > 0 && timeout <= 3600)) {
    io.stderr(`ike-node: --timeout: expected seconds from 1 to 3600, got '${options.timeout}'\n`);
    return 2;
  }
  const path = socketPath(options, io);
  if (!path) return 1;
  if (options['no-wait']) {
    await controlRequest(path, { command, name });
    io.stdout(`${command}: ${name}\n`);
    return 0;
  }
  // The daemon's lines, printed as its own log prints them (or as JSON objects with --json).
  const echo = new Logger({ level: 'debug', ...(options.json && { format: 'json' }), write: io.stdout });
  const outcome = (await controlRequest(
    path,
    { command, name, wait: true, timeout },
    (timeout + 5) * 1000,
    (message) => {
      if (message['log']) echo.log(message['log'] as LogLine);
    },
  )) as Outcome;
  if (options.json) io.stdout(`${JSON.stringify({ outcome })}\n`);
  else io.stdout(`${command} ${name}: ${describeOutcome(outcome)}\n`);
  return OUTCOME_EXIT[command === 'initiate' ? 'up' : 'down'][outcome.state];
}

/** Exit statuses: 0 the goal was reached, 1 it failed (or the other end state came), 3 a timeout. */
const OUTCOME_EXIT: Record<Goal, Record<OutcomeState, number>> = {
  up: { up: 0, failed: 1, down: 1, timeout: 3 },
  down: { down: 0, failed: 1, up: 1, timeout: 3 },
};

function describeOutcome(outcome: Outcome): string {
  switch (outcome.state) {
    case 'failed':
      return `failed (${outcome.failure?.cause}): ${outcome.failure?.reason}`;
    case 'timeout':
      return `timed out: ${outcome.failure?.reason}`;
    default:
      return outcome.state;
  }
}

/** The running daemon's connections, as `check` prints a file's. */
export async function listConnsCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const path = socketPath(options, io);
  if (!path) return 1;
  const connections = await controlRequest(path, { command: 'connections' });
  io.stdout(`${JSON.stringify(connections, null, 2)}\n`);
  return 0;
}

/** `terminate --ike-sa ID` or `--child-sa ID`: one SA of a connection, not all of them. */
export async function terminateSaCommand(
  options: CommandOptions & {
    readonly 'ike-sa'?: string | undefined;
    readonly 'child-sa'?: string | undefined;
  },
  io: CliIo,
): Promise<number> {
  const [option, key] =
    options['ike-sa'] !== undefined ? (['ike-sa', 'ikeSa'] as const) : (['child-sa', 'childSa'] as const);
  const text = options[option] ?? '';
  if (options['ike-sa'] !== undefined && options['child-sa'] !== undefined) {
    io.stderr('ike-node: terminate takes --ike-sa or --child-sa, not both\n');
    return 2;
  }
  if (!/^[1-9]\d{0,9}$/.test(text)) {
    io.stderr(`ike-node: --${option}: expected an SA number as 'ike-node status' shows it, got '${text}'\n`);
    return 2;
  }
  const path = socketPath(options, io);
  if (!path) return 1;
  await controlRequest(path, { command: 'terminate-sa', [key]: Number(text) });
  io.stdout(`terminate: ${option === 'ike-sa' ? 'IKE' : 'child'} SA #${text}\n`);
  return 0;
}
