import type { EngineEvent, LogLevel } from '../core/actions.js';

/** One line per event: time, level, subsystem, connection and SA, message. Never keys. */

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export type Subsystem = 'ike' | 'cfg' | 'net' | 'knl' | 'crypto' | 'ctl';

export interface LogLine {
  readonly level: LogLevel;
  readonly subsystem: Subsystem;
  readonly message: string;
  readonly connection?: string;
  readonly sa?: number;
}

export class Logger {
  constructor(
    readonly level: LogLevel,
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
  ) {}

  enabled(level: LogLevel): boolean {
    return RANK[level] <= RANK[this.level];
  }

  log(line: LogLine): void {
    if (!this.enabled(line.level)) return;
    const context = [line.connection, line.sa === undefined ? undefined : `#${line.sa}`]
      .filter(Boolean)
      .join(' ');
    this.write(
      `${new Date().toISOString()} ${line.level.padEnd(5)} ${line.subsystem} ${context ? `[${context}] ` : ''}${line.message}\n`,
    );
  }

  /** Engine events that deserve a line of their own beyond the engine's log events. */
  event(event: EngineEvent): void {
    switch (event.type) {
      case 'log':
        this.log({
          level: event.level,
          subsystem: 'ike',
          message: event.message,
          ...(event.connection && { connection: event.connection }),
          ...(event.ikeSa !== undefined && { sa: event.ikeSa }),
        });
        return;
      default:
        return;
    }
  }
}
