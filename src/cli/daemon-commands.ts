import {
  CONFIG_DEFAULTS,
  ConfigErrors,
  connectionSummary,
  type DaemonConfig,
  loadConfig,
} from '../config/index.js';
import type { ConnectionStatus } from '../core/status.js';
import { controlRequest } from '../daemon/control.js';
import { Daemon } from '../daemon/daemon.js';
import { Logger } from '../daemon/logger.js';
import type { CliIo } from './cli.js';

/** The commands that run or talk to the daemon. */

export interface CommandOptions {
  readonly config?: string | undefined;
  readonly socket?: string | undefined;
  readonly json?: boolean | undefined;
  readonly 'log-level'?: string | undefined;
}

const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;

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

export async function runDaemon(options: CommandOptions, io: CliIo): Promise<number> {
  const config = load(options, io);
  if (!config) return 1;
  const level = options['log-level'] ?? config.log.level;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    io.stderr(`ike-node: --log-level: expected one of ${LOG_LEVELS.join(', ')}, got '${level}'\n`);
    return 2;
  }
  const daemon = new Daemon(config, { logger: new Logger(level as (typeof LOG_LEVELS)[number], io.stderr) });
  await daemon.start();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      daemon.logger.log({ level: 'info', subsystem: 'ike', message: `${signal}: deleting SAs and exiting` });
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      void daemon.stop().then(resolve);
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
  return 0;
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

export async function statusCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const path = socketPath(options, io);
  if (!path) return 1;
  const status = (await controlRequest(path, { command: 'status' })) as ConnectionStatus[];
  io.stdout(options.json ? `${JSON.stringify(status, null, 2)}\n` : statusTable(status));
  return 0;
}

export async function controlCommand(
  command: 'initiate' | 'terminate',
  name: string | undefined,
  options: CommandOptions,
  io: CliIo,
): Promise<number> {
  if (!name) {
    io.stderr(`ike-node: ${command} needs a connection name\n`);
    return 2;
  }
  const path = socketPath(options, io);
  if (!path) return 1;
  await controlRequest(path, { command, name });
  io.stdout(`${command}: ${name}\n`);
  return 0;
}

export function statusTable(status: readonly ConnectionStatus[]): string {
  const lines: string[] = [];
  for (const connection of status) {
    lines.push(`${connection.name}: ${connection.status}${connection.error ? ` (${connection.error})` : ''}`);
    for (const sa of connection.ikeSas) {
      lines.push(
        `  IKEv${sa.version} #${sa.id} ${sa.state} ${sa.role} ${sa.local} <-> ${sa.remote}` +
          `${sa.algorithms ? ` ${sa.algorithms}` : ''}${sa.natDetected ? ' NAT' : ''}`,
      );
    }
    for (const child of connection.childSas) {
      lines.push(
        `  child #${child.id} ${child.mode}${child.encapsulation ? '/udp' : ''} SPIs ${child.spiIn}_i ${child.spiOut}_o ` +
          `${child.algorithms} ${child.localTs.join(',')} === ${child.remoteTs.join(',')}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
