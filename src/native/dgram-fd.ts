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
 * polls it); only setsockopt on it, optionally sendmmsg through it, and read it through the
 * shim's watchBatch (which watches a duplicate) once stopDgramReceive took node:dgram off it.
 */
export function socketFd(socket: Socket): number {
  const { symbol, handle } = dgramHandle(socket);
  const fd = handle?.fd;
  if (typeof fd === 'number' && fd >= 0) return fd;
  const why = !symbol
    ? `this Node.js (${process.version}) keeps no 'state symbol' on dgram sockets`
    : !handle
      ? 'the socket is closed or has no handle'
      : 'the socket is not bound yet (bind it first)';
  throw new Error(`cannot get the file descriptor of a UDP socket: ${why}`);
}

interface UdpHandle {
  fd?: unknown;
  recvStart?: unknown;
  recvStop?: unknown;
}

function dgramHandle(socket: Socket): { symbol: symbol | undefined; handle: UdpHandle | undefined } {
  const symbol = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = symbol ? (socket as unknown as Record<symbol, unknown>)[symbol] : undefined;
  return { symbol, handle: (state as { handle?: UdpHandle } | undefined)?.handle };
}

/**
 * Stops node:dgram's reading of a bound socket, for a caller that reads the datagrams itself
 * through the shim's watchBatch (recvmmsg, a batch per wakeup instead of one 'message' event,
 * one 64 KiB allocation and one microtask checkpoint per datagram: the ESP-in-UDP hot path).
 * Node has no public API for this either: it is the socket handle's own recvStop (libuv's
 * uv_udp_recv_stop), the counterpart of the recvStart that node:dgram calls once the socket is
 * bound and never again, reached as socketFd reaches the descriptor. Sending and closing through
 * node:dgram go on as before. Returns a function that starts node:dgram's reading again.
 */
export function stopDgramReceive(socket: Socket): () => void {
  socketFd(socket); // the same checks: bound, with a handle
  const { handle } = dgramHandle(socket);
  const { recvStart, recvStop } = handle!;
  if (typeof recvStop !== 'function' || typeof recvStart !== 'function') {
    throw new Error(`this Node.js (${process.version}) has no recvStop on dgram socket handles`);
  }
  const status = (recvStop as () => number).call(handle);
  if (status < 0) throw new Error(`cannot stop node:dgram's reading of a UDP socket (libuv error ${status})`);
  return () => {
    (recvStart as () => number).call(handle);
  };
}
