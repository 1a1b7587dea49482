import { createSocket, type Socket } from 'node:dgram';
import type { Endpoint } from '../core/endpoint.js';
import { DatagramReader } from '../native/batch.js';
import { socketFd, stopDgramReceive } from '../native/dgram-fd.js';
import type { Native, NativeError } from '../native/types.js';
import { concat } from '../wire/bytes.js';

/**
 * The IKE sockets: UDP 500 and 4500 on each listen address (runtime I/O, no protocol logic).
 * On the NAT-T port, IKE messages carry a four-byte zero non-ESP marker, keepalives are the
 * single byte 0xff, and anything else is ESP in UDP (RFC 3948 section 2).
 */

export const NON_ESP_MARKER = new Uint8Array(4);

const SOL_SOCKET = 1;
const SO_RCVBUFFORCE = 33;
const SOL_UDP = 17;
const UDP_GRO = 104;
/** An int of 1 in the host's byte order, as setsockopt takes it. */
const ONE = new Uint8Array(new Int32Array([1]).buffer);
/**
 * The receive buffer of every IKE socket: a burst of first messages (thousands of peers starting
 * at once) must wait in the kernel while the engine works, not be dropped. Above the kernel's
 * net.core.rmem_max only with CAP_NET_ADMIN (SO_RCVBUFFORCE); without it, what rmem_max allows.
 */
export const RECEIVE_BUFFER = 8 * 1024 * 1024;

export type Received =
  | { readonly kind: 'ike'; readonly data: Uint8Array; readonly local: Endpoint; readonly remote: Endpoint }
  | {
      readonly kind: 'keepalive' | 'esp';
      readonly data: Uint8Array;
      readonly local: Endpoint;
      readonly remote: Endpoint;
    };

/** Classifies a datagram by the port it arrived on; strips the non-ESP marker. */
export function classify(data: Uint8Array, natPort: boolean): { kind: Received['kind']; data: Uint8Array } {
  if (!natPort) return { kind: 'ike', data };
  if (data.length === 1 && data[0] === 0xff) return { kind: 'keepalive', data };
  if (data.length >= 4 && data[0] === 0 && data[1] === 0 && data[2] === 0 && data[3] === 0)
    return { kind: 'ike', data: data.subarray(4) };
  return { kind: 'esp', data };
}

export interface UdpOptions {
  readonly addresses: readonly string[];
  readonly port: number;
  readonly natPort: number;
  readonly onReceive: (received: Received) => void;
  readonly onError: (message: string) => void;
  /**
   * The native shim, to read the sockets in batches (watchBatch: one recvmmsg and one call into
   * JS per wakeup, up to 64 datagrams in one buffer) instead of node:dgram's 'message' event,
   * allocation and microtask checkpoint per datagram: what a burst of handshakes and the
   * userspace data plane's ESP need. Without it, or with a shim that lacks watchBatch,
   * node:dgram reads them.
   */
  readonly native?: Native;
}

export class UdpEndpoints {
  readonly #sockets = new Map<string, Socket>();
  readonly #natSockets = new Set<Socket>();
  /** The descriptors of the sockets, when the shim is there to send through them. */
  readonly #fds = new Map<Socket, number>();
  /** Sockets read through the shim's watchBatch, with their descriptors. */
  readonly #watched = new Map<Socket, number>();
  readonly #options: UdpOptions;
  #inFlight = 0;
  readonly #drained: (() => void)[] = [];

  private constructor(options: UdpOptions) {
    this.#options = options;
  }

  static async open(options: UdpOptions): Promise<UdpEndpoints> {
    const endpoints = new UdpEndpoints(options);
    try {
      for (const address of options.addresses) {
        for (const port of [options.port, options.natPort]) await endpoints.#bind(address, port);
      }
    } catch (error) {
      await endpoints.close();
      throw error;
    }
    return endpoints;
  }

  #bind(address: string, port: number): Promise<void> {
    const socket = createSocket({
      type: address.includes(':') ? 'udp6' : 'udp4',
      reuseAddr: false,
      recvBufferSize: RECEIVE_BUFFER,
    });
    const natPort = port === this.#options.natPort;
    return new Promise((resolve, reject) => {
      socket.once('error', (error: NodeJS.ErrnoException) => {
        // The errno code stays on the error (EADDRINUSE...): a library user tells causes apart by it.
        const message = `cannot listen on ${address} port ${port}: ${bindHint(error)}`;
        reject(Object.assign(new Error(message, { cause: error }), { code: error.code }));
      });
      socket.bind({ address, port, exclusive: true }, () => {
        socket.removeAllListeners('error');
        socket.on('error', (error) => this.#options.onError(`socket ${address}:${port}: ${error.message}`));
        socket.on('message', (message, rinfo) => {
          const { kind, data } = classify(
            new Uint8Array(message.buffer, message.byteOffset, message.length),
            natPort,
          );
          this.#options.onReceive({
            kind,
            data,
            local: { address, port },
            remote: { address: rinfo.address, port: rinfo.port },
          } as Received);
        });
        this.#sockets.set(`${address}:${port}`, socket);
        if (natPort) this.#natSockets.add(socket);
        this.#forceReceiveBuffer(socket);
        if (this.#options.native) this.#fds.set(socket, socketFd(socket));
        if (this.#options.native?.watchBatch) {
          try {
            this.#readInBatches(socket, { address, port }, this.#options.native);
          } catch (error) {
            this.#options.onError(
              `socket ${address}:${port}: reading through node:dgram (no batches): ${(error as Error).message}`,
            );
          }
        }
        resolve();
      });
    });
  }

  /** Past net.core.rmem_max where we may (CAP_NET_ADMIN); node:dgram set what it allows. */
  #forceReceiveBuffer(socket: Socket): void {
    const native = this.#options.native;
    if (!native) return;
    try {
      native.setsockopt(
        socketFd(socket),
        SOL_SOCKET,
        SO_RCVBUFFORCE,
        new Uint8Array(new Int32Array([RECEIVE_BUFFER]).buffer),
      );
    } catch {
      // EPERM without CAP_NET_ADMIN: the capped size stays.
    }
  }

  /**
   * Takes the reading of a socket over from node:dgram: batches from the shim, each datagram
   * classified as before. IKE messages are copied out of the batch (the engine may keep them);
   * ESP is handed over as a view, which the data plane decrypts into buffers of its own.
   */
  #readInBatches(socket: Socket, local: Endpoint, native: Native): void {
    const natPort = local.port === this.#options.natPort;
    const fd = socketFd(socket);
    const restart = stopDgramReceive(socket);
    const reader = new DatagramReader();
    const { onReceive, onError } = this.#options;
    const each = (datagram: Buffer, remote: Endpoint): void => {
      const { kind, data } = classify(datagram, natPort);
      onReceive({ kind, data: kind === 'ike' ? Uint8Array.from(data) : data, local, remote } as Received);
    };
    try {
      native.watchBatch!(
        fd,
        (batch, count) => reader.read(batch, count, each),
        (error) => onError(`socket ${local.address}:${local.port}: ${error.message}`),
      );
    } catch (error) {
      restart();
      throw error;
    }
    this.#watched.set(socket, fd);
    // UDP GRO (Linux 5.0): a train of equal-size datagrams from one peer (a UDP GSO send, or what
    // the NIC's GRO merged) arrives as one read, which the shim cuts into the same datagrams
    // again; only the batch reader can take them. A kernel without it: a read per datagram.
    try {
      native.setsockopt(fd, SOL_UDP, UDP_GRO, ONE);
    } catch {
      // no UDP_GRO (ENOPROTOOPT)
    }
  }

  /** Every socket with its family and whether it is the NAT-T port (for the kernel backend's socket options). */
  sockets(): { socket: Socket; family: 4 | 6; natPort: boolean }[] {
    return [...this.#sockets.values()].map((socket) => ({
      socket,
      family: socket.address().family === 'IPv6' ? 6 : 4,
      natPort: this.#natSockets.has(socket),
    }));
  }

  /** The bound ports (useful when 0 asked the kernel to choose). */
  boundPort(address: string, port: number): number | undefined {
    return this.#sockets.get(`${address}:${port}`)?.address().port;
  }

  /** The socket bound to `from` (or to the wildcard address on its port). */
  socketFor(from: Endpoint): Socket | undefined {
    return (
      this.#sockets.get(`${from.address}:${from.port}`) ??
      this.#sockets.get(`${from.address.includes(':') ? '::' : '0.0.0.0'}:${from.port}`)
    );
  }

  send(from: Endpoint, to: Endpoint, data: Uint8Array, nonEspMarker: boolean): void {
    const socket = this.socketFor(from);
    if (!socket) {
      this.#options.onError(`no socket for ${from.address}:${from.port}`);
      return;
    }
    const fd = this.#fds.get(socket);
    if (fd !== undefined && this.#sendNow(fd, to, nonEspMarker ? concat(NON_ESP_MARKER, data) : data)) return;
    const payload = nonEspMarker ? [NON_ESP_MARKER, data] : [data];
    this.#inFlight++;
    socket.send(payload, to.port, to.address, (error) => {
      if (error) this.#options.onError(`send to ${to.address}:${to.port}: ${error.message}`);
      if (--this.#inFlight === 0) for (const resolve of this.#drained.splice(0)) resolve();
    });
  }

  /**
   * A datagram straight through the shim (one sendmmsg, no request object or callback): what
   * a burst of handshakes costs least with. False when the socket's buffer is full (node:dgram
   * queues it then) or there is no shim.
   */
  #sendNow(fd: number, to: Endpoint, datagram: Uint8Array): boolean {
    try {
      if (this.#options.native!.sendTo(fd, to.address, to.port, [datagram]) === 1) return true;
    } catch (error) {
      const { code, message } = error as NativeError;
      if (code === 'EAGAIN' || code === 'ENOBUFS') return false;
      this.#options.onError(`send to ${to.address}:${to.port}: ${message}`);
      return true;
    }
    return false;
  }

  /** Closes the sockets once every datagram handed to send() has left (the Deletes at shutdown). */
  async close(): Promise<void> {
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
    // The shim's duplicate descriptor first: it would keep the socket (and its port) open.
    for (const fd of this.#watched.values()) this.#options.native?.unwatch(fd);
    this.#watched.clear();
    for (const socket of this.#sockets.values()) socket.close();
    this.#sockets.clear();
    this.#fds.clear();
  }
}

/** The usual causes of a failed bind, said plainly; `inUse` says who may hold the port. */
export function bindHint(
  error: NodeJS.ErrnoException,
  inUse = "is another IKE daemon, such as strongSwan's charon, running?",
): string {
  switch (error.code) {
    case 'EADDRINUSE':
      return `the port is in use (${inUse})`;
    case 'EACCES':
      return 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)';
    case 'EADDRNOTAVAIL':
      return 'no interface has this address';
    default:
      return error.message;
  }
}
