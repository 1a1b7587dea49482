import type { EngineEvent, LogLevel } from '../core/actions.js';

/**
 * One line per event: time, level, subsystem, connection and SA, message; as text or as one JSON
 * object per line. Levels can differ per subsystem. Keys never reach a line: the engines put
 * none in their messages, and nothing here formats an SA's key material.
 */

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export const SUBSYSTEMS = ['ike', 'cfg', 'net', 'knl', 'crypto', 'ctl'] as const;
export type Subsystem = (typeof SUBSYSTEMS)[number];
export type LogFormat = 'text' | 'json';

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
  #onLine: ((line: LogLine) => void) | undefined;

  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? 'info';
    this.format = options.format ?? 'text';
    this.#subsystems = { ...options.subsystems };
    this.#write = options.write ?? ((line) => process.stderr.write(line));
    this.#onLine = options.onLine;
  }

  /** A logger like this one with other levels (a reload), writing to the same place. */
  with(options: Omit<LoggerOptions, 'write'>): Logger {
    return new Logger({ write: this.#write, onLine: this.#onLine, ...options });
  }

  set onLine(handler: ((line: LogLine) => void) | undefined) {
    this.#onLine = handler;
  }

  enabled(level: LogLevel, subsystem?: Subsystem): boolean {
    const threshold = (subsystem && this.#subsystems[subsystem]) ?? this.level;
    return RANK[level] <= RANK[threshold];
  }

  log(line: LogLine): void {
    if (!this.enabled(line.level, line.subsystem)) return;
    this.#onLine?.(line);
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

/** `debug` or `ike=debug,net=warn` or `info,knl=debug`: the --log-level option. */
export function parseLogLevels(text: string): {
  level?: LogLevel;
  subsystems: Partial<Record<Subsystem, LogLevel>>;
} {
  const result: { level?: LogLevel; subsystems: Partial<Record<Subsystem, LogLevel>> } = { subsystems: {} };
  for (const part of text.split(',')) {
    const [left, right] = part.includes('=') ? part.split('=', 2) : [undefined, part];
    if (!isLevel(right)) {
      throw new RangeError(`expected a level (${Object.keys(RANK).join(', ')}), got '${right}'`);
    }
    if (left === undefined) {
      result.level = right;
    } else if ((SUBSYSTEMS as readonly string[]).includes(left)) {
      result.subsystems[left as Subsystem] = right;
    } else {
      throw new RangeError(`expected a subsystem (${SUBSYSTEMS.join(', ')}), got '${left}'`);
    }
  }
  return result;
}

function isLevel(text: string | undefined): text is LogLevel {
  return text !== undefined && Object.hasOwn(RANK, text);
}
