/**
 * Runs inside the network namespace that tun.test.ts makes (`ip netns exec NS node --import tsx
 * test/native/netns-child.ts`) and prints one JSON line with what it saw; the test asserts on it.
 * Here it may change links, addresses and routes: the namespace is thrown away afterwards.
 *
 * 1. A TUN device set up through route.ts: up, MTU, 198.51.100.1/32, a route to 203.0.113.0/24
 *    (with prefsrc and MTU), 2001:db8:1::1/128 and a route to 2001:db8:2::/64.
 * 2. ICMP and ICMPv6 echo requests from 203.0.113.5 / 2001:db8:2::5 written into the TUN: the
 *    kernel's replies come back out of it, read through watch.
 * 3. An address subscription whose receive buffer is tiny overflows while requestSync blocks the
 *    event loop: ENOBUFS reaches onError, and the subscription goes on.
 * 4. A TUN device whose interface is deleted while watched: one error, then no more polling.
 * 5. Negative acks: a route added twice (EEXIST), deleted twice (ESRCH).
 * 6. A TUN device with offloads (virtio_net_hdr, TUN_OFFLOADS) read through watchBatch: the
 *    kernel's TCP connects through it to a peer we play by hand (a SYN-ACK written back), then
 *    sends its first flight as TCP super-packets, which readPackets cuts into segments that carry
 *    the bytes written, in order, with valid checksums.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { formatAddress } from '../../src/core/address.js';
import {
  NLM_F_CREATE,
  NLM_F_EXCL,
  decodeAttributes,
  type NetlinkMessage,
} from '../../src/kernel/netlink/message.js';
import { IFA_LOCAL, RTM_NEWADDR, Rtnetlink, encodeAddress } from '../../src/kernel/netlink/route.js';
import { NETLINK_ROUTE, NetlinkSocket, openNetlinkSubscription } from '../../src/kernel/netlink/socket.js';
import { internetChecksum } from '../../src/kernel/userspace/packet.js';
import { readPackets, TUN_OFFLOADS, VNET_HEADER_LENGTH } from '../../src/kernel/userspace/tun-gro.js';
import { batchDatagrams } from '../../src/native/batch.js';
import { loadNative, type Native } from '../../src/native/index.js';

const RTNLGRP_IPV4_IFADDR = 5; // linux/rtnetlink.h enum rtnetlink_groups

// It changes links and routes: only inside the namespace tun.test.ts made for it, never on the
// host (tap runs every .ts file of a directory it is given; this one then says it is no test).
const expected = process.env.IKE_NODE_NETNS_CHILD;
const current = execFileSync('ip', ['netns', 'identify', String(process.pid)], { encoding: 'utf8' }).trim();
if (!expected || expected !== current) {
  console.log(
    'TAP version 14\n1..0 # SKIP the namespace child of tun.test.ts runs only inside its namespace',
  );
  process.exit(0);
}

const guard = setTimeout(() => {
  console.log(JSON.stringify({ error: 'the namespace child did not finish within 20 s' }));
  process.exit(1);
}, 20_000);

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const ip4 = (text: string) => Uint8Array.from(text.split('.').map(Number));
const ip6 = (groups: number[]) => Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 0xff]));
const PAYLOAD = Uint8Array.from(Buffer.from('ike-node tun echo'));
const ID = 0x4242;
const SEQ = 7;

/** IPv4 (RFC 791) + ICMP echo request (RFC 792). */
function echo4(source: Uint8Array, destination: Uint8Array): Uint8Array {
  const icmp = new Uint8Array(8 + PAYLOAD.length);
  const idv = new DataView(icmp.buffer);
  icmp[0] = 8;
  idv.setUint16(4, ID);
  idv.setUint16(6, SEQ);
  icmp.set(PAYLOAD, 8);
  idv.setUint16(2, checksum(icmp));
  const packet = new Uint8Array(20 + icmp.length);
  const dv = new DataView(packet.buffer);
  packet[0] = 0x45;
  dv.setUint16(2, packet.length);
  dv.setUint16(4, 0x1234);
  dv.setUint16(6, 0x4000); // DF
  packet[8] = 64;
  packet[9] = 1; // ICMP
  packet.set(source, 12);
  packet.set(destination, 16);
  dv.setUint16(10, checksum(packet.subarray(0, 20)));
  packet.set(icmp, 20);
  return packet;
}

/** The ICMPv6 checksum covers a pseudo-header (RFC 8200 section 8.1). */
function checksum6(source: Uint8Array, destination: Uint8Array, icmp: Uint8Array): number {
  const pseudo = new Uint8Array(40 + icmp.length);
  pseudo.set(source, 0);
  pseudo.set(destination, 16);
  new DataView(pseudo.buffer).setUint32(32, icmp.length);
  pseudo[39] = 58;
  pseudo.set(icmp, 40);
  return checksum(pseudo);
}

/** IPv6 (RFC 8200) + ICMPv6 echo request (RFC 4443). */
function echo6(source: Uint8Array, destination: Uint8Array): Uint8Array {
  const icmp = new Uint8Array(8 + PAYLOAD.length);
  const idv = new DataView(icmp.buffer);
  icmp[0] = 128;
  idv.setUint16(4, ID);
  idv.setUint16(6, SEQ);
  icmp.set(PAYLOAD, 8);
  idv.setUint16(2, checksum6(source, destination, icmp));
  const packet = new Uint8Array(40 + icmp.length);
  const dv = new DataView(packet.buffer);
  dv.setUint32(0, 0x60000000);
  dv.setUint16(4, icmp.length);
  packet[6] = 58;
  packet[7] = 64;
  packet.set(source, 8);
  packet.set(destination, 24);
  packet.set(icmp, 40);
  return packet;
}

interface EchoReply {
  source: string;
  destination: string;
  id: number;
  seq: number;
  payloadEchoed: boolean;
  checksumValid: boolean;
}

/** An echo reply in a packet read from the TUN, or undefined for anything else (MLD, RS...). */
function parseReply(packet: Uint8Array): EchoReply | undefined {
  const version = packet[0]! >> 4;
  if (version === 4 && packet[9] === 1) {
    const icmp = packet.subarray((packet[0]! & 0xf) * 4);
    if (icmp[0] !== 0) return undefined;
    const dv = new DataView(icmp.buffer, icmp.byteOffset);
    return {
      source: formatAddress(packet.subarray(12, 16)),
      destination: formatAddress(packet.subarray(16, 20)),
      id: dv.getUint16(4),
      seq: dv.getUint16(6),
      payloadEchoed: Buffer.from(icmp.subarray(8)).equals(PAYLOAD),
      checksumValid: checksum(icmp) === 0,
    };
  }
  if (version === 6 && packet[6] === 58) {
    const icmp = packet.subarray(40);
    if (icmp[0] !== 129) return undefined;
    const dv = new DataView(icmp.buffer, icmp.byteOffset);
    return {
      source: formatAddress(packet.subarray(8, 24)),
      destination: formatAddress(packet.subarray(24, 40)),
      id: dv.getUint16(4),
      seq: dv.getUint16(6),
      payloadEchoed: Buffer.from(icmp.subarray(8)).equals(PAYLOAD),
      checksumValid: checksum6(packet.subarray(8, 24), packet.subarray(24, 40), icmp) === 0,
    };
  }
  return undefined;
}

/** The IFA_LOCAL of RTM_NEWADDR notifications (struct ifaddrmsg is 8 bytes, linux/if_addr.h). */
function newAddresses(messages: NetlinkMessage[]): string[] {
  return messages
    .filter((m) => m.type === RTM_NEWADDR)
    .flatMap((m) => decodeAttributes(m.payload, 8).filter((a) => a.type === IFA_LOCAL))
    .map((a) => formatAddress(a.value));
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'no error';
  } catch (error) {
    return `${(error as Error).name} ${(error as { code?: string }).code}: ${(error as Error).message}`;
  }
}

const ipJson = (args: string[]) =>
  JSON.parse(execFileSync('ip', ['-j', ...args], { encoding: 'utf8' })) as unknown;

/** What iproute2 says the link's addresses are ("198.51.100.1/32"): an independent reading. */
const addressesOf = (name: string) =>
  (ipJson(['addr', 'show', 'dev', name]) as { addr_info: { local: string; prefixlen: number }[] }[]).flatMap(
    (link) => link.addr_info.map((a) => `${a.local}/${a.prefixlen}`),
  );

/** Open sockets and TUN devices of this process ("17=socket:[1234]"): what the shim opens. */
function ours(): string[] {
  const links = readdirSync('/proc/self/fd').map((fd) => {
    try {
      return `${fd}=${readlinkSync(`/proc/self/fd/${fd}`)}`;
    } catch {
      return fd; // the directory being read
    }
  });
  return links.filter((link) => /=(socket:|\/dev\/net\/tun)/.test(link));
}

async function main(): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  const oursBefore = ours();
  const native = loadNative();
  const tun = native.openTun('ikn%d');
  result.tunName = tun.name;
  const socket = NetlinkSocket.open(native, NETLINK_ROUTE);
  const rt = new Rtnetlink(socket);

  const seen: string[] = [];
  const subscription = openNetlinkSubscription(native, NETLINK_ROUTE, [RTNLGRP_IPV4_IFADDR]);
  let sawAddress = () => {};
  const addressEvent = new Promise<void>((resolve) => (sawAddress = resolve));
  let largestBatch = 0;
  const subscriptionErrors: string[] = [];
  subscription.onMessages((messages) => {
    largestBatch = Math.max(largestBatch, messages.length);
    seen.push(...newAddresses(messages));
    if (seen.includes('198.51.100.1')) sawAddress();
  });
  subscription.onError((error) => subscriptionErrors.push(error.message));

  const index = await rt.linkIndex(tun.name);
  await rt.setLink(index, { up: true, mtu: 1400 });
  result.link = await rt.link(tun.name);
  await rt.addAddress({ index, address: '198.51.100.1/32' });
  await addressEvent;
  result.addressEvent = true;
  const route4 = { destination: '203.0.113.0/24', index, source: '198.51.100.1', mtu: 1300 };
  await rt.addRoute(route4);
  result.addRouteAgain = await codeOf(rt.addRoute(route4));
  await rt.addAddress({ index, address: '2001:db8:1::1/128', noDad: true });
  await rt.addRoute({ destination: '2001:db8:2::/64', index });
  result.routes4 = ipJson(['-4', 'route', 'show', 'dev', tun.name]);
  result.routes6 = ipJson(['-6', 'route', 'show', 'dev', tun.name]);
  result.addresses = addressesOf(tun.name);

  // Echo through the TUN: requests written in, the kernel's replies read out through watch.
  const replies: EchoReply[] = [];
  let others = 0;
  let wake = () => {};
  native.watch(
    tun.fd,
    (packets) => {
      for (const packet of packets) {
        const reply = parseReply(packet);
        if (reply) replies.push(reply);
        else others++;
      }
      wake();
    },
    (error) => {
      result.tunError = error.message;
    },
  );
  const replyTo = async (destination: string) => {
    while (!replies.some((r) => r.destination === destination))
      await new Promise<void>((resolve) => (wake = resolve));
    return replies.find((r) => r.destination === destination);
  };
  native.write(tun.fd, echo4(ip4('203.0.113.5'), ip4('198.51.100.1')));
  result.echo4 = await replyTo('203.0.113.5');
  const peer6 = ip6([0x2001, 0xdb8, 2, 0, 0, 0, 0, 5]);
  native.write(tun.fd, echo6(peer6, ip6([0x2001, 0xdb8, 1, 0, 0, 0, 0, 1])));
  result.echo6 = await replyTo('2001:db8:2::5');
  result.otherPackets = others;

  // ENOBUFS: a tiny receive buffer, events while the event loop is blocked in requestSync.
  const tiny = openNetlinkSubscription(native, NETLINK_ROUTE, [RTNLGRP_IPV4_IFADDR], {
    receiveBufferBytes: 1,
  });
  const tinyErrors: string[] = [];
  const tinySeen: string[] = [];
  let tinyWake = () => {};
  tiny.onError((error) => {
    tinyErrors.push(`${error.code}`);
    tinyWake();
  });
  tiny.onMessages((messages) => {
    tinySeen.push(...newAddresses(messages));
    tinyWake();
  });
  const until = async (condition: () => boolean) => {
    while (!condition()) await new Promise<void>((resolve) => (tinyWake = resolve));
  };
  for (let i = 1; i <= 100; i++)
    socket.requestSync(
      RTM_NEWADDR,
      NLM_F_CREATE | NLM_F_EXCL,
      encodeAddress({ index, address: `192.0.2.${i}/32` }),
      `add 192.0.2.${i}`,
    );
  await until(() => tinyErrors.length > 0);
  // The kernel drops events for a congested socket until its queue is read empty: let the read
  // that reported ENOBUFS finish before the next event is made.
  await new Promise((resolve) => setImmediate(resolve));
  const seenBeforeAfterOverflow = tinySeen.length;
  await rt.addAddress({ index, address: '192.0.2.200/32' });
  await until(() => tinySeen.includes('192.0.2.200'));
  result.overflow = { errors: tinyErrors, deliveredOfTheHundred: seenBeforeAfterOverflow, goesOn: true };
  // The 4 MiB subscription kept all hundred, read in batches of at most 64 datagrams a wakeup.
  result.large = {
    errors: subscriptionErrors,
    allHundred: Array.from({ length: 100 }, (_, i) => `192.0.2.${i + 1}`).every((a) => seen.includes(a)),
    largestBatch,
  };
  tiny.close();

  // A TUN device whose interface is deleted under its watch: reported, then no longer watched.
  const doomed = native.openTun('ikn%d');
  const doomedErrors: string[] = [];
  let doomedWake = () => {};
  native.watch(
    doomed.fd,
    () => {},
    (error) => {
      doomedErrors.push(`${error.code}: ${error.message}`);
      doomedWake();
    },
  );
  execFileSync('ip', ['link', 'del', doomed.name]);
  while (!doomedErrors.some((e) => e.includes('no longer watched')))
    await new Promise<void>((resolve) => (doomedWake = resolve));
  await new Promise((resolve) => setImmediate(resolve));
  native.close(doomed.fd);
  result.detached = doomedErrors;

  await rt.deleteRoute({ destination: '203.0.113.0/24', index });
  result.deleteRouteAgain = await codeOf(rt.deleteRoute({ destination: '203.0.113.0/24', index }));
  await rt.deleteAddress({ index, address: '198.51.100.1/32' });
  result.addressesAfterDelete = addressesOf(tun.name);

  result.offloads = await offloads(native, rt);

  subscription.close();
  socket.close();
  native.close(tun.fd);
  result.descriptorsLeft = ours().filter((fd) => !oursBefore.includes(fd));
  return result;
}

/** Whether an IPv4 packet's header and TCP checksums verify. */
function tcpChecksumsValid(packet: Uint8Array): boolean {
  const pseudo = new Uint8Array(12 + packet.length - 20);
  pseudo.set(packet.subarray(12, 20));
  pseudo[9] = 6;
  new DataView(pseudo.buffer).setUint16(10, packet.length - 20);
  pseudo.set(packet.subarray(20), 12);
  return internetChecksum(packet, 0, 20) === 0 && internetChecksum(pseudo) === 0;
}

/** Section 6: TCP through a TUN device with offloads, the far end played by hand. */
async function offloads(native: Native, rt: Rtnetlink): Promise<Record<string, unknown>> {
  const tun = native.openTun('ikn%d', { vnetHeader: true, offload: TUN_OFFLOADS });
  const out: Record<string, unknown> = { offload: tun.offload };
  const index = await rt.linkIndex(tun.name);
  await rt.setLink(index, { up: true, mtu: 1400, txQueueLength: 1000 });
  out.txQueueLength = (ipJson(['link', 'show', 'dev', tun.name]) as { txqlen: number }[])[0]?.txqlen;
  await rt.addAddress({ index, address: '198.51.100.129/32' });
  await rt.addRoute({ destination: '203.0.113.128/25', index });

  const packets: Uint8Array[] = [];
  let gsoReads = 0;
  let malformed = 0;
  let wake = () => {};
  native.watchBatch!(
    tun.fd,
    (batch, count) => {
      for (const read of batchDatagrams(batch, count)) {
        if (read[1] !== 0) gsoReads++;
        if (!readPackets(read, packets)) malformed++;
      }
      wake();
    },
    (error) => {
      out.error = error.message;
    },
  );
  const next = async (match: (p: Uint8Array) => boolean): Promise<Uint8Array> => {
    for (;;) {
      const found = packets.findIndex(match);
      if (found >= 0) return packets.splice(found, 1)[0]!;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  const isTcp = (p: Uint8Array) => p[0] === 0x45 && p[9] === 6;
  const flagsOf = (p: Uint8Array) => p[33]!;

  const data = Buffer.alloc(40_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;
  const client = connect({ host: '203.0.113.130', port: 5001, localAddress: '198.51.100.129' });
  client.on('error', () => {});
  const syn = await next((p) => isTcp(p) && (flagsOf(p) & 0x12) === 0x02);
  out.synChecksumsValid = tcpChecksumsValid(syn); // the kernel left its checksum to us
  // SYN-ACK from 203.0.113.130:5001: MSS 1360, a window of 65535 (no scaling).
  const synView = new DataView(syn.buffer, syn.byteOffset);
  const reply = new Uint8Array(44);
  const view = new DataView(reply.buffer);
  reply[0] = 0x45;
  view.setUint16(2, 44);
  reply[8] = 64;
  reply[9] = 6;
  reply.set(syn.subarray(16, 20), 12);
  reply.set(syn.subarray(12, 16), 16);
  view.setUint16(20, 5001);
  view.setUint16(22, synView.getUint16(20));
  view.setUint32(24, 1000);
  view.setUint32(28, (synView.getUint32(24) + 1) >>> 0);
  reply[32] = 6 << 4;
  reply[33] = 0x12;
  view.setUint16(34, 65535);
  reply.set([2, 4, 1360 >> 8, 1360 & 0xff], 40);
  view.setUint16(10, internetChecksum(reply, 0, 20));
  const pseudo = new Uint8Array(12 + 24);
  pseudo.set(reply.subarray(12, 20));
  pseudo[9] = 6;
  new DataView(pseudo.buffer).setUint16(10, 24);
  pseudo.set(reply.subarray(20), 12);
  view.setUint16(36, internetChecksum(pseudo));
  native.writeMany!(tun.fd, [new Uint8Array(VNET_HEADER_LENGTH), reply], 2);
  await new Promise<void>((resolve) => client.once('connect', resolve));
  client.write(data);

  // The first flight (the initial window: 10 segments), unacknowledged.
  const firstSeq = (synView.getUint32(24) + 1) >>> 0;
  const received = Buffer.alloc(data.length);
  let have = 0;
  const segments: Uint8Array[] = [];
  while (have < 10 * 1360) {
    const segment = await next((p) => isTcp(p) && p.length > 52);
    segments.push(segment);
    const seq = new DataView(segment.buffer, segment.byteOffset).getUint32(24);
    const offset = (seq - firstSeq) >>> 0;
    const payload = segment.subarray(20 + (segment[32]! >> 4) * 4);
    if (offset === have) have += payload.length;
    received.set(payload, offset);
  }
  out.gsoReads = gsoReads;
  out.malformed = malformed;
  out.segments = segments.length;
  out.largestSegment = Math.max(...segments.map((p) => p.length));
  out.checksumsValid = segments.every(tcpChecksumsValid);
  out.dataInOrder = received.subarray(0, have).equals(data.subarray(0, have));
  client.destroy();
  native.close(tun.fd);
  return out;
}

main().then(
  (result) => {
    clearTimeout(guard);
    console.log(JSON.stringify(result));
  },
  (error: unknown) => {
    clearTimeout(guard);
    console.log(JSON.stringify({ error: (error as Error).stack ?? String(error) }));
    process.exitCode = 1;
  },
);
