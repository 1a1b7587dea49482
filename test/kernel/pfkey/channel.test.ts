import t from 'tap';
import { PfkeyChannel } from '../../../src/kernel/pfkey/channel.js';
import { decodeMessage, type SadbMessage } from '../../../src/kernel/pfkey/codec.js';
import { PfkeyClosedError, PfkeyError, PfkeyTimeoutError } from '../../../src/kernel/pfkey/errors.js';
import { buildDump, buildGetSpi, buildRegister, buildSaQuery } from '../../../src/kernel/pfkey/messages.js';
import { extAddress, extSa, FakeNative, msg } from './helpers.js';

const PID = 4242;

function setup(flavour: 'linux' | 'openbsd' = 'linux', timeoutMs = 200) {
  const native = new FakeNative();
  const messages: SadbMessage[] = [];
  const errors: Error[] = [];
  const channel = new PfkeyChannel(native, 7, {
    flavour,
    pid: PID,
    timeoutMs,
    littleEndian: true,
    onMessage: (message) => messages.push(message),
    onError: (error) => errors.push(error),
  });
  channel.start();
  return { native, channel, messages, errors };
}

function header(data: Uint8Array): { type: number; satype: number; seq: number; pid: number } {
  const view = new DataView(data.buffer, data.byteOffset);
  return { type: data[1]!, satype: data[3]!, seq: view.getUint32(8, true), pid: view.getUint32(12, true) };
}

t.test('an answer is ours only when type, seq and pid match; the rest goes to onMessage', async (t) => {
  const { native, channel, messages } = setup();
  native.responder = (data) => {
    const h = header(data);
    return [
      msg({ ...h, pid: 999 }), // another daemon's answer with the same seq
      msg({ ...h, seq: h.seq + 1 }), // ours by pid, not by seq
      msg({ ...h, type: 5 }), // another type
      msg(h, extSa({ spi: 0xc0000001 })),
    ];
  };
  const answer = await channel.request(buildRegister('linux'));
  t.equal(answer.type, 7);
  t.equal(answer.extensions.length, 1);
  t.equal(messages.length, 3, 'the three look-alikes were handed on');
  t.same(
    messages.map((m) => [m.type, m.pid]),
    [
      [7, 999],
      [7, PID],
      [5, PID],
    ],
  );
  const sent = decodeMessage(native.writes[0]!, { flavour: 'linux', littleEndian: true });
  t.equal(sent.pid, PID);
  t.equal(sent.seq, 1);
});

t.test('sequence numbers go up per request', async (t) => {
  const { native, channel } = setup();
  native.responder = (data) => [msg(header(data))];
  await channel.request(buildRegister('linux'));
  await channel.request(buildRegister('linux'));
  await channel.request(buildRegister('linux'));
  t.same(
    native.writes.map((w) => header(w).seq),
    [1, 2, 3],
  );
});

t.test('sadb_msg_errno becomes a PfkeyError naming the request and the errno, per OS', async (t) => {
  const linux = setup('linux');
  linux.native.responder = (data) => [msg({ ...header(data), errno: 3 })];
  await t.rejects(
    linux.channel.request(
      buildSaQuery('linux', 'delete', { spi: 1, src: '192.0.2.1', dst: '192.0.2.2' }),
      'delete SA 1',
    ),
    {
      name: 'PfkeyError',
      errno: 3,
      code: 'ESRCH',
      message: 'delete SA 1 (SADB_DELETE seq 1): ESRCH (errno 3)',
    },
  );
  const openbsd = setup('openbsd');
  openbsd.native.responder = (data) => [msg({ ...header(data), errno: 55 })];
  await t.rejects(openbsd.channel.request(buildRegister('openbsd')), { code: 'ENOBUFS', errno: 55 });
  const linuxBufs = setup('linux');
  linuxBufs.native.responder = (data) => [msg({ ...header(data), errno: 105 })];
  await t.rejects(linuxBufs.channel.request(buildRegister('linux')), { code: 'ENOBUFS', errno: 105 });
});

t.test('no answer: a timeout naming the request', async (t) => {
  const { channel } = setup('linux', 30);
  await t.rejects(channel.request(buildRegister('linux'), 'register'), PfkeyTimeoutError);
  await t.rejects(channel.request(buildRegister('linux'), 'register'), {
    message: /register \(SADB_REGISTER seq 2\): no answer from the kernel within 30 ms/,
  });
});

t.test('requestSync: reads until its answer; what it read meanwhile is delivered afterwards', async (t) => {
  const { native, channel, messages } = setup();
  native.deliverAsync = false;
  native.responder = (data) => {
    const h = header(data);
    return [
      msg(
        { type: 6, satype: 3, seq: 77, pid: 0 },
        extAddress('linux', 5, '192.0.2.1'),
        extAddress('linux', 6, '192.0.2.2'),
      ),
      msg(h, extSa({ spi: 0xc0000abc, state: 0 })),
    ];
  };
  const answer = channel.requestSync(
    buildGetSpi('linux', { src: '192.0.2.2', dst: '192.0.2.1', min: 1, max: 2 }),
  );
  t.equal(answer.type, 1);
  t.equal(messages.length, 0, 'the ACQUIRE waits until the caller has its answer');
  await Promise.resolve();
  t.equal(messages.length, 1);
  t.equal(messages[0]?.type, 6);

  native.responder = (data) => [msg({ ...header(data), errno: 22 })];
  t.throws(() => channel.requestSync(buildRegister('linux'), 'getspi'), {
    name: 'PfkeyError',
    code: 'EINVAL',
  });
  native.responder = () => [];
  t.throws(() => channel.requestSync(buildRegister('linux')), PfkeyTimeoutError);
});

t.test('requestSync resolves a pending async request whose answer it reads', async (t) => {
  const { native, channel } = setup();
  native.deliverAsync = false;
  native.responder = (data) => [msg(header(data))];
  const first = channel.request(buildRegister('linux'));
  channel.requestSync(buildRegister('linux'));
  // The first answer sat in the queue before the second: requestSync read it and handed it on.
  t.equal((await first).seq, 1);
});

t.test('dump: collects entries (seq counting, last 0); an empty dump (ENOENT) is []', async (t) => {
  const { native, channel } = setup();
  native.responder = (data) => {
    const h = header(data);
    const entry = (seq: number, spi: number) =>
      msg(
        { ...h, seq },
        extSa({ spi }),
        extAddress('linux', 5, '192.0.2.1'),
        extAddress('linux', 6, '192.0.2.2'),
      );
    return [entry(1, 0x101), msg({ ...h, type: 3, seq: 2 }), entry(2, 0x102), entry(0, 0x103)];
  };
  const entries = await channel.dump(buildDump('linux'));
  t.same(
    entries.map((e) => (e.extensions[0]?.kind === 'sa' ? e.extensions[0].spi : 0)),
    [0x101, 0x102, 0x103],
  );
  native.responder = (data) => [msg({ ...header(data), errno: 2 })];
  t.same(await channel.dump(buildDump('linux')), []);
});

t.test('garbage from the socket: onError, and the channel goes on', async (t) => {
  const { native, channel, errors, messages } = setup();
  native.push(Uint8Array.from([2, 1, 0]));
  native.push(Uint8Array.from([9, 1, 0, 3, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
  t.equal(errors.length, 2);
  t.match(errors[0]?.message, /shorter than the 16-byte sadb_msg/);
  t.match(errors[1]?.message, /version 9/);
  native.onError?.(
    Object.assign(new Error('recv: ENOBUFS'), { code: 'ENOBUFS', errno: 105, syscall: 'recv' }),
  );
  t.equal(errors.length, 3);
  native.responder = (data) => [msg(header(data))];
  await channel.request(buildRegister('linux'));
  t.equal(messages.length, 0);
});

t.test('close: pending requests fail, the socket is unwatched and closed, no more writes', async (t) => {
  const { native, channel } = setup('linux', 5000);
  const pending = channel.request(buildRegister('linux'), 'register');
  channel.close();
  await t.rejects(pending, PfkeyClosedError);
  t.ok(native.unwatched);
  t.ok(native.closed);
  await t.rejects(channel.request(buildRegister('linux')), PfkeyClosedError);
  t.throws(() => channel.requestSync(buildRegister('linux')), PfkeyClosedError);
  t.ok(channel.closed);
});

t.test('a throwing onMessage handler is reported, not thrown into the shim', async (t) => {
  const native = new FakeNative();
  const errors: Error[] = [];
  const channel = new PfkeyChannel(native, 7, {
    flavour: 'linux',
    pid: PID,
    littleEndian: true,
    onMessage: () => {
      throw new Error('handler broke');
    },
    onError: (error) => errors.push(error),
  });
  channel.start();
  t.doesNotThrow(() => native.push(msg({ type: 8, satype: 3, seq: 0, pid: 0 })));
  t.match(errors[0]?.message, /handler broke/);
  t.ok(new PfkeyError(3, 'ESRCH', 'x') instanceof Error);
});
