/**
 * One log line per cause per interval, with the count of what was held back in between: a
 * flood of bad packets, failing sends or garbled kernel messages must not become a flood of log
 * lines. At most `maxCauses` causes are remembered (the oldest is forgotten first), so causes
 * that carry a peer's data cannot grow the table without bound.
 */
export class RateLimitedLog {
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    readonly intervalMs: number,
    private readonly now: () => number = Date.now,
    readonly maxCauses = 1024,
  ) {}

  /** Calls `write` (with the number held back since the last line) unless `cause` was logged lately. */
  log(cause: string, write: (suppressed: number) => void): void {
    const now = this.now();
    const last = this.#last.get(cause);
    if (last && now - last.at < this.intervalMs) {
      last.suppressed++;
      return;
    }
    this.#last.delete(cause);
    this.#last.set(cause, { at: now, suppressed: 0 });
    if (this.#last.size > this.maxCauses) this.#last.delete(this.#last.keys().next().value as string);
    write(last?.suppressed ?? 0);
  }
}

/** " (N more since the last report)", or nothing: the suffix of a rate-limited line. */
export function heldBack(suppressed: number): string {
  return suppressed ? ` (${suppressed} more since the last report)` : '';
}
