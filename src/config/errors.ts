import { isJsonObject, type Json, type JsonPath } from './json.js';

/**
 * One problem in a configuration file: which file, where in it (a JSON path such as
 * `connections.office.peer.address`, or a line and column for syntax errors), what was expected
 * and what was found. `got` never holds a secret: values under a `psk` key are described by their
 * type and length only. `summary`, when given, replaces "expected ..., got ..." in the message
 * (unknown keys read better as `unknown key; did you mean "address"?`).
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly path: string,
    readonly expected: string,
    readonly got?: string,
    readonly line?: number,
    readonly column?: number,
    readonly summary?: string,
  ) {
    const where =
      line !== undefined ? `${file}:${line}:${column}: invalid JSON` : path ? `${file}: ${path}` : file;
    const what = summary ?? `expected ${expected}${got === undefined ? '' : `, got ${got}`}`;
    super(`${where}: ${what}`);
  }
}

/** Every problem found in one file, so that `ike-node check` can list them all at once. */
export class ConfigErrors extends Error {
  override readonly name = 'ConfigErrors';
  constructor(
    readonly file: string,
    readonly errors: readonly ConfigError[],
  ) {
    super(errors.map((error) => error.message).join('\n'));
  }
}

/** `connections.office.peer.subnets[2]`; keys that are not plain words are quoted. */
export function formatPath(path: JsonPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(part)) out += out ? `.${part}` : part;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

/**
 * Collects problems while the whole file is checked. Structural problems (found by the schema)
 * also mark their path, so that the semantic checks that follow stay quiet about values the
 * schema already rejected.
 */
export class Problems {
  readonly #entries: { path: JsonPath; error: ConfigError }[] = [];
  readonly #structural = new Set<string>();
  constructor(readonly file: string) {}

  /** Records a problem; the same message twice is recorded once. */
  add(path: JsonPath, expected: string, got?: string, summary?: string): undefined {
    const error = new ConfigError(this.file, formatPath(path), expected, got, undefined, undefined, summary);
    if (!this.#entries.some((entry) => entry.error.message === error.message)) {
      this.#entries.push({ path, error });
    }
    return undefined;
  }

  addStructural(path: JsonPath, expected: string, got?: string, summary?: string): void {
    this.add(path, expected, got, summary);
    this.#structural.add(formatPath(path));
  }

  /** Whether the schema rejected the value at `path` or at one of its ancestors. */
  rejected(path: JsonPath): boolean {
    // Asked at every value read: a valid file (the usual case) answers without building a path.
    if (this.#structural.size === 0) return false;
    for (let n = path.length; n >= 0; n--) {
      if (this.#structural.has(formatPath(path.slice(0, n)))) return true;
    }
    return false;
  }

  /** Whether any problem sits at `path` or below it. */
  under(path: JsonPath): boolean {
    return this.#entries.some(
      (entry) => entry.path.length >= path.length && path.every((part, i) => entry.path[i] === part),
    );
  }

  get list(): ConfigError[] {
    return this.#entries.map((entry) => entry.error);
  }

  get count(): number {
    return this.#entries.length;
  }

  /**
   * The problems in the order of the file, whichever check found them: by the position of the
   * value they name; a missing key comes after the rest of the object that lacks it.
   */
  inFileOrder(document: Json): ConfigError[] {
    const spans = new Map<string, { start: number; end: number }>();
    let counter = 0;
    const walk = (value: Json, path: JsonPath): void => {
      const start = counter++;
      if (isJsonObject(value)) for (const [key, child] of value) walk(child, [...path, key]);
      else if (Array.isArray(value)) value.forEach((child, i) => walk(child, [...path, i]));
      spans.set(formatPath(path), { start, end: counter - 1 });
    };
    walk(document, []);
    const position = (path: JsonPath): number => {
      for (let n = path.length; n >= 0; n--) {
        const span = spans.get(formatPath(path.slice(0, n)));
        if (span) return n === path.length ? span.start : span.end + 0.5;
      }
      return Number.POSITIVE_INFINITY;
    };
    return this.#entries
      .map((entry, index) => ({ entry, index, position: position(entry.path) }))
      .sort((a, b) => a.position - b.position || a.index - b.index)
      .map(({ entry }) => entry.error);
  }
}
