import {
  LOG_LEVELS,
  LOG_SUBSYSTEMS,
  type LogFormat,
  type LogLevel,
  type LogSubsystem,
} from '../config/daemon-config.js';
import type { EngineEvent } from '../core/actions.js';

/**
 * One line per event: time, level, subsystem, connection and SA, message; as text or as one JSON
 * object per line. Levels can differ per subsystem. Keys never reach a line: the engines put
 * none in their messages, and nothing here formats an SA's key material.
 */

export type { LogFormat } from '../config/daemon-config.js';
export type Subsystem = LogSubsystem;

export interface LogLine {
  readonly level: LogLevel;
  readonly subsystem: Subsystem;
  readonly message: string;
  readonly connection?: string;
  /** The IKE/ISAKMP SA's id, as `status` shows it. */
  readonly sa?: number;
}

export interface LoggerOptions {
  /** The level of subsystems not named in `subsystems`; default info. */
  readonly level?: LogLevel;
  readonly subsystems?: Partial<Record<Subsystem, LogLevel>>;
  readonly format?: LogFormat;
  /** Where lines go; stderr by default. */
  readonly write?: (line: string) => void;
  /** Also handed every line that passes the level filter (the library's 'log' event). */
  readonly onLine?: (line: LogLine) => void;
}

export class Logger {
  readonly level: LogLevel;
  readonly format: LogFormat;
  readonly #subsystems: Partial<Record<Subsystem, LogLevel>>;
  readonly #write: (line: string) => void;
  readonly #onLine: ((line: LogLine) => void) | undefined;
  /** Listeners for a while (`ike-node initiate` streams its connection's lines); usually none. */
  readonly #taps = new Set<(line: LogLine) => void>();

  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? 'info';
    this.format = options.format ?? 'text';
    this.#subsystems = { ...options.subsystems };
    this.#write = options.write ?? ((line) => process.stderr.write(line));
    this.#onLine = options.onLine;
  }

  /** The most verbose level that passes for `subsystem` (what an engine need not go below). */
  levelOf(subsystem: Subsystem): LogLevel {
    return this.#subsystems[subsystem] ?? this.level;
  }

  enabled(level: LogLevel, subsystem?: Subsystem): boolean {
    const threshold = (subsystem && this.#subsystems[subsystem]) ?? this.level;
    // LOG_LEVELS runs from the most to the least severe.
    return LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(threshold);
  }

  /** Hands `listener` every line that passes the level filter until the returned function is called. */
  tap(listener: (line: LogLine) => void): () => void {
    this.#taps.add(listener);
    return () => this.#taps.delete(listener);
  }

  log(line: LogLine): void {
    if (!this.enabled(line.level, line.subsystem)) return;
    this.#onLine?.(line);
    for (const tap of this.#taps) tap(line);
    const time = new Date().toISOString();
    if (this.format === 'json') {
      this.#write(`${JSON.stringify({ time, ...line })}\n`);
      return;
    }
    const context = [line.connection, line.sa === undefined ? undefined : `#${line.sa}`]
      .filter(Boolean)
      .join(' ');
    this.#write(
      `${time} ${line.level.padEnd(5)} ${line.subsystem.padEnd(3)} ${context ? `[${context}] ` : ''}${line.message}\n`,
    );
  }

  /** The engine's own log events. */
  event(event: EngineEvent): void {
    if (event.type !== 'log') return;
    this.log({
      level: event.level,
      subsystem: 'ike',
      message: event.message,
      ...(event.connection && { connection: event.connection }),
      ...(event.ikeSa !== undefined && { sa: event.ikeSa }),
    });
  }
}

/**
 * A writer that gathers lines into one write per `intervalMs` (and at once past `limit`
 * characters): under a burst of handshakes that is a system call per batch instead of one per
 * line. A line waits at most the interval; what is gathered is written when the process exits.
 */
export function batchedWriter(
  write: (text: string) => void,
  intervalMs = 50,
  limit = 64 * 1024,
): (line: string) => void {
  let pending: string[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (!pending.length) return;
    const text = pending.join('');
    pending = [];
    size = 0;
    write(text);
  };
  process.once('exit', flush);
  return (line) => {
    pending.push(line);
    size += line.length;
    if (size >= limit) flush();
    else timer ??= setTimeout(flush, intervalMs).unref();
  };
}

/** `debug` or `ike=debug,net=warn` or `info,knl=debug`: the --log-level option. */
export function parseLogLevels(text: string): {
  level?: LogLevel;
  subsystems: Partial<Record<Subsystem, LogLevel>>;
} {
  const result: { level?: LogLevel; subsystems: Partial<Record<Subsystem, LogLevel>> } = { subsystems: {} };
  for (const part of text.split(',')) {
    const [left, right] = part.includes('=') ? part.split('=', 2) : [undefined, part];
    if (!isLevel(right)) {
      throw new RangeError(`expected a level (${LOG_LEVELS.join(', ')}), got '${right}'`);
    }
    if (left === undefined) {
      result.level = right;
    } else if ((LOG_SUBSYSTEMS as readonly string[]).includes(left)) {
      result.subsystems[left as Subsystem] = right;
    } else {
      throw new RangeError(`expected a subsystem (${LOG_SUBSYSTEMS.join(', ')}), got '${left}'`);
    }
  }
  return result;
}

function isLevel(text: string | undefined): text is LogLevel {
  return text !== undefined && (LOG_LEVELS as readonly string[]).includes(text);
}
