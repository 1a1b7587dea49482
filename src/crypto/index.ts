export * from './dh.js';
export * from './errors.js';
export * from './kdf-ikev1.js';
export * from './kdf-ikev2.js';
export type { AeadCipher, CryptoProvider, ProviderName, RawCipher, RawKeyPair } from './provider.js';
export { createCryptoProvider, PROVIDER_NAMES } from './providers/index.js';
export * from './registry.js';
export * from './secret.js';
export * from './transforms.js';
