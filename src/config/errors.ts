import type { JsonPath } from './json.js';

/**
 * One problem in a configuration file: which file, where in it (a JSON path such as
 * `connections.office.peer.address`, or a line and column for syntax errors), what was expected
 * and what was found. `got` never holds a secret: values under a `psk` key are described by their
 * type and length only.
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
  ) {
    const where =
      line !== undefined ? `${file}:${line}:${column}: invalid JSON` : path ? `${file}: ${path}` : file;
    super(`${where}: expected ${expected}${got === undefined ? '' : `, got ${got}`}`);
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

/** Collects problems while the whole file is checked. */
export class Problems {
  readonly list: ConfigError[] = [];
  constructor(readonly file: string) {}

  add(path: JsonPath, expected: string, got?: string): undefined {
    this.list.push(new ConfigError(this.file, formatPath(path), expected, got));
    return undefined;
  }

  get count(): number {
    return this.list.length;
  }
}
