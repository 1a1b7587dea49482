import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readdirSync } from 'node:fs';
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { loadNative, nativeAvailability, NativeUnavailableError } from '../../src/native/index.js';
import { batchDatagrams, DatagramReader } from '../../src/native/batch.js';
import { socketFd, stopDgramReceive } from '../../src/native/dgram-fd.js';
import type { NativeError } from '../../src/native/types.js';

/** The native shim on this host: every function, its errors, and that it leaks no descriptor. */

const native = loadNative();
const int32 = (value: number) => Uint8Array.from(Buffer.from(new Int32Array([value]).buffer));
const openFds = () => readdirSync('/proc/self/fd').length;
// An RTM_GETLINK dump request (linux/netlink.h nlmsghdr + linux/rtnetlink.h ifinfomsg): 32 bytes.
const dumpLinks = (seq: number) => {
  const bytes = new Uint8Array(32);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, 32, true);
  dv.setUint16(4, 18, true); // RTM_GETLINK
  dv.setUint16(6, 0x301, true); // NLM_F_REQUEST | NLM_F_DUMP
  dv.setUint32(8, seq, true);
  return bytes;
};

/** Two UDP sockets bound on 127.0.0.1, closed when the test ends. */
async function loopbackPair(t: Test): Promise<{ receiver: dgram.Socket; sender: dgram.Socket }> {
  const receiver = dgram.createSocket('udp4');
  const sender = dgram.createSocket('udp4');
  t.teardown(() => {
    receiver.close();
    sender.close();
  });
  receiver.bind(0, '127.0.0.1');
  sender.bind(0, '127.0.0.1');
  await Promise.all([once(receiver, 'listening'), once(sender, 'listening')]);
  return { receiver, sender };
}

t.test('the shim is built and loads', async (t) => {
  t.same(nativeAvailability(), { available: true });
  t.equal(loadNative(), native, 'cached');
  const error = new NativeUnavailableError('/x/ike_native.node is missing');
  t.match(
    error.message,
    /is missing\. The xfrm, pfkey and userspace kernel backends need it; .*npm rebuild ike-node.*The memory backend works without it\./,
  );
});

t.test('openPfkey: EAFNOSUPPORT on a kernel without AF_KEY', async (t) => {
  if (existsSync('/proc/net/pfkey')) {
    const fd = native.openPfkey();
    t.ok(fd >= 0, 'this kernel has AF_KEY: the socket opens');
    native.close(fd);
    return;
  }
  const error = t.throws(() => native.openPfkey()) as NativeError;
  t.match(error, { code: 'EAFNOSUPPORT', errno: 97, syscall: 'socket(AF_KEY)' });
  t.ok(error instanceof Error);
  t.match(
    error.message,
    /socket\(AF_KEY\) failed: Address family not supported by protocol \(EAFNOSUPPORT\)/,
  );
});

t.test('errors carry code, errno and syscall; bad arguments are TypeErrors', async (t) => {
  const fd = native.openNetlink(0, []);
  native.close(fd);
  t.throws(() => native.write(fd, new Uint8Array(4)), { code: 'EBADF', errno: 9, syscall: 'write' });
  t.throws(() => native.close(fd), { code: 'EBADF', syscall: 'close' });
  t.throws(
    () =>
      native.watch(
        fd,
        () => {},
        () => {},
      ),
    { code: 'EBADF' },
  );
  t.throws(() => native.openNetlink(0, [99999]), {
    code: 'EINVAL',
    syscall: 'setsockopt(NETLINK_ADD_MEMBERSHIP)',
  });
  t.throws(() => native.openNetlink(4242, []), { code: 'EPROTONOSUPPORT', syscall: 'socket(AF_NETLINK)' });
  t.throws(() => native.write(1, 'text' as unknown as Uint8Array), TypeError);
  t.throws(() => native.setsockopt(1, 1, 8, [1] as unknown as Uint8Array), TypeError);
  t.throws(() => native.openTun('a-name-too-long-for-linux'), RangeError);
  t.throws(() => native.sendTo(1, 'not-an-address', 500, []), { code: 'ERR_INVALID_ARG_VALUE' });
});

t.test('readSync: a datagram, or null when nothing comes', async (t) => {
  const fd = native.openNetlink(0, []);
  t.teardown(() => native.close(fd));
  t.equal(native.readSync(fd, 10), null);
  native.write(fd, dumpLinks(1));
  const first = native.readSync(fd, 5000);
  t.ok(first instanceof Uint8Array && first.length > 16, 'the first part of the dump');
  t.equal(new DataView(first!.buffer, first!.byteOffset).getUint32(8, true), 1, 'with our sequence number');
});

t.test('watch: datagrams as arrays on the event loop, until unwatch or close', async (t) => {
  const fd = native.openNetlink(0, []);
  const batches: Uint8Array[][] = [];
  let sawDone = () => {};
  const done = new Promise<void>((resolve) => (sawDone = resolve));
  native.watch(
    fd,
    (datagrams) => {
      batches.push(datagrams);
      // NLMSG_DONE (3) in the last datagram ends the dump.
      if (datagrams.some((d) => new DataView(d.buffer, d.byteOffset).getUint16(4, true) === 3)) sawDone();
    },
    (error) => t.fail(error.message),
  );
  t.throws(
    () =>
      native.watch(
        fd,
        () => {},
        () => {},
      ),
    { code: 'EEXIST' },
  );
  native.write(fd, dumpLinks(2));
  await done;
  t.ok(batches.length >= 1);
  t.ok(
    batches.flat().every((d) => d instanceof Uint8Array),
    'Uint8Arrays',
  );
  native.unwatch(fd);
  native.unwatch(fd); // twice is harmless
  native.watch(
    fd,
    () => {},
    () => {},
  ); // and it can be watched again
  native.close(fd);
});

t.test('no descriptor or handle leaks over many open/watch/close rounds', async (t) => {
  const before = openFds();
  for (let i = 0; i < 300; i++) {
    const fd = native.openNetlink(0, [1]);
    native.watch(
      fd,
      () => {},
      () => {},
    );
    if (i % 2) native.unwatch(fd);
    native.close(fd);
  }
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(openFds(), before);
});

t.test('socketFd and sendTo: setsockopt on a dgram socket, several datagrams in one call', async (t) => {
  for (const [type, address] of [
    ['udp4', '127.0.0.1'],
    ['udp6', '::1'],
  ] as const) {
    const receiver = dgram.createSocket(type);
    const sender = dgram.createSocket(type);
    t.teardown(() => {
      receiver.close();
      sender.close();
    });
    receiver.bind(0, address);
    sender.bind(0, address);
    await Promise.all([once(receiver, 'listening'), once(sender, 'listening')]);
    const fd = socketFd(sender);
    t.ok(fd > 2, `${type}: fd ${fd}`);
    // SOL_SOCKET (1), SO_RCVBUF (8): Linux stores twice the value asked for.
    native.setsockopt(fd, 1, 8, int32(200_000));
    t.equal(sender.getRecvBufferSize(), 400_000, `${type}: SO_RCVBUF reached the socket`);

    const received: string[] = [];
    const all = new Promise<void>((resolve) =>
      receiver.on('message', (message, from) => {
        received.push(`${message.toString()} from ${from.port}`);
        if (received.length === 3) resolve();
      }),
    );
    const datagrams = ['one', 'two', 'three'].map((text) => Buffer.from(text));
    t.equal(native.sendTo(fd, address, receiver.address().port, datagrams), 3);
    await all;
    const port = sender.address().port;
    t.same(
      received,
      [`one from ${port}`, `two from ${port}`, `three from ${port}`],
      `${type}: from the dgram socket`,
    );
    t.equal(native.sendTo(fd, address, receiver.address().port, []), 0);
  }
  const unbound = dgram.createSocket('udp4');
  t.throws(() => socketFd(unbound), /not bound yet/);
  unbound.close();
});

t.test('sendTo: runs of equal-size datagrams (UDP GSO) arrive as the same datagrams', async (t) => {
  const { receiver, sender } = await loopbackPair(t);
  // Runs of 1200, then a shorter one that ends its run, a lone size, a run longer than 64.
  const sizes = [...Array(10).fill(1200), 700, 1300, 90, ...Array(70).fill(500), 499, 1];
  const datagrams = sizes.map((size, i) => Buffer.alloc(size, i));
  const received: Buffer[] = [];
  const all = new Promise<void>((resolve) =>
    receiver.on('message', (message) => {
      received.push(message);
      if (received.length === datagrams.length) resolve();
    }),
  );
  t.equal(native.sendTo(socketFd(sender), '127.0.0.1', receiver.address().port, datagrams), sizes.length);
  await all;
  t.same(
    received.map((d) => [d.length, d[0]]),
    datagrams.map((d) => [d.length, d[0]]),
    'every datagram, its size and content, in order',
  );
});

t.test('writeMany: one writev per packet, perPacket buffers each, in one call', async (t) => {
  const { receiver, sender } = await loopbackPair(t);
  // A connected UDP socket takes one datagram per write: it shows where each packet ends.
  sender.connect(receiver.address().port, '127.0.0.1');
  await once(sender, 'connect');
  const received: string[] = [];
  const all = new Promise<void>((resolve) =>
    receiver.on('message', (message) => {
      received.push(message.toString());
      if (received.length === 3) resolve();
    }),
  );
  const fd = socketFd(sender);
  const parts = ['h1:', 'one', 'h2:', 'two'].map((text) => Buffer.from(text));
  t.equal(native.writeMany!(fd, parts, 2), 2, 'two packets of two buffers');
  t.equal(native.writeMany!(fd, [Buffer.from('three')]), 1, 'one buffer per packet by default');
  await all;
  t.same(received, ['h1:one', 'h2:two', 'three']);
  t.equal(native.writeMany!(fd, []), 0);
  t.throws(() => native.writeMany!(fd, parts, 3), { code: 'ERR_OUT_OF_RANGE' }, 'not whole packets');
  t.throws(() => native.writeMany!(fd, parts, 9), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => native.writeMany!(fd, ['x' as unknown as Uint8Array]), TypeError);
  const closed = native.openNetlink(0, []);
  native.close(closed);
  t.throws(() => native.writeMany!(closed, parts, 2), { code: 'EBADF', syscall: 'writev' });
});

t.test(
  'close inside onData stops everything; an exception in a callback is an uncaught exception',
  async (t) => {
    const fd = native.openNetlink(0, []);
    let calls = 0;
    native.watch(
      fd,
      () => {
        calls++;
        native.close(fd);
      },
      (error) => t.fail(error.message),
    );
    native.write(fd, dumpLinks(3));
    while (calls === 0) await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 20));
    t.equal(calls, 1, 'no call after close');
    t.throws(() => native.close(fd), { code: 'EBADF' }, 'closed');

    // In a process of its own, so that tap's handlers stay out of it.
    const script = `
    import { loadNative } from ${JSON.stringify(new URL('../../src/native/index.ts', import.meta.url).href)};
    const native = loadNative();
    const fd = native.openNetlink(0, []);
    process.on('uncaughtException', (error) => { console.log('uncaught: ' + error.message); native.close(fd); });
    native.watch(fd, () => { throw new Error('thrown in onData'); }, () => {});
    const request = new Uint8Array(32);
    const dv = new DataView(request.buffer);
    dv.setUint32(0, 32, true); dv.setUint16(4, 18, true); dv.setUint16(6, 0x301, true);
    native.write(fd, request);
  `;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000, // a failure guard
    });
    t.equal(run.stdout.trim(), 'uncaught: thrown in onData', run.stderr);
    t.equal(run.status, 0);
  },
);

const UDP_GRO = int32(1);
const nextTick = () => new Promise((resolve) => setImmediate(resolve));

t.test('watchBatch: a UDP socket taken over from node:dgram, datagrams and sources in batches', async (t) => {
  for (const [type, address] of [
    ['udp4', '127.0.0.1'],
    ['udp6', '::1'],
  ] as const) {
    const receiver = dgram.createSocket(type);
    const senders = [dgram.createSocket(type), dgram.createSocket(type)];
    receiver.bind(0, address);
    for (const sender of senders) sender.bind(0, address);
    await Promise.all([receiver, ...senders].map((s) => once(s, 'listening')));
    const fd = socketFd(receiver);
    const restart = stopDgramReceive(receiver);
    const viaDgram: Buffer[] = [];
    receiver.on('message', (message) => viaDgram.push(message));
    const batches: number[] = [];
    const got: string[] = [];
    const sources = new Set<object>();
    const reader = new DatagramReader();
    native.watchBatch!(
      fd,
      (batch, count) => {
        t.ok(Buffer.isBuffer(batch));
        batches.push(count);
        reader.read(batch, count, (datagram, source) => {
          sources.add(source);
          got.push(`${datagram.toString()} from ${source.address}:${source.port}`);
        });
      },
      (error) => t.fail(error.message),
    );
    t.throws(
      () =>
        native.watchBatch!(
          fd,
          () => {},
          () => {},
        ),
      { code: 'EEXIST' },
    );
    const want: string[] = [];
    for (let i = 0; i < 100; i++) {
      const sender = senders[i < 50 ? 0 : 1]!;
      const text = `datagram ${i} ${'x'.repeat(i * 13)}`;
      native.sendTo(socketFd(sender), address, receiver.address().port, [Buffer.from(text)]);
      want.push(`${text} from ${address}:${sender.address().port}`);
    }
    while (got.length < 100) await nextTick();
    t.same(got, want, `${type}: every datagram in order, with its source`);
    t.ok(batches.length < 100, `${type}: in batches (${batches.join(' ')})`);
    t.equal(sources.size, 2, `${type}: one Endpoint object per source while it does not change`);
    t.same(viaDgram, [], 'node:dgram reads nothing meanwhile');

    // Unwatched, node:dgram reads again; the duplicate descriptor is gone.
    native.unwatch(fd);
    restart();
    native.sendTo(socketFd(senders[0]!), address, receiver.address().port, [Buffer.from('back to dgram')]);
    while (viaDgram.length === 0) await nextTick();
    t.equal(viaDgram[0]!.toString(), 'back to dgram');
    for (const socket of [receiver, ...senders]) socket.close();
  }
});

t.test('watchBatch: with UDP GRO, a GSO train is read at once and cut into its datagrams', async (t) => {
  const { receiver, sender } = await loopbackPair(t);
  const fd = socketFd(receiver);
  stopDgramReceive(receiver);
  t.teardown(() => native.unwatch(fd));
  const got: Buffer[] = [];
  const reader = new DatagramReader();
  native.watchBatch!(
    fd,
    (batch, count) => reader.read(batch, count, (datagram) => got.push(Buffer.from(datagram))),
    (error) => t.fail(error.message),
  );
  native.setsockopt(fd, 17, 104, UDP_GRO); // SOL_UDP, UDP_GRO
  // Runs of equal sizes (one GSO train each on the wire), a shorter one ending each run.
  const sizes = [...Array(10).fill(1200), 700, 1300, 90, ...Array(70).fill(500), 499, 1];
  const datagrams = sizes.map((size, i) => Buffer.alloc(size, i));
  t.equal(native.sendTo(socketFd(sender), '127.0.0.1', receiver.address().port, datagrams), sizes.length);
  while (got.length < datagrams.length) await nextTick();
  t.same(
    got.map((d) => [d.length, d[0], d.at(-1)]),
    datagrams.map((d) => [d.length, d[0], d.at(-1)]),
    'every datagram, its size and content, in order',
  );
});

t.test('watchBatch: a netlink socket (no IP source), errors, and no descriptor leak', async (t) => {
  const before = openFds();
  const fd = native.openNetlink(0, []);
  let sawDone = () => {};
  const done = new Promise<void>((resolve) => (sawDone = resolve));
  const records: number[] = [];
  native.watchBatch!(
    fd,
    (batch, count) => {
      for (const datagram of batchDatagrams(batch, count)) {
        records.push(datagram.length);
        if (new DataView(datagram.buffer, datagram.byteOffset).getUint16(4, true) === 3) sawDone();
      }
      const reader = new DatagramReader();
      reader.read(batch, count, (_, source) => t.same(source, { address: '', port: 0 }));
    },
    (error) => t.fail(error.message),
  );
  native.write(fd, dumpLinks(7));
  await done;
  t.ok(records.length >= 1 && records.every((length) => length >= 16));
  native.close(fd); // stops the watch and closes the duplicate too
  t.throws(
    () =>
      native.watchBatch!(
        fd,
        () => {},
        () => {},
      ),
    { code: 'EBADF' },
  );
  t.throws(() => native.watchBatch!(fd, 'x' as never, () => {}), TypeError);
  for (let i = 0; i < 200; i++) {
    const again = native.openNetlink(0, []);
    native.watchBatch!(
      again,
      () => {},
      () => {},
    );
    if (i % 2) native.unwatch(again);
    native.close(again);
  }
  await nextTick();
  t.equal(openFds(), before, 'every duplicate closed');
});
