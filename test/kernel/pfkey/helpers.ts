/**
 * Test helpers for PF_KEY: an independent byte builder that writes the kernel structs field by
 * field from the headers (Linux include/uapi/linux/pfkeyv2.h, OpenBSD sys/net/pfkeyv2.h), so
 * that expected bytes never come from the encoder under test; and a fake native shim.
 * Host-order fields are little-endian here (the tests pass littleEndian: true to the codec).
 */
import type { Native, NativeError } from '../../../src/native/types.js';

export class B {
  private readonly out: number[] = [];
  get length(): number {
    return this.out.length;
  }
  u8(value: number): this {
    this.out.push(value & 0xff);
    return this;
  }
  /** Host order (little-endian). */
  u16(value: number): this {
    return this.u8(value).u8(value >> 8);
  }
  u32(value: number): this {
    return this.u16(value & 0xffff).u16(value >>> 16);
  }
  u64(value: bigint | number): this {
    const v = BigInt(value);
    return this.u32(Number(v & 0xffffffffn)).u32(Number(v >> 32n));
  }
  /** Network order. */
  be16(value: number): this {
    return this.u8(value >> 8).u8(value);
  }
  be32(value: number): this {
    return this.be16(value >>> 16).be16(value & 0xffff);
  }
  bytes(data: ArrayLike<number>): this {
    for (let i = 0; i < data.length; i++) this.u8(data[i]!);
    return this;
  }
  zeros(count: number): this {
    for (let i = 0; i < count; i++) this.u8(0);
    return this;
  }
  /** Zero padding up to the next multiple of 8 (PF_KEY alignment). */
  pad8(): this {
    return this.zeros((8 - (this.out.length % 8)) % 8);
  }
  add(other: B | Uint8Array): this {
    return this.bytes(other instanceof B ? other.done() : other);
  }
  done(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

export type Flavour = 'linux' | 'openbsd';

export function ip(text: string): number[] {
  if (text.includes(':')) {
    const [head, tail] = text.split('::') as [string, string | undefined];
    const left = head ? head.split(':') : [];
    const right = tail ? tail.split(':') : [];
    const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
    return groups.flatMap((group) => {
      const value = parseInt(group, 16);
      return [value >> 8, value & 0xff];
    });
  }
  return text.split('.').map(Number);
}

/**
 * sockaddr_in (16 bytes): Linux 0 sin_family u16 = AF_INET 2; OpenBSD 0 sin_len u8 = 16, 1 sin_family
 * u8 = 2; then 2 sin_port (network order), 4 sin_addr, 8 sin_zero[8].
 * sockaddr_in6 (28 bytes): Linux 0 family u16 = AF_INET6 10; OpenBSD 0 len 28, 1 family 24; 2 port,
 * 4 flowinfo u32, 8 addr[16], 24 scope_id u32.
 */
export function sockaddr(flavour: Flavour, address: string, port = 0): B {
  const bytes = ip(address);
  const b = new B();
  const v6 = bytes.length === 16;
  if (flavour === 'linux') b.u16(v6 ? 10 : 2);
  else b.u8(v6 ? 28 : 16).u8(v6 ? 24 : 2);
  b.be16(port);
  if (v6) b.u32(0).bytes(bytes).u32(0);
  else b.bytes(bytes).zeros(8);
  return b;
}

/** sadb_msg (16): 0 version 2, 1 type, 2 errno, 3 satype, 4 len (words), 6 reserved, 8 seq, 12 pid. */
export function msg(
  fields: { type: number; satype: number; seq: number; pid: number; errno?: number; reserved?: number },
  ...extensions: (B | Uint8Array)[]
): Uint8Array {
  const body = new B();
  for (const ext of extensions) body.add(ext);
  const b = new B()
    .u8(2) // 0 sadb_msg_version PF_KEY_V2
    .u8(fields.type) // 1 sadb_msg_type
    .u8(fields.errno ?? 0) // 2 sadb_msg_errno
    .u8(fields.satype) // 3 sadb_msg_satype
    .u16((16 + body.length) / 8) // 4 sadb_msg_len, 64-bit words
    .u16(fields.reserved ?? 0) // 6 sadb_msg_reserved
    .u32(fields.seq) // 8 sadb_msg_seq
    .u32(fields.pid); // 12 sadb_msg_pid
  return b.add(body).done();
}

/** sadb_sa (16): 0 len 2, 2 exttype 1, 4 spi (network order), 8 replay, 9 state, 10 auth, 11 encrypt, 12 flags. */
export function extSa(f: {
  spi: number;
  replay?: number;
  state?: number;
  auth?: number;
  encrypt?: number;
  flags?: number;
  type?: number;
}): B {
  return new B()
    .u16(2) // 0 sadb_sa_len
    .u16(f.type ?? 1) // 2 sadb_sa_exttype SADB_EXT_SA
    .be32(f.spi) // 4 sadb_sa_spi
    .u8(f.replay ?? 0) // 8 sadb_sa_replay
    .u8(f.state ?? 1) // 9 sadb_sa_state MATURE
    .u8(f.auth ?? 0) // 10 sadb_sa_auth
    .u8(f.encrypt ?? 0) // 11 sadb_sa_encrypt
    .u32(f.flags ?? 0); // 12 sadb_sa_flags
}

/** sadb_lifetime (32): 0 len 4, 2 exttype (2 current, 3 hard, 4 soft), 4 allocations, 8 bytes, 16 addtime, 24 usetime. */
export function extLifetime(
  type: number,
  f: { allocations?: number; bytes?: bigint; addtime?: bigint; usetime?: bigint },
): B {
  return new B()
    .u16(4)
    .u16(type)
    .u32(f.allocations ?? 0)
    .u64(f.bytes ?? 0n)
    .u64(f.addtime ?? 0n)
    .u64(f.usetime ?? 0n);
}

/**
 * sadb_address: 0 len, 2 exttype, then Linux 4 proto u8, 5 prefixlen u8, 6 reserved u16; OpenBSD
 * 4 reserved u32; the sockaddr at 8, padded to 8.
 */
export function extAddress(
  flavour: Flavour,
  type: number,
  address: string,
  f: { port?: number; proto?: number; prefixlen?: number } = {},
): B {
  const sa = sockaddr(flavour, address, f.port ?? 0).pad8();
  const b = new B().u16((8 + sa.length) / 8).u16(type);
  if (flavour === 'linux')
    b.u8(f.proto ?? 0)
      .u8(f.prefixlen ?? ip(address).length * 8)
      .u16(0);
  else b.u32(0);
  return b.add(sa);
}

/** sadb_key: 0 len, 2 exttype (8 auth, 9 encrypt), 4 bits u16, 6 reserved; the key, padded. */
export function extKey(type: number, key: Uint8Array): B {
  const body = new B().bytes(key).pad8();
  return new B()
    .u16((8 + body.length) / 8)
    .u16(type)
    .u16(key.length * 8)
    .u16(0)
    .add(body);
}

/** sadb_spirange (16): 0 len 2, 2 exttype 16, 4 min, 8 max (host order), 12 reserved. */
export function extSpirange(min: number, max: number): B {
  return new B().u16(2).u16(16).u32(min).u32(max).u32(0);
}

/** Linux sadb_x_sa2 (16): 0 len 2, 2 exttype 19, 4 mode, 5 reserved1, 6 reserved2, 8 sequence, 12 reqid. */
export function extSa2(mode: number, reqid: number): B {
  return new B().u16(2).u16(19).u8(mode).u8(0).u16(0).u32(0).u32(reqid);
}

/** Linux sadb_x_nat_t_type (8): 0 len 1, 2 exttype 20, 4 type, 5 reserved[3]. */
export function extNatType(type: number): B {
  return new B().u16(1).u16(20).u8(type).zeros(3);
}

/** Linux sadb_x_nat_t_port (8): 0 len 1, 2 exttype (21 sport, 22 dport), 4 port (network order), 6 reserved. */
export function extNatPort(type: number, port: number): B {
  return new B().u16(1).u16(type).be16(port).u16(0);
}

/**
 * Linux sadb_x_ipsecrequest (16 + pair): 0 len (BYTES), 2 proto u16, 4 mode, 5 level, 6 reserved1,
 * 8 reqid, 12 reserved2; tunnel mode: sockaddr src, sockaddr dst.
 */
export function ipsecRequest(f: {
  proto: number;
  mode: number;
  level: number;
  reqid: number;
  tunnel?: [string, string];
}): B {
  const pair = new B();
  if (f.tunnel) pair.add(sockaddr('linux', f.tunnel[0])).add(sockaddr('linux', f.tunnel[1]));
  pair.pad8();
  return new B()
    .u16(16 + pair.length)
    .u16(f.proto)
    .u8(f.mode)
    .u8(f.level)
    .u16(0)
    .u32(f.reqid)
    .u32(0)
    .add(pair);
}

/** Linux sadb_x_policy (16 + requests): 0 len, 2 exttype 18, 4 type u16, 6 dir u8, 7 reserved, 8 id, 12 priority. */
export function extPolicy(
  f: { type: number; dir: number; id?: number; priority?: number },
  ...requests: B[]
): B {
  const body = new B();
  for (const request of requests) body.add(request);
  return new B()
    .u16((16 + body.length) / 8)
    .u16(18)
    .u16(f.type)
    .u8(f.dir)
    .u8(0)
    .u32(f.id ?? 0)
    .u32(f.priority ?? 0)
    .add(body);
}

/** OpenBSD sadb_protocol (8): 0 len 1, 2 exttype (19 protocol, 20 flow type), 4 proto, 5 direction, 6 flags, 7 reserved. */
export function extProtocol(type: number, proto: number, direction = 0, flags = 0): B {
  return new B().u16(1).u16(type).u8(proto).u8(direction).u8(flags).u8(0);
}

/** OpenBSD sadb_x_udpencap (8): 0 len 1, 2 exttype 31, 4 port (network order), 6 reserved. */
export function extUdpencap(port: number): B {
  return new B().u16(1).u16(31).be16(port).u16(0);
}

/** OpenBSD sadb_x_tag (8 + string): 0 len, 2 exttype 33, 4 taglen (with the NUL); the string, NUL, padded. */
export function extTag(tag: string): B {
  const body = new B().bytes(new TextEncoder().encode(tag)).u8(0).pad8();
  return new B()
    .u16((8 + body.length) / 8)
    .u16(33)
    .u32(tag.length + 1)
    .add(body);
}

/** OpenBSD sadb_x_policy (8): 0 len 1, 2 exttype 25, 4 seq. */
export function extPolicySeq(seq: number): B {
  return new B().u16(1).u16(25).u32(seq);
}

/** sadb_supported (8 + 8n): 0 len, 2 exttype (14 auth, 15 encrypt), 4 reserved; sadb_alg: id, ivlen, minbits, maxbits, reserved. */
export function extSupported(type: number, algs: [number, number, number, number][]): B {
  const b = new B()
    .u16(1 + algs.length)
    .u16(type)
    .u32(0);
  for (const [id, ivlen, min, max] of algs) b.u8(id).u8(ivlen).u16(min).u16(max).u16(0);
  return b;
}

/** OpenBSD sadb_x_counter (72): 0 len 9, 2 exttype 36, 4 pad, then 8 u64 counters. */
export function extCounter(values: bigint[]): B {
  const b = new B().u16(9).u16(36).u32(0);
  for (const value of values) b.u64(value);
  return b;
}

/** sadb_prop (8 + 72n) and sadb_comb: Linux 4 replay; OpenBSD 4 num, 5 replay. */
export function extProposal(flavour: Flavour, replay: number, combs: { auth: number; encrypt: number }[]): B {
  const b = new B().u16(1 + 9 * combs.length).u16(13);
  if (flavour === 'linux') b.u8(replay).zeros(3);
  else b.u8(combs.length).u8(replay).u16(0);
  for (const comb of combs) {
    b.u8(comb.auth).u8(comb.encrypt).u16(0); // 0 auth, 1 encrypt, 2 flags
    b.u16(160).u16(160).u16(128).u16(256); // 4 auth min/max, 8 encrypt min/max
    b.u32(0).u32(0).u32(0); // 12 reserved, 16 soft/hard allocations
    b.u64(0).u64(0).u64(72000).u64(86400).u64(25200).u64(28800); // 24..64
  }
  return b;
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** A native shim that records writes and answers through a responder, for the channel and backend. */
export class FakeNative implements Native {
  readonly writes: Uint8Array[] = [];
  readonly sockopts: { fd: number; level: number; name: number; value: Uint8Array }[] = [];
  readonly queue: Uint8Array[] = [];
  onData?: (datagrams: Uint8Array[]) => void;
  onError?: (error: NativeError) => void;
  closed = false;
  unwatched = false;
  /** Called for each write; what it returns is queued for readSync and the watch. */
  responder: (data: Uint8Array) => Uint8Array[] = () => [];
  /** Deliver answers through the watch (async) instead of only through readSync. */
  deliverAsync = true;

  openNetlink(): number {
    throw new Error('not here');
  }
  openPfkey(): number {
    return 7;
  }
  openTun(): { fd: number; name: string } {
    throw new Error('not here');
  }
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): void {
    this.sockopts.push({ fd, level, name, value: Uint8Array.from(value) });
  }
  write(_fd: number, data: Uint8Array): void {
    if (this.closed) throw new Error('write on a closed fd');
    this.writes.push(Uint8Array.from(data));
    const answers = this.responder(data);
    this.queue.push(...answers);
    if (this.deliverAsync && answers.length > 0) setImmediate(() => this.flush());
  }
  /** Hands queued datagrams to the watch. */
  flush(): void {
    if (!this.onData || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.queue.length);
    this.onData(batch);
  }
  /** A datagram from the kernel, unasked (ACQUIRE, EXPIRE...). */
  push(datagram: Uint8Array): void {
    this.queue.push(datagram);
    this.flush();
  }
  sendTo(): number {
    return 0;
  }
  readSync(_fd: number, _timeoutMs: number): Uint8Array | null {
    return this.queue.shift() ?? null;
  }
  watch(_fd: number, onData: (datagrams: Uint8Array[]) => void, onError: (error: NativeError) => void): void {
    this.onData = onData;
    this.onError = onError;
  }
  unwatch(): void {
    this.unwatched = true;
    this.onData = undefined;
  }
  close(): void {
    this.closed = true;
  }
}
