import { readFileSync } from 'node:fs';
import { alternatives } from './describe.js';

/**
 * The JSON Schema of peers.json (schema/peers.schema.json, draft 2020-12), loaded for the
 * validator. It is the one description of the file's structure: key names, enums, ranges and
 * shapes. Only the subset below is supported, and a schema using anything else is refused when it
 * is loaded, so that nothing in it is silently ignored. Each `description` is written to follow
 * "expected" in an error message, and editors show it as a hint.
 */

export type JsonType = 'null' | 'boolean' | 'integer' | 'number' | 'string' | 'array' | 'object';
export type SchemaScalar = string | number | boolean | null;

export interface SchemaNode {
  readonly $ref?: string;
  readonly type?: JsonType | readonly JsonType[];
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly additionalProperties?: SchemaNode | false;
  readonly propertyNames?: SchemaNode;
  readonly required?: readonly string[];
  readonly enum?: readonly SchemaScalar[];
  readonly const?: SchemaScalar;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly multipleOf?: number;
  readonly minLength?: number;
  readonly pattern?: string;
  readonly items?: SchemaNode;
  readonly minItems?: number;
  readonly oneOf?: readonly SchemaNode[];
  readonly anyOf?: readonly SchemaNode[];
  readonly description?: string;
  readonly default?: unknown;
}

const VALIDATION = new Set([
  '$ref',
  'type',
  'properties',
  'additionalProperties',
  'propertyNames',
  'required',
  'enum',
  'const',
  'minimum',
  'maximum',
  'multipleOf',
  'minLength',
  'pattern',
  'items',
  'minItems',
  'oneOf',
  'anyOf',
]);
/** Keywords that only inform (editors, readers): allowed anywhere, ignored by the validator. */
const ANNOTATIONS = new Set([
  '$schema',
  '$id',
  '$comment',
  '$defs',
  'title',
  'description',
  'default',
  'examples',
]);

/** A child node and, for a fixed key, where the schema declares it (a JSON pointer). */
export interface ChildSchema {
  readonly node: SchemaNode;
  readonly pointer?: string;
}

export class Schema {
  readonly root: SchemaNode;
  readonly #defs: Readonly<Record<string, SchemaNode>>;
  readonly #resolved = new WeakMap<SchemaNode, SchemaNode>();
  readonly #patterns = new Map<string, RegExp>();
  /** Each `properties` object and its JSON pointer, to name the keys the code reads. */
  readonly #pointers = new WeakMap<object, string>();

  constructor(document: unknown) {
    if (!isRecord(document)) throw new Error('schema: the document is not an object');
    const defs = document.$defs ?? {};
    if (!isRecord(defs)) throw new Error('schema: $defs is not an object');
    this.root = document as SchemaNode;
    this.#defs = defs as Record<string, SchemaNode>;
    this.#inspect(document, '#');
  }

  /** Follows $ref (local `#/$defs/NAME` only); annotations next to a $ref win over the target's. */
  resolve(node: SchemaNode): SchemaNode {
    if (node.$ref === undefined) return node;
    const cached = this.#resolved.get(node);
    if (cached) return cached;
    const target = this.#defs[node.$ref.slice('#/$defs/'.length)]!;
    const merged: { $ref?: string } & SchemaNode = { ...this.resolve(target), ...node };
    delete merged.$ref;
    this.#resolved.set(node, merged);
    return merged;
  }

  pattern(source: string): RegExp {
    let regex = this.#patterns.get(source);
    if (!regex) {
      regex = new RegExp(source, 'u');
      this.#patterns.set(source, regex);
    }
    return regex;
  }

  /** The node that describes `key` inside objects matching `node` (through $ref, oneOf and anyOf). */
  child(node: SchemaNode, key: string): ChildSchema | undefined {
    const n = this.resolve(node);
    const property = n.properties && Object.hasOwn(n.properties, key) ? n.properties[key] : undefined;
    if (property) return { node: property, pointer: `${this.#pointers.get(n.properties!)}/${escape(key)}` };
    for (const branch of n.oneOf ?? n.anyOf ?? []) {
      const found = this.child(branch, key);
      if (found) return found;
    }
    if (n.additionalProperties) return { node: n.additionalProperties };
    return undefined;
  }

  /** The node for the items of lists matching `node` (through $ref, oneOf and anyOf). */
  items(node: SchemaNode): SchemaNode | undefined {
    const n = this.resolve(node);
    if (n.items) return n.items;
    for (const branch of n.oneOf ?? n.anyOf ?? []) {
      const found = this.items(branch);
      if (found) return found;
    }
    return undefined;
  }

  /** The alternative of a oneOf/anyOf whose type fits the value ("a string or a list": the string). */
  branchFor(node: SchemaNode, type: JsonType): SchemaNode {
    const n = this.resolve(node);
    const alternatives = n.oneOf ?? n.anyOf;
    if (!alternatives) return node;
    const fitting = alternatives.filter((branch) => this.admitsType(branch, type));
    return fitting.length === 1 ? this.branchFor(fitting[0]!, type) : node;
  }

  /** Whether a node could accept some value of this JSON type (integers count as numbers). */
  admitsType(node: SchemaNode, type: JsonType): boolean {
    const n = this.resolve(node);
    const types = n.type === undefined ? undefined : typeof n.type === 'string' ? [n.type] : n.type;
    if (types) return types.some((t) => sameFamily(t, type));
    const values = n.const !== undefined ? [n.const] : n.enum;
    if (values) return values.some((value) => sameFamily(jsonTypeOf(value), type));
    const alternatives = n.oneOf ?? n.anyOf;
    if (alternatives) return alternatives.some((branch) => this.admitsType(branch, type));
    return true;
  }

  /**
   * What a value at this node should be, in words: its description, else `inherited` (the
   * description of the oneOf/anyOf it is an alternative of), else words made from the keywords.
   */
  expected(node: SchemaNode, inherited?: string): string {
    const n = this.resolve(node);
    if (n.description !== undefined) return n.description;
    if (inherited !== undefined) return inherited;
    if (n.const !== undefined) return JSON.stringify(n.const);
    if (n.enum) return alternatives(n.enum);
    const branches = n.oneOf ?? n.anyOf;
    if (branches) return branches.map((branch) => this.expected(branch)).join(', or ');
    switch (typeof n.type === 'string' ? n.type : undefined) {
      case 'integer':
        return withRange('a whole number', n);
      case 'number':
        return withRange('a number', n);
      case 'string':
        return 'a string';
      case 'boolean':
        return 'true or false';
      case 'array':
        return 'a list';
      case 'object':
        return n.properties ? `an object with the keys ${Object.keys(n.properties).join(', ')}` : 'an object';
      default:
        return 'a value';
    }
  }

  /** Checks that only supported keywords are used and that every $ref and pattern works. */
  #inspect(node: unknown, pointer: string): void {
    if (!isRecord(node)) throw new Error(`schema: ${pointer} is not a schema object`);
    for (const [keyword, value] of Object.entries(node)) {
      const at = `${pointer}/${escape(keyword)}`;
      if (!VALIDATION.has(keyword) && !ANNOTATIONS.has(keyword)) {
        throw new Error(`schema: ${at}: the validator does not implement "${keyword}"`);
      }
      if (keyword === '$defs' || keyword === 'properties') {
        if (!isRecord(value)) throw new Error(`schema: ${at} is not an object`);
        if (keyword === 'properties') this.#pointers.set(value, at);
        for (const [name, child] of Object.entries(value)) this.#inspect(child, `${at}/${escape(name)}`);
      } else if (keyword === 'oneOf' || keyword === 'anyOf') {
        if (!Array.isArray(value) || value.length === 0) throw new Error(`schema: ${at} is not a list`);
        value.forEach((child, i) => this.#inspect(child, `${at}/${i}`));
      } else if (keyword === 'items' || keyword === 'propertyNames') {
        this.#inspect(value, at);
      } else if (keyword === 'additionalProperties' && value !== false) {
        this.#inspect(value, at);
      } else if (keyword === '$ref') {
        const name = typeof value === 'string' && value.startsWith('#/$defs/') ? value.slice(8) : undefined;
        if (name === undefined || !Object.hasOwn(this.#defs, name)) {
          throw new Error(`schema: ${at}: ${JSON.stringify(value)} is not a local #/$defs/ reference`);
        }
      } else if (keyword === 'pattern') {
        this.pattern(String(value));
      }
    }
  }
}

export function jsonTypeOf(value: unknown): JsonType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Map) return 'object';
  switch (typeof value) {
    case 'boolean':
      return 'boolean';
    case 'number':
      return Number.isInteger(value) ? 'integer' : 'number';
    case 'string':
      return 'string';
    default:
      return 'object';
  }
}

/** Equal types, with integers and other numbers as one family (3.5 is a wrong "integer", not a wrong type). */
function sameFamily(a: JsonType, b: JsonType): boolean {
  const numeric = (t: JsonType) => t === 'integer' || t === 'number';
  return a === b || (numeric(a) && numeric(b));
}

function withRange(what: string, n: SchemaNode): string {
  if (n.minimum !== undefined && n.maximum !== undefined) return `${what} from ${n.minimum} to ${n.maximum}`;
  if (n.minimum !== undefined) return `${what} of at least ${n.minimum}`;
  if (n.maximum !== undefined) return `${what} of at most ${n.maximum}`;
  return what;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON pointer escaping (RFC 6901). */
function escape(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

export const SCHEMA_URL = new URL('../../schema/peers.schema.json', import.meta.url);

/** The schema shipped with the package (schema/ sits two levels above both src/config and dist/config). */
export const PEERS_SCHEMA = new Schema(JSON.parse(readFileSync(SCHEMA_URL, 'utf8')));
