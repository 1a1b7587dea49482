/**
 * PF_KEY v2 numbers, per flavour. PF_KEY is RFC 2367; both kernels extend it differently, so every
 * number that is not in the RFC is tabled here with the header it comes from:
 *  - Linux: include/uapi/linux/pfkeyv2.h (message, extension and algorithm numbers) and
 *    include/uapi/linux/ipsec.h (IPSEC_MODE_*, IPSEC_DIR_*, IPSEC_POLICY_*, IPSEC_LEVEL_*);
 *    behaviour notes from net/key/af_key.c and net/xfrm/xfrm_algo.c.
 *  - OpenBSD: sys/net/pfkeyv2.h (rev. 1.95), sys/netinet/in.h and sys/netinet6/in6.h (socket
 *    options), sys/netinet/ip_ipsp.h (IPSP_DIRECTION_*); behaviour notes from
 *    sys/net/pfkeyv2.c and pfkeyv2_convert.c.
 * All fields are host byte order except SPIs, ports and addresses, which are network order.
 */

export type PfkeyFlavour = 'linux' | 'openbsd';

/** RFC 2367 section 2.3: the only version. */
export const PF_KEY_V2 = 2;
/** RFC 2367 section 2.1: sadb_msg is 16 bytes; every length is in 64-bit words. */
export const SADB_MSG_SIZE = 16;
export const SADB_ALIGN = 8;

/** Message types 1-11 are RFC 2367 section 2.3.1, the same number in both kernels. */
export const SADB_GETSPI = 1;
export const SADB_UPDATE = 2;
export const SADB_ADD = 3;
export const SADB_DELETE = 4;
export const SADB_GET = 5;
export const SADB_ACQUIRE = 6;
export const SADB_REGISTER = 7;
export const SADB_EXPIRE = 8;
export const SADB_FLUSH = 9;
export const SADB_DUMP = 10;
export const SADB_X_PROMISC = 11;

/** Linux include/uapi/linux/pfkeyv2.h message types above 11. */
export const LINUX_SADB_X_PCHANGE = 12;
export const LINUX_SADB_X_SPDUPDATE = 13;
export const LINUX_SADB_X_SPDADD = 14;
export const LINUX_SADB_X_SPDDELETE = 15;
export const LINUX_SADB_X_SPDGET = 16;
export const LINUX_SADB_X_SPDACQUIRE = 17;
export const LINUX_SADB_X_SPDDUMP = 18;
export const LINUX_SADB_X_SPDFLUSH = 19;
export const LINUX_SADB_X_SPDSETIDX = 20;
export const LINUX_SADB_X_SPDEXPIRE = 21;
export const LINUX_SADB_X_SPDDELETE2 = 22;
export const LINUX_SADB_X_NAT_T_NEW_MAPPING = 23;
export const LINUX_SADB_X_MIGRATE = 24;

/** OpenBSD sys/net/pfkeyv2.h message types above 11 (they collide with Linux's numbers). */
export const OPENBSD_SADB_X_ADDFLOW = 12;
export const OPENBSD_SADB_X_DELFLOW = 13;
export const OPENBSD_SADB_X_GRPSPIS = 14;
export const OPENBSD_SADB_X_ASKPOLICY = 15;
export const OPENBSD_SADB_X_SPDDUMP = 16;

const COMMON_MESSAGE_NAMES: Record<number, string> = {
  1: 'SADB_GETSPI',
  2: 'SADB_UPDATE',
  3: 'SADB_ADD',
  4: 'SADB_DELETE',
  5: 'SADB_GET',
  6: 'SADB_ACQUIRE',
  7: 'SADB_REGISTER',
  8: 'SADB_EXPIRE',
  9: 'SADB_FLUSH',
  10: 'SADB_DUMP',
  11: 'SADB_X_PROMISC',
};

const MESSAGE_NAMES: Record<PfkeyFlavour, Record<number, string>> = {
  linux: {
    ...COMMON_MESSAGE_NAMES,
    12: 'SADB_X_PCHANGE',
    13: 'SADB_X_SPDUPDATE',
    14: 'SADB_X_SPDADD',
    15: 'SADB_X_SPDDELETE',
    16: 'SADB_X_SPDGET',
    17: 'SADB_X_SPDACQUIRE',
    18: 'SADB_X_SPDDUMP',
    19: 'SADB_X_SPDFLUSH',
    20: 'SADB_X_SPDSETIDX',
    21: 'SADB_X_SPDEXPIRE',
    22: 'SADB_X_SPDDELETE2',
    23: 'SADB_X_NAT_T_NEW_MAPPING',
    24: 'SADB_X_MIGRATE',
  },
  openbsd: {
    ...COMMON_MESSAGE_NAMES,
    12: 'SADB_X_ADDFLOW',
    13: 'SADB_X_DELFLOW',
    14: 'SADB_X_GRPSPIS',
    15: 'SADB_X_ASKPOLICY',
    16: 'SADB_X_SPDDUMP',
  },
};

export function messageName(flavour: PfkeyFlavour, type: number): string {
  return MESSAGE_NAMES[flavour][type] ?? `SADB message type ${type}`;
}

/**
 * Security association types: RFC 2367 numbers them AH 2, ESP 3 (Linux keeps them); OpenBSD
 * renumbered them (sys/net/pfkeyv2.h: AH 1, ESP 2, IPIP 7, TCPSIGNATURE 8, IPCOMP 9).
 */
export const SATYPE: Record<PfkeyFlavour, { readonly unspec: 0; readonly ah: number; readonly esp: number }> =
  {
    linux: { unspec: 0, ah: 2, esp: 3 },
    openbsd: { unspec: 0, ah: 1, esp: 2 },
  };

/** RFC 2367 section 2.3.2: SA states (same in both). */
export const SADB_SASTATE_LARVAL = 0;
export const SADB_SASTATE_MATURE = 1;
export const SADB_SASTATE_DYING = 2;
export const SADB_SASTATE_DEAD = 3;

/** sadb_sa_flags. RFC 2367: PFS = 1. OpenBSD sys/net/pfkeyv2.h adds the SADB_X_SAFLAGS_* below. */
export const SADB_SAFLAGS_PFS = 0x001;
export const OPENBSD_SADB_X_SAFLAGS_TUNNEL = 0x004;
export const OPENBSD_SADB_X_SAFLAGS_CHAINDEL = 0x008;
export const OPENBSD_SADB_X_SAFLAGS_UDPENCAP = 0x200;
export const OPENBSD_SADB_X_SAFLAGS_ESN = 0x400;

/**
 * Extension types. 1-16 are RFC 2367 section 2.3.3 and shared; from 17 up the two kernels
 * disagree (Linux 18 is SADB_X_EXT_POLICY, OpenBSD 18 is SADB_X_EXT_DST_MASK...).
 */
export const SADB_EXT_SA = 1;
export const SADB_EXT_LIFETIME_CURRENT = 2;
export const SADB_EXT_LIFETIME_HARD = 3;
export const SADB_EXT_LIFETIME_SOFT = 4;
export const SADB_EXT_ADDRESS_SRC = 5;
export const SADB_EXT_ADDRESS_DST = 6;
export const SADB_EXT_ADDRESS_PROXY = 7;
export const SADB_EXT_KEY_AUTH = 8;
export const SADB_EXT_KEY_ENCRYPT = 9;
export const SADB_EXT_IDENTITY_SRC = 10;
export const SADB_EXT_IDENTITY_DST = 11;
export const SADB_EXT_SENSITIVITY = 12;
export const SADB_EXT_PROPOSAL = 13;
export const SADB_EXT_SUPPORTED_AUTH = 14;
export const SADB_EXT_SUPPORTED_ENCRYPT = 15;
export const SADB_EXT_SPIRANGE = 16;

/** Linux include/uapi/linux/pfkeyv2.h extension types above 16. */
export const LINUX_EXT = {
  KMPRIVATE: 17,
  POLICY: 18,
  SA2: 19,
  NAT_T_TYPE: 20,
  NAT_T_SPORT: 21,
  NAT_T_DPORT: 22,
  NAT_T_OA: 23,
  SEC_CTX: 24,
  KMADDRESS: 25,
  FILTER: 26,
} as const;

/** OpenBSD sys/net/pfkeyv2.h extension types above 16. */
export const OPENBSD_EXT = {
  SRC_MASK: 17,
  DST_MASK: 18,
  PROTOCOL: 19,
  FLOW_TYPE: 20,
  SRC_FLOW: 21,
  DST_FLOW: 22,
  SA2: 23,
  DST2: 24,
  POLICY: 25,
  SUPPORTED_COMP: 30,
  UDPENCAP: 31,
  LIFETIME_LASTUSE: 32,
  TAG: 33,
  TAP: 34,
  SATYPE2: 35,
  COUNTER: 36,
  RDOMAIN: 37,
  MTU: 38,
  REPLAY: 39,
  IFACE: 40,
} as const;

/** Linux include/uapi/linux/ipsec.h. */
export const IPSEC_MODE_ANY = 0;
export const IPSEC_MODE_TRANSPORT = 1;
export const IPSEC_MODE_TUNNEL = 2;
export const IPSEC_DIR_INBOUND = 1;
export const IPSEC_DIR_OUTBOUND = 2;
export const IPSEC_DIR_FWD = 3;
export const IPSEC_POLICY_DISCARD = 0;
export const IPSEC_POLICY_NONE = 1;
export const IPSEC_POLICY_IPSEC = 2;
export const IPSEC_POLICY_ENTRUST = 3;
export const IPSEC_POLICY_BYPASS = 4;
export const IPSEC_LEVEL_DEFAULT = 0;
export const IPSEC_LEVEL_USE = 1;
export const IPSEC_LEVEL_REQUIRE = 2;
export const IPSEC_LEVEL_UNIQUE = 3;
/** ipsec.h: reqids above this in a sadb_x_ipsecrequest are replaced by the kernel (af_key.c gen_reqid). */
export const IPSEC_MANUAL_REQID_MAX = 0x3fff;
/** ipsec.h: "any upper-layer protocol" in sadb_address_proto. */
export const IPSEC_ULPROTO_ANY = 255;

/** Linux include/uapi/linux/udp.h: the NAT-T encapsulation type in sadb_x_nat_t_type. */
export const UDP_ENCAP_ESPINUDP = 2;

/** OpenBSD sys/net/pfkeyv2.h flow types (sadb_protocol_proto of SADB_X_EXT_FLOW_TYPE). */
export const SADB_X_FLOW_TYPE_USE = 1;
export const SADB_X_FLOW_TYPE_ACQUIRE = 2;
export const SADB_X_FLOW_TYPE_REQUIRE = 3;
export const SADB_X_FLOW_TYPE_BYPASS = 4;
export const SADB_X_FLOW_TYPE_DENY = 5;
export const SADB_X_FLOW_TYPE_DONTACQ = 6;
/** OpenBSD sys/netinet/ip_ipsp.h (sadb_protocol_direction of SADB_X_EXT_FLOW_TYPE). */
export const IPSP_DIRECTION_IN = 1;
export const IPSP_DIRECTION_OUT = 2;
/** OpenBSD net/pf: PF_TAG_NAME_SIZE, the longest SADB_X_EXT_TAG string with its NUL. */
export const OPENBSD_PF_TAG_NAME_SIZE = 64;

/** Address families in sockaddrs: Linux include/linux/socket.h; OpenBSD sys/sys/socket.h. */
export const AF_INET = 2;
export const AF_INET6: Record<PfkeyFlavour, number> = { linux: 10, openbsd: 24 };
/** sizeof(struct sockaddr_in) and sizeof(struct sockaddr_in6), the same on both. */
export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 28;

/**
 * Algorithm identifiers (sadb_sa_auth, sadb_sa_encrypt). They agree on the RFC 2367 and IANA-derived
 * values and disagree above: Linux 22 is CAMELLIACBC and 23 NULL_AES_GMAC, OpenBSD 21 is AESGMAC and
 * 22 CHACHA20POLY1305.
 */
export const SADB_AALG_NONE = 0;
export const SADB_AALG_MD5HMAC = 2;
export const SADB_AALG_SHA1HMAC = 3;
/** Linux SADB_X_AALG_SHA2_256HMAC, OpenBSD SADB_X_AALG_SHA2_256. */
export const SADB_X_AALG_SHA2_256 = 5;
export const SADB_X_AALG_SHA2_384 = 6;
export const SADB_X_AALG_SHA2_512 = 7;
export const SADB_EALG_NONE = 0;
export const SADB_EALG_3DESCBC = 3;
export const SADB_EALG_NULL = 11;
/** Linux SADB_X_EALG_AESCBC, OpenBSD SADB_X_EALG_AES. */
export const SADB_X_EALG_AESCBC = 12;
export const SADB_X_EALG_AESCTR = 13;
/** Linux SADB_X_EALG_AES_GCM_ICV8/12/16, OpenBSD SADB_X_EALG_AESGCM8/12/16. */
export const SADB_X_EALG_AESGCM8 = 18;
export const SADB_X_EALG_AESGCM12 = 19;
export const SADB_X_EALG_AESGCM16 = 20;
/** OpenBSD only (Linux 22 is SADB_X_EALG_CAMELLIACBC). */
export const OPENBSD_SADB_X_EALG_CHACHA20POLY1305 = 22;

/**
 * Per-socket options (configureSocket).
 * Linux include/uapi/linux/in.h IP_IPSEC_POLICY 16 (level SOL_IP 0), include/uapi/linux/in6.h
 * IPV6_IPSEC_POLICY 34 (level SOL_IPV6 41): the value is a sadb_x_policy, parsed by af_key.c
 * pfkey_compile_policy. include/uapi/linux/udp.h UDP_ENCAP 100 at level SOL_UDP 17.
 */
export const SOL_IP = 0;
export const SOL_IPV6 = 41;
export const SOL_UDP = 17;
export const LINUX_IP_IPSEC_POLICY = 16;
export const LINUX_IPV6_IPSEC_POLICY = 34;
export const LINUX_UDP_ENCAP = 100;
/**
 * OpenBSD sys/netinet/in.h IP_AUTH_LEVEL 20, IP_ESP_TRANS_LEVEL 21, IP_ESP_NETWORK_LEVEL 22,
 * IP_IPCOMP_LEVEL 29; sys/netinet6/in6.h IPV6_AUTH_LEVEL 53, IPV6_ESP_TRANS_LEVEL 54,
 * IPV6_ESP_NETWORK_LEVEL 55, IPV6_IPCOMP_LEVEL 60; IPSEC_LEVEL_BYPASS 0 (an int each).
 */
export const OPENBSD_IP_LEVELS = [20, 21, 22, 29] as const;
export const OPENBSD_IPV6_LEVELS = [53, 54, 55, 60] as const;
export const OPENBSD_IPSEC_LEVEL_BYPASS = 0;

/** IP protocol numbers (IANA; netinet/in.h). */
export const IPPROTO_ESP = 50;
