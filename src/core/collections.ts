/** Small helpers for the engine's indexes: short lists and groups that usually have one member. */

/**
 * The lists an SA keeps for its lifetime (its child SAs, negotiations, lookup keys, deadlines)
 * are short and are replaced rather than changed in place: V8 grows an array to 17 slots on its
 * first push, about 130 bytes more than one item needs, per list and SA (tens of megabytes at
 * 100,000 SAs). `appended` and `without` make arrays of exactly their length, and an empty list
 * is EMPTY, shared by all.
 */
export const EMPTY: readonly never[] = Object.freeze([]);

export function appended<T>(list: readonly T[], item: T): readonly T[] {
  const next = new Array<T>(list.length + 1);
  for (let i = 0; i < list.length; i++) next[i] = list[i]!;
  next[list.length] = item;
  return next;
}

/** `list` without `item` (the same list when it holds none). */
export function without<T>(list: readonly T[], item: T): readonly T[] {
  const at = list.indexOf(item);
  if (at < 0) return list;
  if (list.length === 1) return EMPTY;
  const next = new Array<T>(list.length - 1);
  for (let i = 0, j = 0; i < list.length; i++) if (i !== at) next[j++] = list[i]!;
  return next;
}

/**
 * The members of a group that usually has one (an identity's IKE SAs, the children under one SPI,
 * a connection with one client): none, the member itself, or a Set from the second member on. A
 * Set costs about 150 bytes even when it holds one item, which at 100,000 SAs and a few indexes
 * each is hundreds of megabytes; the Set from two on keeps removal O(1) where a key has many (a
 * gateway's "any" connection with thousands of clients).
 */
export type Members<V extends object> = V | Set<V> | undefined;

export function join<V extends object>(members: Members<V>, value: V): Members<V> {
  if (members === undefined || members === value) return value;
  if (members instanceof Set) return members.add(value);
  return new Set([members, value]);
}

export function leave<V extends object>(members: Members<V>, value: V): Members<V> {
  if (members === value) return undefined;
  if (!(members instanceof Set)) return members;
  members.delete(value);
  if (members.size > 1) return members;
  // Back to one member (or none): held as itself again.
  const [only] = members;
  return only;
}

export function isMember<V extends object>(members: Members<V>, value: V): boolean {
  return members instanceof Set ? members.has(value) : members === value;
}

/** A copy, safe to iterate while members come and go. */
export function membersOf<V extends object>(members: Members<V>): V[] {
  return members instanceof Set ? [...members] : members === undefined ? [] : [members];
}

/** Keys to the members of their group (Members), the key gone with its last member. */
export class GroupIndex<K, V extends object> {
  readonly #map = new Map<K, Members<V>>();

  add(key: K, value: V): void {
    this.#map.set(key, join(this.#map.get(key), value));
  }

  delete(key: K, value: V): void {
    const members = leave(this.#map.get(key), value);
    if (members === undefined) this.#map.delete(key);
    else this.#map.set(key, members);
  }

  /**
   * The key's members as they are (no copy: a group may be large and the caller may stop at the
   * first that fits); copy them first to change the index while going through them.
   */
  get(key: K): Iterable<V> {
    const members = this.#map.get(key);
    return members === undefined ? EMPTY : members instanceof Set ? members : [members];
  }
}

/**
 * Keys by how many of something each holds, and the key holding the most, both in O(1) per
 * change: which address holds the most half-open SAs, asked for every first message while the
 * table is full, without walking the addresses.
 */
export class CountBuckets<K> {
  readonly #byCount = new Map<number, Set<K>>();
  #most = 0;

  /** `key` now holds `to` where it held `from` (0: none). */
  moved(key: K, from: number, to: number): void {
    if (from > 0) {
      const bucket = this.#byCount.get(from)!;
      bucket.delete(key);
      if (!bucket.size) this.#byCount.delete(from);
    }
    if (to > 0) {
      const bucket = this.#byCount.get(to);
      if (bucket) bucket.add(key);
      else this.#byCount.set(to, new Set([key]));
    }
    // Counts move by one, so the most is either still held or one less.
    if (to > this.#most) this.#most = to;
    else if (!this.#byCount.has(this.#most))
      this.#most = this.#byCount.has(this.#most - 1) ? this.#most - 1 : 0;
  }

  /** A key holding the most (the one that got there first), and how many. */
  busiest(): { key: K; count: number } | undefined {
    const bucket = this.#byCount.get(this.#most);
    if (!bucket) return undefined;
    const [key] = bucket;
    return { key: key as K, count: this.#most };
  }
}
