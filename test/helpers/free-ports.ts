import { createSocket } from 'node:dgram';

/**
 * UDP ports the kernel hands out on `address` (bound to port 0, then released), for daemons whose
 * configuration needs a port number before they start: two test runs never collide on them.
 */
export async function freeUdpPorts(address: string, count: number): Promise<number[]> {
  const sockets = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createSocket>>((resolve, reject) => {
          const socket = createSocket('udp4');
          socket.once('error', reject);
          socket.bind(0, address, () => resolve(socket));
        }),
    ),
  );
  const ports = sockets.map((socket) => socket.address().port);
  await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
  return ports;
}
