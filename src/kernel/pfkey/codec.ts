import { endianness } from 'node:os';
import { formatAddress, parseAddress } from '../../core/address.js';
import {
  AF_INET,
  AF_INET6,
  LINUX_EXT,
  OPENBSD_EXT,
  PF_KEY_V2,
  type PfkeyFlavour,
  SADB_ALIGN,
  SADB_EXT_ADDRESS_DST,
  SADB_EXT_ADDRESS_PROXY,
  SADB_EXT_ADDRESS_SRC,
  SADB_EXT_IDENTITY_DST,
  SADB_EXT_IDENTITY_SRC,
  SADB_EXT_KEY_AUTH,
  SADB_EXT_KEY_ENCRYPT,
  SADB_EXT_LIFETIME_CURRENT,
  SADB_EXT_LIFETIME_HARD,
  SADB_EXT_LIFETIME_SOFT,
  SADB_EXT_PROPOSAL,
  SADB_EXT_SA,
  SADB_EXT_SPIRANGE,
  SADB_EXT_SUPPORTED_AUTH,
  SADB_EXT_SUPPORTED_ENCRYPT,
  SADB_MSG_SIZE,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
} from './constants.js';

/**
 * The PF_KEY v2 codec (RFC 2367 section 2): a 16-byte sadb_msg, then extensions, each starting
 * with a 2-byte length in 64-bit words and a 2-byte type, each padded to 8 bytes. Fields are in
 * the host's byte order except SPIs, ports and addresses (network order). `decode` returns a typed
 * message or throws a PfkeyParseError carrying the offset; `encode` is its exact inverse.
 *
 * Struct layouts (byte offsets from the start of the extension):
 *  sadb_msg (16): 0 version u8, 1 type u8, 2 errno u8, 3 satype u8, 4 len u16, 6 reserved u16,
 *    8 seq u32, 12 pid u32.
 *  sadb_sa (16): 0 len, 2 exttype, 4 spi u32 (network order), 8 replay u8, 9 state u8, 10 auth u8,
 *    11 encrypt u8, 12 flags u32.
 *  sadb_lifetime (32): 0 len, 2 exttype, 4 allocations u32, 8 bytes u64, 16 addtime u64,
 *    24 usetime u64.
 *  sadb_address (8 + sockaddr): Linux 4 proto u8, 5 prefixlen u8, 6 reserved u16; OpenBSD
 *    4 reserved u32. The sockaddr follows at 8, padded to 8.
 *  sockaddr_in (16): Linux 0 family u16; OpenBSD 0 sin_len u8, 1 family u8; then 2 port (network),
 *    4 address, 8 zero[8]. sockaddr_in6 (28): family as above, 2 port, 4 flowinfo u32, 8 address,
 *    24 scope_id u32.
 *  sadb_key (8 + key): 4 bits u16, 6 reserved u16; the key follows, padded to 8.
 *  sadb_spirange (16): 4 min u32, 8 max u32, 12 reserved u32 (host order, not network).
 *  sadb_supported (8 + 8n): 4 reserved u32; sadb_alg: 0 id u8, 1 ivlen u8, 2 minbits u16,
 *    4 maxbits u16, 6 reserved u16.
 *  sadb_prop (8 + 72n): Linux 4 replay u8, 5 reserved[3]; OpenBSD 4 num u8, 5 replay u8,
 *    6 reserved u16. sadb_comb (72): 0 auth u8, 1 encrypt u8, 2 flags u16, 4 auth min/max bits,
 *    8 encrypt min/max bits, 12 reserved u32, 16 soft/hard allocations u32, 24 soft/hard bytes,
 *    40 soft/hard addtime, 56 soft/hard usetime (u64 each).
 *  sadb_ident (16 + string): 4 type u16, 6 reserved u16, 8 id u64.
 *  Linux sadb_x_sa2 (16): 4 mode u8, 5 reserved1 u8, 6 reserved2 u16, 8 sequence u32, 12 reqid u32.
 *  Linux sadb_x_policy (16 + requests): 4 type u16, 6 dir u8, 7 reserved u8, 8 id u32,
 *    12 priority u32; sadb_x_ipsecrequest (16 + tunnel sockaddr pair): 0 len u16 (in BYTES),
 *    2 proto u16, 4 mode u8, 5 level u8, 6 reserved1 u16, 8 reqid u32, 12 reserved2 u32.
 *  Linux sadb_x_nat_t_type (8): 4 type u8, 5 reserved[3]. sadb_x_nat_t_port (8): 4 port
 *    (network order), 6 reserved u16.
 *  OpenBSD sadb_protocol (8): 4 proto u8, 5 direction u8, 6 flags u8, 7 reserved u8.
 *  OpenBSD sadb_x_policy (8): 4 seq u32. sadb_x_udpencap (8): 4 port (network order),
 *    6 reserved u16. sadb_x_tag (8 + string): 4 taglen u32 (with the NUL).
 *  OpenBSD sadb_x_counter (72): 4 pad u32, then u64 ipackets, opackets, ibytes, obytes, idrops,
 *    odrops, idecompbytes, ouncompbytes.
 */

export interface SadbMessage {
  readonly type: number;
  readonly satype: number;
  /** Set by the kernel in answers: an errno of the kernel's OS. */
  readonly errno?: number;
  readonly seq: number;
  readonly pid: number;
  /** Linux af_key puts the policy's refcount here in policy answers; requests must send 0. */
  readonly reserved?: number;
  readonly extensions: readonly SadbExtension[];
}

export interface SaExtension {
  readonly kind: 'sa';
  /** OpenBSD SADB_X_EXT_SA2: the second SA of SADB_X_GRPSPIS. */
  readonly second?: boolean;
  readonly spi: number;
  readonly replay: number;
  readonly state: number;
  readonly auth: number;
  readonly encrypt: number;
  readonly flags: number;
}

export type LifetimeKind = 'current' | 'hard' | 'soft' | 'lastuse';

export interface LifetimeExtension {
  readonly kind: 'lifetime';
  readonly which: LifetimeKind;
  readonly allocations: number;
  readonly bytes: bigint;
  readonly addtime: bigint;
  readonly usetime: bigint;
}

export type AddressKind =
  | 'src'
  | 'dst'
  | 'proxy'
  /** Linux SADB_X_EXT_NAT_T_OA. */
  | 'natOa'
  /** OpenBSD flows and masks (SADB_X_EXT_SRC_FLOW...), and SADB_X_EXT_DST2. */
  | 'srcFlow'
  | 'dstFlow'
  | 'srcMask'
  | 'dstMask'
  | 'dst2';

export interface AddressExtension {
  readonly kind: 'address';
  readonly which: AddressKind;
  /** Text form ("192.0.2.1", "2001:db8::1"); OpenBSD masks are netmasks ("255.255.255.0"). */
  readonly address: string;
  readonly port: number;
  /** Linux only (OpenBSD has a reserved field there): upper-layer protocol, 0 or 255 for any. */
  readonly proto?: number;
  /** Linux only: the prefix length of a policy selector. Absent: the full address. */
  readonly prefixlen?: number;
}

export interface KeyExtension {
  readonly kind: 'key';
  readonly which: 'auth' | 'encrypt';
  readonly key: Uint8Array;
  /** Absent: 8 bits per key byte. */
  readonly bits?: number;
}

export interface SpiRangeExtension {
  readonly kind: 'spirange';
  readonly min: number;
  readonly max: number;
}

export interface SadbAlgorithm {
  readonly id: number;
  readonly ivlen: number;
  readonly minbits: number;
  readonly maxbits: number;
}

export interface SupportedExtension {
  readonly kind: 'supported';
  readonly which: 'auth' | 'encrypt' | 'comp';
  readonly algorithms: readonly SadbAlgorithm[];
}

export interface SadbComb {
  readonly auth: number;
  readonly encrypt: number;
  readonly flags: number;
  readonly authMinbits: number;
  readonly authMaxbits: number;
  readonly encryptMinbits: number;
  readonly encryptMaxbits: number;
  readonly softAllocations: number;
  readonly hardAllocations: number;
  readonly softBytes: bigint;
  readonly hardBytes: bigint;
  readonly softAddtime: bigint;
  readonly hardAddtime: bigint;
  readonly softUsetime: bigint;
  readonly hardUsetime: bigint;
}

export interface ProposalExtension {
  readonly kind: 'proposal';
  readonly replay: number;
  /** OpenBSD's sadb_prop_num; Linux has no such field (reads as 0). */
  readonly num?: number;
  readonly combs: readonly SadbComb[];
}

export interface IdentityExtension {
  readonly kind: 'identity';
  readonly which: 'src' | 'dst';
  readonly identType: number;
  readonly id: bigint;
  readonly value: string;
}

/** Linux sadb_x_sa2: the mode and reqid of an SA. */
export interface Sa2Extension {
  readonly kind: 'sa2';
  readonly mode: number;
  readonly sequence: number;
  readonly reqid: number;
}

/** Linux sadb_x_ipsecrequest: one transform of a policy; tunnel mode carries its endpoints. */
export interface IpsecRequest {
  readonly proto: number;
  readonly mode: number;
  readonly level: number;
  readonly reqid: number;
  readonly tunnel?: { readonly src: string; readonly dst: string };
}

/** Linux sadb_x_policy. */
export interface PolicyExtension {
  readonly kind: 'policy';
  readonly policyType: number;
  readonly dir: number;
  readonly id: number;
  readonly priority: number;
  readonly requests: readonly IpsecRequest[];
}

export interface NatTypeExtension {
  readonly kind: 'natType';
  readonly natType: number;
}

export interface NatPortExtension {
  readonly kind: 'natPort';
  readonly which: 'sport' | 'dport';
  readonly port: number;
}

/** OpenBSD sadb_protocol: SADB_X_EXT_PROTOCOL, SADB_X_EXT_FLOW_TYPE and SADB_X_EXT_SATYPE2. */
export interface ProtocolExtension {
  readonly kind: 'protocol';
  readonly which: 'protocol' | 'flowType' | 'satype2';
  readonly proto: number;
  readonly direction: number;
  readonly flags: number;
}

/** OpenBSD sadb_x_policy: only a sequence number (SADB_X_ASKPOLICY). */
export interface PolicySeqExtension {
  readonly kind: 'policySeq';
  readonly seq: number;
}

/** OpenBSD sadb_x_udpencap: the peer's UDP port for ESP in UDP. */
export interface UdpEncapExtension {
  readonly kind: 'udpencap';
  readonly port: number;
}

/** OpenBSD sadb_x_tag: a pf tag name put on the SA's decrypted packets. */
export interface TagExtension {
  readonly kind: 'tag';
  readonly tag: string;
}

/** OpenBSD sadb_x_counter. */
export interface CounterExtension {
  readonly kind: 'counter';
  readonly ipackets: bigint;
  readonly opackets: bigint;
  readonly ibytes: bigint;
  readonly obytes: bigint;
  readonly idrops: bigint;
  readonly odrops: bigint;
  readonly idecompbytes: bigint;
  readonly ouncompbytes: bigint;
}

/** Any extension this codec does not model: its type and the bytes after the 4-byte header. */
export interface RawExtension {
  readonly kind: 'raw';
  readonly exttype: number;
  readonly data: Uint8Array;
}

export type SadbExtension =
  | SaExtension
  | LifetimeExtension
  | AddressExtension
  | KeyExtension
  | SpiRangeExtension
  | SupportedExtension
  | ProposalExtension
  | IdentityExtension
  | Sa2Extension
  | PolicyExtension
  | NatTypeExtension
  | NatPortExtension
  | ProtocolExtension
  | PolicySeqExtension
  | UdpEncapExtension
  | TagExtension
  | CounterExtension
  | RawExtension;

/** A PF_KEY message that is too short, misaligned or inconsistent: the offset says where. */
export class PfkeyParseError extends Error {
  override readonly name = 'PfkeyParseError';
  constructor(
    readonly reason: string,
    readonly offset: number,
  ) {
    super(`PF_KEY message: ${reason} (at byte ${offset})`);
  }
}

/** A message that cannot be encoded as asked (a value out of its field's range...). */
export class PfkeyEncodeError extends Error {
  override readonly name = 'PfkeyEncodeError';
}

export interface CodecOptions {
  readonly flavour: PfkeyFlavour;
  /** Byte order of the host fields; the kernel's own (default: this host's). */
  readonly littleEndian?: boolean;
}

const HOST_LITTLE_ENDIAN = endianness() === 'LE';

function pad8(length: number): number {
  return (length + SADB_ALIGN - 1) & ~(SADB_ALIGN - 1);
}

// ---------------------------------------------------------------------------------------------
// Extension type numbers per flavour.

const LIFETIME_TYPES: Record<Exclude<LifetimeKind, 'lastuse'>, number> = {
  current: SADB_EXT_LIFETIME_CURRENT,
  hard: SADB_EXT_LIFETIME_HARD,
  soft: SADB_EXT_LIFETIME_SOFT,
};

function extensionType(flavour: PfkeyFlavour, ext: SadbExtension): number {
  const linux = flavour === 'linux';
  const only = (ok: boolean, value: number): number => {
    if (!ok) throw new PfkeyEncodeError(`the ${ext.kind} extension does not exist in ${flavour}'s PF_KEY`);
    return value;
  };
  switch (ext.kind) {
    case 'sa':
      return ext.second ? only(!linux, OPENBSD_EXT.SA2) : SADB_EXT_SA;
    case 'lifetime':
      return ext.which === 'lastuse' ? only(!linux, OPENBSD_EXT.LIFETIME_LASTUSE) : LIFETIME_TYPES[ext.which];
    case 'address':
      switch (ext.which) {
        case 'src':
          return SADB_EXT_ADDRESS_SRC;
        case 'dst':
          return SADB_EXT_ADDRESS_DST;
        case 'proxy':
          return SADB_EXT_ADDRESS_PROXY;
        case 'natOa':
          return only(linux, LINUX_EXT.NAT_T_OA);
        case 'srcFlow':
          return only(!linux, OPENBSD_EXT.SRC_FLOW);
        case 'dstFlow':
          return only(!linux, OPENBSD_EXT.DST_FLOW);
        case 'srcMask':
          return only(!linux, OPENBSD_EXT.SRC_MASK);
        case 'dstMask':
          return only(!linux, OPENBSD_EXT.DST_MASK);
        case 'dst2':
          return only(!linux, OPENBSD_EXT.DST2);
      }
      break;
    case 'key':
      return ext.which === 'auth' ? SADB_EXT_KEY_AUTH : SADB_EXT_KEY_ENCRYPT;
    case 'spirange':
      return SADB_EXT_SPIRANGE;
    case 'supported':
      if (ext.which === 'comp') return only(!linux, OPENBSD_EXT.SUPPORTED_COMP);
      return ext.which === 'auth' ? SADB_EXT_SUPPORTED_AUTH : SADB_EXT_SUPPORTED_ENCRYPT;
    case 'proposal':
      return SADB_EXT_PROPOSAL;
    case 'identity':
      return ext.which === 'src' ? SADB_EXT_IDENTITY_SRC : SADB_EXT_IDENTITY_DST;
    case 'sa2':
      return only(linux, LINUX_EXT.SA2);
    case 'policy':
      return only(linux, LINUX_EXT.POLICY);
    case 'natType':
      return only(linux, LINUX_EXT.NAT_T_TYPE);
    case 'natPort':
      return only(linux, ext.which === 'sport' ? LINUX_EXT.NAT_T_SPORT : LINUX_EXT.NAT_T_DPORT);
    case 'protocol': {
      const types = {
        protocol: OPENBSD_EXT.PROTOCOL,
        flowType: OPENBSD_EXT.FLOW_TYPE,
        satype2: OPENBSD_EXT.SATYPE2,
      };
      return only(!linux, types[ext.which]);
    }
    case 'policySeq':
      return only(!linux, OPENBSD_EXT.POLICY);
    case 'udpencap':
      return only(!linux, OPENBSD_EXT.UDPENCAP);
    case 'tag':
      return only(!linux, OPENBSD_EXT.TAG);
    case 'counter':
      return only(!linux, OPENBSD_EXT.COUNTER);
    case 'raw':
      return ext.exttype;
  }
  throw new PfkeyEncodeError(`unknown extension ${JSON.stringify(ext)}`);
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/** A fixed-size little builder over a DataView, with range-checked writes. */
class Fields {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  constructor(
    size: number,
    readonly le: boolean,
    readonly what: string,
  ) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  private check(value: number, max: number, field: string): void {
    if (!Number.isInteger(value) || value < 0 || value > max)
      throw new PfkeyEncodeError(`${this.what}: ${field} ${value} out of range 0-${max}`);
  }
  u8(at: number, value: number, field: string): void {
    this.check(value, 0xff, field);
    this.view.setUint8(at, value);
  }
  u16(at: number, value: number, field: string): void {
    this.check(value, 0xffff, field);
    this.view.setUint16(at, value, this.le);
  }
  be16(at: number, value: number, field: string): void {
    this.check(value, 0xffff, field);
    this.view.setUint16(at, value, false);
  }
  u32(at: number, value: number, field: string): void {
    this.check(value, 0xffffffff, field);
    this.view.setUint32(at, value, this.le);
  }
  be32(at: number, value: number, field: string): void {
    this.check(value, 0xffffffff, field);
    this.view.setUint32(at, value, false);
  }
  u64(at: number, value: bigint, field: string): void {
    if (value < 0n || value > 0xffffffffffffffffn)
      throw new PfkeyEncodeError(`${this.what}: ${field} ${value} out of range`);
    this.view.setBigUint64(at, value, this.le);
  }
  set(at: number, data: Uint8Array): void {
    this.bytes.set(data, at);
  }
}

function sockaddrSize(family: 4 | 6): number {
  return family === 4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
}

function addressBytes(text: string, what: string): Uint8Array {
  try {
    return parseAddress(text);
  } catch {
    throw new PfkeyEncodeError(`${what}: '${text}' is not an IP address`);
  }
}

/** Writes a sockaddr_in/sockaddr_in6 of the flavour's layout at `at`. */
function writeSockaddr(
  out: Fields,
  at: number,
  flavour: PfkeyFlavour,
  address: Uint8Array,
  port: number,
): void {
  const family = address.length === 4 ? AF_INET : AF_INET6[flavour];
  const size = sockaddrSize(address.length === 4 ? 4 : 6);
  if (flavour === 'linux') {
    out.u16(at, family, 'sa_family');
  } else {
    out.u8(at, size, 'sa_len');
    out.u8(at + 1, family, 'sa_family');
  }
  out.be16(at + 2, port, 'port');
  // sockaddr_in: the address at 4; sockaddr_in6: flowinfo at 4 (zero), the address at 8.
  out.set(at + (address.length === 4 ? 4 : 8), address);
}

function header(out: Fields, type: number): void {
  out.u16(0, out.bytes.length / SADB_ALIGN, 'length');
  out.u16(2, type, 'extension type');
}

function encodeExtension(ext: SadbExtension, options: Required<CodecOptions>): Uint8Array {
  const { flavour, littleEndian: le } = options;
  const type = extensionType(flavour, ext);
  const what = `extension ${ext.kind} (type ${type})`;
  switch (ext.kind) {
    case 'sa': {
      const out = new Fields(16, le, what);
      header(out, type);
      out.be32(4, ext.spi, 'spi');
      out.u8(8, ext.replay, 'replay');
      out.u8(9, ext.state, 'state');
      out.u8(10, ext.auth, 'auth');
      out.u8(11, ext.encrypt, 'encrypt');
      out.u32(12, ext.flags, 'flags');
      return out.bytes;
    }
    case 'lifetime': {
      const out = new Fields(32, le, what);
      header(out, type);
      out.u32(4, ext.allocations, 'allocations');
      out.u64(8, ext.bytes, 'bytes');
      out.u64(16, ext.addtime, 'addtime');
      out.u64(24, ext.usetime, 'usetime');
      return out.bytes;
    }
    case 'address': {
      const address = addressBytes(ext.address, what);
      const family = address.length === 4 ? 4 : 6;
      const out = new Fields(8 + pad8(sockaddrSize(family)), le, what);
      header(out, type);
      if (flavour === 'linux') {
        out.u8(4, ext.proto ?? 0, 'proto');
        out.u8(5, ext.prefixlen ?? address.length * 8, 'prefixlen');
      } else if ((ext.proto ?? 0) !== 0 || (ext.prefixlen ?? address.length * 8) !== address.length * 8) {
        throw new PfkeyEncodeError(`${what}: OpenBSD's sadb_address has no proto or prefixlen (use masks)`);
      }
      writeSockaddr(out, 8, flavour, address, ext.port);
      return out.bytes;
    }
    case 'key': {
      const bits = ext.bits ?? ext.key.length * 8;
      if (Math.ceil(bits / 8) > ext.key.length)
        throw new PfkeyEncodeError(`${what}: ${bits} bits but ${ext.key.length} key bytes`);
      const out = new Fields(8 + pad8(ext.key.length), le, what);
      header(out, type);
      out.u16(4, bits, 'bits');
      out.set(8, ext.key);
      return out.bytes;
    }
    case 'spirange': {
      const out = new Fields(16, le, what);
      header(out, type);
      out.u32(4, ext.min, 'min');
      out.u32(8, ext.max, 'max');
      return out.bytes;
    }
    case 'supported': {
      const out = new Fields(8 + 8 * ext.algorithms.length, le, what);
      header(out, type);
      ext.algorithms.forEach((alg, i) => {
        const at = 8 + 8 * i;
        out.u8(at, alg.id, 'alg id');
        out.u8(at + 1, alg.ivlen, 'ivlen');
        out.u16(at + 2, alg.minbits, 'minbits');
        out.u16(at + 4, alg.maxbits, 'maxbits');
      });
      return out.bytes;
    }
    case 'proposal': {
      const out = new Fields(8 + 72 * ext.combs.length, le, what);
      header(out, type);
      if (flavour === 'linux') {
        out.u8(4, ext.replay, 'replay');
      } else {
        out.u8(4, ext.num ?? 0, 'num');
        out.u8(5, ext.replay, 'replay');
      }
      ext.combs.forEach((comb, i) => {
        const at = 8 + 72 * i;
        out.u8(at, comb.auth, 'auth');
        out.u8(at + 1, comb.encrypt, 'encrypt');
        out.u16(at + 2, comb.flags, 'flags');
        out.u16(at + 4, comb.authMinbits, 'auth minbits');
        out.u16(at + 6, comb.authMaxbits, 'auth maxbits');
        out.u16(at + 8, comb.encryptMinbits, 'encrypt minbits');
        out.u16(at + 10, comb.encryptMaxbits, 'encrypt maxbits');
        out.u32(at + 16, comb.softAllocations, 'soft allocations');
        out.u32(at + 20, comb.hardAllocations, 'hard allocations');
        out.u64(at + 24, comb.softBytes, 'soft bytes');
        out.u64(at + 32, comb.hardBytes, 'hard bytes');
        out.u64(at + 40, comb.softAddtime, 'soft addtime');
        out.u64(at + 48, comb.hardAddtime, 'hard addtime');
        out.u64(at + 56, comb.softUsetime, 'soft usetime');
        out.u64(at + 64, comb.hardUsetime, 'hard usetime');
      });
      return out.bytes;
    }
    case 'identity': {
      const text = new TextEncoder().encode(ext.value);
      const out = new Fields(16 + pad8(text.length + 1), le, what);
      header(out, type);
      out.u16(4, ext.identType, 'ident type');
      out.u64(8, ext.id, 'ident id');
      out.set(16, text);
      return out.bytes;
    }
    case 'sa2': {
      const out = new Fields(16, le, what);
      header(out, type);
      out.u8(4, ext.mode, 'mode');
      out.u32(8, ext.sequence, 'sequence');
      out.u32(12, ext.reqid, 'reqid');
      return out.bytes;
    }
    case 'policy': {
      const requests = ext.requests.map((request) => encodeIpsecRequest(request, flavour, le));
      const size = 16 + requests.reduce((sum, request) => sum + request.length, 0);
      const out = new Fields(size, le, what);
      header(out, type);
      out.u16(4, ext.policyType, 'policy type');
      out.u8(6, ext.dir, 'dir');
      out.u32(8, ext.id, 'id');
      out.u32(12, ext.priority, 'priority');
      let at = 16;
      for (const request of requests) {
        out.set(at, request);
        at += request.length;
      }
      return out.bytes;
    }
    case 'natType': {
      const out = new Fields(8, le, what);
      header(out, type);
      out.u8(4, ext.natType, 'nat type');
      return out.bytes;
    }
    case 'natPort': {
      const out = new Fields(8, le, what);
      header(out, type);
      out.be16(4, ext.port, 'port');
      return out.bytes;
    }
    case 'protocol': {
      const out = new Fields(8, le, what);
      header(out, type);
      out.u8(4, ext.proto, 'proto');
      out.u8(5, ext.direction, 'direction');
      out.u8(6, ext.flags, 'flags');
      return out.bytes;
    }
    case 'policySeq': {
      const out = new Fields(8, le, what);
      header(out, type);
      out.u32(4, ext.seq, 'seq');
      return out.bytes;
    }
    case 'udpencap': {
      const out = new Fields(8, le, what);
      header(out, type);
      out.be16(4, ext.port, 'port');
      return out.bytes;
    }
    case 'tag': {
      const text = new TextEncoder().encode(ext.tag);
      if (text.includes(0)) throw new PfkeyEncodeError(`${what}: a tag cannot contain NUL`);
      const out = new Fields(8 + pad8(text.length + 1), le, what);
      header(out, type);
      out.u32(4, text.length + 1, 'taglen');
      out.set(8, text);
      return out.bytes;
    }
    case 'counter': {
      const out = new Fields(72, le, what);
      header(out, type);
      const values = [
        ext.ipackets,
        ext.opackets,
        ext.ibytes,
        ext.obytes,
        ext.idrops,
        ext.odrops,
        ext.idecompbytes,
        ext.ouncompbytes,
      ];
      values.forEach((value, i) => out.u64(8 + 8 * i, value, 'counter'));
      return out.bytes;
    }
    case 'raw': {
      const out = new Fields(pad8(4 + ext.data.length), le, what);
      header(out, type);
      out.set(4, ext.data);
      return out.bytes;
    }
  }
}

function encodeIpsecRequest(request: IpsecRequest, flavour: PfkeyFlavour, le: boolean): Uint8Array {
  const what = 'sadb_x_ipsecrequest';
  const src = request.tunnel ? addressBytes(request.tunnel.src, what) : undefined;
  const dst = request.tunnel ? addressBytes(request.tunnel.dst, what) : undefined;
  if (src && dst && src.length !== dst.length)
    throw new PfkeyEncodeError(`${what}: tunnel endpoints of different families`);
  const socklen = src ? sockaddrSize(src.length === 4 ? 4 : 6) : 0;
  const out = new Fields(pad8(16 + 2 * socklen), le, what);
  out.u16(0, out.bytes.length, 'length');
  out.u16(2, request.proto, 'proto');
  out.u8(4, request.mode, 'mode');
  out.u8(5, request.level, 'level');
  out.u32(8, request.reqid, 'reqid');
  if (src && dst) {
    writeSockaddr(out, 16, flavour, src, 0);
    writeSockaddr(out, 16 + socklen, flavour, dst, 0);
  }
  return out.bytes;
}

/** The message as the kernel wants it: sadb_msg, then each extension, lengths in 64-bit words. */
export function encodeMessage(message: SadbMessage, options: CodecOptions): Uint8Array {
  const full = { flavour: options.flavour, littleEndian: options.littleEndian ?? HOST_LITTLE_ENDIAN };
  const extensions = message.extensions.map((ext) => encodeExtension(ext, full));
  const size = SADB_MSG_SIZE + extensions.reduce((sum, ext) => sum + ext.length, 0);
  const out = new Fields(size, full.littleEndian, 'sadb_msg');
  out.u8(0, PF_KEY_V2, 'version');
  out.u8(1, message.type, 'type');
  out.u8(2, message.errno ?? 0, 'errno');
  out.u8(3, message.satype, 'satype');
  out.u16(4, size / SADB_ALIGN, 'length (the message is too long)');
  out.u16(6, message.reserved ?? 0, 'reserved');
  out.u32(8, message.seq, 'seq');
  out.u32(12, message.pid, 'pid');
  let at = SADB_MSG_SIZE;
  for (const ext of extensions) {
    out.set(at, ext);
    at += ext.length;
  }
  return out.bytes;
}

// ---------------------------------------------------------------------------------------------
// Decoding.

/** Bounds-checked reads over one extension; failures name the absolute offset. */
class In {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    /** Absolute offset of bytes[0] in the message. */
    readonly origin: number,
    readonly le: boolean,
    readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(end: number, field: string): void {
    if (end > this.bytes.length)
      throw new PfkeyParseError(
        `${this.what}: ${field} needs ${end} bytes, the extension has ${this.bytes.length}`,
        this.origin + this.bytes.length,
      );
  }
  fail(reason: string, at: number): never {
    throw new PfkeyParseError(`${this.what}: ${reason}`, this.origin + at);
  }
  u8(at: number): number {
    this.need(at + 1, `byte ${at}`);
    return this.view.getUint8(at);
  }
  u16(at: number): number {
    this.need(at + 2, `byte ${at}`);
    return this.view.getUint16(at, this.le);
  }
  be16(at: number): number {
    this.need(at + 2, `byte ${at}`);
    return this.view.getUint16(at, false);
  }
  u32(at: number): number {
    this.need(at + 4, `byte ${at}`);
    return this.view.getUint32(at, this.le);
  }
  be32(at: number): number {
    this.need(at + 4, `byte ${at}`);
    return this.view.getUint32(at, false);
  }
  u64(at: number): bigint {
    this.need(at + 8, `byte ${at}`);
    return this.view.getBigUint64(at, this.le);
  }
  slice(at: number, length: number): Uint8Array {
    this.need(at + length, `${length} bytes at ${at}`);
    return this.bytes.slice(at, at + length);
  }
}

interface Sockaddr {
  readonly address: string;
  readonly port: number;
  readonly size: number;
}

function readSockaddr(input: In, at: number, flavour: PfkeyFlavour): Sockaddr {
  let family: number;
  if (flavour === 'linux') {
    family = input.u16(at);
  } else {
    const length = input.u8(at);
    family = input.u8(at + 1);
    const expected = family === AF_INET ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
    if (family === AF_INET || family === AF_INET6.openbsd) {
      if (length !== expected)
        input.fail(`sockaddr length ${length}, family ${family} needs ${expected}`, at);
    }
  }
  if (family === AF_INET) {
    input.need(at + SOCKADDR_IN_SIZE, 'sockaddr_in');
    return {
      address: formatAddress(input.slice(at + 4, 4)),
      port: input.be16(at + 2),
      size: SOCKADDR_IN_SIZE,
    };
  }
  if (family === AF_INET6[flavour]) {
    input.need(at + SOCKADDR_IN6_SIZE, 'sockaddr_in6');
    return {
      address: formatAddress(input.slice(at + 8, 16)),
      port: input.be16(at + 2),
      size: SOCKADDR_IN6_SIZE,
    };
  }
  return input.fail(`address family ${family} is neither AF_INET nor AF_INET6`, at);
}

const COMMON_ADDRESS: Record<number, AddressKind> = {
  [SADB_EXT_ADDRESS_SRC]: 'src',
  [SADB_EXT_ADDRESS_DST]: 'dst',
  [SADB_EXT_ADDRESS_PROXY]: 'proxy',
};

function decodeExtension(type: number, input: In, flavour: PfkeyFlavour): SadbExtension {
  const linux = flavour === 'linux';
  const fixed = (size: number): void => {
    if (input.bytes.length < size) input.fail(`is ${input.bytes.length} bytes, needs ${size}`, 0);
  };
  const address = (which: AddressKind): AddressExtension => {
    fixed(8);
    const sockaddr = readSockaddr(input, 8, flavour);
    if (8 + sockaddr.size > input.bytes.length) input.fail('sockaddr runs past the extension', 8);
    const full = sockaddr.address.includes(':') ? 128 : 32;
    if (!linux) return { kind: 'address', which, address: sockaddr.address, port: sockaddr.port };
    const prefixlen = input.u8(5);
    if (prefixlen > full) input.fail(`prefix length ${prefixlen} is longer than the address`, 5);
    return {
      kind: 'address',
      which,
      address: sockaddr.address,
      port: sockaddr.port,
      proto: input.u8(4),
      prefixlen,
    };
  };
  const lifetime = (which: LifetimeKind): LifetimeExtension => {
    fixed(32);
    return {
      kind: 'lifetime',
      which,
      allocations: input.u32(4),
      bytes: input.u64(8),
      addtime: input.u64(16),
      usetime: input.u64(24),
    };
  };
  const sa = (second: boolean): SaExtension => {
    fixed(16);
    return {
      kind: 'sa',
      ...(second && { second: true }),
      spi: input.be32(4),
      replay: input.u8(8),
      state: input.u8(9),
      auth: input.u8(10),
      encrypt: input.u8(11),
      flags: input.u32(12),
    };
  };
  const supported = (which: SupportedExtension['which']): SupportedExtension => {
    fixed(8);
    const algorithms: SadbAlgorithm[] = [];
    for (let at = 8; at + 8 <= input.bytes.length; at += 8) {
      algorithms.push({
        id: input.u8(at),
        ivlen: input.u8(at + 1),
        minbits: input.u16(at + 2),
        maxbits: input.u16(at + 4),
      });
    }
    return { kind: 'supported', which, algorithms };
  };
  const protocol = (which: ProtocolExtension['which']): ProtocolExtension => {
    fixed(8);
    return { kind: 'protocol', which, proto: input.u8(4), direction: input.u8(5), flags: input.u8(6) };
  };

  switch (type) {
    case SADB_EXT_SA:
      return sa(false);
    case SADB_EXT_LIFETIME_CURRENT:
      return lifetime('current');
    case SADB_EXT_LIFETIME_HARD:
      return lifetime('hard');
    case SADB_EXT_LIFETIME_SOFT:
      return lifetime('soft');
    case SADB_EXT_ADDRESS_SRC:
    case SADB_EXT_ADDRESS_DST:
    case SADB_EXT_ADDRESS_PROXY:
      return address(COMMON_ADDRESS[type]!);
    case SADB_EXT_KEY_AUTH:
    case SADB_EXT_KEY_ENCRYPT: {
      fixed(8);
      const bits = input.u16(4);
      const length = Math.ceil(bits / 8);
      if (8 + length > input.bytes.length) input.fail(`a ${bits}-bit key runs past the extension`, 4);
      return {
        kind: 'key',
        which: type === SADB_EXT_KEY_AUTH ? 'auth' : 'encrypt',
        bits,
        key: input.slice(8, length),
      };
    }
    case SADB_EXT_IDENTITY_SRC:
    case SADB_EXT_IDENTITY_DST: {
      fixed(16);
      const rest = input.slice(16, input.bytes.length - 16);
      const end = rest.indexOf(0);
      return {
        kind: 'identity',
        which: type === SADB_EXT_IDENTITY_SRC ? 'src' : 'dst',
        identType: input.u16(4),
        id: input.u64(8),
        value: new TextDecoder().decode(end < 0 ? rest : rest.subarray(0, end)),
      };
    }
    case SADB_EXT_PROPOSAL: {
      fixed(8);
      const combs: SadbComb[] = [];
      if ((input.bytes.length - 8) % 72 !== 0)
        input.fail(`${input.bytes.length - 8} bytes of sadb_comb is not a multiple of 72`, 8);
      for (let at = 8; at + 72 <= input.bytes.length; at += 72) {
        combs.push({
          auth: input.u8(at),
          encrypt: input.u8(at + 1),
          flags: input.u16(at + 2),
          authMinbits: input.u16(at + 4),
          authMaxbits: input.u16(at + 6),
          encryptMinbits: input.u16(at + 8),
          encryptMaxbits: input.u16(at + 10),
          softAllocations: input.u32(at + 16),
          hardAllocations: input.u32(at + 20),
          softBytes: input.u64(at + 24),
          hardBytes: input.u64(at + 32),
          softAddtime: input.u64(at + 40),
          hardAddtime: input.u64(at + 48),
          softUsetime: input.u64(at + 56),
          hardUsetime: input.u64(at + 64),
        });
      }
      return linux
        ? { kind: 'proposal', replay: input.u8(4), combs }
        : { kind: 'proposal', num: input.u8(4), replay: input.u8(5), combs };
    }
    case SADB_EXT_SUPPORTED_AUTH:
      return supported('auth');
    case SADB_EXT_SUPPORTED_ENCRYPT:
      return supported('encrypt');
    case SADB_EXT_SPIRANGE:
      fixed(16);
      return { kind: 'spirange', min: input.u32(4), max: input.u32(8) };
  }

  if (linux) {
    switch (type) {
      case LINUX_EXT.SA2:
        fixed(16);
        return { kind: 'sa2', mode: input.u8(4), sequence: input.u32(8), reqid: input.u32(12) };
      case LINUX_EXT.POLICY:
        return decodeLinuxPolicy(input);
      case LINUX_EXT.NAT_T_TYPE:
        fixed(8);
        return { kind: 'natType', natType: input.u8(4) };
      case LINUX_EXT.NAT_T_SPORT:
      case LINUX_EXT.NAT_T_DPORT:
        fixed(8);
        return {
          kind: 'natPort',
          which: type === LINUX_EXT.NAT_T_SPORT ? 'sport' : 'dport',
          port: input.be16(4),
        };
      case LINUX_EXT.NAT_T_OA:
        return address('natOa');
    }
  } else {
    switch (type) {
      case OPENBSD_EXT.SRC_MASK:
        return address('srcMask');
      case OPENBSD_EXT.DST_MASK:
        return address('dstMask');
      case OPENBSD_EXT.SRC_FLOW:
        return address('srcFlow');
      case OPENBSD_EXT.DST_FLOW:
        return address('dstFlow');
      case OPENBSD_EXT.DST2:
        return address('dst2');
      case OPENBSD_EXT.PROTOCOL:
        return protocol('protocol');
      case OPENBSD_EXT.FLOW_TYPE:
        return protocol('flowType');
      case OPENBSD_EXT.SATYPE2:
        return protocol('satype2');
      case OPENBSD_EXT.SA2:
        return sa(true);
      case OPENBSD_EXT.POLICY:
        fixed(8);
        return { kind: 'policySeq', seq: input.u32(4) };
      case OPENBSD_EXT.UDPENCAP:
        fixed(8);
        return { kind: 'udpencap', port: input.be16(4) };
      case OPENBSD_EXT.LIFETIME_LASTUSE:
        return lifetime('lastuse');
      case OPENBSD_EXT.SUPPORTED_COMP:
        return supported('comp');
      case OPENBSD_EXT.TAG: {
        fixed(8);
        const taglen = input.u32(4);
        if (taglen === 0 || 8 + taglen > input.bytes.length)
          input.fail(`tag length ${taglen} does not fit the extension`, 4);
        const text = input.slice(8, taglen);
        const end = text.indexOf(0);
        return { kind: 'tag', tag: new TextDecoder().decode(end < 0 ? text : text.subarray(0, end)) };
      }
      case OPENBSD_EXT.COUNTER:
        fixed(72);
        return {
          kind: 'counter',
          ipackets: input.u64(8),
          opackets: input.u64(16),
          ibytes: input.u64(24),
          obytes: input.u64(32),
          idrops: input.u64(40),
          odrops: input.u64(48),
          idecompbytes: input.u64(56),
          ouncompbytes: input.u64(64),
        };
    }
  }
  return { kind: 'raw', exttype: type, data: input.slice(4, input.bytes.length - 4) };
}

function decodeLinuxPolicy(input: In): PolicyExtension {
  if (input.bytes.length < 16) input.fail(`is ${input.bytes.length} bytes, needs 16`, 0);
  const requests: IpsecRequest[] = [];
  let at = 16;
  while (at + 16 <= input.bytes.length) {
    const length = input.u16(at);
    if (length < 16 || at + length > input.bytes.length)
      input.fail(`sadb_x_ipsecrequest length ${length} does not fit`, at);
    const request = {
      proto: input.u16(at + 2),
      mode: input.u8(at + 4),
      level: input.u8(at + 5),
      reqid: input.u32(at + 8),
    };
    if (length > 16) {
      const sub = new In(
        input.bytes.subarray(at, at + length),
        input.origin + at,
        input.le,
        'sadb_x_ipsecrequest',
      );
      const src = readSockaddr(sub, 16, 'linux');
      const dst = readSockaddr(sub, 16 + src.size, 'linux');
      requests.push({ ...request, tunnel: { src: src.address, dst: dst.address } });
    } else {
      requests.push(request);
    }
    at += length;
  }
  return {
    kind: 'policy',
    policyType: input.u16(4),
    dir: input.u8(6),
    id: input.u32(8),
    priority: input.u32(12),
    requests,
  };
}

/**
 * Parses one PF_KEY message (one read(2) from the socket). Throws PfkeyParseError on anything
 * truncated or inconsistent; never reads outside `bytes`.
 */
export function decodeMessage(bytes: Uint8Array, options: CodecOptions): SadbMessage {
  const le = options.littleEndian ?? HOST_LITTLE_ENDIAN;
  if (bytes.length < SADB_MSG_SIZE)
    throw new PfkeyParseError(`${bytes.length} bytes is shorter than the 16-byte sadb_msg`, bytes.length);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(0);
  if (version !== PF_KEY_V2) throw new PfkeyParseError(`version ${version}, expected PF_KEY_V2 (2)`, 0);
  const words = view.getUint16(4, le);
  if (words * SADB_ALIGN < SADB_MSG_SIZE)
    throw new PfkeyParseError(`sadb_msg_len ${words} words is shorter than the header`, 4);
  if (words * SADB_ALIGN > bytes.length)
    throw new PfkeyParseError(
      `sadb_msg_len says ${words * SADB_ALIGN} bytes, only ${bytes.length} arrived`,
      4,
    );
  if (words * SADB_ALIGN < bytes.length)
    throw new PfkeyParseError(
      `${bytes.length - words * SADB_ALIGN} bytes after the message's end`,
      words * SADB_ALIGN,
    );
  const extensions: SadbExtension[] = [];
  let at = SADB_MSG_SIZE;
  const end = words * SADB_ALIGN;
  while (at < end) {
    if (at + 4 > end) throw new PfkeyParseError('an extension header is cut off', at);
    const extWords = view.getUint16(at, le);
    const type = view.getUint16(at + 2, le);
    if (extWords === 0) throw new PfkeyParseError(`extension type ${type} has length 0`, at);
    if (at + extWords * SADB_ALIGN > end)
      throw new PfkeyParseError(
        `extension type ${type} of ${extWords * SADB_ALIGN} bytes runs past the message's end (${end})`,
        at,
      );
    const input = new In(bytes.subarray(at, at + extWords * SADB_ALIGN), at, le, `extension type ${type}`);
    extensions.push(decodeExtension(type, input, options.flavour));
    at += extWords * SADB_ALIGN;
  }
  return {
    type: view.getUint8(1),
    satype: view.getUint8(3),
    errno: view.getUint8(2),
    seq: view.getUint32(8, le),
    pid: view.getUint32(12, le),
    reserved: view.getUint16(6, le),
    extensions,
  };
}

/** The first extension of a kind (and `which`, for kinds that have one). */
export function findExtension<K extends SadbExtension['kind']>(
  message: SadbMessage,
  kind: K,
  which?: string,
): Extract<SadbExtension, { kind: K }> | undefined {
  return message.extensions.find(
    (ext): ext is Extract<SadbExtension, { kind: K }> =>
      ext.kind === kind && (which === undefined || ('which' in ext && ext.which === which)),
  );
}
