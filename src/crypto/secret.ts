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

/**
 * The keys are copied into one allocation and the record holds views of it: an SA's keys cost one
 * backing store instead of one per key (each a separate ArrayBuffer and malloc block, about 130
 * bytes of overhead apiece, which at 100,000 SAs is most of their memory).
 */
export function sealKeys<T extends KeyRecord>(label: string, keys: T): T {
  const sealed = Object.create(sealedPrototype(label)) as Record<string, Uint8Array>;
  const names = Object.keys(keys).filter((name) => keys[name] !== undefined);
  let total = 0;
  for (const name of names) total += keys[name]!.length;
  const store = new Uint8Array(total);
  let offset = 0;
  for (const name of names) {
    const key = keys[name]!;
    store.set(key, offset);
    sealed[name] = store.subarray(offset, offset + key.length);
    offset += key.length;
  }
  return Object.freeze(sealed) as T;
}
