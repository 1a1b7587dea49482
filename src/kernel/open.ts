import type { DaemonConfig, KernelBackendName } from '../config/daemon-config.js';
import type { CryptoProvider } from '../crypto/provider.js';
import type { KernelBackend, KernelBackendHost } from './backend.js';
import { MemoryBackend } from './memory.js';
import { openPfkeyBackend } from './pfkey/open.js';
import { openUserspaceBackend } from './userspace/open.js';
import { openXfrmBackend } from './xfrm/open.js';

export interface OpenKernelOptions {
  readonly dataPlane: DaemonConfig['dataPlane'];
  readonly crypto: CryptoProvider;
  readonly host: KernelBackendHost;
}

/** The backend peers.json names, on real sockets and devices (the daemon's start). */
export async function openKernelBackend(
  name: KernelBackendName,
  options: OpenKernelOptions,
): Promise<KernelBackend> {
  switch (name) {
    case 'memory':
      return new MemoryBackend();
    case 'xfrm':
      return openXfrmBackend(options.host, { replayWindow: options.dataPlane.replayWindow });
    case 'pfkey':
      return openPfkeyBackend(options.host, { replayWindow: options.dataPlane.replayWindow });
    case 'userspace':
      return openUserspaceBackend(options.host, options.crypto, {
        tun: options.dataPlane.tun,
        mtu: options.dataPlane.mtu,
        replayWindow: options.dataPlane.replayWindow,
        ...(options.host.sendDatagrams && { sendDatagrams: options.host.sendDatagrams }),
      });
  }
}
