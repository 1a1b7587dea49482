import type { JsonType, SchemaNode } from './schema.js';

/**
 * The TypeScript type of peers.json, written from its JSON Schema (schema/peers.schema.json, the
 * one description of the file): `npm run schema:types` writes src/config/peers-config.ts with it,
 * and a test fails when that file no longer matches the schema. A key the schema does not know is
 * then a compile error for a library user (`createNode({ conections: ... })`), as it is a
 * configuration error for the daemon.
 */

const HEADER =
  '// Written by `npm run schema:types` from schema/peers.schema.json: change the schema, not this file.\n\n';

/** The module text: `PeersConfig` and one type per `$defs` entry (`Config` + its name). */
export function schemaTypes(schema: SchemaNode & { readonly $defs?: Record<string, SchemaNode> }): string {
  const parts = [
    doc(schema.description ?? 'A peers.json configuration, as createNode() takes it.', ''),
    `export type PeersConfig = ${typeOf(schema, '')};\n`,
  ];
  for (const [name, node] of Object.entries(schema.$defs ?? {})) {
    parts.push(
      `\n${doc(node.description, '')}export type ${typeName(`#/$defs/${name}`)} = ${typeOf(node, '')};\n`,
    );
  }
  return HEADER + parts.join('');
}

function typeName(ref: string): string {
  const name = ref.slice('#/$defs/'.length);
  return `Config${name[0]!.toUpperCase()}${name.slice(1)}`;
}

function typeOf(node: SchemaNode, indent: string): string {
  const branches = node.oneOf ?? node.anyOf;
  // Branches that only require keys (a psk source: "file" or "env") choose among the node's own keys.
  if (branches?.every((branch) => Object.keys(branch).every((key) => key === 'required')))
    return branches.map((branch) => objectOf(node, indent, branch.required ?? [])).join(' | ');
  if (branches) return branches.map((branch) => typeOf(branch, indent)).join(' | ');
  if (node.$ref !== undefined) return typeName(node.$ref);
  if (node.const !== undefined) return JSON.stringify(node.const);
  if (node.enum) return node.enum.map((value) => JSON.stringify(value)).join(' | ');
  const types: readonly JsonType[] =
    node.type === undefined
      ? node.properties
        ? ['object']
        : []
      : typeof node.type === 'string'
        ? [node.type]
        : node.type;
  if (!types.length) return 'unknown';
  return types
    .map((type) => {
      switch (type) {
        case 'integer':
        case 'number':
          return 'number';
        case 'array':
          return `readonly ${node.items ? wrap(typeOf(node.items, indent)) : 'unknown'}[]`;
        case 'object':
          return objectOf(node, indent, node.required ?? []);
        default:
          return type;
      }
    })
    .join(' | ');
}

function objectOf(node: SchemaNode, indent: string, required: readonly string[]): string {
  const inner = `${indent}  `;
  const lines = Object.entries(node.properties ?? {}).map(
    ([key, property]) =>
      `${doc(property.description, inner)}${inner}readonly ${propertyKey(key)}${required.includes(key) ? '' : '?'}: ${typeOf(property, inner)};\n`,
  );
  if (node.additionalProperties)
    lines.push(`${inner}readonly [name: string]: ${typeOf(node.additionalProperties, inner)};\n`);
  else if (node.additionalProperties === undefined && !node.properties)
    lines.push(`${inner}readonly [name: string]: unknown;\n`);
  return `{\n${lines.join('')}${indent}}`;
}

function wrap(type: string): string {
  return /^[\w.]+$/.test(type) ? type : `(${type})`;
}

function propertyKey(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key);
}

function doc(description: string | undefined, indent: string): string {
  if (!description) return '';
  return `${indent}/** ${description.replace(/\*\//g, '*\\/')} */\n`;
}
