import {
  IPSEC_DIR_INBOUND,
  IPSEC_DIR_OUTBOUND,
  IPSEC_MODE_TRANSPORT,
  IPSEC_MODE_TUNNEL,
  IPSEC_POLICY_BYPASS,
  LINUX_EXT,
  LINUX_SADB_X_NAT_T_NEW_MAPPING,
  LINUX_SADB_X_SPDADD,
  LINUX_SADB_X_SPDDELETE,
  LINUX_SADB_X_SPDDELETE2,
  LINUX_SADB_X_SPDDUMP,
  OPENBSD_SADB_X_ADDFLOW,
  OPENBSD_SADB_X_ASKPOLICY,
  OPENBSD_SADB_X_DELFLOW,
  OPENBSD_SADB_X_SAFLAGS_TUNNEL,
  OPENBSD_SADB_X_SAFLAGS_UDPENCAP,
  type PfkeyFlavour,
  SADB_ACQUIRE,
  SADB_ADD,
  SADB_DELETE,
  SADB_DUMP,
  SADB_EXPIRE,
  SADB_FLUSH,
  SADB_GET,
  SADB_GETSPI,
  SADB_REGISTER,
  SADB_SASTATE_MATURE,
  SADB_UPDATE,
  SATYPE,
  UDP_ENCAP_ESPINUDP,
} from './constants.js';
import {
  type AddressExtension,
  type IpsecRequest,
  type LifetimeExtension,
  PfkeyParseError,
  type SadbExtension,
  type SadbMessage,
  findExtension,
} from './codec.js';

/**
 * Builders for the requests the backend sends, and readers for the answers and kernel messages it
 * receives. A request is a message without seq and pid: the channel numbers it.
 */

export type SadbRequest = Omit<SadbMessage, 'seq' | 'pid' | 'errno' | 'reserved'>;

export type SaMode = 'tunnel' | 'transport';

export interface SaLifetime {
  readonly bytes: bigint;
  readonly seconds: bigint;
}

/** Everything SADB_ADD and SADB_UPDATE carry for one ESP SA. */
export interface SaSpec {
  /** Inbound (ours, from the peer) or outbound (the peer's SPI). */
  readonly direction: 'in' | 'out';
  readonly spi: number;
  /** The SA's endpoints: for an inbound SA, the peer is `src` and we are `dst`. */
  readonly src: string;
  readonly dst: string;
  readonly auth: number;
  readonly encrypt: number;
  readonly authKey?: Uint8Array;
  readonly encryptKey: Uint8Array;
  readonly replay: number;
  readonly mode: SaMode;
  /** Linux: sadb_x_sa2_reqid, which binds the SA to policies of level unique. */
  readonly reqid?: number;
  readonly lifetime?: { readonly soft: SaLifetime; readonly hard: SaLifetime };
  /** ESP in UDP: the UDP ports of the packets this SA sends or receives (src side, dst side). */
  readonly udpEncap?: { readonly sport: number; readonly dport: number };
  /** OpenBSD: a pf tag for the decrypted packets, and our ownership mark. */
  readonly tag?: string;
}

function satype(flavour: PfkeyFlavour): number {
  return SATYPE[flavour].esp;
}

function hostAddress(which: 'src' | 'dst', address: string, port = 0): AddressExtension {
  return { kind: 'address', which, address, port };
}

function saExtension(
  spi: number,
  extra: Partial<{ replay: number; auth: number; encrypt: number; flags: number }> = {},
): SadbExtension {
  return {
    kind: 'sa',
    spi,
    replay: extra.replay ?? 0,
    state: SADB_SASTATE_MATURE,
    auth: extra.auth ?? 0,
    encrypt: extra.encrypt ?? 0,
    flags: extra.flags ?? 0,
  };
}

function lifetimes(spec: SaSpec): LifetimeExtension[] {
  if (!spec.lifetime) return [];
  const one = (which: 'soft' | 'hard', value: SaLifetime): LifetimeExtension => ({
    kind: 'lifetime',
    which,
    allocations: 0,
    bytes: value.bytes,
    addtime: value.seconds,
    usetime: 0n,
  });
  // Linux af_key.c pfkey_msg2xfrm_state: hard and soft must come together or not at all.
  return [one('hard', spec.lifetime.hard), one('soft', spec.lifetime.soft)];
}

/**
 * SADB_GETSPI (RFC 2367 section 3.1.1): reserve an SPI in [min, max] for an SA from `src` to
 * `dst`; the answer's sadb_sa carries it. Both kernels read the range in host byte order.
 */
export function buildGetSpi(
  flavour: PfkeyFlavour,
  params: { readonly src: string; readonly dst: string; readonly min: number; readonly max: number },
): SadbRequest {
  return {
    type: SADB_GETSPI,
    satype: satype(flavour),
    extensions: [
      { kind: 'spirange', min: params.min, max: params.max },
      hostAddress('src', params.src),
      hostAddress('dst', params.dst),
    ],
  };
}

/** SADB_ADD (an SA the kernel does not know) or SADB_UPDATE (the larval SA of a GETSPI). */
export function buildAddSa(flavour: PfkeyFlavour, kind: 'add' | 'update', spec: SaSpec): SadbRequest {
  const extensions: SadbExtension[] = [];
  if (flavour === 'linux') {
    extensions.push(
      saExtension(spec.spi, { replay: spec.replay, auth: spec.auth, encrypt: spec.encrypt }),
      ...lifetimes(spec),
      hostAddress('src', spec.src),
      hostAddress('dst', spec.dst),
    );
    if (spec.authKey) extensions.push({ kind: 'key', which: 'auth', key: spec.authKey });
    extensions.push({ kind: 'key', which: 'encrypt', key: spec.encryptKey });
    extensions.push({
      kind: 'sa2',
      mode: spec.mode === 'tunnel' ? IPSEC_MODE_TUNNEL : IPSEC_MODE_TRANSPORT,
      sequence: 0,
      reqid: spec.reqid ?? 0,
    });
    if (spec.udpEncap) {
      extensions.push(
        { kind: 'natType', natType: UDP_ENCAP_ESPINUDP },
        { kind: 'natPort', which: 'sport', port: spec.udpEncap.sport },
        { kind: 'natPort', which: 'dport', port: spec.udpEncap.dport },
      );
    }
  } else {
    let flags = 0;
    if (spec.mode === 'tunnel') flags |= OPENBSD_SADB_X_SAFLAGS_TUNNEL;
    if (spec.udpEncap) flags |= OPENBSD_SADB_X_SAFLAGS_UDPENCAP;
    extensions.push(
      saExtension(spec.spi, { replay: spec.replay, auth: spec.auth, encrypt: spec.encrypt, flags }),
      hostAddress('src', spec.src),
      hostAddress('dst', spec.dst),
      ...lifetimes(spec),
    );
    // pfkeyv2_convert.c import_udpencap: the peer's port, in network order (iked passes
    // sa_peer's port for both directions).
    if (spec.udpEncap) {
      const peerPort = spec.direction === 'in' ? spec.udpEncap.sport : spec.udpEncap.dport;
      extensions.push({ kind: 'udpencap', port: peerPort });
    }
    extensions.push({ kind: 'key', which: 'encrypt', key: spec.encryptKey });
    if (spec.authKey) extensions.push({ kind: 'key', which: 'auth', key: spec.authKey });
    if (spec.tag) extensions.push({ kind: 'tag', tag: spec.tag });
  }
  return { type: kind === 'add' ? SADB_ADD : SADB_UPDATE, satype: satype(flavour), extensions };
}

/** SADB_DELETE and SADB_GET (RFC 2367 sections 3.1.4, 3.1.5): an SA named by SPI and addresses. */
export function buildSaQuery(
  flavour: PfkeyFlavour,
  kind: 'delete' | 'get',
  params: { readonly spi: number; readonly src: string; readonly dst: string },
): SadbRequest {
  return {
    type: kind === 'delete' ? SADB_DELETE : SADB_GET,
    satype: satype(flavour),
    extensions: [saExtension(params.spi), hostAddress('src', params.src), hostAddress('dst', params.dst)],
  };
}

/** SADB_REGISTER for ESP: the answer lists the supported algorithms; ACQUIREs follow. */
export function buildRegister(flavour: PfkeyFlavour): SadbRequest {
  return { type: SADB_REGISTER, satype: satype(flavour), extensions: [] };
}

/** SADB_FLUSH and SADB_DUMP of ESP SAs (a flush removes every ESP SA, not only ours). */
export function buildFlush(flavour: PfkeyFlavour): SadbRequest {
  return { type: SADB_FLUSH, satype: satype(flavour), extensions: [] };
}

export function buildDump(flavour: PfkeyFlavour): SadbRequest {
  return { type: SADB_DUMP, satype: satype(flavour), extensions: [] };
}

// ---------------------------------------------------------------------------------------------
// Linux policies: SADB_X_SPDADD / SADB_X_SPDDELETE with a sadb_x_policy (af_key.c pfkey_spdadd).

export type PolicyDirection = 'in' | 'out' | 'fwd';

const DIRECTIONS: Record<PolicyDirection, number> = { in: 1, out: 2, fwd: 3 };

/** One end of a Linux policy selector: a prefix and a port (0: any). */
export interface SelectorEnd {
  readonly address: string;
  readonly prefixlen: number;
  readonly port: number;
}

export interface LinuxPolicySpec {
  readonly src: SelectorEnd;
  readonly dst: SelectorEnd;
  /** IP protocol; 0 means any (sent as IPSEC_ULPROTO_ANY). */
  readonly proto: number;
  readonly dir: PolicyDirection;
  readonly priority: number;
  readonly requests: readonly IpsecRequest[];
}

function selectorAddress(which: 'src' | 'dst', end: SelectorEnd, proto: number): AddressExtension {
  // ipsec.h IPSEC_ULPROTO_ANY (255) is "any"; af_key.c pfkey_proto_to_xfrm maps it to 0.
  return {
    kind: 'address',
    which,
    address: end.address,
    port: end.port,
    prefixlen: end.prefixlen,
    proto: proto || 255,
  };
}

export function buildSpdAdd(policy: LinuxPolicySpec): SadbRequest {
  return {
    type: LINUX_SADB_X_SPDADD,
    satype: 0,
    extensions: [
      selectorAddress('src', policy.src, policy.proto),
      selectorAddress('dst', policy.dst, policy.proto),
      {
        kind: 'policy',
        policyType: 2, // IPSEC_POLICY_IPSEC
        dir: DIRECTIONS[policy.dir],
        id: 0,
        priority: policy.priority,
        requests: policy.requests,
      },
    ],
  };
}

/** SADB_X_SPDDELETE: the policy with this selector and direction (its requests are not compared). */
export function buildSpdDelete(policy: Pick<LinuxPolicySpec, 'src' | 'dst' | 'proto' | 'dir'>): SadbRequest {
  return {
    type: LINUX_SADB_X_SPDDELETE,
    satype: 0,
    extensions: [
      selectorAddress('src', policy.src, policy.proto),
      selectorAddress('dst', policy.dst, policy.proto),
      { kind: 'policy', policyType: 2, dir: DIRECTIONS[policy.dir], id: 0, priority: 0, requests: [] },
    ],
  };
}

/** SADB_X_SPDDELETE2: a policy by the index the kernel gave it (its direction is id & 7). */
export function buildSpdDelete2(id: number): SadbRequest {
  return {
    type: LINUX_SADB_X_SPDDELETE2,
    satype: 0,
    extensions: [{ kind: 'policy', policyType: 0, dir: 0, id, priority: 0, requests: [] }],
  };
}

export function buildSpdDump(): SadbRequest {
  return { type: LINUX_SADB_X_SPDDUMP, satype: 0, extensions: [] };
}

/**
 * The per-socket policy that lets a socket's packets bypass IPsec (setsockopt IP_IPSEC_POLICY /
 * IPV6_IPSEC_POLICY): a bare sadb_x_policy of type IPSEC_POLICY_BYPASS, parsed by af_key.c
 * pfkey_compile_policy. Layout: 0 len u16 (2 words), 2 exttype u16 (SADB_X_EXT_POLICY 18),
 * 4 type u16, 6 dir u8, 7 reserved, 8 id u32, 12 priority u32.
 */
export function bypassPolicyOption(dir: 'in' | 'out', littleEndian: boolean): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, 2, littleEndian);
  view.setUint16(2, LINUX_EXT.POLICY, littleEndian);
  view.setUint16(4, IPSEC_POLICY_BYPASS, littleEndian);
  view.setUint8(6, dir === 'in' ? IPSEC_DIR_INBOUND : IPSEC_DIR_OUTBOUND);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// OpenBSD flows: SADB_X_ADDFLOW / SADB_X_DELFLOW (pfkeyv2.c; iked's pfkey_flow sends the same).

/** One end of an OpenBSD flow: network, netmask, port (0: any, matched with a 0xffff mask). */
export interface FlowEnd {
  readonly address: string;
  readonly mask: string;
  readonly port: number;
}

export interface OpenbsdFlowSpec {
  readonly src: FlowEnd;
  readonly dst: FlowEnd;
  readonly proto: number;
  /** IPSP_DIRECTION_IN (1) or IPSP_DIRECTION_OUT (2). */
  readonly direction: 'in' | 'out';
  /** SADB_X_FLOW_TYPE_*: require (3), use (1)... */
  readonly flowType: number;
  /** The SA endpoints: our address and the peer's (SADB_EXT_ADDRESS_SRC / _DST). */
  readonly local?: string;
  readonly peer?: string;
}

function flowExtensions(flow: OpenbsdFlowSpec): SadbExtension[] {
  return [
    {
      kind: 'protocol',
      which: 'flowType',
      proto: flow.flowType,
      direction: flow.direction === 'in' ? 1 : 2,
      flags: 0,
    },
    { kind: 'address', which: 'srcFlow', address: flow.src.address, port: flow.src.port },
    { kind: 'address', which: 'srcMask', address: flow.src.mask, port: flow.src.port ? 0xffff : 0 },
    { kind: 'address', which: 'dstFlow', address: flow.dst.address, port: flow.dst.port },
    { kind: 'address', which: 'dstMask', address: flow.dst.mask, port: flow.dst.port ? 0xffff : 0 },
    { kind: 'protocol', which: 'protocol', proto: flow.proto, direction: 0, flags: 0 },
  ];
}

export function buildAddFlow(flow: OpenbsdFlowSpec): SadbRequest {
  const extensions = flowExtensions(flow);
  if (flow.local !== undefined) extensions.push(hostAddress('src', flow.local));
  if (flow.peer !== undefined) extensions.push(hostAddress('dst', flow.peer));
  return { type: OPENBSD_SADB_X_ADDFLOW, satype: SATYPE.openbsd.esp, extensions };
}

export function buildDelFlow(flow: OpenbsdFlowSpec): SadbRequest {
  return { type: OPENBSD_SADB_X_DELFLOW, satype: SATYPE.openbsd.esp, extensions: flowExtensions(flow) };
}

/** SADB_X_ASKPOLICY: the flow behind an ACQUIRE, named by the ACQUIRE's sequence number. */
export function buildAskPolicy(acquireSeq: number): SadbRequest {
  return {
    type: OPENBSD_SADB_X_ASKPOLICY,
    satype: 0,
    extensions: [{ kind: 'policySeq', seq: acquireSeq }],
  };
}

// ---------------------------------------------------------------------------------------------
// Readers.

function need<T>(value: T | undefined, what: string, message: SadbMessage): T {
  if (value === undefined) throw new PfkeyParseError(`message type ${message.type} without ${what}`, 16);
  return value;
}

/** The SPI a GETSPI answer reserved. */
export function readSpi(answer: SadbMessage): number {
  return need(findExtension(answer, 'sa'), 'an SA extension', answer).spi;
}

/** Algorithm ids from a REGISTER answer (sadb_supported). */
export function readSupported(answer: SadbMessage): { auth: number[]; encrypt: number[] } {
  const ids = (which: 'auth' | 'encrypt') =>
    (findExtension(answer, 'supported', which)?.algorithms ?? []).map((alg) => alg.id);
  return { auth: ids('auth'), encrypt: ids('encrypt') };
}

export interface Acquire {
  readonly seq: number;
  /** The SA endpoints the kernel wants (Linux: both; OpenBSD: ours may be absent). */
  readonly src?: string;
  readonly dst: string;
  /** Linux: the index of the policy that matched (sadb_x_policy_id). */
  readonly policyId?: number;
}

/** An SADB_ACQUIRE from the kernel (Linux af_key.c pfkey_send_acquire, OpenBSD pfkeyv2_acquire). */
export function readAcquire(message: SadbMessage): Acquire {
  if (message.type !== SADB_ACQUIRE) throw new PfkeyParseError(`type ${message.type} is not SADB_ACQUIRE`, 1);
  const src = findExtension(message, 'address', 'src');
  const dst = need(findExtension(message, 'address', 'dst'), 'a destination address', message);
  const policy = findExtension(message, 'policy');
  return {
    seq: message.seq,
    ...(src && { src: src.address }),
    dst: dst.address,
    ...(policy && { policyId: policy.id }),
  };
}

export interface Expire {
  readonly spi: number;
  readonly src: string;
  readonly dst: string;
  readonly hard: boolean;
}

/** An SADB_EXPIRE: the SA and which lifetime ran out (a hard lifetime extension means hard). */
export function readExpire(message: SadbMessage): Expire {
  if (message.type !== SADB_EXPIRE) throw new PfkeyParseError(`type ${message.type} is not SADB_EXPIRE`, 1);
  const sa = need(findExtension(message, 'sa'), 'an SA extension', message);
  const src = need(findExtension(message, 'address', 'src'), 'a source address', message);
  const dst = need(findExtension(message, 'address', 'dst'), 'a destination address', message);
  const hard = findExtension(message, 'lifetime', 'hard') !== undefined;
  const soft = findExtension(message, 'lifetime', 'soft') !== undefined;
  if (!hard && !soft) throw new PfkeyParseError('SADB_EXPIRE without a hard or soft lifetime', 16);
  return { spi: sa.spi, src: src.address, dst: dst.address, hard };
}

export interface NewMapping {
  readonly spi: number;
  readonly oldAddress: string;
  readonly oldPort: number;
  readonly newAddress: string;
  readonly newPort: number;
}

/**
 * Linux SADB_X_NAT_T_NEW_MAPPING (af_key.c pfkey_send_new_mapping): SA | ADDRESS_SRC (old
 * address) | NAT_T_SPORT (old port) | ADDRESS_DST (new address) | NAT_T_DPORT (new port).
 */
export function readNewMapping(message: SadbMessage): NewMapping {
  if (message.type !== LINUX_SADB_X_NAT_T_NEW_MAPPING)
    throw new PfkeyParseError(`type ${message.type} is not SADB_X_NAT_T_NEW_MAPPING`, 1);
  const sa = need(findExtension(message, 'sa'), 'an SA extension', message);
  const oldAddress = need(findExtension(message, 'address', 'src'), 'the old address', message);
  const newAddress = need(findExtension(message, 'address', 'dst'), 'the new address', message);
  const oldPort = need(findExtension(message, 'natPort', 'sport'), 'the old port', message);
  const newPort = need(findExtension(message, 'natPort', 'dport'), 'the new port', message);
  return {
    spi: sa.spi,
    oldAddress: oldAddress.address,
    oldPort: oldPort.port,
    newAddress: newAddress.address,
    newPort: newPort.port,
  };
}

export interface SaCounters {
  readonly bytes: bigint;
  /** Linux af_key.c puts the packet count in the current lifetime's allocations; OpenBSD has a counter. */
  readonly packets?: bigint;
}

/**
 * Counters from a GET answer. Linux (af_key.c __pfkey_xfrm_state2msg): current lifetime bytes,
 * and curlft.packets in sadb_lifetime_allocations. OpenBSD (pfkeyv2.c pfkeyv2_get): the
 * SADB_X_EXT_COUNTER, inbound and outbound counted separately on each SA.
 */
export function readCounters(
  answer: SadbMessage,
  flavour: PfkeyFlavour,
  direction: 'in' | 'out',
): SaCounters {
  const counter = findExtension(answer, 'counter');
  if (flavour === 'openbsd' && counter) {
    return direction === 'in'
      ? { bytes: counter.ibytes, packets: counter.ipackets }
      : { bytes: counter.obytes, packets: counter.opackets };
  }
  const current = need(findExtension(answer, 'lifetime', 'current'), 'a current lifetime', answer);
  return flavour === 'linux'
    ? { bytes: current.bytes, packets: BigInt(current.allocations) }
    : { bytes: current.bytes };
}

export interface DumpedSa {
  readonly spi: number;
  readonly src: string;
  readonly dst: string;
  readonly reqid?: number;
  readonly tag?: string;
}

/** An SA from a DUMP (or GET) answer: what the startup cleanup needs to recognise ours. */
export function readDumpedSa(message: SadbMessage): DumpedSa {
  const sa = need(findExtension(message, 'sa'), 'an SA extension', message);
  const src = need(findExtension(message, 'address', 'src'), 'a source address', message);
  const dst = need(findExtension(message, 'address', 'dst'), 'a destination address', message);
  const sa2 = findExtension(message, 'sa2');
  const tag = findExtension(message, 'tag');
  return {
    spi: sa.spi,
    src: src.address,
    dst: dst.address,
    ...(sa2 && { reqid: sa2.reqid }),
    ...(tag && { tag: tag.tag }),
  };
}

export interface DumpedPolicy {
  readonly id: number;
  readonly dir: number;
  readonly reqids: readonly number[];
}

/** A Linux policy from SPDDUMP (or an SPDADD answer): its index and the reqids it asks for. */
export function readPolicy(message: SadbMessage): DumpedPolicy {
  const policy = need(findExtension(message, 'policy'), 'a policy extension', message);
  return { id: policy.id, dir: policy.dir, reqids: policy.requests.map((request) => request.reqid) };
}

export interface OpenbsdFlow {
  readonly srcFlow: string;
  readonly srcMask: string;
  readonly srcPort: number;
  readonly dstFlow: string;
  readonly dstMask: string;
  readonly dstPort: number;
  readonly proto: number;
  readonly direction: number;
  readonly peer?: string;
}

/** The flow of an OpenBSD ASKPOLICY answer (pfkeyv2.c export_flow). */
export function readFlow(message: SadbMessage): OpenbsdFlow {
  const address = (which: 'srcFlow' | 'srcMask' | 'dstFlow' | 'dstMask') =>
    need(findExtension(message, 'address', which), `the ${which} extension`, message);
  const type = need(findExtension(message, 'protocol', 'flowType'), 'the flow type', message);
  const protocol = findExtension(message, 'protocol', 'protocol');
  const peer = findExtension(message, 'address', 'dst');
  return {
    srcFlow: address('srcFlow').address,
    srcMask: address('srcMask').address,
    srcPort: address('srcFlow').port,
    dstFlow: address('dstFlow').address,
    dstMask: address('dstMask').address,
    dstPort: address('dstFlow').port,
    proto: protocol?.proto ?? 0,
    direction: type.direction,
    ...(peer && { peer: peer.address }),
  };
}
