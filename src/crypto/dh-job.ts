import { sealKeys } from './secret.js';
import type { CryptoProvider } from './provider.js';
import { type DhGroupName, dhGroup } from './registry.js';
import { KeyExchange } from './dh.js';

/**
 * One Diffie-Hellman computation as data, so that it can run on another thread (the daemon's
 * pool) or at once (tests, embedders): the key exchange is the dominant cost of a handshake and
 * the only one worth moving off the event loop.
 *
 * - `{ group }`: a fresh key pair (an initiator's KE payload);
 * - `{ group, peerPublic }`: a fresh key pair and the shared secret (a responder);
 * - `{ group, privateKey, publicKey, peerPublic }`: the shared secret of a key pair made before (an
 *   initiator reading the answer). Its public value comes back as given: computing it again from
 *   the private key would cost another modular exponentiation (a third of a MODP initiator's DH).
 */
export interface DhJob {
  readonly group: DhGroupName;
  readonly privateKey?: Uint8Array;
  readonly publicKey?: Uint8Array;
  readonly peerPublic?: Uint8Array;
}

/** Sealed: renders as names and lengths only. */
export type DhJobResult = Readonly<{
  publicKey: Uint8Array;
  privateKey: Uint8Array;
  /** g^xy in IKE's form, when the job had a peer value (validated per RFC 6989 first). */
  sharedSecret?: Uint8Array;
}>;

/** A key pair made before, as a job carries it to finish the exchange (see DhJob). */
export function madeBefore(pair: DhJobResult): Pick<DhJob, 'privateKey' | 'publicKey'> {
  return { privateKey: pair.privateKey, publicKey: pair.publicKey };
}

/** Runs a job; throws InvalidPublicValueError for a peer value that fails validation. */
export function runDhJob(provider: CryptoProvider, job: DhJob): DhJobResult {
  const exchange = new KeyExchange(provider, dhGroup(job.group), job.privateKey);
  const sharedSecret =
    job.peerPublic === undefined ? undefined : exchange.computeSharedSecret(job.peerPublic);
  return sealKeys('DhJobResult', {
    publicKey: job.publicKey ?? exchange.publicKey,
    privateKey: exchange.privateKey,
    ...(sharedSecret && { sharedSecret }),
  });
}
