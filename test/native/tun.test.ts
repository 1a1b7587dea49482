import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

/**
 * TUN, rtnetlink and netlink subscriptions end to end, in a network namespace of this test's own
 * (`ikn-native-<pid>`, always removed). The work runs in a child node process inside the
 * namespace (test/native/netns-child.ts, which says what it does); this test checks what it saw.
 * Needs root, which the project's test runs have (see the README's test section).
 */

const namespace = `ikn-native-${process.pid}`;
const child = fileURLToPath(new URL('./netns-child.ts', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));

const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
const removeNamespace = () => {
  if (
    namespaces()
      .split('\n')
      .some((line) => line.split(' ')[0] === namespace)
  )
    execFileSync('ip', ['netns', 'del', namespace]);
};
// A safety net if the test process is interrupted between add and the teardown.
process.once('exit', () => {
  try {
    removeNamespace();
  } catch {
    // nothing more can be done while exiting
  }
});

t.test('a TUN device set up through rtnetlink answers ICMP and ICMPv6 echo through watch', async (t) => {
  t.equal(process.getuid?.(), 0, 'runs as root (network namespaces)');
  execFileSync('ip', ['netns', 'add', namespace]);
  let run: SpawnSyncReturns<string>;
  try {
    run = spawnSync('ip', ['netns', 'exec', namespace, process.execPath, '--import', 'tsx', child], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, IKE_NODE_NETNS_CHILD: namespace },
      timeout: 60_000, // a failure guard only; the child takes well under a second
    });
  } finally {
    removeNamespace();
  }
  t.notOk(
    namespaces()
      .split('\n')
      .some((line) => line.split(' ')[0] === namespace),
    'the namespace is gone',
  );
  t.equal(run.status, 0, `the child finished: ${run.stderr}${run.error?.message ?? ''}`);
  const lines = run.stdout.trim().split('\n');
  const result = JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, unknown>;
  t.notOk(result.error, String(result.error ?? ''));

  const tun = result.tunName as string;
  t.match(tun, /^ikn\d+$/, 'the kernel named the device from the ikn%d pattern');
  t.match(result.link, { name: tun, up: true, mtu: 1400 }, 'up with MTU 1400 (RTM_NEWLINK)');
  t.equal(result.addressEvent, true, 'the RTM_NEWADDR notification came through the subscription');
  t.match(
    result.addresses,
    ['198.51.100.1/32', '2001:db8:1::1/128'],
    'addresses (RTM_NEWADDR), as iproute2 reads them',
  );
  t.same(
    result.routes4,
    [
      {
        dst: '203.0.113.0/24',
        protocol: 'static',
        scope: 'link',
        prefsrc: '198.51.100.1',
        flags: [],
        metrics: [{ mtu: 1300 }],
      },
    ],
    'the IPv4 route with prefsrc and MTU (RTM_NEWROUTE), as iproute2 reads it',
  );
  t.ok(
    (result.routes6 as { dst: string; protocol: string }[]).some(
      (r) => r.dst === '2001:db8:2::/64' && r.protocol === 'static',
    ),
    'the IPv6 route',
  );
  t.match(
    result.addRouteAgain,
    /^NetlinkError EEXIST: add route 203\.0\.113\.0\/24 dev #\d+: EEXIST \(errno 17\)$/,
  );

  const echo = { id: 0x4242, seq: 7, payloadEchoed: true, checksumValid: true };
  t.same(
    result.echo4,
    { source: '198.51.100.1', destination: '203.0.113.5', ...echo },
    'ICMP echo reply from the TUN',
  );
  t.same(
    result.echo6,
    { source: '2001:db8:1::1', destination: '2001:db8:2::5', ...echo },
    'ICMPv6 echo reply',
  );
  t.notOk(result.tunError, 'no error on the TUN watch');

  t.match(
    result.overflow,
    { errors: ['ENOBUFS'], goesOn: true },
    'an overflowing subscription reports ENOBUFS once, then delivers new events',
  );
  t.ok(
    (result.overflow as { deliveredOfTheHundred: number }).deliveredOfTheHundred < 100,
    'events were dropped',
  );
  t.same(
    result.large,
    { errors: [], allHundred: true, largestBatch: 64 },
    'a subscription with room for them gets every event, up to 64 datagrams a wakeup',
  );
  t.match(
    result.detached,
    [
      /^EBADFD: read failed: File descriptor in bad state/,
      /^EBADFD: poll failed: .*; the descriptor stays in error, so it is no longer watched$/,
    ],
    'a TUN whose interface was deleted: reported, then left alone',
  );
  t.equal((result.detached as string[]).length, 2, 'and nothing more');
  t.match(
    result.deleteRouteAgain,
    /^NetlinkError ESRCH: delete route 203\.0\.113\.0\/24 dev #\d+: ESRCH \(errno 3\)$/,
  );
  t.notOk(
    (result.addressesAfterDelete as string[]).includes('198.51.100.1/32'),
    'RTM_DELADDR removed the address',
  );
  t.match(
    result.offloads,
    {
      offload: 7, // TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
      txQueueLength: 1000,
      synChecksumsValid: true,
      malformed: 0,
      largestSegment: 1400,
      checksumsValid: true,
      dataInOrder: true,
    },
    'with offloads, TCP through the TUN: super-packets cut into valid segments of the data written',
  );
  const offloads = result.offloads as { gsoReads: number; segments: number };
  t.ok(offloads.gsoReads >= 1, `the kernel handed over super-packets (${offloads.gsoReads})`);
  t.ok(offloads.segments >= 10, `cut into segments (${offloads.segments})`);
  t.same(result.descriptorsLeft, [], 'the child closed every socket and TUN descriptor it opened');
});
