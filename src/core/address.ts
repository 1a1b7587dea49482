import { isIPv4, isIPv6 } from 'node:net';

/** IP addresses as bytes (4 or 16), the form every payload carries them in. */

export function parseAddress(text: string): Uint8Array {
  if (isIPv4(text)) return Uint8Array.from(text.split('.').map(Number));
  if (isIPv6(text)) return parseIPv6(text);
  throw new RangeError(`'${text}' is not an IPv4 or IPv6 address`);
}

function parseIPv6(text: string): Uint8Array {
  let source = text;
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(source);
  if (v4) {
    const b = parseAddress(v4[1]!);
    source = `${source.slice(0, v4.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = source.split('::') as [string, string | undefined];
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const left = groups(head);
  const right = groups(tail);
  const middle = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  const all = [...left, ...middle, ...right];
  const out = new Uint8Array(16);
  all.forEach((group, i) => {
    const value = Number.parseInt(group, 16);
    out[i * 2] = value >> 8;
    out[i * 2 + 1] = value & 0xff;
  });
  return out;
}

export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.length !== 16) throw new RangeError(`an address has 4 or 16 bytes, not ${bytes.length}`);
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[i * 2]! << 8) | bytes[i * 2 + 1]!);
  // RFC 5952: compress the longest run (of two or more) of zero groups.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** The first `prefix` bits set: the netmask of a subnet, 4 or 16 bytes. */
export function prefixMask(prefix: number, length: 4 | 16): Uint8Array {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > length * 8) {
    throw new RangeError(`prefix /${prefix} does not fit a ${length * 8}-bit address`);
  }
  const mask = new Uint8Array(length);
  for (let bit = 0; bit < prefix; bit++) mask[bit >> 3]! |= 0x80 >> (bit & 7);
  return mask;
}

/** The prefix length of a contiguous netmask, or undefined when the mask has holes. */
export function maskPrefix(mask: Uint8Array): number | undefined {
  let prefix = 0;
  while (prefix < mask.length * 8 && mask[prefix >> 3]! & (0x80 >> (prefix & 7))) prefix++;
  return prefixMask(prefix, mask.length as 4 | 16).every((byte, i) => byte === mask[i]) ? prefix : undefined;
}

export function compareAddresses(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
