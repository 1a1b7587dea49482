import type { Reader } from './reader.js';
import type { Writer } from './writer.js';

/**
 * Data attributes as ISAKMP (RFC 2408 section 3.3) and IKEv2 transforms (RFC 7296 section
 * 3.3.5) both encode them: a type word whose top bit says TV (a 16-bit value follows) or TLV (a
 * 16-bit length, then that many bytes). Kept as sent, so that encoding is exact.
 */
export type Attribute =
  { readonly type: number; readonly value: number } | { readonly type: number; readonly bytes: Uint8Array };

/** Every attribute up to the end of `r`. */
export function readAttributes(r: Reader): Attribute[] {
  const attributes: Attribute[] = [];
  while (r.remaining > 0) {
    const word = r.u16('attribute type');
    const type = word & 0x7fff;
    if (word & 0x8000) attributes.push({ type, value: r.u16('attribute value') });
    else attributes.push({ type, bytes: r.take(r.u16('attribute length'), 'attribute value') });
  }
  return attributes;
}

export function writeAttribute(w: Writer, attribute: Attribute): void {
  if ('value' in attribute) w.u16(0x8000 | attribute.type).u16(attribute.value);
  else w.u16(attribute.type).u16(attribute.bytes.length).bytes(attribute.bytes);
}
