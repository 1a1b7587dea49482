import t from 'tap';
import {
  NLMSG_NOOP,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NetlinkError,
  concat,
  encodeAttribute,
  type NetlinkMessage,
} from '../../../src/kernel/netlink/message.js';
import {
  NETLINK_XFRM,
  NetlinkSocket,
  NetlinkTimeoutError,
  errnoName,
  openNetlinkSubscription,
} from '../../../src/kernel/netlink/socket.js';
import { FakeNative, ack, answer, done, nativeError } from './fake-native.js';

/** NetlinkSocket and subscriptions over a fake native shim that plays the kernel. */

const bytes = (...values: number[]) => Uint8Array.from(values);

t.test('open: one socket, extended acks asked for, failures of those options tolerated', async (t) => {
  const native = new FakeNative();
  const socket = NetlinkSocket.open(native, NETLINK_XFRM);
  t.same(native.opened, [{ protocol: NETLINK_XFRM, groups: [] }]);
  // SOL_NETLINK (270): NETLINK_EXT_ACK (11), NETLINK_CAP_ACK (10), int 1
  t.same(
    native.options.map((o) => [o.fd, o.level, o.name, o.value]),
    [
      [socket.fd, 270, 11, [1, 0, 0, 0]],
      [socket.fd, 270, 10, [1, 0, 0, 0]],
    ],
  );
  const old = new FakeNative();
  old.setsockoptError = () => nativeError('ENOPROTOOPT', 92, 'setsockopt');
  t.doesNotThrow(() => NetlinkSocket.open(old, 0).close());
});

t.test(
  'request: REQUEST|ACK, sequence numbers, answers until the ack, watched only while pending',
  async (t) => {
    const native = new FakeNative();
    native.onRequest = (request) => [
      concat([answer(16, request.seq, bytes(1, 2, 3, 4)), answer(16, request.seq, bytes(5, 6, 7, 8))]),
      ack(request),
    ];
    const socket = new NetlinkSocket(native, 7);
    const answers = await socket.request(18, 0, bytes(9, 9, 9, 9), 'look up something');
    t.same(
      answers.map((a) => [a.type, [...a.payload]]),
      [
        [16, [1, 2, 3, 4]],
        [16, [5, 6, 7, 8]],
      ],
    );
    t.equal(native.written[0]!.flags, NLM_F_REQUEST | NLM_F_ACK);
    t.same([...native.written[0]!.payload], [9, 9, 9, 9]);
    t.equal(native.watches.size, 0, 'no watch once nothing is pending');
    await socket.request(19, 0x400, new Uint8Array(0), 'second');
    t.equal(native.written[1]!.flags, NLM_F_REQUEST | NLM_F_ACK | 0x400);
    t.equal(native.written[1]!.seq, native.written[0]!.seq + 1);
    t.not(native.written[0]!.seq, 0);
    socket.close();
    socket.close();
    t.same(native.closed, [7], 'closed once');
  },
);

t.test('dump: parts in several datagrams until NLMSG_DONE', async (t) => {
  const native = new FakeNative();
  native.onRequest = (request) => [
    answer(16, request.seq, bytes(1, 0, 0, 0), NLM_F_MULTI),
    concat([
      answer(16, request.seq, bytes(2, 0, 0, 0), NLM_F_MULTI),
      answer(NLMSG_NOOP, request.seq, bytes()),
    ]),
    done(request.seq),
  ];
  const socket = new NetlinkSocket(native, 7);
  const answers = await socket.request(18, NLM_F_DUMP, new Uint8Array(16), 'list links');
  t.same(
    answers.map((a) => a.payload[0]),
    [1, 2],
  );
  t.equal(native.written[0]!.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
  socket.close();
});

t.test('negative acks, failed dumps and interrupted dumps reject with NetlinkError', async (t) => {
  const native = new FakeNative();
  const socket = new NetlinkSocket(native, 7);
  native.onRequest = (request) => [ack(request, 3)];
  const error = (await socket
    .request(25, 0, bytes(), 'delete route 203.0.113.0/24')
    .catch((e) => e)) as NetlinkError;
  t.ok(error instanceof NetlinkError);
  t.match(error, { errno: 3, code: 'ESRCH', seq: native.written[0]!.seq });
  t.equal(error.message, 'delete route 203.0.113.0/24: ESRCH (errno 3)');

  // NETLINK_EXT_ACK: NLMSGERR_ATTR_MSG (1) carries the kernel's text.
  const text = encodeAttribute(1, Buffer.from('FIB table does not exist\0'));
  native.onRequest = (request) => [ack(request, 3, text)];
  await t.rejects(socket.request(25, 0, bytes(1, 2, 3, 4), 'delete route'), {
    message: 'delete route (FIB table does not exist): ESRCH (errno 3)',
    code: 'ESRCH',
  });

  native.onRequest = (request) => [answer(16, request.seq, bytes(1), NLM_F_MULTI), done(request.seq, -1)];
  await t.rejects(socket.request(18, NLM_F_DUMP, bytes(), 'list'), {
    name: 'NetlinkError',
    code: 'EPERM',
    errno: 1,
  });

  native.onRequest = (request) => [answer(16, request.seq, bytes(1), NLM_F_MULTI | 0x10), done(request.seq)];
  await t.rejects(socket.request(18, NLM_F_DUMP, bytes(), 'list'), {
    name: 'NetlinkError',
    code: 'EINTR',
    message: /the dump changed while it ran; retry/,
  });

  native.onRequest = (request) => [answer(4, request.seq, bytes())];
  await t.rejects(socket.request(18, 0, bytes(), 'get'), /get: the kernel reported a data overrun/);
  socket.close();
});

t.test('concurrent requests: each gets its own answers, stray ones are ignored', async (t) => {
  const native = new FakeNative();
  const socket = new NetlinkSocket(native, 7);
  const first = socket.request(18, 0, bytes(), 'first');
  const second = socket.request(18, 0, bytes(), 'second');
  const [a, b] = native.written as [NetlinkMessage, NetlinkMessage];
  t.equal(native.watchCalls, 1, 'one watch for both');
  native.deliver(7, [
    answer(16, b.seq, bytes(2)),
    answer(16, 999, bytes(9)),
    ack(b),
    answer(16, a.seq, bytes(1)),
  ]);
  native.deliver(7, [ack(a), ack(b)]);
  t.same(
    (await first).map((m) => m.payload[0]),
    [1],
  );
  t.same(
    (await second).map((m) => m.payload[0]),
    [2],
  );
  t.equal(native.watches.size, 0);
  socket.close();
});

t.test('garbled and truncated answers are errors, not crashes or hangs', async (t) => {
  const native = new FakeNative();
  const socket = new NetlinkSocket(native, 7);
  const first = socket.request(18, 0, bytes(), 'first');
  const second = socket.request(18, 0, bytes(), 'second');
  native.deliver(7, [bytes(0xff, 0, 0, 0, 1, 2)]);
  await t.rejects(first, /first: the answer may be lost: garbled answer from the kernel \(6 trailing bytes/);
  await t.rejects(second, /second: the answer may be lost: garbled answer/);

  const third = socket.request(18, 0, bytes(), 'third');
  const seq = native.written[2]!.seq;
  native.deliver(7, [answer(2, seq, bytes(0, 0, 0, 0, 1))]); // NLMSG_ERROR of 5 bytes
  await t.rejects(third, /third: truncated acknowledgement: NLMSG_ERROR of 5 bytes, expected at least 20/);
  t.equal(native.watches.size, 0);
  socket.close();
});

t.test('a request without an answer times out; its late answer is ignored', async (t) => {
  const native = new FakeNative();
  const socket = new NetlinkSocket(native, 7, { timeoutMs: 20 });
  const error = (await socket.request(18, 0, bytes(), 'look up lo').catch((e) => e)) as NetlinkTimeoutError;
  t.ok(error instanceof NetlinkTimeoutError);
  t.match(error, { code: 'ETIMEDOUT', message: 'look up lo: no answer from the kernel within 20 ms' });
  t.equal(native.watches.size, 0, 'no watch left behind');
  const seq = native.written[0]!.seq;
  native.onRequest = (request) => [ack(request)];
  const next = socket.request(18, 0, bytes(), 'next');
  native.deliver(7, [ack({ ...native.written[0]!, seq })]);
  t.same(await next, []);
  socket.close();
});

t.test('a write the kernel takes longer than the timeout to process still gets its answer', async (t) => {
  // XFRM and rtnetlink requests are handled inside sendmsg: the first SA with an algorithm loads
  // its module and runs self-tests first (seconds in the kernel lab), and the event loop waits
  // in the write. The answer is queued by the time the write returns; the timeout starts there.
  const native = new FakeNative();
  native.onRequest = (request) => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 80);
    setTimeout(() => native.deliver(7, [ack(request)]), 0);
    return [];
  };
  const socket = new NetlinkSocket(native, 7, { timeoutMs: 30 });
  t.same(await socket.request(16, 0, bytes(), 'add SA'), [], 'acknowledged, not timed out');
  t.equal(native.watches.size, 0, 'no watch left behind');
  socket.close();
});

t.test('socket errors reject what is pending; write errors name the request', async (t) => {
  const native = new FakeNative();
  const socket = new NetlinkSocket(native, 7);
  const pending = socket.request(18, 0, bytes(), 'add SA');
  native.fail(7, nativeError('ENOBUFS', 105, 'recv'));
  await t.rejects(pending, {
    code: 'ENOBUFS',
    errno: 105,
    message: /add SA: the answer may be lost: recv failed/,
  });

  native.writeError = nativeError('EPERM', 1, 'write');
  await t.rejects(socket.request(18, 0, bytes(), 'add policy'), {
    code: 'EPERM',
    message: 'add policy: write failed (EPERM)',
  });
  t.throws(() => socket.requestSync(18, 0, bytes(), 'get SPI'), {
    code: 'EPERM',
    message: /^get SPI: write failed/,
  });
  t.equal(native.watches.size, 0);
  native.writeError = undefined;

  const open = socket.request(18, 0, bytes(), 'waiting');
  socket.close();
  await t.rejects(open, /waiting: the netlink socket was closed before the answer came/);
  await t.rejects(socket.request(18, 0, bytes(), 'late'), /late: the netlink socket is closed/);
  t.throws(() => socket.requestSync(18, 0, bytes(), 'late'), /late: the netlink socket is closed/);
});

t.test('requestSync: reads until its answer, and hands other answers to pending requests', async (t) => {
  const native = new FakeNative();
  const socket = new NetlinkSocket(native, 7, { timeoutMs: 50 });
  const pending = socket.request(18, 0, bytes(), 'async');
  const asyncRequest = native.written[0]!;
  native.answerSync = true;
  native.onRequest = (request) => [
    concat([answer(16, asyncRequest.seq, bytes(1)), ack(asyncRequest)]),
    answer(16, request.seq, bytes(2)),
    ack(request),
  ];
  const answers = socket.requestSync(22, 0, bytes(), 'allocate SPI');
  t.same(
    answers.map((m) => m.payload[0]),
    [2],
  );
  t.same(
    (await pending).map((m) => m.payload[0]),
    [1],
  );

  native.onRequest = (request) => [ack(request, 17)];
  t.throws(() => socket.requestSync(16, 0, bytes(), 'add'), { name: 'NetlinkError', code: 'EEXIST' });

  native.onRequest = () => [];
  t.throws(() => socket.requestSync(16, 0, bytes(), 'silent'), {
    name: 'NetlinkTimeoutError',
    code: 'ETIMEDOUT',
    message: 'silent: no answer from the kernel within 50 ms',
  });

  native.onRequest = () => [nativeError('EMSGSIZE', 90, 'recv') as unknown as Uint8Array];
  t.throws(() => socket.requestSync(16, 0, bytes(), 'big'), {
    code: 'EMSGSIZE',
    message: /^big: the answer may be lost/,
  });
  socket.close();
});

t.test('errnoName', async (t) => {
  t.equal(errnoName(3), 'ESRCH');
  t.equal(errnoName(97), 'EAFNOSUPPORT');
  t.equal(errnoName(4095), 'E4095');
});

t.test('subscription: groups, a large receive buffer, decoded messages, errors reported', async (t) => {
  const native = new FakeNative();
  const subscription = openNetlinkSubscription(native, NETLINK_XFRM, [1, 2, 8]);
  const fd = 40; // FakeNative's first descriptor
  t.same(native.opened, [{ protocol: NETLINK_XFRM, groups: [1, 2, 8] }]);
  // SOL_SOCKET (1), SO_RCVBUFFORCE (33), 4 MiB
  t.same(native.options, [{ fd, level: 1, name: 33, value: [0, 0, 0x40, 0] }]);
  const received: number[][] = [];
  const errors: string[] = [];
  subscription.onMessages((messages) => received.push(messages.map((m) => m.type)));
  subscription.onError((error) => errors.push(`${error.code ?? ''} ${error.message}`));
  native.deliver(fd, [
    concat([answer(23, 0, bytes(1)), answer(NLMSG_NOOP, 0, bytes())]),
    answer(24, 0, bytes()),
  ]);
  native.fail(fd, nativeError('ENOBUFS', 105, 'recv'));
  native.deliver(fd, [bytes(1, 2, 3), answer(23, 0, bytes())]);
  t.same(received, [[23, 24], [23]]);
  t.equal(errors.length, 2);
  t.match(errors[0], /^ENOBUFS /);
  t.match(errors[1], /3 trailing bytes are not a message/);
  subscription.close();
  subscription.close();
  t.same(native.closed, [fd]);
  native.deliver(fd, [answer(23, 0, bytes())]);
  t.equal(received.length, 2, 'nothing after close');
});

t.test('subscription: SO_RCVBUF without CAP_NET_ADMIN; a failed watch closes the socket', async (t) => {
  const native = new FakeNative();
  native.setsockoptError = (_level, name) =>
    name === 33 ? nativeError('EPERM', 1, 'setsockopt') : undefined;
  openNetlinkSubscription(native, 0, [1], { receiveBufferBytes: 1 << 20 }).close();
  t.same(
    native.options.map((o) => [o.level, o.name, o.value]),
    [[1, 8, [0, 0, 0x10, 0]]],
  );
  const broken = new FakeNative();
  broken.watch = () => {
    throw nativeError('ENOMEM', 12, 'watch');
  };
  t.throws(() => openNetlinkSubscription(broken, 0, [1]), { code: 'ENOMEM' });
  t.same(broken.closed, [40]);
});
