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

/** One prototype per label carries the redacting views, so sealing costs an object, not closures. */
const prototypes = new Map<string, object>();

function sealedPrototype(label: string): object {
  let proto = prototypes.get(label);
  if (proto) return proto;
  const redactedView = (keys: object): Record<string, string> =>
    Object.fromEntries(
      Object.entries(keys).map(([name, value]) => [name, describeSecret(value as Uint8Array)]),
    );
  function summary(this: object): string {
    return `${label} { ${Object.entries(redactedView(this))
      .map(([name, text]) => `${name}: ${text}`)
      .join(', ')} }`;
  }
  proto = Object.create(Object.prototype, {
    toString: { value: summary },
    toJSON: {
      value(this: object) {
        return { [label]: redactedView(this) };
      },
    },
    [inspect.custom]: { value: summary },
  }) as object;
  prototypes.set(label, proto);
  return proto;
}

export function sealKeys<T extends KeyRecord>(label: string, keys: T): T {
  return Object.freeze(Object.assign(Object.create(sealedPrototype(label)) as T, keys));
}
