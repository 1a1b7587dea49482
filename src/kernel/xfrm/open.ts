import { loadNative, type Native } from '../../native/index.js';
import type { KernelBackendHost } from '../backend.js';
import { NetlinkSocket, type NetlinkSocketOptions, openNetlinkSubscription } from '../netlink/socket.js';
import { NETLINK_XFRM, XFRM_EVENT_GROUPS } from './constants.js';
import { XfrmBackend, type XfrmBackendOptions } from './backend.js';

export interface OpenXfrmOptions extends XfrmBackendOptions, NetlinkSocketOptions {
  /** The native shim (loadNative() by default). */
  readonly native?: Native;
}

/**
 * The xfrm backend on real sockets: one NETLINK_XFRM socket for requests, one joined to the
 * ACQUIRE, EXPIRE and MAPPING groups, setsockopt from the shim; what an earlier run left behind is
 * removed first (XfrmBackend.open).
 */
export async function openXfrmBackend(
  host: KernelBackendHost,
  options: OpenXfrmOptions = {},
): Promise<XfrmBackend> {
  const native = options.native ?? loadNative();
  const channel = NetlinkSocket.open(native, NETLINK_XFRM, options);
  let subscription;
  try {
    subscription = openNetlinkSubscription(native, NETLINK_XFRM, XFRM_EVENT_GROUPS);
  } catch (error) {
    channel.close();
    throw error;
  }
  try {
    return await XfrmBackend.open(channel, subscription, host, {
      setsockopt: (fd, level, name, value) => native.setsockopt(fd, level, name, value),
      ...options,
    });
  } catch (error) {
    subscription.close();
    channel.close();
    throw error;
  }
}
