/**
 * ike-node's library entry. Today it exposes the crypto layer: providers, the transform registry,
 * Diffie-Hellman and the IKEv1/IKEv2 key derivations. The engines and the node API follow.
 */
export * from './crypto/index.js';
export { VERSION } from './version.js';
