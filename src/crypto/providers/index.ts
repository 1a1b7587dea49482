import type { CryptoProvider, ProviderName } from '../provider.js';
import { createNobleProvider } from './noble.js';
import { createNodeProvider } from './node.js';

export const PROVIDER_NAMES: readonly ProviderName[] = ['node', 'noble'];

/** Providers by name; `node` (OpenSSL) is the default because it is an order of magnitude faster. */
export function createCryptoProvider(name: ProviderName = 'node'): CryptoProvider {
  switch (name) {
    case 'node':
      return createNodeProvider();
    case 'noble':
      return createNobleProvider();
    default:
      throw new RangeError(
        `unknown crypto provider '${String(name)}' (expected one of: ${PROVIDER_NAMES.join(', ')})`,
      );
  }
}
