import type { CryptoProvider, ProviderName } from '../provider.js';
import { PROVIDER_NAMES, unknownProvider } from './load.js';
import { createNobleProvider } from './noble.js';
import { createNodeProvider } from './node.js';

export { PROVIDER_NAMES };

/** Providers by name; `node` (OpenSSL) is the default because it is an order of magnitude faster. */
export function createCryptoProvider(name: ProviderName = 'node'): CryptoProvider {
  switch (name) {
    case 'node':
      return createNodeProvider();
    case 'noble':
      return createNobleProvider();
    default:
      throw unknownProvider(name);
  }
}
