import { createSocket, type Socket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';

/**
 * Ports the kernel hands out on an address (bound to port 0, read, then released), for daemons
 * whose configuration needs a port number before they start: the demo, and tests that two runs on
 * one machine must not collide in. All sockets are bound before any is closed, so the ports differ.
 */
export async function freeUdpPorts(address: string, count: number): Promise<number[]> {
  const family = address.includes(':') ? 'udp6' : 'udp4';
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const socket = createSocket(family);
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(0, address, () => resolve());
      });
    }
    return sockets.map((socket) => socket.address().port);
  } finally {
    await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
  }
}

/** A TCP port the kernel hands out on `address` (bound to port 0, read, then released). */
export async function freeTcpPort(address: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port: 0, exclusive: true }, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
