import {
  align4,
  concat,
  decodeAttributes,
  encodeAttributes,
  type NetlinkAttribute,
  type NetlinkMessage,
  NetlinkParseError,
  NLMSG_HDRLEN,
} from '../netlink/message.js';
import {
  IPPROTO_ESP,
  UDP_ENCAP_ESPINUDP,
  XFRM_INF,
  XFRM_MSG_ACQUIRE,
  XFRM_MSG_EXPIRE,
  XFRM_MSG_MAPPING,
  XFRM_MSG_POLEXPIRE,
  XFRM_POLICY_ALLOW,
  XFRM_SHARE_ANY,
  XFRM_USER_ACQUIRE_SIZE,
  XFRM_USER_EXPIRE_SIZE,
  XFRM_USER_POLEXPIRE_SIZE,
  XFRM_USERPOLICY_INFO_SIZE,
  XFRM_USERSA_INFO_SIZE,
  XFRMA_ENCAP,
  XFRMA_REPLAY_ESN_VAL,
  XFRMA_REPLAY_ESN_MAX,
  XFRMA_SRCADDR,
  XFRMA_TMPL,
  xfrmMessageName,
} from './constants.js';
import {
  anySelector,
  decodeUserAcquire,
  decodeUserExpire,
  decodeUserMapping,
  decodeUserPolexpire,
  decodeUserpolicyInfo,
  decodeUsersaInfo,
  decodeUserTmpls,
  encodeEncapTmpl,
  encodeReplayStateEsn,
  encodeUserpolicyId,
  encodeUserpolicyInfo,
  encodeUsersaId,
  encodeUsersaInfo,
  encodeUserspiInfo,
  encodeUserTmpls,
  familyOf,
  NO_LIFETIME_CUR,
  NO_STATS,
  type XfrmLifetimeCfg,
  type XfrmSelector,
  type XfrmUserAcquire,
  type XfrmUserExpire,
  type XfrmUserMapping,
  type XfrmUserPolexpire,
  type XfrmUserpolicyInfo,
  type XfrmUsersaInfo,
  type XfrmUserTmpl,
} from './structs.js';

/**
 * Payloads of the requests the backend sends (everything after the netlink header) and decoders
 * for what the kernel sends back. Pure functions: the tests compare them byte for byte.
 */

const ZERO_ADDRESS = new Uint8Array(16);

export interface LifetimeLimits {
  readonly softBytes?: bigint;
  readonly hardBytes?: bigint;
  readonly softAddSeconds?: number;
  readonly hardAddSeconds?: number;
}

/** XFRM_INF for byte and packet limits that are not set (0 would expire on the first packet), 0 for seconds. */
export function lifetimeCfg(limits: LifetimeLimits = {}): XfrmLifetimeCfg {
  return {
    softByteLimit: limits.softBytes ?? XFRM_INF,
    hardByteLimit: limits.hardBytes ?? XFRM_INF,
    softPacketLimit: XFRM_INF,
    hardPacketLimit: XFRM_INF,
    softAddExpiresSeconds: BigInt(limits.softAddSeconds ?? 0),
    hardAddExpiresSeconds: BigInt(limits.hardAddSeconds ?? 0),
    softUseExpiresSeconds: 0n,
    hardUseExpiresSeconds: 0n,
  };
}

export interface SaSpec {
  /** Outer addresses, 4 or 16 bytes. */
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  readonly spi: number;
  readonly mode: number;
  readonly reqid: number;
  /** The SA's own selector (transport mode); anySelector() otherwise. */
  readonly selector?: XfrmSelector;
  readonly lifetime: XfrmLifetimeCfg;
  /** Anti-replay window in packets: up to 32 in the struct, beyond in XFRMA_REPLAY_ESN_VAL. */
  readonly replayWindow: number;
  readonly flags?: number;
  /** XFRMA_ALG_* attributes (algorithmAttributes). */
  readonly algorithms: readonly NetlinkAttribute[];
  /** ESP in UDP (RFC 3948): the SA's source and destination ports. */
  readonly encap?: { readonly sport: number; readonly dport: number };
}

function usersaInfo(spec: {
  src: Uint8Array;
  dst: Uint8Array;
  spi: number;
  mode: number;
  reqid: number;
  selector?: XfrmSelector | undefined;
  lifetime: XfrmLifetimeCfg;
  replayWindow: number;
  flags: number;
}): XfrmUsersaInfo {
  return {
    sel: spec.selector ?? anySelector(),
    id: { daddr: spec.dst, spi: spec.spi, proto: IPPROTO_ESP },
    saddr: spec.src,
    lft: spec.lifetime,
    curlft: NO_LIFETIME_CUR,
    stats: NO_STATS,
    seq: 0,
    reqid: spec.reqid,
    family: familyOf(spec.dst),
    mode: spec.mode,
    replayWindow: spec.replayWindow,
    flags: spec.flags,
  };
}

/** XFRM_MSG_NEWSA / XFRM_MSG_UPDSA: xfrm_usersa_info, then the algorithms, encapsulation and replay state. */
export function buildSa(spec: SaSpec): Uint8Array {
  if (
    !Number.isInteger(spec.replayWindow) ||
    spec.replayWindow < 0 ||
    spec.replayWindow > XFRMA_REPLAY_ESN_MAX
  )
    throw new RangeError(`replay window ${spec.replayWindow} is not 0..${XFRMA_REPLAY_ESN_MAX} packets`);
  const wide = spec.replayWindow > 32;
  const info = usersaInfo({
    ...spec,
    replayWindow: wide ? 0 : spec.replayWindow,
    flags: spec.flags ?? 0,
  });
  const attributes: NetlinkAttribute[] = [...spec.algorithms];
  if (spec.encap)
    attributes.push({
      type: XFRMA_ENCAP,
      value: encodeEncapTmpl({
        type: UDP_ENCAP_ESPINUDP,
        sport: spec.encap.sport,
        dport: spec.encap.dport,
        oa: ZERO_ADDRESS,
      }),
    });
  if (wide) {
    // A window beyond the 32 bits of xfrm_replay_state: the bitmap form, without the ESN flag.
    const bmpLen = Math.ceil(spec.replayWindow / 32);
    attributes.push({
      type: XFRMA_REPLAY_ESN_VAL,
      value: encodeReplayStateEsn({
        bmpLen,
        oseq: 0,
        seq: 0,
        oseqHi: 0,
        seqHi: 0,
        replayWindow: spec.replayWindow,
        bmp: [],
      }),
    });
  }
  return concat([encodeUsersaInfo(info), encodeAttributes(attributes)]);
}

/** XFRM_MSG_DELSA / XFRM_MSG_GETSA: xfrm_usersa_id, plus XFRMA_SRCADDR when `src` is given. */
export function buildSaId(dst: Uint8Array, spi: number, src?: Uint8Array): Uint8Array {
  const id = encodeUsersaId({ daddr: dst, spi, family: familyOf(dst), proto: IPPROTO_ESP });
  if (!src) return id;
  const address = new Uint8Array(16);
  address.set(src);
  return concat([id, encodeAttributes([{ type: XFRMA_SRCADDR, value: address }])]);
}

/** XFRM_MSG_ALLOCSPI: xfrm_userspi_info for a larval inbound SA src -> dst. */
export function buildAllocSpi(spec: {
  src: Uint8Array;
  dst: Uint8Array;
  reqid: number;
  mode: number;
  min: number;
  max: number;
}): Uint8Array {
  const info = usersaInfo({
    src: spec.src,
    dst: spec.dst,
    spi: 0,
    mode: spec.mode,
    reqid: spec.reqid,
    lifetime: lifetimeCfg(),
    replayWindow: 0,
    flags: 0,
  });
  return encodeUserspiInfo({ info, min: spec.min, max: spec.max });
}

export interface PolicySpec {
  readonly selector: XfrmSelector;
  readonly dir: number;
  readonly priority: number;
  readonly action?: number;
  readonly templates: readonly XfrmUserTmpl[];
}

export function userpolicyInfo(spec: Omit<PolicySpec, 'templates'>): XfrmUserpolicyInfo {
  return {
    sel: spec.selector,
    lft: lifetimeCfg(),
    curlft: NO_LIFETIME_CUR,
    priority: spec.priority,
    index: 0,
    dir: spec.dir,
    action: spec.action ?? XFRM_POLICY_ALLOW,
    flags: 0,
    share: XFRM_SHARE_ANY,
  };
}

/** XFRM_MSG_NEWPOLICY / XFRM_MSG_UPDPOLICY: xfrm_userpolicy_info, then XFRMA_TMPL. */
export function buildPolicy(spec: PolicySpec): Uint8Array {
  const info = encodeUserpolicyInfo(userpolicyInfo(spec));
  if (spec.templates.length === 0) return info;
  return concat([info, encodeAttributes([{ type: XFRMA_TMPL, value: encodeUserTmpls(spec.templates) }])]);
}

/** XFRM_MSG_DELPOLICY / XFRM_MSG_GETPOLICY: by selector and direction, or by index. */
export function buildPolicyId(selector: XfrmSelector, dir: number, index = 0): Uint8Array {
  return encodeUserpolicyId({ sel: selector, index, dir });
}

/**
 * The per-socket policy (IP_XFRM_POLICY / IPV6_XFRM_POLICY) that lets IKE traffic bypass every
 * SPD entry: an xfrm_userpolicy_info with no template. The kernel (xfrm_compile_policy) accepts
 * only dir in or out, wants sel.family set, action ALLOW or BLOCK and share <= XFRM_SHARE_UNIQUE.
 */
export function buildSocketBypass(family: number, dir: number): Uint8Array {
  return encodeUserpolicyInfo(userpolicyInfo({ selector: anySelector(family), dir, priority: 0 }));
}

// --- answers and events ------------------------------------------------------------------------

export interface SaMessage {
  readonly info: XfrmUsersaInfo;
  readonly attributes: readonly NetlinkAttribute[];
}

export interface PolicyMessage {
  readonly info: XfrmUserpolicyInfo;
  readonly templates: readonly XfrmUserTmpl[];
  readonly attributes: readonly NetlinkAttribute[];
}

/** A NetlinkParseError's message ends with "(at byte N)": the wrapper says it again with its own offset. */
function withoutOffset(message: string): string {
  return message.replace(/ \(at byte \d+\)$/, '');
}

function attributesAfter(message: NetlinkMessage, size: number, what: string): NetlinkAttribute[] {
  try {
    return decodeAttributes(message.payload, align4(size));
  } catch (error) {
    if (error instanceof NetlinkParseError)
      throw new NetlinkParseError(`${what}: ${withoutOffset(error.message)}`, NLMSG_HDRLEN + error.offset);
    throw error;
  }
}

/** Names the message in a parse error from a struct decoder; offsets become relative to the message. */
function wrap<T>(what: string, decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (error instanceof NetlinkParseError && !error.message.startsWith(what))
      throw new NetlinkParseError(`${what}: ${withoutOffset(error.message)}`, NLMSG_HDRLEN + error.offset);
    throw error;
  }
}

/** An SA as XFRM_MSG_NEWSA carries it (answers to GETSA, ALLOCSPI and dumps). */
export function decodeSaMessage(message: NetlinkMessage): SaMessage {
  const what = xfrmMessageName(message.type);
  return wrap(what, () => ({
    info: decodeUsersaInfo(message.payload),
    attributes: attributesAfter(message, XFRM_USERSA_INFO_SIZE, what),
  }));
}

/** A policy as XFRM_MSG_NEWPOLICY carries it (answers to GETPOLICY and dumps). */
export function decodePolicyMessage(message: NetlinkMessage): PolicyMessage {
  const what = xfrmMessageName(message.type);
  return wrap(what, () => {
    const info = decodeUserpolicyInfo(message.payload);
    const attributes = attributesAfter(message, XFRM_USERPOLICY_INFO_SIZE, what);
    const tmpl = attributes.find((a) => a.type === XFRMA_TMPL);
    return { info, templates: tmpl ? decodeUserTmpls(tmpl.value) : [], attributes };
  });
}

export type XfrmEvent =
  | {
      readonly kind: 'acquire';
      readonly acquire: XfrmUserAcquire;
      readonly templates: readonly XfrmUserTmpl[];
    }
  | { readonly kind: 'expire'; readonly expire: XfrmUserExpire }
  | { readonly kind: 'polexpire'; readonly polexpire: XfrmUserPolexpire }
  | { readonly kind: 'mapping'; readonly mapping: XfrmUserMapping }
  | { readonly kind: 'other'; readonly type: number };

/** A multicast message from the ACQUIRE, EXPIRE or MAPPING groups; throws NetlinkParseError when garbled. */
export function decodeXfrmEvent(message: NetlinkMessage): XfrmEvent {
  const what = xfrmMessageName(message.type);
  switch (message.type) {
    case XFRM_MSG_ACQUIRE:
      return wrap(what, () => {
        const acquire = decodeUserAcquire(message.payload);
        const attributes = attributesAfter(message, XFRM_USER_ACQUIRE_SIZE, what);
        const tmpl = attributes.find((a) => a.type === XFRMA_TMPL);
        return { kind: 'acquire', acquire, templates: tmpl ? decodeUserTmpls(tmpl.value) : [] };
      });
    case XFRM_MSG_EXPIRE:
      return wrap(what, () => {
        const expire = decodeUserExpire(message.payload);
        attributesAfter(message, XFRM_USER_EXPIRE_SIZE, what);
        return { kind: 'expire', expire };
      });
    case XFRM_MSG_POLEXPIRE:
      return wrap(what, () => {
        const polexpire = decodeUserPolexpire(message.payload);
        attributesAfter(message, XFRM_USER_POLEXPIRE_SIZE, what);
        return { kind: 'polexpire', polexpire };
      });
    case XFRM_MSG_MAPPING:
      return wrap(what, () => ({ kind: 'mapping', mapping: decodeUserMapping(message.payload) }));
    default:
      return { kind: 'other', type: message.type };
  }
}
