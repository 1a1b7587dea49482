/**
 * ISAKMP (RFC 2408) and IPsec DOI (RFC 2407) numbers, named as the RFCs spell them.
 * NAT-T numbers: RFC 3947 and draft-ietf-ipsec-nat-t-ike-02/03; DPD: RFC 3706.
 */

export const ISAKMP_HEADER_LENGTH = 28;
export const GENERIC_HEADER_LENGTH = 4;

export const PayloadType = {
  NONE: 0,
  SA: 1,
  P: 2,
  T: 3,
  KE: 4,
  ID: 5,
  CERT: 6,
  CR: 7,
  HASH: 8,
  SIG: 9,
  NONCE: 10,
  N: 11,
  D: 12,
  VID: 13,
  NAT_D: 20,
  NAT_OA: 21,
  NAT_D_DRAFT: 130,
  NAT_OA_DRAFT: 131,
} as const;

export const ExchangeType = {
  BASE: 1,
  IDENTITY_PROTECTION: 2, // main mode
  AUTHENTICATION_ONLY: 3,
  AGGRESSIVE: 4,
  INFORMATIONAL: 5,
  QUICK_MODE: 32,
  NEW_GROUP_MODE: 33,
} as const;

export const HeaderFlag = { ENCRYPTION: 0x01, COMMIT: 0x02, AUTHENTICATION_ONLY: 0x04 } as const;

/** RFC 2408 section 3.14.1 error types, plus the status types used by IPsec DOI, DPD. */
export const NotifyType = {
  INVALID_PAYLOAD_TYPE: 1,
  DOI_NOT_SUPPORTED: 2,
  SITUATION_NOT_SUPPORTED: 3,
  INVALID_COOKIE: 4,
  INVALID_MAJOR_VERSION: 5,
  INVALID_MINOR_VERSION: 6,
  INVALID_EXCHANGE_TYPE: 7,
  INVALID_FLAGS: 8,
  INVALID_MESSAGE_ID: 9,
  INVALID_PROTOCOL_ID: 10,
  INVALID_SPI: 11,
  INVALID_TRANSFORM_ID: 12,
  ATTRIBUTES_NOT_SUPPORTED: 13,
  NO_PROPOSAL_CHOSEN: 14,
  BAD_PROPOSAL_SYNTAX: 15,
  PAYLOAD_MALFORMED: 16,
  INVALID_KEY_INFORMATION: 17,
  INVALID_ID_INFORMATION: 18,
  INVALID_CERT_ENCODING: 19,
  INVALID_CERTIFICATE: 20,
  CERT_TYPE_UNSUPPORTED: 21,
  INVALID_CERT_AUTHORITY: 22,
  INVALID_HASH_INFORMATION: 23,
  AUTHENTICATION_FAILED: 24,
  INVALID_SIGNATURE: 25,
  ADDRESS_NOTIFICATION: 26,
  NOTIFY_SA_LIFETIME: 27,
  CERTIFICATE_UNAVAILABLE: 28,
  UNSUPPORTED_EXCHANGE_TYPE: 29,
  UNEQUAL_PAYLOAD_LENGTHS: 30,
  CONNECTED: 16384,
  RESPONDER_LIFETIME: 24576,
  REPLAY_STATUS: 24577,
  INITIAL_CONTACT: 24578,
  R_U_THERE: 36136,
  R_U_THERE_ACK: 36137,
} as const;

export const DOI_IPSEC = 1;
export const SIT_IDENTITY_ONLY = 1;

/** Protocol identifiers of proposals, notifies and deletes (RFC 2407 section 4.4.1). */
export const ProtocolId = { ISAKMP: 1, IPSEC_AH: 2, IPSEC_ESP: 3, IPCOMP: 4 } as const;

/** Identification types (RFC 2407 section 4.6.2.1). */
export const IdType = {
  ID_IPV4_ADDR: 1,
  ID_FQDN: 2,
  ID_USER_FQDN: 3,
  ID_IPV4_ADDR_SUBNET: 4,
  ID_IPV6_ADDR: 5,
  ID_IPV6_ADDR_SUBNET: 6,
  ID_IPV4_ADDR_RANGE: 7,
  ID_IPV6_ADDR_RANGE: 8,
  ID_DER_ASN1_DN: 9,
  ID_DER_ASN1_GN: 10,
  ID_KEY_ID: 11,
} as const;

/** Phase 1 attribute classes (RFC 2409 appendix A). */
export const Phase1Attribute = {
  ENCRYPTION_ALGORITHM: 1,
  HASH_ALGORITHM: 2,
  AUTHENTICATION_METHOD: 3,
  GROUP_DESCRIPTION: 4,
  LIFE_TYPE: 11,
  LIFE_DURATION: 12,
  KEY_LENGTH: 14,
} as const;

/** Phase 2 (IPsec DOI) SA attributes (RFC 2407 section 4.5). */
export const Phase2Attribute = {
  SA_LIFE_TYPE: 1,
  SA_LIFE_DURATION: 2,
  GROUP_DESCRIPTION: 3,
  ENCAPSULATION_MODE: 4,
  AUTHENTICATION_ALGORITHM: 5,
  KEY_LENGTH: 6,
} as const;

export const LifeType = { SECONDS: 1, KILOBYTES: 2 } as const;
export const AuthMethod = { PRE_SHARED_KEY: 1 } as const;

/** Encapsulation modes: RFC 2407, RFC 3947 (UDP-encapsulated) and the NAT-T drafts' private values. */
export const EncapsulationMode = {
  TUNNEL: 1,
  TRANSPORT: 2,
  UDP_TUNNEL_RFC: 3,
  UDP_TRANSPORT_RFC: 4,
  UDP_TUNNEL_DRAFT: 61443,
  UDP_TRANSPORT_DRAFT: 61444,
} as const;

export const KEY_IKE_TRANSFORM = 1; // the only phase 1 transform id (RFC 2407 section 4.4.2)

const NOTIFY_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(NotifyType).map(([name, value]) => [value, name]),
);

/** A notify type by its RFC 2408 name, or its number. */
export function notifyName(type: number): string {
  return NOTIFY_NAMES[type] ?? `notify ${type}`;
}
