/**
 * SAs indexed for the lookups a received message needs: by SPI pair once both are known, by the
 * initiator's SPI alone while the responder's is not (a reply to our first message, or a
 * retransmitted first message). Keys are opaque strings chosen by the engine; an SA may have
 * several, and removing it drops them all.
 */
export class SaTable<T extends { readonly id: number }> {
  readonly #byKey = new Map<string, T>();
  readonly #keysOf = new Map<number, Set<string>>();
  readonly #byId = new Map<number, T>();

  add(sa: T, ...keys: string[]): void {
    this.#byId.set(sa.id, sa);
    for (const key of keys) this.index(sa, key);
  }

  index(sa: T, key: string): void {
    this.#byKey.set(key, sa);
    let keys = this.#keysOf.get(sa.id);
    if (!keys) this.#keysOf.set(sa.id, (keys = new Set()));
    keys.add(key);
  }

  get(key: string): T | undefined {
    return this.#byKey.get(key);
  }

  byId(id: number): T | undefined {
    return this.#byId.get(id);
  }

  remove(sa: T): void {
    for (const key of this.#keysOf.get(sa.id) ?? []) {
      if (this.#byKey.get(key) === sa) this.#byKey.delete(key);
    }
    this.#keysOf.delete(sa.id);
    this.#byId.delete(sa.id);
  }

  get size(): number {
    return this.#byId.size;
  }

  values(): IterableIterator<T> {
    return this.#byId.values();
  }
}
