import t from 'tap';
import {
  NLMSG_DONE,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_MULTI,
  NLM_F_REPLACE,
  NetlinkError,
  encodeMessage,
  type NetlinkChannel,
  type NetlinkMessage,
} from '../../../src/kernel/netlink/message.js';
import {
  RTM_DELADDR,
  RTM_DELROUTE,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  Rtnetlink,
  decodeLink,
  encodeAddress,
  encodeDumpLinks,
  encodeGetLink,
  encodeRoute,
  encodeSetLink,
} from '../../../src/kernel/netlink/route.js';

/**
 * rtnetlink messages byte for byte. Layouts (all host order, little-endian here):
 * - struct ifinfomsg (linux/rtnetlink.h): u8 ifi_family, u8 pad, u16 ifi_type, s32 ifi_index,
 *   u32 ifi_flags, u32 ifi_change: 16 bytes. IFLA_IFNAME = 3, IFLA_MTU = 4 (linux/if_link.h).
 * - struct ifaddrmsg (linux/if_addr.h): u8 ifa_family, u8 ifa_prefixlen, u8 ifa_flags,
 *   u8 ifa_scope, u32 ifa_index: 8 bytes. IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_F_NODAD = 0x02.
 * - struct rtmsg (linux/rtnetlink.h): u8 rtm_family, rtm_dst_len, rtm_src_len, rtm_tos,
 *   rtm_table, rtm_protocol, rtm_scope, rtm_type, u32 rtm_flags: 12 bytes. RTA_DST = 1,
 *   RTA_OIF = 4, RTA_PRIORITY = 6, RTA_PREFSRC = 7, RTA_METRICS = 8, RTA_TABLE = 15, RTAX_MTU = 2;
 *   RT_TABLE_MAIN = 254, RTPROT_STATIC = 4, RT_SCOPE_LINK = 253, RT_SCOPE_NOWHERE = 255,
 *   RTN_UNICAST = 1. AF_INET = 2, AF_INET6 = 10 (linux/socket.h).
 */

const hex = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

t.test('RTM_GETLINK by name and as a dump', async (t) => {
  t.equal(
    toHex(encodeGetLink('tun0')),
    // ifinfomsg: all zero (AF_UNSPEC, index 0); IFLA_IFNAME "tun0\0": nla_len 9, padded to 12
    '00000000 00000000 00000000 00000000'.replace(/ /g, '') + '09000300' + '74756e3000' + '000000',
  );
  t.equal(toHex(encodeDumpLinks()), '00'.repeat(16));
  t.throws(() => encodeGetLink(''), /'' is not an interface name/);
  t.throws(() => encodeGetLink('a-very-long-name0'), /is not an interface name/);
});

t.test('RTM_NEWLINK on a link: IFF_UP in flags and change, IFLA_MTU, IFLA_TXQLEN', async (t) => {
  // family 0, pad, type 0, index 5, flags IFF_UP, change IFF_UP; IFLA_MTU 1400 (0x578)
  t.equal(
    toHex(encodeSetLink(5, { up: true, mtu: 1400 })),
    '00000000' + '05000000' + '01000000' + '01000000' + '08000400' + '78050000',
  );
  t.equal(toHex(encodeSetLink(5, { up: false })), '00000000' + '05000000' + '00000000' + '01000000');
  t.equal(
    toHex(encodeSetLink(300, { mtu: 9000 })),
    '00000000' + '2c010000' + '00000000' + '00000000' + '08000400' + '28230000',
  );
  // IFLA_TXQLEN (13) 1000 (0x3e8)
  t.equal(
    toHex(encodeSetLink(5, { mtu: 1400, txQueueLength: 1000 })),
    '00000000' + '05000000' + '00000000' + '00000000' + '08000400' + '78050000' + '08000d00' + 'e8030000',
  );
  t.throws(() => encodeSetLink(0, { up: true }), /0 is not an interface index/);
});

t.test('RTM_NEWADDR: ifaddrmsg, IFA_LOCAL and IFA_ADDRESS', async (t) => {
  // AF_INET, /32, flags 0, scope universe, index 5; IFA_LOCAL 198.51.100.1; IFA_ADDRESS the same
  t.equal(
    toHex(encodeAddress({ index: 5, address: '198.51.100.1/32' })),
    '02200000' + '05000000' + '08000200' + 'c6336401' + '08000100' + 'c6336401',
  );
  // A point-to-point peer goes into IFA_ADDRESS; no prefix length means a host address.
  t.equal(
    toHex(encodeAddress({ index: 5, address: '198.51.100.1', peer: '203.0.113.1' })),
    '02200000' + '05000000' + '08000200' + 'c6336401' + '08000100' + 'cb007101',
  );
  // AF_INET6 /64 with IFA_F_NODAD, index 7
  const v6 = '20010db8000100000000000000000001';
  t.equal(
    toHex(encodeAddress({ index: 7, address: '2001:db8:1::1/64', noDad: true })),
    '0a400200' + '07000000' + '14000200' + v6 + '14000100' + v6,
  );
  t.throws(() => encodeAddress({ index: 7, address: '2001:db8:1::1/129' }), /prefix length must be 0 to 128/);
  t.throws(() => encodeAddress({ index: 7, address: '198.51.100.1/x' }), /prefix length must be 0 to 32/);
  t.throws(
    () => encodeAddress({ index: 7, address: 'tun0' }),
    /'tun0' is not an IPv4 or IPv6 address or prefix/,
  );
  t.throws(
    () => encodeAddress({ index: 7, address: '198.51.100.1/32', peer: '2001:db8::1' }),
    /not of the same family/,
  );
});

t.test('RTM_NEWROUTE / RTM_DELROUTE: rtmsg and attributes', async (t) => {
  // AF_INET, dst_len 24, src_len 0, tos 0, table main, proto static, scope link, unicast, flags 0
  t.equal(
    toHex(encodeRoute({ destination: '203.0.113.0/24', index: 5 }, 'add')),
    '02180000' + 'fe04fd01' + '00000000' + '08000100cb007100' + '0800040005000000' + '08000f00fe000000',
  );
  // With source (RTA_PREFSRC), metric (RTA_PRIORITY), MTU (RTA_METRICS { RTAX_MTU 1300 })
  t.equal(
    toHex(
      encodeRoute(
        { destination: '203.0.113.0/24', index: 5, source: '198.51.100.1', mtu: 1300, metric: 10 },
        'add',
      ),
    ),
    '02180000' +
      'fe04fd01' +
      '00000000' +
      '08000100cb007100' +
      '0800040005000000' +
      '08000700c6336401' +
      '08000f00fe000000' +
      '080006000a000000' +
      '0c000800' +
      '0800020014050000',
  );
  // Table 1000 does not fit rtm_table: RT_TABLE_UNSPEC there, RTA_TABLE 1000 (0x3e8)
  t.equal(
    toHex(encodeRoute({ destination: '203.0.113.0/24', index: 5, table: 1000 }, 'add')),
    '02180000' + '0004fd01' + '00000000' + '08000100cb007100' + '0800040005000000' + '08000f00e8030000',
  );
  // Delete: protocol unspec, scope nowhere, type unspec: the kernel matches any such route
  t.equal(
    toHex(encodeRoute({ destination: '203.0.113.0/24', index: 5, mtu: 1300 }, 'delete')),
    '02180000' + 'fe00ff00' + '00000000' + '08000100cb007100' + '0800040005000000' + '08000f00fe000000',
  );
  // IPv6 /64: scope universe; RTA_DST carries 16 bytes
  t.equal(
    toHex(encodeRoute({ destination: '2001:db8:2::/64', index: 7, table: 220 }, 'add')),
    '0a400000' +
      'dc040001' +
      '00000000' +
      '14000100' +
      '20010db8000200000000000000000000' +
      '0800040007000000' +
      '08000f00dc000000',
  );
  // A default route has no RTA_DST
  t.equal(
    toHex(encodeRoute({ destination: '0.0.0.0/0', index: 5 }, 'add')),
    '02000000' + 'fe04fd01' + '00000000' + '0800040005000000' + '08000f00fe000000',
  );
  t.throws(
    () => encodeRoute({ destination: '203.0.113.5/24', index: 5 }, 'add'),
    /host bits set \(the prefix is 203\.0\.113\.0\/24\)/,
  );
  t.throws(
    () => encodeRoute({ destination: '203.0.113.0/24', index: 5, source: '::1' }, 'add'),
    /not of the same family/,
  );
});

t.test('decodeLink: index, flags, IFLA_IFNAME, IFLA_MTU', async (t) => {
  // AF_UNSPEC, type ARPHRD_NONE (0xfffe), index 9, flags UP|RUNNING... (0x10041), change 0,
  // then IFLA_IFNAME "tun0\0" and IFLA_MTU 1400, and an unknown attribute that is skipped.
  const payload = hex(
    '0000feff' +
      '09000000' +
      '41000100' +
      '00000000' +
      '0900030074756e3000000000' +
      '0800040078050000' +
      '05002a00ff000000',
  );
  const link = decodeLink({ type: RTM_NEWLINK, flags: 0, seq: 1, pid: 0, payload });
  t.same(link, { index: 9, name: 'tun0', flags: 0x10041, up: true, mtu: 1400 });
  t.throws(
    () => decodeLink({ type: RTM_NEWLINK, flags: 0, seq: 1, pid: 0, payload: payload.subarray(0, 12) }),
    { name: 'NetlinkParseError', message: /a link message of 12 bytes/ },
  );
});

/** A channel that records requests and answers from a script. */
class FakeChannel implements NetlinkChannel {
  readonly requests: { type: number; flags: number; payload: Uint8Array; what: string }[] = [];
  constructor(private readonly answer: (type: number) => NetlinkMessage[] | Error = () => []) {}
  async request(type: number, flags: number, payload: Uint8Array, what: string): Promise<NetlinkMessage[]> {
    return this.requestSync(type, flags, payload, what);
  }
  requestSync(type: number, flags: number, payload: Uint8Array, what: string): NetlinkMessage[] {
    this.requests.push({ type, flags, payload, what });
    const answer = this.answer(type);
    if (answer instanceof Error) throw answer;
    return answer;
  }
  close(): void {}
}

const linkMessage = (index: number, name: string, flags: number): NetlinkMessage => ({
  type: RTM_NEWLINK,
  flags: NLM_F_MULTI,
  seq: 1,
  pid: 0,
  payload: Uint8Array.from([
    ...[0, 0, 0, 0],
    ...[index, 0, 0, 0],
    ...[flags, 0, 0, 0],
    ...[0, 0, 0, 0],
    ...[4 + name.length + 1, 0, 3, 0],
    ...Buffer.from(`${name}\0`.padEnd(Math.ceil((name.length + 1) / 4) * 4, '\0')),
  ]),
});

t.test('Rtnetlink: requests, flags and what each request is called', async (t) => {
  const channel = new FakeChannel((type) =>
    type === RTM_GETLINK ? [linkMessage(1, 'lo', 1), linkMessage(5, 'tun0', 0)] : [],
  );
  const rt = new Rtnetlink(channel);
  t.same(
    (await rt.links()).map((l) => [l.index, l.name, l.up]),
    [
      [1, 'lo', true],
      [5, 'tun0', false],
    ],
  );
  t.equal(await rt.linkIndex('lo'), 1);
  await rt.setLink(5, { up: true, mtu: 1400 });
  await rt.addAddress({ index: 5, address: '198.51.100.1/32' });
  await rt.addAddress({ index: 5, address: '198.51.100.1/32' }, { replace: true });
  await rt.deleteAddress({ index: 5, address: '198.51.100.1/32' });
  await rt.addRoute({ destination: '203.0.113.0/24', index: 5 });
  await rt.addRoute({ destination: '203.0.113.0/24', index: 5, table: 220 }, { replace: true });
  await rt.deleteRoute({ destination: '203.0.113.0/24', index: 5 });
  t.same(
    channel.requests.map((r) => [r.type, r.flags, r.what]),
    [
      [RTM_GETLINK, NLM_F_DUMP, 'list links'],
      [RTM_GETLINK, 0, "look up link 'lo'"],
      [RTM_NEWLINK, 0, 'set link #5 up mtu 1400'],
      [RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, 'add address 198.51.100.1/32 to link #5'],
      [RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, 'add address 198.51.100.1/32 to link #5'],
      [RTM_DELADDR, 0, 'delete address 198.51.100.1/32 from link #5'],
      [RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, 'add route 203.0.113.0/24 dev #5'],
      [RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, 'add route 203.0.113.0/24 dev #5 table 220'],
      [RTM_DELROUTE, 0, 'delete route 203.0.113.0/24 dev #5'],
    ],
  );
  t.equal(toHex(channel.requests[1]!.payload), toHex(encodeGetLink('lo')));
  // The whole request as the socket frames it: 16 + 12 + 3 * 8 = 52 bytes (REQUEST|ACK added there).
  const framed = encodeMessage({
    type: RTM_NEWROUTE,
    flags: 0x605,
    seq: 2,
    pid: 0,
    payload: channel.requests[6]!.payload,
  });
  t.equal(toHex(framed.subarray(0, 16)), '34000000' + '1800' + '0506' + '02000000' + '00000000');
});

t.test('Rtnetlink: errors come through, an empty answer is an error', async (t) => {
  const rt = new Rtnetlink(new FakeChannel(() => new NetlinkError(19, 'ENODEV', 3, "look up link 'nope0'")));
  await t.rejects(rt.link('nope0'), { name: 'NetlinkError', code: 'ENODEV', errno: 19 });
  const empty = new Rtnetlink(
    new FakeChannel(() => [{ type: NLMSG_DONE, flags: 0, seq: 1, pid: 0, payload: new Uint8Array(4) }]),
  );
  await t.rejects(empty.link('lo'), /look up link 'lo': the kernel answered without the link/);
});
