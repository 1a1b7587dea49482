/**
 * Simultaneous rekeys (RFC 7296 sections 2.8.1 and 2.8.2): when both ends rekey the same SA at
 * once, both exchanges complete, and the SA made by the exchange holding the lowest of the four
 * nonces is redundant; the end that started that exchange deletes it. Both ends compare the same
 * four nonces, so they agree on which one goes without another message.
 */

/** Our exchange's nonces and the peer's crossing exchange's. */
export interface CrossedNonces {
  readonly ours: { readonly Ni: Uint8Array; readonly Nr: Uint8Array };
  readonly theirs: { readonly Ni: Uint8Array; readonly Nr: Uint8Array };
}

/** Whether our exchange holds the lowest nonce: then what it made is the one to delete. */
export function oursIsRedundant({ ours, theirs }: CrossedNonces): boolean {
  return compare(lower(ours.Ni, ours.Nr), lower(theirs.Ni, theirs.Nr)) < 0;
}

function lower(a: Uint8Array, b: Uint8Array): Uint8Array {
  return compare(a, b) <= 0 ? a : b;
}

/** Nonces compared as unsigned big-endian octet strings, a prefix before its extensions. */
function compare(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
