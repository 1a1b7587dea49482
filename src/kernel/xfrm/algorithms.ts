import type { Suite } from '../../core/proposal.js';
import type { CipherPrimitive, HashName } from '../../crypto/registry.js';
import type { NetlinkAttribute } from '../netlink/message.js';
import { XFRMA_ALG_AEAD, XFRMA_ALG_AUTH_TRUNC, XFRMA_ALG_CRYPT } from './constants.js';
import { encodeAlgo, encodeAlgoAead, encodeAlgoAuth } from './structs.js';

/**
 * Registry rows to the names the Linux crypto API and XFRM know (net/xfrm/xfrm_algo.c lists what
 * XFRM accepts; the key lengths include the nonce/salt that RFC 3686, 4106 and 7634 append).
 */

/** What goes into XFRMA_ALG_CRYPT (a cipher) or XFRMA_ALG_AEAD (a combined mode). */
export interface KernelEncryption {
  readonly attribute: typeof XFRMA_ALG_CRYPT | typeof XFRMA_ALG_AEAD;
  readonly name: string;
  /** Key bits including the salt or nonce. */
  readonly keyBits: number;
  /** AEAD only: the ICV length in bits (64, 96, 128). */
  readonly icvBits?: number;
}

/** What goes into XFRMA_ALG_AUTH_TRUNC. */
export interface KernelIntegrity {
  readonly name: string;
  readonly keyBits: number;
  /** The ICV on the wire: RFC 2403/2404 96 bits, RFC 4868 half the hash. */
  readonly truncBits: number;
}

export interface KernelAlgorithms {
  readonly encryption: KernelEncryption;
  readonly integrity?: KernelIntegrity;
}

/** A suite this backend cannot express, or keys that do not fit it. */
export class XfrmAlgorithmError extends Error {
  override readonly name = 'XfrmAlgorithmError';
}

const CIPHERS: Readonly<Record<CipherPrimitive, { name: string; aead: boolean }>> = {
  'aes-cbc': { name: 'cbc(aes)', aead: false },
  '3des-cbc': { name: 'cbc(des3_ede)', aead: false },
  'aes-ctr': { name: 'rfc3686(ctr(aes))', aead: false },
  'aes-gcm': { name: 'rfc4106(gcm(aes))', aead: true },
  'chacha20-poly1305': { name: 'rfc7539esp(chacha20,poly1305)', aead: true },
};

const HMACS: Readonly<Record<HashName, string>> = {
  md5: 'hmac(md5)',
  sha1: 'hmac(sha1)',
  sha256: 'hmac(sha256)',
  sha384: 'hmac(sha384)',
  sha512: 'hmac(sha512)',
};

export function kernelAlgorithms(suite: Suite): KernelAlgorithms {
  const encr = suite.encr;
  const cipher = (CIPHERS as Partial<Record<string, { name: string; aead: boolean }>>)[encr.primitive];
  if (!cipher)
    throw new XfrmAlgorithmError(`encryption '${encr.name}' (${encr.primitive}) has no XFRM equivalent`);
  const keyBits = (encr.keyLength + encr.saltLength) * 8;
  if (cipher.aead) {
    if (suite.integ)
      throw new XfrmAlgorithmError(`'${encr.name}' is an AEAD and takes no integrity algorithm`);
    if (![8, 12, 16].includes(encr.icvLength))
      throw new XfrmAlgorithmError(`'${encr.name}': an ICV of ${encr.icvLength} bytes is not 8, 12 or 16`);
    return {
      encryption: { attribute: XFRMA_ALG_AEAD, name: cipher.name, keyBits, icvBits: encr.icvLength * 8 },
    };
  }
  if (!suite.integ) throw new XfrmAlgorithmError(`'${encr.name}' needs an integrity algorithm for ESP`);
  const hmac = (HMACS as Partial<Record<string, string>>)[suite.integ.hash];
  if (!hmac)
    throw new XfrmAlgorithmError(
      `integrity '${suite.integ.name}' (${suite.integ.hash}) has no XFRM equivalent`,
    );
  return {
    encryption: { attribute: XFRMA_ALG_CRYPT, name: cipher.name, keyBits },
    integrity: { name: hmac, keyBits: suite.integ.keyLength * 8, truncBits: suite.integ.icvLength * 8 },
  };
}

/** "rfc4106(gcm(aes)) 160-bit key 128-bit ICV" or "cbc(aes) 128-bit key + hmac(sha256) 256-bit key 128-bit ICV". */
export function describeKernelAlgorithms(algorithms: KernelAlgorithms): string {
  const e = algorithms.encryption;
  const encryption = `${e.name} ${e.keyBits}-bit key${e.icvBits === undefined ? '' : ` ${e.icvBits}-bit ICV`}`;
  const i = algorithms.integrity;
  return i ? `${encryption} + ${i.name} ${i.keyBits}-bit key ${i.truncBits}-bit ICV` : encryption;
}

/** XFRMA_ALG_CRYPT + XFRMA_ALG_AUTH_TRUNC, or XFRMA_ALG_AEAD, carrying one direction's keys. */
export function algorithmAttributes(
  algorithms: KernelAlgorithms,
  encrKey: Uint8Array,
  integKey: Uint8Array,
): NetlinkAttribute[] {
  const e = algorithms.encryption;
  if (encrKey.length * 8 !== e.keyBits)
    throw new XfrmAlgorithmError(
      `${e.name} takes a ${e.keyBits}-bit key (salt included), the engine gave ${encrKey.length * 8} bits`,
    );
  if (e.attribute === XFRMA_ALG_AEAD)
    return [
      {
        type: XFRMA_ALG_AEAD,
        value: encodeAlgoAead({ name: e.name, key: encrKey, icvBits: e.icvBits ?? 0 }),
      },
    ];
  const i = algorithms.integrity;
  if (!i) throw new XfrmAlgorithmError(`${e.name} needs an integrity algorithm`);
  if (integKey.length * 8 !== i.keyBits)
    throw new XfrmAlgorithmError(
      `${i.name} takes a ${i.keyBits}-bit key, the engine gave ${integKey.length * 8} bits`,
    );
  return [
    { type: XFRMA_ALG_CRYPT, value: encodeAlgo({ name: e.name, key: encrKey }) },
    {
      type: XFRMA_ALG_AUTH_TRUNC,
      value: encodeAlgoAuth({ name: i.name, key: integKey, truncBits: i.truncBits }),
    },
  ];
}
