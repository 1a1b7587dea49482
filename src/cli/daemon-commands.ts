import {
  CONFIG_DEFAULTS,
  ConfigErrors,
  connectionSummary,
  type DaemonConfig,
  loadConfig,
} from '../config/index.js';
import type { ConnectionStatus } from '../core/status.js';
import { controlEvents, controlRequest } from '../daemon/control.js';
import { Daemon, type ReloadResult } from '../daemon/daemon.js';
import { type DaemonEvent, describeEvent } from '../daemon/events.js';
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
  try {
    return loadConfig(options.config);
  } catch (error) {
    if (error instanceof ConfigErrors) {
      io.stderr(`${error.message}\n`);
      return undefined;
    }
    throw error;
  }
}

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
  const daemon = new Daemon(config, { logger });
  await daemon.start();
  const onHup = () => {
    daemon.logger.log({ level: 'info', subsystem: 'cfg', message: `SIGHUP: reloading ${config.file}` });
    try {
      daemon.reload();
    } catch (error) {
      // The running configuration stays; every problem of the new file is logged.
      const message = error instanceof ConfigErrors ? error.message : (error as Error).message;
      for (const line of message.split('\n'))
        daemon.logger.log({ level: 'error', subsystem: 'cfg', message: `reload refused: ${line}` });
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
        resolve();
      }, STOP_BOUND_MS);
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

export function checkCommand(options: CommandOptions, io: CliIo): number {
  const config = load(options, io);
  if (!config) return 1;
  const { connections, ...rest } = config;
  io.stdout(`${JSON.stringify({ ...rest, connections: connections.map(connectionSummary) }, null, 2)}\n`);
  return 0;
}

function socketPath(options: CommandOptions, io: CliIo): string | undefined {
  if (options.socket) return options.socket;
  if (!options.config) return CONFIG_DEFAULTS.control.socket;
  return load(options, io)?.control.socket;
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
  await new Promise<void>((resolve, reject) => {
    const quit = () => {
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
        lost = error;
        quit();
      },
    ).then((closer) => {
      close = closer;
      process.on('SIGINT', quit);
      process.on('SIGTERM', quit);
    }, reject);
  });
  if (lost) io.stderr(`ike-node: lost the daemon: ${lost.message}\n`);
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
