import type { CryptoProvider, ProviderName } from '../provider.js';

/**
 * One provider by name, importing its module alone: a Diffie-Hellman worker thread needs one
 * provider, and the other's import is start-up time on the path of the first handshake (noble's
 * takes about 70 ms on the development machine, seconds in the kernel lab's emulated guest).
 * `createCryptoProvider` (providers/index.ts) is the synchronous form, with both loaded.
 */
export const PROVIDER_NAMES: readonly ProviderName[] = ['node', 'noble'];

/** A name that is no provider, said with the names that are (both forms throw it). */
export function unknownProvider(name: unknown): RangeError {
  return new RangeError(
    `unknown crypto provider '${String(name)}' (expected one of: ${PROVIDER_NAMES.join(', ')})`,
  );
}

export async function loadCryptoProvider(name: ProviderName): Promise<CryptoProvider> {
  switch (name) {
    case 'node':
      return (await import('./node.js')).createNodeProvider();
    case 'noble':
      return (await import('./noble.js')).createNobleProvider();
    default:
      throw unknownProvider(name);
  }
}
