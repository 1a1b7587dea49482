import { createSocket, type Socket } from 'node:dgram';
import type { Endpoint } from '../core/endpoint.js';

/**
 * The IKE sockets: UDP 500 and 4500 on each listen address (runtime I/O, no protocol logic).
 * On the NAT-T port, IKE messages carry a four-byte zero non-ESP marker, keepalives are the
 * single byte 0xff, and anything else is ESP in UDP (RFC 3948 section 2).
 */

export const NON_ESP_MARKER = new Uint8Array(4);

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
}

export class UdpEndpoints {
  readonly #sockets = new Map<string, Socket>();
  readonly #natSockets = new Set<Socket>();
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
    const socket = createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
    const natPort = port === this.#options.natPort;
    return new Promise((resolve, reject) => {
      socket.once('error', (error) =>
        reject(new Error(`cannot listen on ${address} port ${port}: ${bindHint(error)}`)),
      );
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
        resolve();
      });
    });
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
    const payload = nonEspMarker ? [NON_ESP_MARKER, data] : [data];
    this.#inFlight++;
    socket.send(payload, to.port, to.address, (error) => {
      if (error) this.#options.onError(`send to ${to.address}:${to.port}: ${error.message}`);
      if (--this.#inFlight === 0) for (const resolve of this.#drained.splice(0)) resolve();
    });
  }

  /** Closes the sockets once every datagram handed to send() has left (the Deletes at shutdown). */
  async close(): Promise<void> {
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
    for (const socket of this.#sockets.values()) socket.close();
    this.#sockets.clear();
  }
}

/** The usual causes, said plainly: the two an operator meets first. */
function bindHint(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'EADDRINUSE':
      return "the port is in use (is another IKE daemon, such as strongSwan's charon, running?)";
    case 'EACCES':
      return 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)';
    case 'EADDRNOTAVAIL':
      return 'no interface has this address';
    default:
      return error.message;
  }
}
