/**
 * IKEv2 numbers, as RFC 7296 section 3 and the IANA "Internet Key Exchange Version 2 (IKEv2)
 * Parameters" registry name them (RFC 7383 for fragmentation, RFC 6023 for childless IKE SAs).
 */

export const IKE_HEADER_LENGTH = 28;
export const GENERIC_HEADER_LENGTH = 4;
/** Major version 2, minor 0 (RFC 7296 section 3.1). */
export const VERSION = 0x20;

export const ExchangeType = {
  IKE_SA_INIT: 34,
  IKE_AUTH: 35,
  CREATE_CHILD_SA: 36,
  INFORMATIONAL: 37,
} as const;

export const HeaderFlag = {
  /** The message is a response. */
  RESPONSE: 0x20,
  /** The sender can speak a higher major version. */
  VERSION: 0x10,
  /** The sender is the original initiator of the IKE SA. */
  INITIATOR: 0x08,
} as const;

export const PayloadType = {
  NONE: 0,
  SA: 33,
  KE: 34,
  IDi: 35,
  IDr: 36,
  CERT: 37,
  CERTREQ: 38,
  AUTH: 39,
  NONCE: 40,
  NOTIFY: 41,
  DELETE: 42,
  VENDOR: 43,
  TSi: 44,
  TSr: 45,
  SK: 46,
  CP: 47,
  EAP: 48,
  SKF: 53,
} as const;

export const ProtocolId = { IKE: 1, AH: 2, ESP: 3 } as const;

export const TransformType = { ENCR: 1, PRF: 2, INTEG: 3, DH: 4, ESN: 5 } as const;

/** Transform attribute types (RFC 7296 section 3.3.5). */
export const Attribute = { KEY_LENGTH: 14 } as const;

export const EsnId = { NONE: 0, ESN: 1 } as const;

export const IdType = {
  ID_IPV4_ADDR: 1,
  ID_FQDN: 2,
  ID_RFC822_ADDR: 3,
  ID_IPV6_ADDR: 5,
  ID_DER_ASN1_DN: 9,
  ID_DER_ASN1_GN: 10,
  ID_KEY_ID: 11,
} as const;

export const AuthMethod = { RSA: 1, SHARED_KEY_MIC: 2, DSS: 3, DIGITAL_SIGNATURE: 14 } as const;

export const TsType = { IPV4_ADDR_RANGE: 7, IPV6_ADDR_RANGE: 8 } as const;

export const CfgType = { REQUEST: 1, REPLY: 2, SET: 3, ACK: 4 } as const;

export const NotifyType = {
  // Errors (RFC 7296 section 3.10.1)
  UNSUPPORTED_CRITICAL_PAYLOAD: 1,
  INVALID_IKE_SPI: 4,
  INVALID_MAJOR_VERSION: 5,
  INVALID_SYNTAX: 7,
  INVALID_MESSAGE_ID: 9,
  INVALID_SPI: 11,
  NO_PROPOSAL_CHOSEN: 14,
  INVALID_KE_PAYLOAD: 17,
  AUTHENTICATION_FAILED: 24,
  SINGLE_PAIR_REQUIRED: 34,
  NO_ADDITIONAL_SAS: 35,
  INTERNAL_ADDRESS_FAILURE: 36,
  FAILED_CP_REQUIRED: 37,
  TS_UNACCEPTABLE: 38,
  INVALID_SELECTORS: 39,
  TEMPORARY_FAILURE: 43,
  CHILD_SA_NOT_FOUND: 44,
  // Status
  INITIAL_CONTACT: 16384,
  SET_WINDOW_SIZE: 16385,
  ADDITIONAL_TS_POSSIBLE: 16386,
  IPCOMP_SUPPORTED: 16387,
  NAT_DETECTION_SOURCE_IP: 16388,
  NAT_DETECTION_DESTINATION_IP: 16389,
  COOKIE: 16390,
  USE_TRANSPORT_MODE: 16391,
  HTTP_CERT_LOOKUP_SUPPORTED: 16392,
  REKEY_SA: 16393,
  ESP_TFC_PADDING_NOT_SUPPORTED: 16394,
  NON_FIRST_FRAGMENTS_ALSO: 16395,
  MOBIKE_SUPPORTED: 16396,
  CHILDLESS_IKEV2_SUPPORTED: 16418,
  IKEV2_FRAGMENTATION_SUPPORTED: 16430,
  SIGNATURE_HASH_ALGORITHMS: 16431,
} as const;

const NOTIFY_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(NotifyType).map(([name, value]) => [value, name]),
);

/** A notify type by its RFC 7296 name, or its number. */
export function notifyName(type: number): string {
  return NOTIFY_NAMES[type] ?? `notify ${type}`;
}

/** Error notifies are below 16384 (RFC 7296 section 3.10.1). */
export function isErrorNotify(type: number): boolean {
  return type < 16384;
}

const EXCHANGE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(ExchangeType).map(([name, value]) => [value, name]),
);

export function exchangeName(type: number): string {
  return EXCHANGE_NAMES[type] ?? `exchange type ${type}`;
}
