import type { Socket } from 'node:dgram';

/**
 * The file descriptor of a node:dgram socket.
 *
 * Why: the kernel backends set options on the IKE sockets themselves (UDP_ENCAP_ESPINUDP on the
 * NAT-T port, the per-socket policy that lets IKE bypass our own IPsec policies), and the
 * userspace backend may send ESP-in-UDP batches through the same socket with sendmmsg (so that
 * the peer sees ESP from the IKE port). Node has no public API for the descriptor, and
 * `socket._handle` prints a DEP0112 deprecation warning. The alternative, sockets owned by the
 * native shim with their own readiness polling, would duplicate node:dgram (binding, errors,
 * IPv6 options) for two setsockopt calls. So we read the descriptor from the state that node:dgram
 * keeps under a symbol described as 'state symbol' (lib/internal/dgram.js), without the warning.
 *
 * The descriptor stays owned by Node and libuv: never close it, never watch it (libuv already
 * polls it); only setsockopt on it and optionally sendmmsg through it.
 */
export function socketFd(socket: Socket): number {
  const symbol = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = symbol ? (socket as unknown as Record<symbol, unknown>)[symbol] : undefined;
  const handle = (state as { handle?: { fd?: unknown } } | undefined)?.handle;
  const fd = handle?.fd;
  if (typeof fd === 'number' && fd >= 0) return fd;
  const why = !symbol
    ? `this Node.js (${process.version}) keeps no 'state symbol' on dgram sockets`
    : !handle
      ? 'the socket is closed or has no handle'
      : 'the socket is not bound yet (bind it first)';
  throw new Error(`cannot get the file descriptor of a UDP socket: ${why}`);
}
