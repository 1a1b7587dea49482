import { loadNative } from '../../native/index.js';
import type { KernelBackendHost } from '../backend.js';
import { PfkeyBackend, type PfkeyBackendOptions, pfkeyFlavourOf } from './backend.js';

export type OpenPfkeyOptions = Partial<Omit<PfkeyBackendOptions, 'host'>>;

/**
 * The PF_KEY backend on a real socket: the shim from loadNative() and this system's flavour unless
 * given. Opening registers for ESP (the first SADB_REGISTER on Linux loads every ESP algorithm:
 * seconds) and removes what an earlier run left (PfkeyBackend.open).
 */
export async function openPfkeyBackend(
  host: KernelBackendHost,
  options: OpenPfkeyOptions = {},
): Promise<PfkeyBackend> {
  const flavour = options.flavour ?? pfkeyFlavourOf();
  if (!flavour)
    throw new Error(`kernel: PF_KEY is spoken here for Linux and OpenBSD, not ${process.platform}`);
  return PfkeyBackend.open({ ...options, flavour, native: options.native ?? loadNative(), host });
}
