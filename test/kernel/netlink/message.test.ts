import t from 'tap';
import {
  NLA_F_NESTED,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NetlinkParseError,
  align4,
  concat,
  decodeAttributes,
  decodeError,
  decodeMessages,
  encodeAttribute,
  encodeAttributes,
  encodeMessage,
} from '../../../src/kernel/netlink/message.js';

/**
 * Netlink framing, byte for byte. Layouts from linux/netlink.h: struct nlmsghdr { __u32 nlmsg_len;
 * __u16 nlmsg_type; __u16 nlmsg_flags; __u32 nlmsg_seq; __u32 nlmsg_pid; } (16 bytes), struct
 * nlattr { __u16 nla_len; __u16 nla_type; } (4 bytes), both aligned to 4 (NLMSG_ALIGNTO,
 * NLA_ALIGNTO); struct nlmsgerr { int error; struct nlmsghdr msg; }. Host order: little-endian.
 */

const hex = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

t.test('align4', async (t) => {
  t.same([0, 1, 2, 3, 4, 5, 8].map(align4), [0, 4, 4, 4, 4, 8, 8]);
});

t.test('encodeMessage: header, payload, padding to 4 bytes', async (t) => {
  // RTM_GETLINK (18) dump request, seq 1, with a 16-byte zero ifinfomsg: nlmsg_len 32.
  const dump = encodeMessage({
    type: 18,
    flags: NLM_F_REQUEST | NLM_F_DUMP,
    seq: 1,
    pid: 0,
    payload: new Uint8Array(16),
  });
  t.equal(toHex(dump), '20000000' + '1200' + '0103' + '01000000' + '00000000' + '00'.repeat(16));
  // A 5-byte payload: nlmsg_len says 21, the buffer is padded to 24 with zeros.
  const odd = encodeMessage({
    type: 0x1234,
    flags: NLM_F_ACK,
    seq: 0xdeadbeef,
    pid: 77,
    payload: hex('0102030405'),
  });
  t.equal(toHex(odd), '15000000' + '3412' + '0400' + 'efbeadde' + '4d000000' + '0102030405' + '000000');
});

t.test('decodeMessages: every message of a datagram, padding skipped', async (t) => {
  const first = encodeMessage({ type: 16, flags: NLM_F_MULTI, seq: 9, pid: 4242, payload: hex('aabbcc') });
  const second = encodeMessage({
    type: NLMSG_DONE,
    flags: NLM_F_MULTI,
    seq: 9,
    pid: 4242,
    payload: hex('00000000'),
  });
  const messages = decodeMessages(concat([first, second]));
  t.equal(messages.length, 2);
  t.match(messages[0], { type: 16, flags: NLM_F_MULTI, seq: 9, pid: 4242 });
  t.equal(toHex(messages[0]!.payload), 'aabbcc', 'the payload stops at nlmsg_len, not at the padding');
  t.match(messages[1], { type: NLMSG_DONE, seq: 9 });
  t.same(decodeMessages(new Uint8Array(0)), []);
  // The last message of a datagram need not be padded.
  t.equal(decodeMessages(first.subarray(0, 19)).length, 1);
});

t.test('decodeMessages: lengths that do not fit are errors with the offset', async (t) => {
  const good = encodeMessage({ type: 16, flags: 0, seq: 1, pid: 0, payload: new Uint8Array(4) });
  const tooShort = hex('0f000000 1000 0000 01000000 00000000'); // nlmsg_len 15 < 16
  t.throws(() => decodeMessages(tooShort), NetlinkParseError);
  t.throws(
    () => decodeMessages(tooShort),
    /message length 15 does not fit the 16-byte datagram \(at byte 0\)/,
  );
  const tooLong = concat([good, hex('40000000 1000 0000 02000000 00000000')]); // says 64, has 16
  t.throws(
    () => decodeMessages(tooLong),
    /message length 64 does not fit the 36-byte datagram \(at byte 20\)/,
  );
  const trailing = concat([good, hex('01020304')]);
  t.throws(() => decodeMessages(trailing), /4 trailing bytes are not a message \(at byte 20\)/);
  const error = t.throws(() => decodeMessages(trailing)) as NetlinkParseError;
  t.equal(error.offset, 20);
});

t.test('attributes: encode, padding, nesting, type flags masked on decode', async (t) => {
  // IFLA_IFNAME (3) "lo\0": nla_len 7, padded to 8.
  t.equal(toHex(encodeAttribute(3, hex('6c6f00'))), '07000300' + '6c6f00' + '00');
  t.equal(toHex(encodeAttribute(1, new Uint8Array(0))), '04000100');
  const inner = encodeAttribute(2, hex('dc050000')); // RTAX_MTU 1500
  const nested = encodeAttribute(8 | NLA_F_NESTED, inner);
  t.equal(toHex(nested), '0c000880' + '08000200dc050000');
  const list = encodeAttributes([
    { type: 3, value: hex('6c6f00') },
    { type: 4, value: hex('00000100') },
  ]);
  t.equal(toHex(list), '070003006c6f0000' + '0800040000000100');
  const decoded = decodeAttributes(concat([hex('00112233'), nested, list]), 4);
  t.same(
    decoded.map((a) => [a.type, toHex(a.value)]),
    [
      [8, '08000200dc050000'],
      [3, '6c6f00'],
      [4, '00000100'],
    ],
  );
  t.same(
    decodeAttributes(decoded[0]!.value).map((a) => [a.type, toHex(a.value)]),
    [[2, 'dc050000']],
  );
  t.throws(() => decodeAttributes(hex('0900030061626364')), /attribute length 9 does not fit \(at byte 0\)/);
  t.throws(() => decodeAttributes(hex('02000300')), /attribute length 2 does not fit/);
});

t.test('decodeError: errno and the sequence number of the request', async (t) => {
  // struct nlmsgerr: error = -3 (ESRCH), then the request's header (seq 0x1234).
  const payload = hex('fdffffff' + '20000000' + '1900' + '0500' + '34120000' + '00000000');
  const message = { type: NLMSG_ERROR, flags: 0, seq: 0x1234, pid: 0, payload };
  t.same(decodeError(message), { errno: 3, seq: 0x1234 });
  const ack = {
    ...message,
    payload: hex('00000000' + '20000000' + '1800' + '0500' + '07000000' + '00000000'),
  };
  t.same(decodeError(ack), { errno: 0, seq: 7 });
  t.throws(
    () => decodeError({ ...message, payload: payload.subarray(0, 19) }),
    /NLMSG_ERROR of 19 bytes, expected at least 20 \(at byte 16\)/,
  );
});
