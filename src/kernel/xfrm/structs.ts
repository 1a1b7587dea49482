import { LITTLE_ENDIAN, NetlinkParseError, view } from '../netlink/message.js';
import {
  AF_INET,
  AF_INET6,
  XFRM_ADDRESS_SIZE,
  XFRM_ALGO_AEAD_SIZE,
  XFRM_ALGO_AUTH_SIZE,
  XFRM_ALGO_SIZE,
  XFRM_ENCAP_TMPL_SIZE,
  XFRM_ID_SIZE,
  XFRM_LIFETIME_CFG_SIZE,
  XFRM_LIFETIME_CUR_SIZE,
  XFRM_MARK_SIZE,
  XFRM_REPLAY_STATE_ESN_SIZE,
  XFRM_SELECTOR_SIZE,
  XFRM_USER_ACQUIRE_SIZE,
  XFRM_USER_EXPIRE_SIZE,
  XFRM_USER_MAPPING_SIZE,
  XFRM_USER_POLEXPIRE_SIZE,
  XFRM_USER_TMPL_SIZE,
  XFRM_USERPOLICY_ID_SIZE,
  XFRM_USERPOLICY_INFO_SIZE,
  XFRM_USERSA_ID_SIZE,
  XFRM_USERSA_INFO_SIZE,
  XFRM_USERSPI_INFO_SIZE,
} from './constants.js';

/**
 * The structs of include/uapi/linux/xfrm.h, encoded and decoded field by field at their x86_64
 * offsets. Integers are in host byte order (netlink's), except what the header declares __be16 /
 * __be32 (ports, SPIs) and the addresses, which are in network order. Padding is written as zeros.
 *
 * Addresses: encoders take 4 (IPv4) or 16 (IPv6) bytes and place them at the start of the 16-byte
 * xfrm_address_t; decoders return all 16 bytes (the family is elsewhere: see `addressBytes`).
 */

export interface XfrmSelector {
  readonly daddr: Uint8Array;
  readonly saddr: Uint8Array;
  readonly dport: number;
  readonly dportMask: number;
  readonly sport: number;
  readonly sportMask: number;
  readonly family: number;
  readonly prefixlenD: number;
  readonly prefixlenS: number;
  readonly proto: number;
  readonly ifindex: number;
  readonly user: number;
}

export interface XfrmId {
  readonly daddr: Uint8Array;
  readonly spi: number;
  readonly proto: number;
}

/** Limits in bytes, packets and seconds; XFRM_INF is "none" for bytes and packets, 0 for seconds. */
export interface XfrmLifetimeCfg {
  readonly softByteLimit: bigint;
  readonly hardByteLimit: bigint;
  readonly softPacketLimit: bigint;
  readonly hardPacketLimit: bigint;
  readonly softAddExpiresSeconds: bigint;
  readonly hardAddExpiresSeconds: bigint;
  readonly softUseExpiresSeconds: bigint;
  readonly hardUseExpiresSeconds: bigint;
}

export interface XfrmLifetimeCur {
  readonly bytes: bigint;
  readonly packets: bigint;
  readonly addTime: bigint;
  readonly useTime: bigint;
}

export interface XfrmStats {
  readonly replayWindow: number;
  readonly replay: number;
  readonly integrityFailed: number;
}

export interface XfrmUsersaInfo {
  readonly sel: XfrmSelector;
  readonly id: XfrmId;
  readonly saddr: Uint8Array;
  readonly lft: XfrmLifetimeCfg;
  readonly curlft: XfrmLifetimeCur;
  readonly stats: XfrmStats;
  readonly seq: number;
  readonly reqid: number;
  readonly family: number;
  readonly mode: number;
  readonly replayWindow: number;
  readonly flags: number;
}

export interface XfrmUsersaId {
  readonly daddr: Uint8Array;
  readonly spi: number;
  readonly family: number;
  readonly proto: number;
}

export interface XfrmUserspiInfo {
  readonly info: XfrmUsersaInfo;
  readonly min: number;
  readonly max: number;
}

export interface XfrmUserpolicyInfo {
  readonly sel: XfrmSelector;
  readonly lft: XfrmLifetimeCfg;
  readonly curlft: XfrmLifetimeCur;
  readonly priority: number;
  readonly index: number;
  readonly dir: number;
  readonly action: number;
  readonly flags: number;
  readonly share: number;
}

export interface XfrmUserpolicyId {
  readonly sel: XfrmSelector;
  readonly index: number;
  readonly dir: number;
}

export interface XfrmUserTmpl {
  readonly id: XfrmId;
  readonly family: number;
  readonly saddr: Uint8Array;
  readonly reqid: number;
  readonly mode: number;
  readonly share: number;
  readonly optional: number;
  readonly aalgos: number;
  readonly ealgos: number;
  readonly calgos: number;
}

/** xfrm_algo: the key length goes on the wire in bits. */
export interface XfrmAlgo {
  readonly name: string;
  readonly key: Uint8Array;
}

export interface XfrmAlgoAuth extends XfrmAlgo {
  readonly truncBits: number;
}

export interface XfrmAlgoAead extends XfrmAlgo {
  readonly icvBits: number;
}

export interface XfrmEncapTmpl {
  readonly type: number;
  readonly sport: number;
  readonly dport: number;
  readonly oa: Uint8Array;
}

export interface XfrmMark {
  readonly value: number;
  readonly mask: number;
}

export interface XfrmReplayStateEsn {
  readonly bmpLen: number;
  readonly oseq: number;
  readonly seq: number;
  readonly oseqHi: number;
  readonly seqHi: number;
  readonly replayWindow: number;
  readonly bmp: readonly number[];
}

export interface XfrmUserAcquire {
  readonly id: XfrmId;
  readonly saddr: Uint8Array;
  readonly sel: XfrmSelector;
  readonly policy: XfrmUserpolicyInfo;
  readonly aalgos: number;
  readonly ealgos: number;
  readonly calgos: number;
  readonly seq: number;
}

export interface XfrmUserExpire {
  readonly state: XfrmUsersaInfo;
  readonly hard: boolean;
}

export interface XfrmUserPolexpire {
  readonly policy: XfrmUserpolicyInfo;
  readonly hard: boolean;
}

export interface XfrmUserMapping {
  readonly id: XfrmUsersaId;
  readonly reqid: number;
  readonly oldSaddr: Uint8Array;
  readonly newSaddr: Uint8Array;
  readonly oldSport: number;
  readonly newSport: number;
}

const ZERO_ADDRESS = new Uint8Array(XFRM_ADDRESS_SIZE);

/** The 4 or 16 meaningful bytes of a decoded xfrm_address_t. */
export function addressBytes(address: Uint8Array, family: number): Uint8Array {
  return family === AF_INET ? address.subarray(0, 4) : address.subarray(0, XFRM_ADDRESS_SIZE);
}

export function familyOf(address: Uint8Array): number {
  if (address.length === 4) return AF_INET;
  if (address.length === 16) return AF_INET6;
  throw new RangeError(`an address has 4 or 16 bytes, not ${address.length}`);
}

/** A cursor over one struct: offsets are relative to where the struct starts. */
class StructWriter {
  readonly bytes: Uint8Array;
  readonly #dv: DataView;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.#dv = view(this.bytes);
  }
  u8(offset: number, value: number): void {
    this.#dv.setUint8(offset, value);
  }
  u16(offset: number, value: number): void {
    this.#dv.setUint16(offset, value, LITTLE_ENDIAN);
  }
  be16(offset: number, value: number): void {
    this.#dv.setUint16(offset, value, false);
  }
  u32(offset: number, value: number): void {
    this.#dv.setUint32(offset, value >>> 0, LITTLE_ENDIAN);
  }
  i32(offset: number, value: number): void {
    this.#dv.setInt32(offset, value, LITTLE_ENDIAN);
  }
  be32(offset: number, value: number): void {
    this.#dv.setUint32(offset, value >>> 0, false);
  }
  u64(offset: number, value: bigint): void {
    this.#dv.setBigUint64(offset, value, LITTLE_ENDIAN);
  }
  address(offset: number, address: Uint8Array): void {
    if (address.length !== 4 && address.length !== 16)
      throw new RangeError(`an xfrm address has 4 or 16 bytes, not ${address.length}`);
    this.bytes.set(address, offset);
  }
  put(offset: number, bytes: Uint8Array): void {
    this.bytes.set(bytes, offset);
  }
}

class StructReader {
  readonly #dv: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.#dv = view(bytes);
  }
  u8(offset: number): number {
    return this.#dv.getUint8(offset);
  }
  u16(offset: number): number {
    return this.#dv.getUint16(offset, LITTLE_ENDIAN);
  }
  be16(offset: number): number {
    return this.#dv.getUint16(offset, false);
  }
  u32(offset: number): number {
    return this.#dv.getUint32(offset, LITTLE_ENDIAN);
  }
  i32(offset: number): number {
    return this.#dv.getInt32(offset, LITTLE_ENDIAN);
  }
  be32(offset: number): number {
    return this.#dv.getUint32(offset, false);
  }
  u64(offset: number): bigint {
    return this.#dv.getBigUint64(offset, LITTLE_ENDIAN);
  }
  address(offset: number): Uint8Array {
    return this.bytes.slice(offset, offset + XFRM_ADDRESS_SIZE);
  }
  sub(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
}

/** Throws a clear error when `bytes` is shorter than the struct it should hold. */
export function requireLength(bytes: Uint8Array, size: number, what: string, offset = 0): void {
  if (bytes.length < size)
    throw new NetlinkParseError(`${what} of ${bytes.length} bytes is truncated: it needs ${size}`, offset);
}

// --- xfrm_selector (56 bytes) -----------------------------------------------------------------

export function encodeSelector(sel: XfrmSelector): Uint8Array {
  const w = new StructWriter(XFRM_SELECTOR_SIZE);
  writeSelector(w, 0, sel);
  return w.bytes;
}

function writeSelector(w: StructWriter, at: number, sel: XfrmSelector): void {
  w.address(at + 0, sel.daddr);
  w.address(at + 16, sel.saddr);
  w.be16(at + 32, sel.dport);
  w.be16(at + 34, sel.dportMask);
  w.be16(at + 36, sel.sport);
  w.be16(at + 38, sel.sportMask);
  w.u16(at + 40, sel.family);
  w.u8(at + 42, sel.prefixlenD);
  w.u8(at + 43, sel.prefixlenS);
  w.u8(at + 44, sel.proto);
  // 45-47: padding before the int
  w.i32(at + 48, sel.ifindex);
  w.u32(at + 52, sel.user);
}

export function decodeSelector(bytes: Uint8Array): XfrmSelector {
  requireLength(bytes, XFRM_SELECTOR_SIZE, 'xfrm_selector');
  return readSelector(new StructReader(bytes), 0);
}

function readSelector(r: StructReader, at: number): XfrmSelector {
  return {
    daddr: r.address(at + 0),
    saddr: r.address(at + 16),
    dport: r.be16(at + 32),
    dportMask: r.be16(at + 34),
    sport: r.be16(at + 36),
    sportMask: r.be16(at + 38),
    family: r.u16(at + 40),
    prefixlenD: r.u8(at + 42),
    prefixlenS: r.u8(at + 43),
    proto: r.u8(at + 44),
    ifindex: r.i32(at + 48),
    user: r.u32(at + 52),
  };
}

/** A selector that matches everything (the kernel fills in the family of an SA's empty selector). */
export function anySelector(family = 0): XfrmSelector {
  return {
    daddr: ZERO_ADDRESS,
    saddr: ZERO_ADDRESS,
    dport: 0,
    dportMask: 0,
    sport: 0,
    sportMask: 0,
    family,
    prefixlenD: 0,
    prefixlenS: 0,
    proto: 0,
    ifindex: 0,
    user: 0,
  };
}

// --- xfrm_id (24 bytes) -----------------------------------------------------------------------

function writeId(w: StructWriter, at: number, id: XfrmId): void {
  w.address(at + 0, id.daddr);
  w.be32(at + 16, id.spi);
  w.u8(at + 20, id.proto);
  // 21-23: padding
}

function readId(r: StructReader, at: number): XfrmId {
  return { daddr: r.address(at + 0), spi: r.be32(at + 16), proto: r.u8(at + 20) };
}

export function encodeId(id: XfrmId): Uint8Array {
  const w = new StructWriter(XFRM_ID_SIZE);
  writeId(w, 0, id);
  return w.bytes;
}

// --- xfrm_lifetime_cfg (64) and xfrm_lifetime_cur (32) ------------------------------------------

function writeLifetimeCfg(w: StructWriter, at: number, lft: XfrmLifetimeCfg): void {
  w.u64(at + 0, lft.softByteLimit);
  w.u64(at + 8, lft.hardByteLimit);
  w.u64(at + 16, lft.softPacketLimit);
  w.u64(at + 24, lft.hardPacketLimit);
  w.u64(at + 32, lft.softAddExpiresSeconds);
  w.u64(at + 40, lft.hardAddExpiresSeconds);
  w.u64(at + 48, lft.softUseExpiresSeconds);
  w.u64(at + 56, lft.hardUseExpiresSeconds);
}

function readLifetimeCfg(r: StructReader, at: number): XfrmLifetimeCfg {
  return {
    softByteLimit: r.u64(at + 0),
    hardByteLimit: r.u64(at + 8),
    softPacketLimit: r.u64(at + 16),
    hardPacketLimit: r.u64(at + 24),
    softAddExpiresSeconds: r.u64(at + 32),
    hardAddExpiresSeconds: r.u64(at + 40),
    softUseExpiresSeconds: r.u64(at + 48),
    hardUseExpiresSeconds: r.u64(at + 56),
  };
}

function writeLifetimeCur(w: StructWriter, at: number, cur: XfrmLifetimeCur): void {
  w.u64(at + 0, cur.bytes);
  w.u64(at + 8, cur.packets);
  w.u64(at + 16, cur.addTime);
  w.u64(at + 24, cur.useTime);
}

function readLifetimeCur(r: StructReader, at: number): XfrmLifetimeCur {
  return { bytes: r.u64(at + 0), packets: r.u64(at + 8), addTime: r.u64(at + 16), useTime: r.u64(at + 24) };
}

export function encodeLifetimeCfg(lft: XfrmLifetimeCfg): Uint8Array {
  const w = new StructWriter(XFRM_LIFETIME_CFG_SIZE);
  writeLifetimeCfg(w, 0, lft);
  return w.bytes;
}

export function decodeLifetimeCur(bytes: Uint8Array): XfrmLifetimeCur {
  requireLength(bytes, XFRM_LIFETIME_CUR_SIZE, 'xfrm_lifetime_cur');
  return readLifetimeCur(new StructReader(bytes), 0);
}

export const NO_LIFETIME_CUR: XfrmLifetimeCur = { bytes: 0n, packets: 0n, addTime: 0n, useTime: 0n };

// --- xfrm_stats (12 bytes) ----------------------------------------------------------------------------

function writeStats(w: StructWriter, at: number, stats: XfrmStats): void {
  w.u32(at + 0, stats.replayWindow);
  w.u32(at + 4, stats.replay);
  w.u32(at + 8, stats.integrityFailed);
}

function readStats(r: StructReader, at: number): XfrmStats {
  return { replayWindow: r.u32(at + 0), replay: r.u32(at + 4), integrityFailed: r.u32(at + 8) };
}

export const NO_STATS: XfrmStats = { replayWindow: 0, replay: 0, integrityFailed: 0 };

// --- xfrm_usersa_info (224) ---------------------------------------------------------------------

function writeUsersaInfo(w: StructWriter, at: number, info: XfrmUsersaInfo): void {
  writeSelector(w, at + 0, info.sel);
  writeId(w, at + 56, info.id);
  w.address(at + 80, info.saddr);
  writeLifetimeCfg(w, at + 96, info.lft);
  writeLifetimeCur(w, at + 160, info.curlft);
  writeStats(w, at + 192, info.stats);
  w.u32(at + 204, info.seq);
  w.u32(at + 208, info.reqid);
  w.u16(at + 212, info.family);
  w.u8(at + 214, info.mode);
  w.u8(at + 215, info.replayWindow);
  w.u8(at + 216, info.flags);
  // 217-223: tail padding (the struct is 8-aligned by its __u64 members)
}

function readUsersaInfo(r: StructReader, at: number): XfrmUsersaInfo {
  return {
    sel: readSelector(r, at + 0),
    id: readId(r, at + 56),
    saddr: r.address(at + 80),
    lft: readLifetimeCfg(r, at + 96),
    curlft: readLifetimeCur(r, at + 160),
    stats: readStats(r, at + 192),
    seq: r.u32(at + 204),
    reqid: r.u32(at + 208),
    family: r.u16(at + 212),
    mode: r.u8(at + 214),
    replayWindow: r.u8(at + 215),
    flags: r.u8(at + 216),
  };
}

export function encodeUsersaInfo(info: XfrmUsersaInfo): Uint8Array {
  const w = new StructWriter(XFRM_USERSA_INFO_SIZE);
  writeUsersaInfo(w, 0, info);
  return w.bytes;
}

export function decodeUsersaInfo(bytes: Uint8Array): XfrmUsersaInfo {
  requireLength(bytes, XFRM_USERSA_INFO_SIZE, 'xfrm_usersa_info');
  return readUsersaInfo(new StructReader(bytes), 0);
}

// --- xfrm_usersa_id (24) ------------------------------------------------------------------------

function writeUsersaId(w: StructWriter, at: number, id: XfrmUsersaId): void {
  w.address(at + 0, id.daddr);
  w.be32(at + 16, id.spi);
  w.u16(at + 20, id.family);
  w.u8(at + 22, id.proto);
  // 23: padding
}

function readUsersaId(r: StructReader, at: number): XfrmUsersaId {
  return { daddr: r.address(at + 0), spi: r.be32(at + 16), family: r.u16(at + 20), proto: r.u8(at + 22) };
}

export function encodeUsersaId(id: XfrmUsersaId): Uint8Array {
  const w = new StructWriter(XFRM_USERSA_ID_SIZE);
  writeUsersaId(w, 0, id);
  return w.bytes;
}

export function decodeUsersaId(bytes: Uint8Array): XfrmUsersaId {
  requireLength(bytes, XFRM_USERSA_ID_SIZE, 'xfrm_usersa_id');
  return readUsersaId(new StructReader(bytes), 0);
}

// --- xfrm_userspi_info (232) --------------------------------------------------------------------

export function encodeUserspiInfo(spi: XfrmUserspiInfo): Uint8Array {
  const w = new StructWriter(XFRM_USERSPI_INFO_SIZE);
  writeUsersaInfo(w, 0, spi.info);
  w.u32(224, spi.min);
  w.u32(228, spi.max);
  return w.bytes;
}

export function decodeUserspiInfo(bytes: Uint8Array): XfrmUserspiInfo {
  requireLength(bytes, XFRM_USERSPI_INFO_SIZE, 'xfrm_userspi_info');
  const r = new StructReader(bytes);
  return { info: readUsersaInfo(r, 0), min: r.u32(224), max: r.u32(228) };
}

// --- xfrm_userpolicy_info (168) -----------------------------------------------------------------

function writeUserpolicyInfo(w: StructWriter, at: number, p: XfrmUserpolicyInfo): void {
  writeSelector(w, at + 0, p.sel);
  writeLifetimeCfg(w, at + 56, p.lft);
  writeLifetimeCur(w, at + 120, p.curlft);
  w.u32(at + 152, p.priority);
  w.u32(at + 156, p.index);
  w.u8(at + 160, p.dir);
  w.u8(at + 161, p.action);
  w.u8(at + 162, p.flags);
  w.u8(at + 163, p.share);
  // 164-167: tail padding
}

function readUserpolicyInfo(r: StructReader, at: number): XfrmUserpolicyInfo {
  return {
    sel: readSelector(r, at + 0),
    lft: readLifetimeCfg(r, at + 56),
    curlft: readLifetimeCur(r, at + 120),
    priority: r.u32(at + 152),
    index: r.u32(at + 156),
    dir: r.u8(at + 160),
    action: r.u8(at + 161),
    flags: r.u8(at + 162),
    share: r.u8(at + 163),
  };
}

export function encodeUserpolicyInfo(p: XfrmUserpolicyInfo): Uint8Array {
  const w = new StructWriter(XFRM_USERPOLICY_INFO_SIZE);
  writeUserpolicyInfo(w, 0, p);
  return w.bytes;
}

export function decodeUserpolicyInfo(bytes: Uint8Array): XfrmUserpolicyInfo {
  requireLength(bytes, XFRM_USERPOLICY_INFO_SIZE, 'xfrm_userpolicy_info');
  return readUserpolicyInfo(new StructReader(bytes), 0);
}

// --- xfrm_userpolicy_id (64) --------------------------------------------------------------------

export function encodeUserpolicyId(id: XfrmUserpolicyId): Uint8Array {
  const w = new StructWriter(XFRM_USERPOLICY_ID_SIZE);
  writeSelector(w, 0, id.sel);
  w.u32(56, id.index);
  w.u8(60, id.dir);
  // 61-63: padding
  return w.bytes;
}

export function decodeUserpolicyId(bytes: Uint8Array): XfrmUserpolicyId {
  requireLength(bytes, XFRM_USERPOLICY_ID_SIZE, 'xfrm_userpolicy_id');
  const r = new StructReader(bytes);
  return { sel: readSelector(r, 0), index: r.u32(56), dir: r.u8(60) };
}

// --- xfrm_user_tmpl (64), an XFRMA_TMPL attribute holds one or more -----------------------------

function writeUserTmpl(w: StructWriter, at: number, t: XfrmUserTmpl): void {
  writeId(w, at + 0, t.id);
  w.u16(at + 24, t.family);
  // 26-27: padding
  w.address(at + 28, t.saddr);
  w.u32(at + 44, t.reqid);
  w.u8(at + 48, t.mode);
  w.u8(at + 49, t.share);
  w.u8(at + 50, t.optional);
  // 51: padding
  w.u32(at + 52, t.aalgos);
  w.u32(at + 56, t.ealgos);
  w.u32(at + 60, t.calgos);
}

function readUserTmpl(r: StructReader, at: number): XfrmUserTmpl {
  return {
    id: readId(r, at + 0),
    family: r.u16(at + 24),
    saddr: r.address(at + 28),
    reqid: r.u32(at + 44),
    mode: r.u8(at + 48),
    share: r.u8(at + 49),
    optional: r.u8(at + 50),
    aalgos: r.u32(at + 52),
    ealgos: r.u32(at + 56),
    calgos: r.u32(at + 60),
  };
}

export function encodeUserTmpls(templates: readonly XfrmUserTmpl[]): Uint8Array {
  const w = new StructWriter(XFRM_USER_TMPL_SIZE * templates.length);
  templates.forEach((t, i) => writeUserTmpl(w, i * XFRM_USER_TMPL_SIZE, t));
  return w.bytes;
}

export function decodeUserTmpls(bytes: Uint8Array): XfrmUserTmpl[] {
  if (bytes.length % XFRM_USER_TMPL_SIZE !== 0)
    throw new NetlinkParseError(
      `XFRMA_TMPL of ${bytes.length} bytes is not a whole number of ${XFRM_USER_TMPL_SIZE}-byte xfrm_user_tmpl`,
      0,
    );
  const r = new StructReader(bytes);
  const out: XfrmUserTmpl[] = [];
  for (let at = 0; at < bytes.length; at += XFRM_USER_TMPL_SIZE) out.push(readUserTmpl(r, at));
  return out;
}

// --- xfrm_algo (68+), xfrm_algo_auth (72+), xfrm_algo_aead (72+) --------------------------------

const ALG_NAME_SIZE = 64;

function writeAlgName(w: StructWriter, name: string): void {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length >= ALG_NAME_SIZE)
    throw new RangeError(`algorithm name '${name}' does not fit alg_name[${ALG_NAME_SIZE}]`);
  w.put(0, bytes); // NUL-terminated by the zeros after it
}

function readAlgName(bytes: Uint8Array): string {
  const field = bytes.subarray(0, ALG_NAME_SIZE);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

export function encodeAlgo(algo: XfrmAlgo): Uint8Array {
  const w = new StructWriter(XFRM_ALGO_SIZE + algo.key.length);
  writeAlgName(w, algo.name);
  w.u32(64, algo.key.length * 8);
  w.put(68, algo.key);
  return w.bytes;
}

export function encodeAlgoAuth(algo: XfrmAlgoAuth): Uint8Array {
  const w = new StructWriter(XFRM_ALGO_AUTH_SIZE + algo.key.length);
  writeAlgName(w, algo.name);
  w.u32(64, algo.key.length * 8);
  w.u32(68, algo.truncBits);
  w.put(72, algo.key);
  return w.bytes;
}

export function encodeAlgoAead(algo: XfrmAlgoAead): Uint8Array {
  const w = new StructWriter(XFRM_ALGO_AEAD_SIZE + algo.key.length);
  writeAlgName(w, algo.name);
  w.u32(64, algo.key.length * 8);
  w.u32(68, algo.icvBits);
  w.put(72, algo.key);
  return w.bytes;
}

function algoKey(bytes: Uint8Array, header: number, bits: number, what: string): Uint8Array {
  const length = Math.ceil(bits / 8);
  requireLength(bytes, header + length, `${what} with a ${bits}-bit key`);
  return bytes.slice(header, header + length);
}

export function decodeAlgo(bytes: Uint8Array): XfrmAlgo {
  requireLength(bytes, XFRM_ALGO_SIZE, 'xfrm_algo');
  const r = new StructReader(bytes);
  return { name: readAlgName(bytes), key: algoKey(bytes, XFRM_ALGO_SIZE, r.u32(64), 'xfrm_algo') };
}

export function decodeAlgoAuth(bytes: Uint8Array): XfrmAlgoAuth {
  requireLength(bytes, XFRM_ALGO_AUTH_SIZE, 'xfrm_algo_auth');
  const r = new StructReader(bytes);
  return {
    name: readAlgName(bytes),
    key: algoKey(bytes, XFRM_ALGO_AUTH_SIZE, r.u32(64), 'xfrm_algo_auth'),
    truncBits: r.u32(68),
  };
}

export function decodeAlgoAead(bytes: Uint8Array): XfrmAlgoAead {
  requireLength(bytes, XFRM_ALGO_AEAD_SIZE, 'xfrm_algo_aead');
  const r = new StructReader(bytes);
  return {
    name: readAlgName(bytes),
    key: algoKey(bytes, XFRM_ALGO_AEAD_SIZE, r.u32(64), 'xfrm_algo_aead'),
    icvBits: r.u32(68),
  };
}

// --- xfrm_encap_tmpl (24) -----------------------------------------------------------------------

export function encodeEncapTmpl(encap: XfrmEncapTmpl): Uint8Array {
  const w = new StructWriter(XFRM_ENCAP_TMPL_SIZE);
  w.u16(0, encap.type);
  w.be16(2, encap.sport);
  w.be16(4, encap.dport);
  // 6-7: padding before the 4-aligned address
  w.address(8, encap.oa);
  return w.bytes;
}

export function decodeEncapTmpl(bytes: Uint8Array): XfrmEncapTmpl {
  requireLength(bytes, XFRM_ENCAP_TMPL_SIZE, 'xfrm_encap_tmpl');
  const r = new StructReader(bytes);
  return { type: r.u16(0), sport: r.be16(2), dport: r.be16(4), oa: r.address(8) };
}

// --- xfrm_mark (8) ------------------------------------------------------------------------------

export function encodeMark(mark: XfrmMark): Uint8Array {
  const w = new StructWriter(XFRM_MARK_SIZE);
  w.u32(0, mark.value);
  w.u32(4, mark.mask);
  return w.bytes;
}

export function decodeMark(bytes: Uint8Array): XfrmMark {
  requireLength(bytes, XFRM_MARK_SIZE, 'xfrm_mark');
  const r = new StructReader(bytes);
  return { value: r.u32(0), mask: r.u32(4) };
}

// --- xfrm_replay_state_esn (24 + 4 * bmp_len) ---------------------------------------------------

export function encodeReplayStateEsn(state: XfrmReplayStateEsn): Uint8Array {
  const w = new StructWriter(XFRM_REPLAY_STATE_ESN_SIZE + 4 * state.bmpLen);
  w.u32(0, state.bmpLen);
  w.u32(4, state.oseq);
  w.u32(8, state.seq);
  w.u32(12, state.oseqHi);
  w.u32(16, state.seqHi);
  w.u32(20, state.replayWindow);
  for (let i = 0; i < state.bmpLen; i++) w.u32(24 + 4 * i, state.bmp[i] ?? 0);
  return w.bytes;
}

export function decodeReplayStateEsn(bytes: Uint8Array): XfrmReplayStateEsn {
  requireLength(bytes, XFRM_REPLAY_STATE_ESN_SIZE, 'xfrm_replay_state_esn');
  const r = new StructReader(bytes);
  const bmpLen = r.u32(0);
  requireLength(
    bytes,
    XFRM_REPLAY_STATE_ESN_SIZE + 4 * bmpLen,
    `xfrm_replay_state_esn with bmp_len ${bmpLen}`,
  );
  return {
    bmpLen,
    oseq: r.u32(4),
    seq: r.u32(8),
    oseqHi: r.u32(12),
    seqHi: r.u32(16),
    replayWindow: r.u32(20),
    bmp: Array.from({ length: bmpLen }, (_, i) => r.u32(24 + 4 * i)),
  };
}

// --- events: xfrm_user_acquire (280), xfrm_user_expire (232), xfrm_user_polexpire (176),
//     xfrm_user_mapping (64) ---------------------------------------------------------------------

export function encodeUserAcquire(a: XfrmUserAcquire): Uint8Array {
  const w = new StructWriter(XFRM_USER_ACQUIRE_SIZE);
  writeId(w, 0, a.id);
  w.address(24, a.saddr);
  writeSelector(w, 40, a.sel);
  writeUserpolicyInfo(w, 96, a.policy);
  w.u32(264, a.aalgos);
  w.u32(268, a.ealgos);
  w.u32(272, a.calgos);
  w.u32(276, a.seq);
  return w.bytes;
}

export function decodeUserAcquire(bytes: Uint8Array): XfrmUserAcquire {
  requireLength(bytes, XFRM_USER_ACQUIRE_SIZE, 'xfrm_user_acquire');
  const r = new StructReader(bytes);
  return {
    id: readId(r, 0),
    saddr: r.address(24),
    sel: readSelector(r, 40),
    policy: readUserpolicyInfo(r, 96),
    aalgos: r.u32(264),
    ealgos: r.u32(268),
    calgos: r.u32(272),
    seq: r.u32(276),
  };
}

export function encodeUserExpire(e: XfrmUserExpire): Uint8Array {
  const w = new StructWriter(XFRM_USER_EXPIRE_SIZE);
  writeUsersaInfo(w, 0, e.state);
  w.u8(224, e.hard ? 1 : 0);
  // 225-231: tail padding
  return w.bytes;
}

export function decodeUserExpire(bytes: Uint8Array): XfrmUserExpire {
  requireLength(bytes, XFRM_USER_EXPIRE_SIZE, 'xfrm_user_expire');
  const r = new StructReader(bytes);
  return { state: readUsersaInfo(r, 0), hard: r.u8(224) !== 0 };
}

export function decodeUserPolexpire(bytes: Uint8Array): XfrmUserPolexpire {
  requireLength(bytes, XFRM_USER_POLEXPIRE_SIZE, 'xfrm_user_polexpire');
  const r = new StructReader(bytes);
  return { policy: readUserpolicyInfo(r, 0), hard: r.u8(168) !== 0 };
}

export function encodeUserMapping(m: XfrmUserMapping): Uint8Array {
  const w = new StructWriter(XFRM_USER_MAPPING_SIZE);
  writeUsersaId(w, 0, m.id);
  w.u32(24, m.reqid);
  w.address(28, m.oldSaddr);
  w.address(44, m.newSaddr);
  w.be16(60, m.oldSport);
  w.be16(62, m.newSport);
  return w.bytes;
}

export function decodeUserMapping(bytes: Uint8Array): XfrmUserMapping {
  requireLength(bytes, XFRM_USER_MAPPING_SIZE, 'xfrm_user_mapping');
  const r = new StructReader(bytes);
  return {
    id: readUsersaId(r, 0),
    reqid: r.u32(24),
    oldSaddr: r.address(28),
    newSaddr: r.address(44),
    oldSport: r.be16(60),
    newSport: r.be16(62),
  };
}
