/**
 * One log line per cause per interval, with the count of what was held back in between: a
 * flood of bad packets or failing sends must not become a flood of log lines.
 */
export class RateLimitedLog {
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Calls `write` (with the number held back since the last line) unless `cause` was logged lately. */
  log(cause: string, write: (suppressed: number) => void): void {
    const now = this.now();
    const last = this.#last.get(cause);
    if (last && now - last.at < this.intervalMs) {
      last.suppressed++;
      return;
    }
    this.#last.set(cause, { at: now, suppressed: 0 });
    write(last?.suppressed ?? 0);
  }
}
