import type { Problems } from './errors.js';
import { isJsonObject, type Json, type JsonObject, type JsonPath } from './json.js';

/**
 * A position in the parsed file: a value (or its absence) with its JSON path. Each accessor
 * either returns the value in the wanted form or records a problem and returns undefined, so the
 * checks go on and every problem in the file is reported. Under a `psk` key, found values are
 * described by their type only.
 */
export class Cursor {
  constructor(
    readonly problems: Problems,
    readonly path: JsonPath,
    readonly value: Json | undefined,
    readonly secret = false,
  ) {}

  get present(): boolean {
    return this.value !== undefined;
  }

  /** The child under `key` (absent when this is not an object or has no such key). */
  key(key: string): Cursor {
    const child = isJsonObject(this.value) ? this.value.get(key) : undefined;
    return new Cursor(this.problems, [...this.path, key], child, this.secret || key === 'psk');
  }

  /** Records a problem here. `got` defaults to a description of the value found. */
  fail(expected: string, got: string = describe(this.value, this.secret)): undefined {
    return this.problems.add(this.path, expected, got);
  }

  /**
   * An object whose keys are all in `allowed`; each other key is a problem naming it and the
   * allowed ones. Returns undefined (with a problem) when the value is not an object.
   */
  object(allowed: readonly string[], expected = 'an object'): JsonObject | undefined {
    if (!isJsonObject(this.value)) return this.fail(expected);
    for (const key of this.value.keys()) {
      if (!allowed.includes(key)) {
        this.key(key).fail(
          allowed.length ? `one of the keys ${allowed.join(', ')}` : 'no keys here',
          `unknown key ${JSON.stringify(key)}`,
        );
      }
    }
    return this.value;
  }

  /** The entries of an object whose keys are names the user chose (connections, policies). */
  entries(expected: string): Cursor[] {
    if (!isJsonObject(this.value)) {
      this.fail(expected);
      return [];
    }
    return [...this.value.keys()].map((key) => this.key(key));
  }

  /** The last part of the path: an entry's name. */
  get name(): string {
    return String(this.path[this.path.length - 1]);
  }

  string(expected = 'a string'): string | undefined {
    if (typeof this.value !== 'string' || this.value === '') return this.fail(expected);
    return this.value;
  }

  /** An integer in [min, max]; `unit` follows "a whole number", `note` the range. */
  integer(min: number, max: number, unit = '', note = ''): number | undefined {
    const value = this.value;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      return this.fail(`a whole number${unit} from ${min} to ${max}${note}`);
    }
    return value;
  }

  /** One of a fixed set of JSON values (strings, numbers, booleans). */
  oneOf<T extends string | number | boolean>(options: readonly T[], expected?: string): T | undefined {
    const match = options.find((option) => option === this.value);
    if (match === undefined) {
      return this.fail(expected ?? options.map((option) => JSON.stringify(option)).join(' or '));
    }
    return match;
  }

  /** The items of a list, as cursors; with `single`, a lone non-list value counts as a list of one. */
  list(expected: string, options: { single?: boolean; nonEmpty?: boolean } = {}): Cursor[] | undefined {
    const value = this.value;
    if (!Array.isArray(value)) {
      if (options.single && value !== undefined && !isJsonObject(value)) return [this];
      return this.fail(expected);
    }
    if (options.nonEmpty && value.length === 0) return this.fail(expected, 'an empty list');
    return value.map((item, i) => new Cursor(this.problems, [...this.path, i], item, this.secret));
  }
}

/** How a found value is shown in a message: quoted and shortened, or only its type when secret. */
export function describe(value: Json | undefined, secret = false): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return value.length ? 'a list' : 'an empty list';
  if (isJsonObject(value)) return 'an object';
  if (secret)
    return typeof value === 'string' ? `a string of ${value.length} characters` : `a ${typeof value}`;
  if (typeof value === 'string') {
    const quoted = JSON.stringify(value);
    return quoted.length > 80 ? `${quoted.slice(0, 76)}..."` : quoted;
  }
  return String(value);
}
