/**
 * Small byte strings that state keeps for an SA's lifetime (its cookies or SPIs, the addresses of
 * its child SAs' selectors), as views into shared slabs.
 *
 * Why: in V8 every ArrayBuffer of its own costs about 250 bytes beyond its data (the
 * JSArrayBuffer, a BackingStore and two malloc chunks of bookkeeping), and a small typed array
 * that V8 keeps on its heap gets such a buffer as soon as anything reads its `.buffer` (a hex
 * dump, a Buffer view, a DataView). Measured per object (RSS of 200,000 of each): a pair of
 * views on an ArrayBuffer of their own 690 bytes, a lone typed array once its `.buffer` was read
 * 543, the same in a slab 418 and 206; with an IKEv1 SA's cookie pair and its child's two
 * selectors that is about 90 MB at 100,000 SAs. A view into a slab costs its typed array alone.
 *
 * A slab stays alive while any view into it does, so one long-lived view can hold the rest of
 * its slab after the others are gone; SAs come and go in waves (a burst of clients, rekeys
 * spread over a lifetime), so a slab's views mostly go together, and a slab is small.
 *
 * Not for secrets (nothing wipes a slab), nor for bytes handed to postMessage (a structured
 * clone copies the whole slab). A view may be written by its owner only (CKY_R is filled in
 * place once known).
 */

/** Bytes per slab; anything larger than an eighth of it gets an allocation of its own. */
const SLAB = 2048;

let slab = new ArrayBuffer(0);
let used = 0;

/** `length` zero bytes, kept. */
export function keptBytes(length: number): Uint8Array {
  if (length > SLAB / 8) return new Uint8Array(length);
  if (used + length > slab.byteLength) {
    slab = new ArrayBuffer(SLAB);
    used = 0;
  }
  const view = new Uint8Array(slab, used, length);
  used += length;
  return view;
}

/**
 * A kept copy of `bytes`. Also what keeps a decoded field from holding its whole datagram alive,
 * as a subarray of it would.
 */
export function keptCopy(bytes: Uint8Array): Uint8Array {
  const copy = keptBytes(bytes.length);
  copy.set(bytes);
  return copy;
}
