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

/** An address as an unsigned integer (big-endian bytes), for range arithmetic. */
export function addressToBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

export function bigIntToAddress(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/**
 * The fewest aligned power-of-two blocks that cover [start, end] exactly, over `bits`-bit values
 * (addresses or ports): each block's first value and log2 of its size.
 */
export function alignedBlocks(start: bigint, end: bigint, bits: number): { base: bigint; size: number }[] {
  const blocks: { base: bigint; size: number }[] = [];
  let base = start;
  while (base <= end) {
    // The largest block aligned at `base` that does not run past `end`.
    let size = 0;
    while (size < bits) {
      const next = 1n << BigInt(size + 1);
      if (base % next !== 0n || base + next - 1n > end) break;
      size++;
    }
    blocks.push({ base, size });
    base += 1n << BigInt(size);
  }
  return blocks;
}

/** An address range as the fewest prefixes that cover it exactly (192.0.2.10-20: .10/31 .12/30 .16/30 .20/32). */
export function rangePrefixes(start: Uint8Array, end: Uint8Array): { address: Uint8Array; prefix: number }[] {
  const bits = start.length * 8;
  return alignedBlocks(addressToBigInt(start), addressToBigInt(end), bits).map(({ base, size }) => ({
    address: bigIntToAddress(base, start.length),
    prefix: bits - size,
  }));
}
