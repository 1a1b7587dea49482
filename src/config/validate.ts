import { describe, isSecretPath } from './describe.js';
import type { Problems } from './errors.js';
import { isJsonObject, type Json, type JsonObject, type JsonPath } from './json.js';
import { jsonTypeOf, type Schema, type SchemaNode } from './schema.js';
import { closestName } from './suggest.js';

/**
 * The structural pass: checks a parsed file against the schema and records every problem, each
 * once, at the deepest path that explains it. A value that fails its own keywords (type, enum,
 * range, pattern...) is one problem ("expected <description>, got <value>"), not one per keyword.
 * Among the alternatives of a oneOf/anyOf, the one whose type fits the value speaks (a list given
 * for "a string or a list" is checked item by item); when none or several fit, the problem is the
 * value itself, described by the alternatives' common description.
 */

interface Finding {
  readonly path: JsonPath;
  readonly expected: string;
  readonly got: string;
  readonly summary?: string;
}

export function validate(schema: Schema, document: Json, problems: Problems): void {
  const findings: Finding[] = [];
  new Validator(schema).check(schema.root, document, [], findings);
  for (const { path, expected, got, summary } of findings)
    problems.addStructural(path, expected, got, summary);
}

class Validator {
  constructor(private readonly schema: Schema) {}

  /** `inherited`: the description of the oneOf/anyOf this node is an alternative of. */
  check(node: SchemaNode, value: Json, path: JsonPath, out: Finding[], inherited?: string): void {
    const n = this.schema.resolve(node);
    if (!this.ownKeywordsHold(n, value)) {
      out.push({
        path,
        expected: this.schema.expected(n, inherited),
        got: describe(value, isSecretPath(path)),
      });
      return;
    }
    if (isJsonObject(value)) this.checkObject(n, value, path, out);
    if (Array.isArray(value) && n.items) {
      value.forEach((item, i) => this.check(n.items!, item, [...path, i], out));
    }
    const alternatives = n.oneOf ?? n.anyOf;
    if (alternatives) {
      this.checkAlternatives(n, alternatives, n.oneOf !== undefined, value, path, out, inherited);
    }
  }

  private ownKeywordsHold(n: SchemaNode, value: Json): boolean {
    if (n.type !== undefined) {
      const types = typeof n.type === 'string' ? [n.type] : n.type;
      const type = jsonTypeOf(value);
      if (!types.some((t) => t === type || (t === 'number' && type === 'integer'))) return false;
    }
    if (n.const !== undefined && value !== n.const) return false;
    if (n.enum && !n.enum.some((option) => option === value)) return false;
    if (typeof value === 'number') {
      if (n.minimum !== undefined && value < n.minimum) return false;
      if (n.maximum !== undefined && value > n.maximum) return false;
      if (n.multipleOf !== undefined && value % n.multipleOf !== 0) return false;
    }
    if (typeof value === 'string') {
      if (n.minLength !== undefined && [...value].length < n.minLength) return false;
      if (n.pattern !== undefined && !this.schema.pattern(n.pattern).test(value)) return false;
    }
    if (Array.isArray(value) && n.minItems !== undefined && value.length < n.minItems) return false;
    return true;
  }

  private checkObject(n: SchemaNode, value: JsonObject, path: JsonPath, out: Finding[]): void {
    const allowed = Object.keys(n.properties ?? {});
    for (const [key, child] of value) {
      const at = [...path, key];
      if (n.propertyNames && !this.accepts(n.propertyNames, key)) {
        out.push({
          path: at,
          expected: this.schema.expected(n.propertyNames),
          got: `the name ${JSON.stringify(key)}`,
        });
      }
      if (n.properties && Object.hasOwn(n.properties, key)) this.check(n.properties[key]!, child, at, out);
      else if (n.additionalProperties) this.check(n.additionalProperties, child, at, out);
      else if (n.additionalProperties === false) out.push(unknownKey(at, key, allowed));
    }
    for (const key of n.required ?? []) {
      if (value.has(key)) continue;
      const property = n.properties?.[key];
      out.push({
        path: [...path, key],
        expected: property ? this.schema.expected(property) : `the key ${JSON.stringify(key)}`,
        got: 'nothing',
      });
    }
  }

  private checkAlternatives(
    n: SchemaNode,
    alternatives: readonly SchemaNode[],
    exactlyOne: boolean,
    value: Json,
    path: JsonPath,
    out: Finding[],
    inherited: string | undefined,
  ): void {
    const passDown = n.description ?? inherited;
    const results = alternatives.map((branch) => {
      const found: Finding[] = [];
      this.check(branch, value, path, found, passDown);
      return found;
    });
    const matches = results.filter((found) => found.length === 0).length;
    if (matches === 1 || (matches > 1 && !exactlyOne)) return;
    const type = jsonTypeOf(value);
    const fitting = alternatives.flatMap((branch, i) => (this.schema.admitsType(branch, type) ? [i] : []));
    if (matches === 0 && fitting.length === 1) {
      out.push(...results[fitting[0]!]!);
      return;
    }
    out.push({
      path,
      expected: this.schema.expected(n, inherited),
      got: describe(value, isSecretPath(path)),
    });
  }

  private accepts(node: SchemaNode, value: Json): boolean {
    const found: Finding[] = [];
    this.check(node, value, [], found);
    return found.length === 0;
  }
}

function unknownKey(path: JsonPath, key: string, allowed: readonly string[]): Finding {
  const suggestion = closestName(key, allowed);
  const expected = allowed.length ? `one of the keys ${allowed.join(', ')}` : 'no keys here';
  return {
    path,
    expected,
    got: `unknown key ${JSON.stringify(key)}`,
    summary: suggestion
      ? `unknown key; did you mean ${JSON.stringify(suggestion)}?`
      : `unknown key; expected ${expected}`,
  };
}
