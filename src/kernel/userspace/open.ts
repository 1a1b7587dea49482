import { endianness } from 'node:os';
import type { CryptoProvider } from '../../crypto/provider.js';
import { batchDatagrams } from '../../native/batch.js';
import { loadNative, type Native, type NativeError } from '../../native/index.js';
import type { KernelBackendHost } from '../backend.js';
import { Rtnetlink } from '../netlink/route.js';
import { NETLINK_ROUTE, NetlinkSocket } from '../netlink/socket.js';
import { coalesce, readPackets, stripHeader, TUN_OFFLOADS, VNET_HEADER_LENGTH } from './tun-gro.js';
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
  // With writeMany (and so IFF_VNET_HDR support) the shim takes TCP super-packets: see tun-gro.ts.
  const gro = native.writeMany !== undefined;
  // And gives them, with offloads (readPackets), to watchBatch, whose reads take 64 KiB.
  const tun = native.openTun(options.tun, {
    vnetHeader: gro,
    ...(gro && native.watchBatch && { offload: TUN_OFFLOADS }),
  });
  const offloaded = (tun.offload ?? 0) !== 0;
  const netlink = NetlinkSocket.open(native, NETLINK_ROUTE);
  const rtnetlink = new Rtnetlink(netlink);
  try {
    const index = await rtnetlink.linkIndex(tun.name);
    await rtnetlink.setLink(index, { up: true, mtu: options.mtu, txQueueLength: TUN_QUEUE_LENGTH });
    const io: UserspaceIo = {
      tun: {
        write: (packets) => {
          if (gro) native.writeMany!(tun.fd, coalesce(packets), 2);
          else for (const packet of packets) native.write(tun.fd, packet);
        },
        onPackets: (listener) => {
          const onError = (error: NativeError) => host.log('warn', `TUN ${tun.name}: ${error.message}`);
          // A batch per wakeup in one buffer when the shim can: no allocation per packet.
          if (native.watchBatch && offloaded) {
            let warned = false;
            native.watchBatch(
              tun.fd,
              (batch, count) => {
                const packets: Uint8Array[] = [];
                for (const read of batchDatagrams(batch, count)) {
                  if (readPackets(read, packets) || warned) continue;
                  warned = true; // the kernel's own packets: never expected
                  host.log('warn', `TUN ${tun.name}: dropped a read with a malformed virtio_net_hdr`);
                }
                listener(packets);
              },
              onError,
            );
          } else if (native.watchBatch) {
            const skip = gro ? VNET_HEADER_LENGTH : 0;
            native.watchBatch(
              tun.fd,
              (batch, count) => listener(batchDatagrams(batch, count, skip)),
              onError,
            );
          } else {
            native.watch(tun.fd, gro ? (reads) => listener(reads.map(stripHeader)) : listener, onError);
          }
        },
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
      configureSocket: (fd, _family, natPort) => {
        if (natPort) enlargeBuffers(native, fd);
      },
    };
    host.log(
      'info',
      `userspace ESP on TUN device ${tun.name} (MTU ${options.mtu}${offloaded ? ', TCP segmentation offload' : ''})`,
    );
    return new UserspaceBackend(crypto, host, io, options);
  } catch (error) {
    native.close(tun.fd);
    netlink.close();
    throw error;
  }
}

/**
 * The TUN device's transmit queue, in packets: where the kernel's packets wait for us to read
 * them. A TUN device starts with 500, and a packet that finds the queue full is dropped, which a
 * TCP stream through the tunnel takes as congestion: at a few hundred Mbit/s, with the data plane
 * on a busy CPU now and then late by a few milliseconds, 500 packets overflowed often enough to
 * cost a fifth of the throughput of one stream. 1000 is the kernel's default for Ethernet devices.
 */
const TUN_QUEUE_LENGTH = 1000;

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
/** Socket buffer for ESP in UDP on the NAT-T socket, each way. */
export const ESP_SOCKET_BUFFER = 4 << 20;

/**
 * ESP comes in bursts (a peer sends a whole TUN read, up to 64 packets, at once) and the event
 * loop drains the socket between other work: the default receive buffer (rmem_default, about
 * 200 KiB) overflows at a few hundred Mbit/s, and every datagram lost there is a TCP loss inside
 * the tunnel. The *FORCE options pass net.core.rmem_max/wmem_max (the daemon has CAP_NET_ADMIN
 * for the TUN device anyway); without the capability the plain options get what the limits allow.
 */
function enlargeBuffers(native: Native, fd: number): void {
  const value = new Uint8Array(4);
  new DataView(value.buffer).setInt32(0, ESP_SOCKET_BUFFER, endianness() === 'LE');
  for (const [force, plain] of [
    [SO_RCVBUFFORCE, SO_RCVBUF],
    [SO_SNDBUFFORCE, SO_SNDBUF],
  ] as const) {
    try {
      native.setsockopt(fd, SOL_SOCKET, force, value);
    } catch {
      native.setsockopt(fd, SOL_SOCKET, plain, value);
    }
  }
}
