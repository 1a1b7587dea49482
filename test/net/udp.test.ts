import dgram from 'node:dgram';
import { once } from 'node:events';
import t from 'tap';
import { socketFd } from '../../src/native/dgram-fd.js';
import { loadNative } from '../../src/native/index.js';
import { freeUdpPorts } from '../../src/net/free-ports.js';
import { type Received, UdpEndpoints } from '../../src/net/udp.js';

/** Binding problems an operator meets first are said plainly. */

const [PORT, NAT_PORT, BATCH_PORT, BATCH_NAT_PORT] = (await freeUdpPorts('127.0.0.1', 4)) as [
  number,
  number,
  number,
  number,
];

const options = (address: string) => ({
  addresses: [address],
  port: PORT,
  natPort: NAT_PORT,
  onReceive: () => {},
  onError: () => {},
});

t.test('a port in use and an address we do not have', async (t) => {
  const first = await UdpEndpoints.open(options('127.0.0.1'));
  t.teardown(() => first.close());
  await t.rejects(
    UdpEndpoints.open(options('127.0.0.1')),
    new RegExp(
      `cannot listen on 127\\.0\\.0\\.1 port ${PORT}: the port is in use \\(is another IKE daemon, such as strongSwan's charon, running\\?\\)`,
    ),
  );
  await t.rejects(
    UdpEndpoints.open(options('192.0.2.77')),
    new RegExp(`192\\.0\\.2\\.77 port ${PORT}: no interface has this address`),
  );
});

t.test('the NAT-T socket read in batches through the shim: ESP, IKE and keepalives as before', async (t) => {
  const native = loadNative();
  const received: Received[] = [];
  const errors: string[] = [];
  const open = () =>
    UdpEndpoints.open({
      ...options('127.0.0.1'),
      port: BATCH_PORT,
      natPort: BATCH_NAT_PORT,
      onReceive: (r) => received.push(r),
      onError: (message) => errors.push(message),
      native,
    });
  const endpoints = await open();
  const peer = dgram.createSocket('udp4');
  peer.bind(0, '127.0.0.1');
  await once(peer, 'listening');
  const send = (port: number, data: Uint8Array) => native.sendTo(socketFd(peer), '127.0.0.1', port, [data]);
  const esp = Uint8Array.from([0xc0, 0xff, 0xee, 0x01, 0, 0, 0, 1, 9, 9, 9, 9]);
  const ike = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  send(BATCH_NAT_PORT, esp);
  send(BATCH_NAT_PORT, Uint8Array.from([0, 0, 0, 0, ...ike]));
  send(BATCH_NAT_PORT, Uint8Array.of(0xff));
  send(BATCH_PORT, ike); // port 500's socket: node:dgram as ever
  while (received.length < 4) await new Promise((resolve) => setImmediate(resolve));
  const remote = { address: '127.0.0.1', port: peer.address().port };
  const byKind = (kind: string, port: number) =>
    received.find((r) => r.kind === kind && r.local.port === port);
  t.match(byKind('esp', BATCH_NAT_PORT), {
    data: esp,
    local: { address: '127.0.0.1', port: BATCH_NAT_PORT },
    remote,
  });
  t.match(byKind('ike', BATCH_NAT_PORT), { data: ike, remote });
  t.match(byKind('keepalive', BATCH_NAT_PORT), { remote });
  t.match(byKind('ike', BATCH_PORT), { data: ike, remote });
  const copied = byKind('ike', BATCH_NAT_PORT)!.data;
  t.equal(copied.byteOffset, 0, 'an IKE message is a copy of its own, not a view into the batch');
  t.equal(copied.buffer.byteLength, ike.length);
  t.same(errors, []);

  // Closed, the ports are free again: the shim's duplicate descriptor went first.
  await endpoints.close();
  const again = await open();
  await again.close();
  peer.close();
});
