import { inspect } from 'node:util';

/**
 * Key material travels as plain Uint8Arrays, so anything that holds keys must keep them out of logs.
 * `sealKeys` returns a frozen record whose fields are the keys, and whose toString, toJSON and
 * util.inspect views show only names and lengths.
 */
export type KeyRecord = Readonly<Record<string, Uint8Array>>;

export function describeSecret(bytes: Uint8Array | undefined): string {
  return bytes === undefined ? '<none>' : `<secret ${bytes.length} bytes>`;
}

export function sealKeys<T extends KeyRecord>(label: string, keys: T): T {
  const redactedView = (): Record<string, string> =>
    Object.fromEntries(Object.entries(keys).map(([name, value]) => [name, describeSecret(value)]));
  const summary = (): string =>
    `${label} { ${Object.entries(redactedView())
      .map(([name, text]) => `${name}: ${text}`)
      .join(', ')} }`;
  Object.defineProperties(keys, {
    toString: { value: summary },
    toJSON: { value: () => ({ [label]: redactedView() }) },
    [inspect.custom]: { value: summary },
  });
  return Object.freeze(keys);
}
