import type { Suite } from '../../core/proposal.js';
import {
  OPENBSD_SADB_X_EALG_CHACHA20POLY1305,
  type PfkeyFlavour,
  SADB_AALG_MD5HMAC,
  SADB_AALG_NONE,
  SADB_AALG_SHA1HMAC,
  SADB_EALG_3DESCBC,
  SADB_X_AALG_SHA2_256,
  SADB_X_AALG_SHA2_384,
  SADB_X_AALG_SHA2_512,
  SADB_X_EALG_AESCBC,
  SADB_X_EALG_AESCTR,
  SADB_X_EALG_AESGCM16,
} from './constants.js';
import { PfkeyUnsupportedError } from './errors.js';

/**
 * Which sadb_sa_encrypt / sadb_sa_auth a negotiated suite becomes, per kernel, and what each
 * kernel cannot do through PF_KEY. The keys go in as negotiated: CTR, GCM and ChaCha20 keys end
 * with their 4-byte salt (both kernels take it as the last 32 bits of the key, e.g. Linux
 * xfrm_algo.c rfc3686(ctr(aes)) minbits 160, OpenBSD pfkeyv2_acquire "128 + 32").
 */

interface EncryptionRow {
  readonly id?: number;
  /** Why this kernel has no such cipher through PF_KEY. */
  readonly missing?: string;
}

const LINUX_NO_AEAD =
  'Linux af_key has no AEAD: pfkey_msg2xfrm_state looks sadb_sa_encrypt up with xfrm_ealg_get_byid, which does not search the AEAD list (use the xfrm backend)';

function linuxEncryption(suite: Suite): EncryptionRow {
  switch (suite.encr.primitive) {
    case '3des-cbc':
      return { id: SADB_EALG_3DESCBC };
    case 'aes-cbc':
      return { id: SADB_X_EALG_AESCBC };
    case 'aes-ctr':
      return { id: SADB_X_EALG_AESCTR };
    case 'aes-gcm':
    case 'chacha20-poly1305':
      return { missing: LINUX_NO_AEAD };
  }
}

function openbsdEncryption(suite: Suite): EncryptionRow {
  switch (suite.encr.primitive) {
    case '3des-cbc':
      return { id: SADB_EALG_3DESCBC };
    case 'aes-cbc':
      return { id: SADB_X_EALG_AESCBC };
    case 'aes-ctr':
      return { id: SADB_X_EALG_AESCTR };
    case 'aes-gcm':
      return suite.encr.icvLength === 16
        ? { id: SADB_X_EALG_AESGCM16 }
        : {
            missing: `OpenBSD's ESP does AES-GCM with a 16-byte ICV only (SADB_X_EALG_AESGCM16; iked maps no other), not ${suite.encr.icvLength}`,
          };
    case 'chacha20-poly1305':
      return { id: OPENBSD_SADB_X_EALG_CHACHA20POLY1305 };
  }
}

/**
 * Integrity: the id and the ICV length the kernel will use. Linux xfrm_algo.c gives hmac(sha256)
 * icv_truncbits 96 (the pre-RFC 4868 draft), so SHA-256 through Linux PF_KEY does not
 * interoperate with RFC 4868's 128 bits; sha384 (192) and sha512 (256) are right. OpenBSD
 * truncates SHA-2 as RFC 4868 says.
 */
const INTEGRITY: Record<PfkeyFlavour, Record<string, { id: number; icvBits: number }>> = {
  linux: {
    md5: { id: SADB_AALG_MD5HMAC, icvBits: 96 },
    sha1: { id: SADB_AALG_SHA1HMAC, icvBits: 96 },
    sha256: { id: SADB_X_AALG_SHA2_256, icvBits: 96 },
    sha384: { id: SADB_X_AALG_SHA2_384, icvBits: 192 },
    sha512: { id: SADB_X_AALG_SHA2_512, icvBits: 256 },
  },
  openbsd: {
    md5: { id: SADB_AALG_MD5HMAC, icvBits: 96 },
    sha1: { id: SADB_AALG_SHA1HMAC, icvBits: 96 },
    sha256: { id: SADB_X_AALG_SHA2_256, icvBits: 128 },
    sha384: { id: SADB_X_AALG_SHA2_384, icvBits: 192 },
    sha512: { id: SADB_X_AALG_SHA2_512, icvBits: 256 },
  },
};

export interface SadbAlgorithms {
  readonly encrypt: number;
  readonly auth: number;
}

/** The PF_KEY ids of a suite, or a PfkeyUnsupportedError that says why this kernel cannot. */
export function sadbAlgorithms(suite: Suite, flavour: PfkeyFlavour): SadbAlgorithms {
  const encryption = flavour === 'linux' ? linuxEncryption(suite) : openbsdEncryption(suite);
  if (encryption.id === undefined)
    throw new PfkeyUnsupportedError(`${suite.encr.name} through ${flavour} PF_KEY: ${encryption.missing}`);
  if (!suite.integ) {
    if (suite.encr.icvLength === 0)
      throw new PfkeyUnsupportedError(`${suite.encr.name} without an integrity algorithm`);
    return { encrypt: encryption.id, auth: SADB_AALG_NONE };
  }
  const integrity = INTEGRITY[flavour][suite.integ.hash];
  if (!integrity)
    throw new PfkeyUnsupportedError(`integrity ${suite.integ.name} has no ${flavour} PF_KEY id`);
  if (integrity.icvBits !== suite.integ.icvLength * 8) {
    const why =
      flavour === 'linux'
        ? ' (Linux xfrm_algo.c gives hmac(sha256) icv_truncbits 96 for PF_KEY; use the xfrm backend)'
        : '';
    throw new PfkeyUnsupportedError(
      `integrity ${suite.integ.name} through ${flavour} PF_KEY truncates to ${integrity.icvBits} bits, ` +
        `the negotiated ICV is ${suite.integ.icvLength * 8}${why}`,
    );
  }
  return { encrypt: encryption.id, auth: integrity.id };
}
