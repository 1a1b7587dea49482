import t from 'tap';
import { NLM_F_DUMP, NetlinkError } from '../../../src/kernel/netlink/message.js';
import { RTM_GETLINK, Rtnetlink, encodeDumpLinks } from '../../../src/kernel/netlink/route.js';
import { NETLINK_ROUTE, NetlinkSocket } from '../../../src/kernel/netlink/socket.js';
import { loadNative } from '../../../src/native/index.js';

/**
 * NETLINK_ROUTE on this host's kernel, read-only: the host's links and routes are never changed
 * (what changes things runs in a namespace of its own, test/native/tun.test.ts).
 */

const native = loadNative();

t.test('an RTM_GETLINK dump finds lo; a lookup by name finds it too', async (t) => {
  const socket = NetlinkSocket.open(native, NETLINK_ROUTE);
  t.teardown(() => socket.close());
  const rt = new Rtnetlink(socket);
  const links = await rt.links();
  const lo = links.find((link) => link.name === 'lo');
  t.ok(lo, `lo among ${links.map((l) => l.name).join(', ')}`);
  t.equal(lo?.index, 1);
  t.same(await rt.link('lo'), lo);
  t.equal(await rt.linkIndex('lo'), 1);
});

t.test('negative acks reject with NetlinkError and the kernel says why', async (t) => {
  const socket = NetlinkSocket.open(native, NETLINK_ROUTE);
  t.teardown(() => socket.close());
  const rt = new Rtnetlink(socket);
  await t.rejects(rt.link('ikn-none0'), { name: 'NetlinkError', code: 'ENODEV', errno: 19 });
  // A table that does not exist: nothing can be deleted by mistake.
  const table = 2_000_000_000 + (process.pid % 100_000);
  const error = await rt
    .deleteRoute({ destination: '203.0.113.0/24', index: 1, table })
    .catch((e: unknown) => e);
  t.ok(error instanceof NetlinkError, String(error));
  t.match(error, { code: 'ESRCH', errno: 3 });
  t.match(
    (error as Error).message,
    /^delete route 203\.0\.113\.0\/24 dev #1 table \d+ .*: ESRCH \(errno 3\)$/,
  );
});

t.test('requestSync: a dump answered while the event loop waits', async (t) => {
  const socket = NetlinkSocket.open(native, NETLINK_ROUTE);
  t.teardown(() => socket.close());
  const pending = new Rtnetlink(socket).link('lo');
  const answers = socket.requestSync(RTM_GETLINK, NLM_F_DUMP, encodeDumpLinks(), 'list links');
  t.ok(answers.length >= 1, `${answers.length} links`);
  t.equal((await pending).name, 'lo', 'the async request still completes');
});
