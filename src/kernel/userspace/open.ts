import type { CryptoProvider } from '../../crypto/provider.js';
import { loadNative, type Native } from '../../native/index.js';
import type { KernelBackendHost } from '../backend.js';
import { Rtnetlink } from '../netlink/route.js';
import { NETLINK_ROUTE, NetlinkSocket } from '../netlink/socket.js';
import { UserspaceBackend, type UserspaceBackendOptions, type UserspaceIo } from './backend.js';

export interface OpenUserspaceOptions extends UserspaceBackendOptions {
  /** The TUN device's name and MTU (dataPlane.tun, dataPlane.mtu). */
  readonly tun: string;
  readonly mtu: number;
  readonly native?: Native;
  /** ESP datagrams as a batch from one of the daemon's sockets (sendmmsg); else one by one. */
  readonly sendDatagrams?: UserspaceIo['sendDatagrams'];
}

/**
 * The userspace data plane on real devices: a TUN device (up, with its MTU) whose routes lead the
 * remote subnets into it, rtnetlink for those routes, and the daemon's NAT-T socket for ESP in UDP.
 */
export async function openUserspaceBackend(
  host: KernelBackendHost,
  crypto: CryptoProvider,
  options: OpenUserspaceOptions,
): Promise<UserspaceBackend> {
  const native = options.native ?? loadNative();
  const tun = native.openTun(options.tun);
  const netlink = NetlinkSocket.open(native, NETLINK_ROUTE);
  const rtnetlink = new Rtnetlink(netlink);
  try {
    const index = await rtnetlink.linkIndex(tun.name);
    await rtnetlink.setLink(index, { up: true, mtu: options.mtu });
    const io: UserspaceIo = {
      tun: {
        write: (packets) => {
          for (const packet of packets) native.write(tun.fd, packet);
        },
        onPackets: (listener) =>
          native.watch(tun.fd, listener, (error) => host.log('warn', `TUN ${tun.name}: ${error.message}`)),
        close: () => {
          native.close(tun.fd); // the device goes with its descriptor, and its routes with it
          netlink.close();
        },
      },
      routes: {
        add: (prefix) => rtnetlink.addRoute({ destination: prefix, index }, { replace: true }),
        remove: (prefix) => rtnetlink.deleteRoute({ destination: prefix, index }),
      },
      ...(options.sendDatagrams && { sendDatagrams: options.sendDatagrams }),
    };
    host.log('info', `userspace ESP on TUN device ${tun.name} (MTU ${options.mtu})`);
    return new UserspaceBackend(crypto, host, io, options);
  } catch (error) {
    native.close(tun.fd);
    netlink.close();
    throw error;
  }
}
