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

/** Where a sealed record keeps its one buffer (a symbol: no enumeration, JSON or spread finds it). */
const STORE = Symbol('sealed keys');

/**
 * One prototype per label, key names and key lengths: it carries the redacting views and a
 * getter per key that cuts that key out of the record's buffer. The lengths follow from the
 * algorithms, so a daemon meets a few dozen shapes at most; past MAX_SHAPES (something
 * unforeseen) records fall back to views made at sealing.
 */
const shapes = new Map<string, object>();
const MAX_SHAPES = 512;

function redactedView(names: readonly string[], record: Record<string, Uint8Array>): Record<string, string> {
  return Object.fromEntries(names.map((name) => [name, describeSecret(record[name])]));
}

function redactingMethods(
  label: string,
  namesOf: (record: object) => readonly string[],
): PropertyDescriptorMap {
  function summary(this: Record<string, Uint8Array>): string {
    return `${label} { ${Object.entries(redactedView(namesOf(this), this))
      .map(([name, text]) => `${name}: ${text}`)
      .join(', ')} }`;
  }
  return {
    toString: { value: summary },
    toJSON: {
      value(this: Record<string, Uint8Array>) {
        return { [label]: redactedView(namesOf(this), this) };
      },
    },
    [inspect.custom]: { value: summary },
  };
}

function shapeOf(label: string, names: readonly string[], lengths: readonly number[]): object | undefined {
  const key = `${label}\0${names.join(',')}\0${lengths.join(',')}`;
  let proto = shapes.get(key);
  if (proto || shapes.size >= MAX_SHAPES) return proto;
  const getters: PropertyDescriptorMap = redactingMethods(label, () => names);
  let offset = 0;
  names.forEach((name, i) => {
    const start = offset;
    const end = (offset += lengths[i]!);
    getters[name] = {
      enumerable: true,
      get(this: { [STORE]: Uint8Array }) {
        return this[STORE].subarray(start, end);
      },
    };
  });
  proto = Object.create(Object.prototype, getters) as object;
  shapes.set(key, proto);
  return proto;
}

/** The fallback's prototype: redacting views only, the keys being own properties. */
const plainPrototypes = new Map<string, object>();

function plainPrototype(label: string): object {
  let proto = plainPrototypes.get(label);
  if (!proto) {
    proto = Object.create(
      Object.prototype,
      redactingMethods(label, (record) => Object.keys(record)),
    ) as object;
    plainPrototypes.set(label, proto);
  }
  return proto;
}

/**
 * The keys are copied into one allocation, and the record cuts each key out of it when asked:
 * an SA's keys cost one buffer and one view instead of a view per key (about 100 bytes each)
 * or an ArrayBuffer per key (a separate backing store and malloc block, about 250 bytes), which
 * at 100,000 SAs is a large part of their memory. Each read makes a new view of the same bytes.
 */
export function sealKeys<T extends KeyRecord>(label: string, keys: T): T {
  const names = Object.keys(keys).filter((name) => keys[name] !== undefined);
  const lengths = names.map((name) => keys[name]!.length);
  const store = new Uint8Array(lengths.reduce((a, b) => a + b, 0));
  let offset = 0;
  for (const name of names) {
    store.set(keys[name]!, offset);
    offset += keys[name]!.length;
  }
  const proto = shapeOf(label, names, lengths);
  if (proto) {
    const sealed = Object.create(proto) as { [STORE]: Uint8Array };
    Object.defineProperty(sealed, STORE, { value: store });
    return Object.freeze(sealed) as unknown as T;
  }
  const sealed = Object.create(plainPrototype(label)) as Record<string, Uint8Array>;
  offset = 0;
  for (const [i, name] of names.entries()) {
    sealed[name] = store.subarray(offset, (offset += lengths[i]!));
  }
  return Object.freeze(sealed) as T;
}
