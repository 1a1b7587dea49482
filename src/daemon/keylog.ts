import { closeSync, fchmodSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import type { EngineEvent } from '../core/actions.js';
import { type ChildSa, formatSpi } from '../core/sa.js';
import type { EncryptionAlgorithm, IntegrityAlgorithm } from '../crypto/registry.js';
import { toHex } from '../wire/bytes.js';

/**
 * The debug key log (`debug.keyLog` in peers.json): a directory holding Wireshark's decryption
 * tables under the names Wireshark gives them in a configuration profile, so that the directory
 * itself can be handed to tshark (`WIRESHARK_CONFIG_DIR=DIR tshark -r capture.pcap`) or its files
 * copied into a profile:
 *
 * - `ikev1_decryption_table`: `ICOOKIE,KEY` per ISAKMP SA, both unquoted hex (Wireshark's
 *   ISAKMP UAT: "Initiator's COOKIE" and "Encryption Key"; the cipher comes from the captured
 *   main mode SA payload, so the capture must hold messages 1 and 2).
 * - `ikev2_decryption_table`: `SPIi,SPIr,SK_ei,SK_er,"ENCRYPTION",SK_ai,SK_ar,"INTEGRITY"` per
 *   IKE SA (rekeyed ones too), hex and Wireshark's names for the algorithms (its IKEv2 UAT);
 *   keys include the salt for AES-GCM, AES-CCM and AES-CTR, as Wireshark expects.
 * - `esp_sa`: one quoted record per direction of each child SA, `"IPv4","SRC","DST","0xSPI",
 *   "ENCRYPTION","0xKEY","AUTHENTICATION","0xKEY"` with Wireshark's names for the algorithms.
 *   Keys include the salt for AES-CTR and AES-GCM, as Wireshark expects. SAs that Wireshark
 *   cannot decrypt (ChaCha20-Poly1305, which its ESP dissector lacks up to 4.0) get a comment.
 * - `preferences`: turns ESP decryption and ICV checking on, which tshark leaves off by default;
 *   written only into a new or empty file (a profile's own preferences are left alone).
 *
 * Everything is created mode 0600 (the directory 0700): these are the secrets of every tunnel.
 * Records are appended, never rewritten, so a capture of an older SA still decrypts.
 */

type IkeKeys = Extract<EngineEvent, { type: 'ike-keys' }>;

export const KEY_LOG_FILES = {
  ikev1: 'ikev1_decryption_table',
  ikev2: 'ikev2_decryption_table',
  esp: 'esp_sa',
  preferences: 'preferences',
} as const;

const HEADER = '# ike-node debug key log: secret keys, delete this file when done.\n';

/** The ESP dissector's preferences; a Wireshark profile's `preferences` file format. */
const PREFERENCES = `${HEADER}esp.enable_encryption_decode: TRUE\nesp.enable_authentication_check: TRUE\n`;

export class KeyLog {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates the directory (if missing) and the tables (if missing); throws when it cannot. */
  open(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const name of [KEY_LOG_FILES.ikev1, KEY_LOG_FILES.ikev2, KEY_LOG_FILES.esp]) this.#append(name, '');
    this.#append(KEY_LOG_FILES.preferences, '', PREFERENCES);
  }

  /** An IKE SA's keys: IKEv1 phase 1, or IKEv2's SK_e and SK_a. */
  ikeKeys(event: IkeKeys): void {
    if (event.version === 1) this.#append(KEY_LOG_FILES.ikev1, ikev1Record(event.spiI, event.encryptionKey));
    else this.#append(KEY_LOG_FILES.ikev2, ikev2Record(event));
  }

  /** Both directions of a child SA as it is installed. */
  child(child: ChildSa): void {
    this.#append(KEY_LOG_FILES.esp, espRecords(child).join(''));
  }

  /**
   * Appends `text`; a new (or empty) file starts with `header`. Mode 0600 even if the file
   * existed with another mode (someone's touch): keys must not become readable by others.
   */
  #append(name: string, text: string, header = HEADER): void {
    const fd = openSync(join(this.dir, name), 'a', 0o600);
    try {
      fchmodSync(fd, 0o600);
      writeSync(fd, fstatSync(fd).size === 0 ? header + text : text);
    } finally {
      closeSync(fd);
    }
  }
}

/** `ikev1_decryption_table`: the initiator's cookie and the phase 1 encryption key, hex. */
export function ikev1Record(cookieI: Uint8Array, encryptionKey: Uint8Array): string {
  return `${toHex(cookieI)},${toHex(encryptionKey)}\n`;
}

/**
 * `ikev2_decryption_table`: SPIs, keys and the algorithm names of Wireshark's IKEv2 UAT (the
 * strings of its ISAKMP dissector, Wireshark 4.0); a comment for what it cannot decrypt.
 */
export function ikev2Record(keys: Extract<IkeKeys, { version: 2 }>): string {
  const spis = `${toHex(keys.spiI)},${toHex(keys.spiR)}`;
  const encryption = ikev2EncryptionName(keys.encryption);
  if (!encryption) return `# IKE SA ${spis}: ${keys.encryption.name} is not decryptable by Wireshark\n`;
  const integrity = keys.integrity ? ikev2IntegrityName(keys.integrity) : 'NONE [RFC4306]';
  return `${spis},${toHex(keys.SK_ei)},${toHex(keys.SK_er)},"${encryption}",${toHex(keys.SK_ai)},${toHex(keys.SK_ar)},"${integrity}"\n`;
}

function ikev2EncryptionName(encr: EncryptionAlgorithm): string | undefined {
  const bits = encr.keyLength * 8;
  switch (encr.primitive) {
    case '3des-cbc':
      return '3DES [RFC2451]';
    case 'aes-cbc':
      return `AES-CBC-${bits} [RFC3602]`;
    case 'aes-ctr':
      return `AES-CTR-${bits} [RFC5930]`;
    case 'aes-gcm':
      return `AES-GCM-${bits} with ${encr.icvLength} octet ICV [RFC5282]`;
    case 'chacha20-poly1305':
      return undefined;
  }
}

function ikev2IntegrityName(integ: IntegrityAlgorithm): string {
  const names: Record<IntegrityAlgorithm['hash'], string> = {
    md5: 'HMAC_MD5_96 [RFC2403]',
    sha1: 'HMAC_SHA1_96 [RFC2404]',
    sha256: 'HMAC_SHA2_256_128 [RFC4868]',
    sha384: 'HMAC_SHA2_384_192 [RFC4868]',
    sha512: 'HMAC_SHA2_512_256 [RFC4868]',
  };
  return names[integ.hash];
}

/** The ESP dissector's name for a cipher; undefined when Wireshark cannot decrypt it. */
export function espEncryptionName(encr: EncryptionAlgorithm): string | undefined {
  switch (encr.primitive) {
    case '3des-cbc':
      return 'TripleDES-CBC [RFC2451]';
    case 'aes-cbc':
      return 'AES-CBC [RFC3602]';
    case 'aes-ctr':
      return 'AES-CTR [RFC3686]';
    case 'aes-gcm':
      return `AES-GCM with ${encr.icvLength} octet ICV [RFC4106]`;
    case 'chacha20-poly1305':
      return undefined;
  }
}

/** The ESP dissector's name for an integrity algorithm ("NULL" for AEADs, which need none). */
export function espAuthenticationName(integ: IntegrityAlgorithm | undefined): string {
  if (!integ) return 'NULL';
  const names: Record<IntegrityAlgorithm['hash'], string> = {
    md5: 'HMAC-MD5-96 [RFC2403]',
    sha1: 'HMAC-SHA-1-96 [RFC2404]',
    sha256: 'HMAC-SHA-256-128 [RFC4868]',
    sha384: 'HMAC-SHA-384-192 [RFC4868]',
    sha512: 'HMAC-SHA-512-256 [RFC4868]',
  };
  return names[integ.hash];
}

/**
 * `esp_sa` records for both directions: inbound (peer to us, our SPI) and outbound (us to peer,
 * theirs). Addresses are the outer IP addresses the daemon talks to, also for ESP in UDP, whose
 * UDP header Wireshark strips before it looks the SA up.
 */
export function espRecords(child: ChildSa): string[] {
  const encryption = espEncryptionName(child.suite.encr);
  const directions = [
    {
      from: child.remote,
      to: child.local,
      spi: child.spiIn,
      encr: child.keys.encrIn,
      integ: child.keys.integIn,
    },
    {
      from: child.local,
      to: child.remote,
      spi: child.spiOut,
      encr: child.keys.encrOut,
      integ: child.keys.integOut,
    },
  ];
  return directions.map(({ from, to, spi, encr, integ }) => {
    const sa = `${from.address} -> ${to.address} SPI 0x${formatSpi(spi)}`;
    if (!encryption)
      return `# ${sa}: ${child.suite.encr.name} is not decryptable by Wireshark's ESP dissector\n`;
    const fields = [
      isIPv6(from.address) ? 'IPv6' : 'IPv4',
      from.address,
      to.address,
      `0x${formatSpi(spi)}`,
      encryption,
      `0x${toHex(encr)}`,
      espAuthenticationName(child.suite.integ),
      child.suite.integ ? `0x${toHex(integ)}` : '',
    ];
    return `${fields.map((field) => `"${field}"`).join(',')}\n`;
  });
}
