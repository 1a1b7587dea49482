/**
 * Expected bytes for the XFRM tests, written field by field at the offsets of
 * include/uapi/linux/xfrm.h on x86_64 (little-endian host order; __be16/__be32 and addresses in
 * network order). Deliberately independent of src/kernel/xfrm/structs.ts: a test that built its
 * expectation with the encoder would only check the encoder against itself.
 */
export class Layout {
  readonly bytes: Uint8Array;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }
  u8(offset: number, value: number): this {
    this.bytes[offset] = value;
    return this;
  }
  u16(offset: number, value: number): this {
    this.bytes[offset] = value & 0xff;
    this.bytes[offset + 1] = (value >> 8) & 0xff;
    return this;
  }
  be16(offset: number, value: number): this {
    this.bytes[offset] = (value >> 8) & 0xff;
    this.bytes[offset + 1] = value & 0xff;
    return this;
  }
  u32(offset: number, value: number): this {
    for (let i = 0; i < 4; i++) this.bytes[offset + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
    return this;
  }
  be32(offset: number, value: number): this {
    for (let i = 0; i < 4; i++) this.bytes[offset + 3 - i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
    return this;
  }
  /** A __u64: `value` as a bigint, little-endian. */
  u64(offset: number, value: bigint): this {
    for (let i = 0; i < 8; i++) this.bytes[offset + i] = Number((value >> BigInt(8 * i)) & 0xffn);
    return this;
  }
  /** Raw bytes (an address, a key, an algorithm name). */
  put(offset: number, bytes: Uint8Array | readonly number[]): this {
    this.bytes.set(bytes, offset);
    return this;
  }
  ascii(offset: number, text: string): this {
    for (let i = 0; i < text.length; i++) this.bytes[offset + i] = text.charCodeAt(i);
    return this;
  }
}

export const INF = 0xffff_ffff_ffff_ffffn;

/** An IPv4 address as its 4 bytes. */
export function ip4(text: string): number[] {
  return text.split('.').map(Number);
}

/** A netlink attribute: 2-byte length (header included), 2-byte type, value, zero padding to 4. */
export function attr(type: number, value: Uint8Array): Uint8Array {
  const length = 4 + value.length;
  const out = new Uint8Array((length + 3) & ~3);
  out[0] = length & 0xff;
  out[1] = length >> 8;
  out[2] = type & 0xff;
  out[3] = type >> 8;
  out.set(value, 4);
  return out;
}

export function join(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/**
 * xfrm_lifetime_cfg (64 bytes) as iproute2 and the backend leave it by default: no byte or
 * packet limit (XFRM_INF), no seconds (0). Written into `l` at `at`.
 */
export function defaultLifetimeCfg(l: Layout, at: number, seconds = { soft: 0n, hard: 0n }): void {
  l.u64(at + 0, INF); // soft_byte_limit
  l.u64(at + 8, INF); // hard_byte_limit
  l.u64(at + 16, INF); // soft_packet_limit
  l.u64(at + 24, INF); // hard_packet_limit
  l.u64(at + 32, seconds.soft); // soft_add_expires_seconds
  l.u64(at + 40, seconds.hard); // hard_add_expires_seconds
  // 48: soft_use_expires_seconds 0, 56: hard_use_expires_seconds 0
}
