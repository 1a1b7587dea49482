import { isJsonObject, type Json, type JsonPath } from './json.js';

/**
 * How a found value is shown in a message: quoted and shortened; an object by its keys (names
 * of settings, never secrets); under a `psk` key, a string or number only by its type and length.
 */
export function describe(value: Json | undefined, secret = false): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return value.length ? 'a list' : 'an empty list';
  if (isJsonObject(value)) {
    const keys = [...value.keys()].map((key) => JSON.stringify(key));
    if (keys.length === 0) return 'an empty object';
    if (keys.length > 4) return `an object with the keys ${keys.slice(0, 4).join(', ')}...`;
    const last = keys.pop()!;
    return keys.length
      ? `an object with the keys ${keys.join(', ')} and ${last}`
      : `an object with the key ${last}`;
  }
  if (secret)
    return typeof value === 'string' ? `a string of ${value.length} characters` : `a ${typeof value}`;
  if (typeof value === 'string') {
    const quoted = JSON.stringify(value);
    return quoted.length > 80 ? `${quoted.slice(0, 76)}..."` : quoted;
  }
  return String(value);
}

/** Whether a path lies under a `psk` key, where values are keys (or parts of keys) to hide. */
export function isSecretPath(path: JsonPath): boolean {
  return path.includes('psk');
}

/** What a reference to a named entry should be, naming the entries there are. */
export function entryName(section: string, names: Iterable<string>): string {
  const known = [...names];
  return `the name of an entry of ${section} (${known.length ? known.join(', ') : 'there are none'})`;
}

/** The values a setting may take, as a sentence: `"a", "b" or "c"`. */
export function alternatives(values: readonly unknown[]): string {
  const quoted = values.map((value) => JSON.stringify(value));
  const last = quoted.pop()!;
  return quoted.length ? `${quoted.join(', ')} or ${last}` : last;
}
