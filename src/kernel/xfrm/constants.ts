/**
 * XFRM netlink numbers. Sources (facts, named so a reader can check them):
 *  - include/uapi/linux/xfrm.h: message types, attributes, groups, modes, flags;
 *  - include/uapi/linux/netlink.h: NETLINK_XFRM;
 *  - include/uapi/linux/in.h, in6.h: IPPROTO_*, IP_XFRM_POLICY, IPV6_XFRM_POLICY;
 *  - include/uapi/linux/udp.h: UDP_ENCAP, UDP_ENCAP_ESPINUDP;
 *  - include/linux/socket.h: AF_INET, AF_INET6, SOL_IP, SOL_IPV6, SOL_UDP.
 */

/** include/uapi/linux/netlink.h */
export const NETLINK_XFRM = 6;

/** Message types (enum starting at XFRM_MSG_BASE = 0x10). */
export const XFRM_MSG_NEWSA = 0x10;
export const XFRM_MSG_DELSA = 0x11;
export const XFRM_MSG_GETSA = 0x12;
export const XFRM_MSG_NEWPOLICY = 0x13;
export const XFRM_MSG_DELPOLICY = 0x14;
export const XFRM_MSG_GETPOLICY = 0x15;
export const XFRM_MSG_ALLOCSPI = 0x16;
export const XFRM_MSG_ACQUIRE = 0x17;
export const XFRM_MSG_EXPIRE = 0x18;
export const XFRM_MSG_UPDPOLICY = 0x19;
export const XFRM_MSG_UPDSA = 0x1a;
export const XFRM_MSG_POLEXPIRE = 0x1b;
export const XFRM_MSG_FLUSHSA = 0x1c;
export const XFRM_MSG_FLUSHPOLICY = 0x1d;
export const XFRM_MSG_NEWAE = 0x1e;
export const XFRM_MSG_GETAE = 0x1f;
export const XFRM_MSG_REPORT = 0x20;
export const XFRM_MSG_MIGRATE = 0x21;
export const XFRM_MSG_NEWSADINFO = 0x22;
export const XFRM_MSG_GETSADINFO = 0x23;
export const XFRM_MSG_NEWSPDINFO = 0x24;
export const XFRM_MSG_GETSPDINFO = 0x25;
export const XFRM_MSG_MAPPING = 0x26;

const MESSAGE_NAMES: Record<number, string> = {
  [XFRM_MSG_NEWSA]: 'XFRM_MSG_NEWSA',
  [XFRM_MSG_DELSA]: 'XFRM_MSG_DELSA',
  [XFRM_MSG_GETSA]: 'XFRM_MSG_GETSA',
  [XFRM_MSG_NEWPOLICY]: 'XFRM_MSG_NEWPOLICY',
  [XFRM_MSG_DELPOLICY]: 'XFRM_MSG_DELPOLICY',
  [XFRM_MSG_GETPOLICY]: 'XFRM_MSG_GETPOLICY',
  [XFRM_MSG_ALLOCSPI]: 'XFRM_MSG_ALLOCSPI',
  [XFRM_MSG_ACQUIRE]: 'XFRM_MSG_ACQUIRE',
  [XFRM_MSG_EXPIRE]: 'XFRM_MSG_EXPIRE',
  [XFRM_MSG_UPDPOLICY]: 'XFRM_MSG_UPDPOLICY',
  [XFRM_MSG_UPDSA]: 'XFRM_MSG_UPDSA',
  [XFRM_MSG_POLEXPIRE]: 'XFRM_MSG_POLEXPIRE',
  [XFRM_MSG_FLUSHSA]: 'XFRM_MSG_FLUSHSA',
  [XFRM_MSG_FLUSHPOLICY]: 'XFRM_MSG_FLUSHPOLICY',
  [XFRM_MSG_NEWAE]: 'XFRM_MSG_NEWAE',
  [XFRM_MSG_GETAE]: 'XFRM_MSG_GETAE',
  [XFRM_MSG_REPORT]: 'XFRM_MSG_REPORT',
  [XFRM_MSG_MIGRATE]: 'XFRM_MSG_MIGRATE',
  [XFRM_MSG_MAPPING]: 'XFRM_MSG_MAPPING',
};

export function xfrmMessageName(type: number): string {
  return MESSAGE_NAMES[type] ?? `message type ${type}`;
}

/** Attributes (enum xfrm_attr_type_t). */
export const XFRMA_UNSPEC = 0;
export const XFRMA_ALG_AUTH = 1;
export const XFRMA_ALG_CRYPT = 2;
export const XFRMA_ALG_COMP = 3;
export const XFRMA_ENCAP = 4;
export const XFRMA_TMPL = 5;
export const XFRMA_SA = 6;
export const XFRMA_POLICY = 7;
export const XFRMA_SEC_CTX = 8;
export const XFRMA_LTIME_VAL = 9;
export const XFRMA_REPLAY_VAL = 10;
export const XFRMA_REPLAY_THRESH = 11;
export const XFRMA_ETIMER_THRESH = 12;
export const XFRMA_SRCADDR = 13;
export const XFRMA_COADDR = 14;
export const XFRMA_LASTUSED = 15;
export const XFRMA_POLICY_TYPE = 16;
export const XFRMA_MIGRATE = 17;
export const XFRMA_ALG_AEAD = 18;
export const XFRMA_KMADDRESS = 19;
export const XFRMA_ALG_AUTH_TRUNC = 20;
export const XFRMA_MARK = 21;
export const XFRMA_TFCPAD = 22;
export const XFRMA_REPLAY_ESN_VAL = 23;
export const XFRMA_SA_EXTRA_FLAGS = 24;
export const XFRMA_PROTO = 25;
export const XFRMA_ADDRESS_FILTER = 26;
export const XFRMA_PAD = 27;
export const XFRMA_OFFLOAD_DEV = 28;
export const XFRMA_SET_MARK = 29;
export const XFRMA_SET_MARK_MASK = 30;
export const XFRMA_IF_ID = 31;
export const XFRMA_MTIMER_THRESH = 32;

/** Multicast groups (enum xfrm_nlgroups): the group numbers to join, not bit masks. */
export const XFRMNLGRP_NONE = 0;
export const XFRMNLGRP_ACQUIRE = 1;
export const XFRMNLGRP_EXPIRE = 2;
export const XFRMNLGRP_SA = 3;
export const XFRMNLGRP_POLICY = 4;
export const XFRMNLGRP_AEVENTS = 5;
export const XFRMNLGRP_REPORT = 6;
export const XFRMNLGRP_MIGRATE = 7;
export const XFRMNLGRP_MAPPING = 8;

/** The groups the backend listens to: what a subscription for it should join. */
export const XFRM_EVENT_GROUPS: readonly number[] = [XFRMNLGRP_ACQUIRE, XFRMNLGRP_EXPIRE, XFRMNLGRP_MAPPING];

/** Policy directions (enum in xfrm.h); socket policies show up in dumps as XFRM_POLICY_MAX + dir. */
export const XFRM_POLICY_IN = 0;
export const XFRM_POLICY_OUT = 1;
export const XFRM_POLICY_FWD = 2;
export const XFRM_POLICY_MAX = 3;

/** Policy types. */
export const XFRM_POLICY_TYPE_MAIN = 0;
export const XFRM_POLICY_TYPE_SUB = 1;

/** xfrm_userpolicy_info.action and .flags. */
export const XFRM_POLICY_ALLOW = 0;
export const XFRM_POLICY_BLOCK = 1;
export const XFRM_POLICY_LOCALOK = 1;
export const XFRM_POLICY_ICMP = 2;

/** Sharing (xfrm_userpolicy_info.share, xfrm_user_tmpl.share). */
export const XFRM_SHARE_ANY = 0;

/** Modes. */
export const XFRM_MODE_TRANSPORT = 0;
export const XFRM_MODE_TUNNEL = 1;
export const XFRM_MODE_BEET = 4;

/** xfrm_usersa_info.flags. */
export const XFRM_STATE_NOECN = 1;
export const XFRM_STATE_DECAP_DSCP = 2;
export const XFRM_STATE_NOPMTUDISC = 4;
export const XFRM_STATE_WILDRECV = 8;
export const XFRM_STATE_ICMP = 16;
export const XFRM_STATE_AF_UNSPEC = 32;
export const XFRM_STATE_ALIGN4 = 64;
export const XFRM_STATE_ESN = 128;

/** XFRMA_SA_EXTRA_FLAGS. */
export const XFRM_SA_XFLAG_DONT_ENCAP_DSCP = 1;

/** XFRM_INF: (~(__u64)0), "no limit" for byte and packet counts. */
export const XFRM_INF = 0xffff_ffff_ffff_ffffn;

/** XFRMA_REPLAY_ESN_MAX: the largest replay bitmap, in bits. */
export const XFRMA_REPLAY_ESN_MAX = 4096;

/** Address families (include/linux/socket.h). */
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

/** IP protocols (include/uapi/linux/in.h). */
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_COMP = 108;

/** Socket options for configureSocket. */
export const SOL_IP = 0;
export const SOL_IPV6 = 41;
export const SOL_UDP = 17;
/** include/uapi/linux/in.h */
export const IP_XFRM_POLICY = 17;
/** include/uapi/linux/in6.h */
export const IPV6_XFRM_POLICY = 35;
/** include/uapi/linux/udp.h */
export const UDP_ENCAP = 100;
export const UDP_ENCAP_ESPINUDP_NON_IKE = 1;
export const UDP_ENCAP_ESPINUDP = 2;

/**
 * x86_64 sizes of the structs in include/uapi/linux/xfrm.h, checked with sizeof/offsetof against
 * the host's headers (the u64 members of xfrm_lifetime_cfg/cur align the structs that contain them
 * to 8 bytes, which is where the tail padding of xfrm_usersa_info and xfrm_user_expire comes from).
 */
export const XFRM_ADDRESS_SIZE = 16; // xfrm_address_t: union of __be32 a4, __be32 a6[4]
export const XFRM_ID_SIZE = 24; // daddr 0, spi 16, proto 20, pad 21-23
export const XFRM_SELECTOR_SIZE = 56; // daddr 0, saddr 16, dport 32 .. user 52
export const XFRM_LIFETIME_CFG_SIZE = 64; // eight __u64
export const XFRM_LIFETIME_CUR_SIZE = 32; // four __u64
export const XFRM_REPLAY_STATE_SIZE = 12; // oseq, seq, bitmap
export const XFRM_REPLAY_STATE_ESN_SIZE = 24; // bmp_len, oseq, seq, oseq_hi, seq_hi, replay_window, bmp[]
export const XFRM_STATS_SIZE = 12; // replay_window, replay, integrity_failed
export const XFRM_ALGO_SIZE = 68; // alg_name[64], alg_key_len, alg_key[]
export const XFRM_ALGO_AUTH_SIZE = 72; // alg_name[64], alg_key_len, alg_trunc_len, alg_key[]
export const XFRM_ALGO_AEAD_SIZE = 72; // alg_name[64], alg_key_len, alg_icv_len, alg_key[]
export const XFRM_USERSA_INFO_SIZE = 224; // flags at 216, 7 bytes of tail padding
export const XFRM_USERSA_ID_SIZE = 24; // daddr 0, spi 16, family 20, proto 22, pad 23
export const XFRM_USERSPI_INFO_SIZE = 232; // info 0, min 224, max 228
export const XFRM_USERPOLICY_INFO_SIZE = 168; // share at 163, 4 bytes of tail padding
export const XFRM_USERPOLICY_ID_SIZE = 64; // sel 0, index 56, dir 60, pad 61-63
export const XFRM_USER_TMPL_SIZE = 64; // id 0, family 24, saddr 28, reqid 44 .. calgos 60
export const XFRM_ENCAP_TMPL_SIZE = 24; // encap_type 0, sport 2, dport 4, pad 6-7, encap_oa 8
export const XFRM_MARK_SIZE = 8;
export const XFRM_USER_ACQUIRE_SIZE = 280; // id 0, saddr 24, sel 40, policy 96, aalgos 264 .. seq 276
export const XFRM_USER_EXPIRE_SIZE = 232; // state 0, hard 224, 7 bytes of tail padding
export const XFRM_USER_POLEXPIRE_SIZE = 176; // pol 0, hard 168
export const XFRM_USER_MAPPING_SIZE = 64; // id 0, reqid 24, old_saddr 28, new_saddr 44, old_sport 60, new_sport 62
