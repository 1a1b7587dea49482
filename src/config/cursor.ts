import { alternatives, describe, isSecretPath } from './describe.js';
import { formatPath, type Problems } from './errors.js';
import { isJsonObject, type Json, type JsonPath } from './json.js';
import { jsonTypeOf, type Schema, type SchemaNode } from './schema.js';

/** What every cursor of one check shares. */
export interface CheckContext {
  readonly schema: Schema;
  readonly problems: Problems;
  /** When set, the schema pointer of every fixed key the code reads (to compare code and schema). */
  readonly reads?: Set<string>;
}

/**
 * A position in the parsed file for the semantic checks, which run after the schema has checked
 * the structure: a value (or its absence), its JSON path and its schema node. The code may only
 * read keys the schema defines (reading another is a bug, and throws), and trusts the schema for
 * types: the typed getters return undefined, quietly, for values the schema rejected (that problem
 * is reported already) and throw if the schema accepted a value the code cannot use.
 */
export class Cursor {
  constructor(
    readonly context: CheckContext,
    readonly path: JsonPath,
    readonly value: Json | undefined,
    readonly schema: SchemaNode,
  ) {}

  get problems(): Problems {
    return this.context.problems;
  }

  get present(): boolean {
    return this.value !== undefined;
  }

  /** The last part of the path: an entry's name. */
  get name(): string {
    return String(this.path[this.path.length - 1]);
  }

  /** The schema's words for what belongs here. */
  get expected(): string {
    return this.context.schema.expected(this.schema);
  }

  /** False when the schema rejected this value or one that contains it. */
  get valid(): boolean {
    return !this.problems.rejected(this.path);
  }

  /** Whether any problem (structural or semantic) has been recorded here or below. */
  hasProblems(): boolean {
    return this.problems.under(this.path);
  }

  /** The child under `key`; absent when this is not an object or has no such key. */
  key(key: string): Cursor {
    const child = this.context.schema.child(this.schema, key);
    if (!child) {
      throw new Error(
        `ike-node bug: the configuration code reads "${key}" at ${formatPath(this.path) || 'the top level'}, which schema/peers.schema.json does not define`,
      );
    }
    if (child.pointer) this.context.reads?.add(child.pointer);
    const value = isJsonObject(this.value) ? this.value.get(key) : undefined;
    return new Cursor(this.context, [...this.path, key], value, child.node);
  }

  /** The entries of an object whose keys are names the user chose (connections, policies). */
  entries(): Cursor[] {
    return isJsonObject(this.value) ? [...this.value.keys()].map((key) => this.key(key)) : [];
  }

  /**
   * The items of a list; a lone value where the schema allows "one or a list" is a list of one
   * (with the schema of that one). Nothing for an absent or rejected value.
   */
  items(): Cursor[] {
    const value = this.value;
    if (value === undefined || !this.valid) return [];
    const schema = this.context.schema;
    if (!Array.isArray(value)) {
      return [new Cursor(this.context, this.path, value, schema.branchFor(this.schema, jsonTypeOf(value)))];
    }
    const items = schema.items(schema.branchFor(this.schema, 'array'));
    if (!items) throw new Error(`ike-node bug: the schema has no items for ${formatPath(this.path)}`);
    return value.map((item, i) => new Cursor(this.context, [...this.path, i], item, items));
  }

  /**
   * Records a semantic problem here: by default, that the value is not what the schema's
   * description says. Quiet when the schema rejected this value already.
   */
  fail(
    expected: string = this.expected,
    got: string = describe(this.value, isSecretPath(this.path)),
  ): undefined {
    if (this.valid) this.problems.add(this.path, expected, got);
    return undefined;
  }

  string(): string | undefined {
    return this.#typed('string');
  }

  number(): number | undefined {
    return this.#typed('number');
  }

  /** One of the values the code knows; the schema's enum must not allow others. */
  choice<T extends string | number | boolean>(options: readonly T[]): T | undefined {
    if (this.value === undefined || !this.valid) return undefined;
    const match = options.find((option) => option === this.value);
    if (match === undefined) this.#disagree(alternatives(options));
    return match;
  }

  #typed<K extends 'string' | 'number'>(type: K): (K extends 'string' ? string : number) | undefined {
    if (this.value === undefined || !this.valid) return undefined;
    if (typeof this.value !== type) this.#disagree(`a ${type}`);
    return this.value as K extends 'string' ? string : number;
  }

  #disagree(wanted: string): never {
    throw new Error(
      `ike-node bug: schema/peers.schema.json accepts ${describe(this.value, isSecretPath(this.path))} at ${formatPath(this.path) || 'the top level'}, where the code expects ${wanted}`,
    );
  }
}
