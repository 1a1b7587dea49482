import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { parseAddress } from '../../../src/core/address.js';
import type { Endpoint } from '../../../src/core/endpoint.js';
import type { ChildSa } from '../../../src/core/sa.js';
import { parseTrafficSelector } from '../../../src/core/traffic-selector.js';
import { createCryptoProvider } from '../../../src/crypto/providers/index.js';
import { algorithm } from '../../../src/crypto/registry.js';
import type { KernelBackendHost, KernelEvent } from '../../../src/kernel/backend.js';
import {
  type TrafficLimits,
  UserspaceBackend,
  type UserspaceBackendOptions,
  type UserspaceIo,
} from '../../../src/kernel/userspace/backend.js';
import { EspOutbound } from '../../../src/kernel/userspace/esp.js';
import { buildPacket, internetChecksum, parsePacket } from '../../../src/kernel/userspace/packet.js';
import { toHex } from '../../../src/wire/bytes.js';

/**
 * Two userspace backends back to back with fake I/O: what one sends with sendDatagram the other
 * receives with receiveEsp (through an optional NAT that rewrites the source), and each TUN
 * device is an array of written packets plus a way to inject packets as the kernel would.
 */

const provider = createCryptoProvider('node');
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

class Side {
  readonly written: Uint8Array[] = [];
  readonly sent: { from: Endpoint; to: Endpoint; data: Uint8Array }[] = [];
  readonly routes: string[] = [];
  readonly routeLog: string[] = [];
  readonly events: KernelEvent[] = [];
  readonly logs: { level: string; message: string }[] = [];
  listener: ((packets: readonly Uint8Array[]) => void) | undefined;
  tunClosed = false;
  peer: Side | undefined;
  /** Rewrites the source of what this side sends (a NAT in front of it). */
  nat: ((from: Endpoint) => Endpoint) | undefined;
  clock = 1_000_000;
  failRoute: string | undefined;
  readonly backend: UserspaceBackend;

  constructor(options: UserspaceBackendOptions = {}, batchSend = false) {
    const host: KernelBackendHost = {
      onEvent: (event) => this.events.push(event),
      log: (level, message) => this.logs.push({ level, message }),
      sendDatagram: (from, to, data) => this.#deliver(from, to, data),
    };
    const io: UserspaceIo = {
      tun: {
        write: (packets) => this.written.push(...packets),
        onPackets: (listener) => (this.listener = listener),
        close: () => {
          this.tunClosed = true;
        },
      },
      routes: {
        add: async (prefix) => {
          if (prefix === this.failRoute) throw new Error(`no route to ${prefix}`);
          this.routes.push(prefix);
          this.routeLog.push(`add ${prefix}`);
        },
        remove: async (prefix) => {
          this.routes.splice(this.routes.indexOf(prefix), 1);
          this.routeLog.push(`remove ${prefix}`);
        },
        exclude: async (address) => void this.routeLog.push(`exclude ${address}`),
        unexclude: async (address) => void this.routeLog.push(`unexclude ${address}`),
      },
      ...(batchSend && {
        sendDatagrams: (from: Endpoint, to: Endpoint, datagrams: readonly Uint8Array[]) => {
          this.routeLog.push(`batch ${datagrams.length}`);
          for (const data of datagrams) this.#deliver(from, to, data);
        },
      }),
    };
    this.backend = new UserspaceBackend(provider, host, io, { now: () => this.clock, ...options });
  }

  #deliver(from: Endpoint, to: Endpoint, data: Uint8Array): void {
    this.sent.push({ from, to, data });
    const source = this.nat ? this.nat(from) : from;
    this.peer?.backend.receiveEsp(Uint8Array.from(data), to, source);
  }

  /** The kernel routes packets into the TUN device. */
  inject(...packets: Uint8Array[]): void {
    this.listener!(packets);
  }

  drops(cause: string): number {
    return (this.backend.drops() as Record<string, number>)[cause]!;
  }
}

const A: Endpoint = { address: '192.0.2.1', port: 4500 };
const B: Endpoint = { address: '192.0.2.2', port: 4500 };

interface PairSpec {
  id?: number;
  mode?: 'tunnel' | 'transport';
  encr?: string;
  integ?: string;
  aTs?: string[];
  bTs?: string[];
  kilobytes?: number;
  spis?: [number, number];
  /** B's view of A's endpoint (behind a NAT). */
  aSeenByB?: Endpoint;
}

let nextSpi = 0x1000;

/** The two halves of one negotiated child SA: A's and B's view, keys and SPIs mirrored. */
function childPair(spec: PairSpec = {}): [ChildSa, ChildSa] {
  const encr = algorithm('encr', spec.encr ?? 'aes128gcm16');
  const integ = encr.icvLength ? undefined : algorithm('integ', spec.integ ?? 'sha256');
  const suite = { encr, ...(integ && { integ }) };
  const keyA = randomBytes(encr.keyLength + encr.saltLength);
  const keyB = randomBytes(encr.keyLength + encr.saltLength);
  const intA = integ ? randomBytes(integ.keyLength) : new Uint8Array(0);
  const intB = integ ? randomBytes(integ.keyLength) : new Uint8Array(0);
  const [spiA, spiB] = spec.spis ?? [nextSpi++, nextSpi++];
  const aTs = (spec.aTs ?? ['10.1.0.0/16']).map((s) => parseTrafficSelector(s));
  const bTs = (spec.bTs ?? ['10.2.0.0/16']).map((s) => parseTrafficSelector(s));
  const common = {
    connection: 'net-net',
    ikeSaId: 1,
    protocol: 'esp' as const,
    mode: spec.mode ?? ('tunnel' as const),
    encapsulation: true,
    suite,
    lifetime: { seconds: 3600, ...(spec.kilobytes !== undefined && { kilobytes: spec.kilobytes }) },
    installedAt: 0,
    rekeyAt: 3000,
    expiresAt: 3600,
  };
  const id = spec.id ?? spiA;
  const a: ChildSa = {
    ...common,
    id,
    local: A,
    remote: B,
    spiIn: spiA,
    spiOut: spiB,
    localTs: aTs,
    remoteTs: bTs,
    keys: { encrIn: keyA, integIn: intA, encrOut: keyB, integOut: intB },
  };
  const b: ChildSa = {
    ...common,
    id: id + 100_000,
    local: B,
    remote: spec.aSeenByB ?? A,
    spiIn: spiB,
    spiOut: spiA,
    localTs: bTs,
    remoteTs: aTs,
    keys: { encrIn: keyB, integIn: intB, encrOut: keyA, integOut: intA },
  };
  return [a, b];
}

function sides(options: UserspaceBackendOptions = {}, batch = false): [Side, Side] {
  const a = new Side(options, batch);
  const b = new Side(options, batch);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

function udpPacket(src: string, dst: string, sport: number, dport: number, size = 100): Uint8Array {
  const s = parseAddress(src);
  const d = parseAddress(dst);
  const segment = Buffer.alloc(8 + size);
  segment.writeUInt16BE(sport, 0);
  segment.writeUInt16BE(dport, 2);
  segment.writeUInt16BE(segment.length, 4);
  randomBytes(size).copy(segment, 8);
  // buildPacket computes the UDP checksum (the checksum field must not be zero for that).
  segment.writeUInt16BE(1, 6);
  return buildPacket(s, d, 17, segment);
}

const hash = (packets: readonly Uint8Array[]): string[] =>
  packets.map((p) => createHash('sha256').update(p).digest('hex').slice(0, 16));

t.test('tunnel mode both ways, counters matching, routes added and removed', async (t) => {
  const [a, b] = sides();
  const [childA, childB] = childPair();
  await a.backend.install(childA);
  await b.backend.install(childB);
  t.same(a.routes, ['10.2.0.0/16']);
  t.same(b.routes, ['10.1.0.0/16']);
  t.equal(a.backend.name, 'userspace');
  t.ok(a.backend.forcesUdpEncapsulation);
  t.same(a.backend.installed(), [childA]);

  const out = [
    udpPacket('10.1.0.5', '10.2.0.7', 5000, 53, 1),
    udpPacket('10.1.0.5', '10.2.0.8', 5000, 53, 1300),
  ];
  a.inject(...out);
  await tick();
  t.same(hash(b.written), hash(out), 'B writes the very packets A read');
  t.equal(a.sent.length, 2);
  t.same(a.sent[0]!.from, A, 'from the NAT-T socket');
  t.same(a.sent[0]!.to, B);
  t.equal(Buffer.from(a.sent[0]!.data).readUInt32BE(0), childA.spiOut, 'with the peer SPI');

  const back = Array.from({ length: 5 }, (_, i) => udpPacket('10.2.0.9', '10.1.0.1', 53, 6000 + i, 200 * i));
  b.inject(...back);
  await tick();
  t.same(hash(a.written), hash(back));

  const ca = await a.backend.counters(childA);
  const cb = await b.backend.counters(childB);
  const bytes = (packets: Uint8Array[]) => packets.reduce((n, p) => n + p.length, 0);
  t.same(ca, { bytesIn: bytes(back), packetsIn: 5, bytesOut: bytes(out), packetsOut: 2 });
  t.same(cb, {
    bytesIn: ca!.bytesOut,
    packetsIn: ca!.packetsOut,
    bytesOut: ca!.bytesIn,
    packetsOut: ca!.packetsIn,
  });
  t.same(
    Object.values(a.backend.drops()).reduce((x, y) => x + y),
    0,
    'nothing dropped',
  );

  await a.backend.remove(childA);
  t.same(a.routes, [], 'route gone with the last child');
  t.same(a.backend.installed(), []);
  t.equal(await a.backend.counters(childA), undefined);
  await a.backend.close();
  await b.backend.close();
  t.same(b.routes, [], 'close removes what is left');
  t.ok(a.tunClosed && b.tunClosed);
});

t.test('every algorithm family end to end, IPv6 too', async (t) => {
  for (const [encr, integ] of [
    ['aes256', 'sha512'],
    ['3des', 'md5'],
    ['aes192ctr', 'sha1'],
    ['aes256gcm12', undefined],
    ['chacha20poly1305', undefined],
  ] as const) {
    const [a, b] = sides();
    const [childA, childB] = childPair({
      encr,
      ...(integ && { integ }),
      aTs: ['2001:db8:1::/48', '10.1.0.0/16'],
      bTs: ['2001:db8:2::/48', '10.2.0.0/16'],
    });
    await a.backend.install(childA);
    await b.backend.install(childB);
    t.same(a.routes.sort(), ['10.2.0.0/16', '2001:db8:2::/48']);
    const packets = [
      udpPacket('2001:db8:1::5', '2001:db8:2::7', 1, 2, 700),
      udpPacket('10.1.0.1', '10.2.0.1', 3, 4),
    ];
    a.inject(...packets);
    await tick();
    t.same(hash(b.written), hash(packets), `${encr}${integ ? `-${integ}` : ''}`);
    await a.backend.close();
    await b.backend.close();
  }
});

t.test('batches go out through io.sendDatagrams when the runtime offers it', async (t) => {
  const [a, b] = sides({}, true);
  const [childA, childB] = childPair();
  await a.backend.install(childA);
  await b.backend.install(childB);
  a.inject(...Array.from({ length: 10 }, (_, i) => udpPacket('10.1.0.5', '10.2.0.7', 5000, i + 1)));
  await tick();
  t.ok(a.routeLog.includes('batch 10'), 'one call for the batch');
  t.equal(b.written.length, 10);
});

t.test('rekey: the new child takes over outbound at install, the old one still decrypts', async (t) => {
  const [a, b] = sides();
  const [oldA, oldB] = childPair({ id: 1 });
  await a.backend.install(oldA);
  await b.backend.install(oldB);
  const [newA, newB] = childPair({ id: 2 });
  await a.backend.install(newA);
  t.equal(a.routeLog.filter((l) => l.startsWith('add')).length, 1, 'the route is shared, added once');

  // B has not installed its new child yet: its traffic still comes through the old SA.
  b.inject(udpPacket('10.2.0.1', '10.1.0.1', 1, 2));
  await tick();
  t.equal(a.written.length, 1, 'old inbound SA decrypts');

  await b.backend.install(newB);
  a.inject(udpPacket('10.1.0.1', '10.2.0.1', 1, 2));
  await tick();
  t.equal(Buffer.from(a.sent.at(-1)!.data).readUInt32BE(0), newA.spiOut, 'outbound on the new SA');
  t.equal(b.written.length, 1);
  t.same(await a.backend.counters(newA), { bytesIn: 0, packetsIn: 0, bytesOut: 128, packetsOut: 1 });

  await a.backend.remove(oldA);
  t.same(a.routes, ['10.2.0.0/16'], 'the route stays for the new child');
  b.inject(udpPacket('10.2.0.1', '10.1.0.1', 1, 2));
  await tick();
  t.equal(a.written.length, 2, 'new SA both ways');
  await a.backend.remove(newA);
  t.same(a.routeLog, ['add 10.2.0.0/16', 'remove 10.2.0.0/16']);
});

t.test('installing the same child again keeps its sequence numbers going', async (t) => {
  const [a, b] = sides();
  const [childA, childB] = childPair({ aTs: ['10.1.0.0/16'], bTs: ['10.2.0.0/16'] });
  await a.backend.install(childA);
  await b.backend.install(childB);
  a.inject(udpPacket('10.1.0.1', '10.2.0.1', 1, 2), udpPacket('10.1.0.1', '10.2.0.1', 1, 2));
  // An update: a wider remote selector.
  await a.backend.install({ ...childA, remoteTs: [parseTrafficSelector('10.0.0.0/8')] });
  a.inject(udpPacket('10.1.0.1', '10.2.0.1', 1, 2));
  await tick();
  t.equal(Buffer.from(a.sent[2]!.data).readUInt32BE(4), 3, 'sequence number 3, not 1');
  t.equal(b.written.length, 3, 'the peer accepts it');
  t.same(a.routeLog, ['add 10.2.0.0/16', 'add 10.0.0.0/8', 'remove 10.2.0.0/16']);
});

t.test('drops are counted per cause, never thrown, logged once per interval', async (t) => {
  const [a, b] = sides();
  const [childA, childB] = childPair({ encr: 'aes128', integ: 'sha1' });
  await a.backend.install(childA);
  await b.backend.install(childB);

  // No policy: outside the selectors, and not IP at all.
  a.inject(udpPacket('10.1.0.5', '10.9.0.7', 1, 2), udpPacket('10.1.0.5', '10.9.0.8', 1, 2));
  a.inject(Uint8Array.of(0x45, 0, 0));
  t.equal(a.drops('no-policy'), 2);
  t.equal(a.drops('bad-packet'), 1);

  // Capture a good datagram, then abuse it.
  b.peer = undefined;
  b.inject(udpPacket('10.2.0.1', '10.1.0.1', 1, 2), udpPacket('10.2.0.1', '10.1.0.1', 1, 2));
  const good = b.sent.at(-2)!.data;
  const fresh = b.sent.at(-1)!.data;
  a.backend.receiveEsp(good, A, B);
  await tick();
  t.equal(a.written.length, 1);
  a.backend.receiveEsp(good, A, B);
  t.equal(a.drops('replay'), 1, 'replayed');
  // Replay is checked before the ICV (RFC 4303 3.4.3): corrupt a packet not seen yet.
  const tampered = Uint8Array.from(fresh);
  tampered[30]! ^= 0x80;
  a.backend.receiveEsp(tampered, A, B);
  t.equal(a.drops('icv'), 1, 'corrupted');
  a.backend.receiveEsp(good.subarray(0, 6), A, B);
  a.backend.receiveEsp(good.subarray(0, 40), A, B);
  t.equal(a.drops('truncated'), 2, 'truncated');
  const unknown = Uint8Array.from(good);
  unknown[0] = 0x7f;
  a.backend.receiveEsp(unknown, A, B);
  t.equal(a.drops('unknown-spi'), 1);
  a.backend.receiveEsp(Uint8Array.of(0xff), A, B);
  t.same(
    Object.entries(a.backend.drops()).filter(([, n]) => n > 0),
    [
      ['unknown-spi', 1],
      ['replay', 1],
      ['icv', 1],
      ['truncated', 2],
      ['no-policy', 2],
      ['bad-packet', 1],
    ],
    'a NAT-keepalive is not a drop',
  );

  // Wrong selectors: B's keys, an inner packet from outside B's selectors.
  const rogue = new EspOutbound(
    provider,
    {
      spi: childB.spiOut,
      suite: childB.suite,
      keys: { encryption: childB.keys.encrOut, integrity: childB.keys.integOut },
    },
    { firstSequence: 100 },
  );
  a.backend.receiveEsp(rogue.seal(udpPacket('10.66.0.1', '10.1.0.1', 1, 2), 4), A, B);
  t.equal(a.drops('selector'), 1);
  a.backend.receiveEsp(rogue.seal(Uint8Array.of(0x45, 1, 2, 3), 4), A, B);
  t.equal(a.drops('bad-packet'), 2, 'a decrypted non-packet');
  a.backend.receiveEsp(rogue.seal(udpPacket('2001:db8::1', '2001:db8::2', 1, 2), 4), A, B);
  t.equal(a.drops('next-header'), 1, 'IPv6 inside next header 4');
  a.backend.receiveEsp(rogue.seal(new Uint8Array(0), 59), A, B);
  t.equal(a.drops('dummy'), 1);
  t.equal(a.written.length, 1, 'none of it reached the TUN device');

  // Logging: one line per cause so far, dummy never.
  const lines = (cause: RegExp) => a.logs.filter((l) => cause.test(l.message));
  t.equal(lines(/integrity/).length, 1);
  t.equal(lines(/dummy/).length, 0);
  t.match(lines(/unknown SPI/)[0]!.message, /SPI 7f/);
  t.equal(lines(/matching no child SA/)[0]!.level, 'debug');
  t.equal(lines(/integrity/)[0]!.level, 'warn');
  // The window has moved past `tampered` (the rogue packets were authentic): forge a new one.
  const forged = rogue.seal(udpPacket('10.2.0.1', '10.1.0.1', 1, 2), 4);
  forged[40]! ^= 1;
  for (let i = 0; i < 50; i++) a.backend.receiveEsp(forged, A, B);
  t.equal(lines(/integrity/).length, 1, '50 more within the interval: no new line');
  a.clock += 10_000;
  a.backend.receiveEsp(forged, A, B);
  const summary = lines(/integrity/);
  t.equal(summary.length, 2);
  t.match(summary[1]!.message, /dropped 51 ESP failing its integrity check in the last 10 s \(latest: SPI/);
  t.equal(a.drops('icv'), 52);
  for (let i = 0; i < 3; i++) a.backend.receiveEsp(forged, A, B);
  await a.backend.close();
  t.match(
    lines(/integrity/).at(-1)!.message,
    /dropped 3 ESP failing its integrity check in the last 1 s$/,
    'close reports what was held back',
  );
});

t.test('expire events on byte limits: soft once, hard once, then drops', async (t) => {
  const [a, b] = sides();
  const [childA, childB] = childPair({ kilobytes: 2 });
  await a.backend.install(childA);
  await b.backend.install(childB);
  const packet = () => udpPacket('10.1.0.1', '10.2.0.1', 1, 2, 1000 - 28);
  a.inject(packet());
  t.same(a.events, [], '1000 bytes: below the soft limit (0.9 x 2048)');
  a.inject(packet());
  t.same(a.events, [{ type: 'expire', child: childA.id, hard: false }], '2000 bytes: soft');
  a.inject(packet());
  t.same(a.events.at(-1), { type: 'expire', child: childA.id, hard: true }, '3000 bytes: hard');
  a.inject(packet(), packet());
  t.equal(a.events.length, 2, 'each reported once');
  t.equal(a.drops('expired'), 2);
  await tick();
  t.equal(b.written.length, 3);
  // The inbound side counts too: B's inbound reached the same bytes.
  t.same(
    b.events.map((e) => e.type === 'expire' && e.hard),
    [false, true],
  );
});

t.test('packet limits and the sequence number soft limit', async (t) => {
  const limits = (): TrafficLimits => ({ packets: { soft: 3, hard: 5 } });
  const [a, b] = sides({ limits });
  const [childA, childB] = childPair();
  await a.backend.install(childA);
  await b.backend.install(childB);
  for (let i = 0; i < 6; i++) a.inject(udpPacket('10.1.0.1', '10.2.0.1', 1, 2));
  t.same(
    a.events.map((e) => e.type === 'expire' && e.hard),
    [false, true],
  );
  t.equal(a.drops('expired'), 1);

  const [c, d] = sides({ sequenceSoftLimit: 3 });
  const [childC, childD] = childPair();
  await c.backend.install(childC);
  await d.backend.install(childD);
  for (let i = 0; i < 3; i++) c.inject(udpPacket('10.1.0.1', '10.2.0.1', 1, 2));
  t.same(c.events, [{ type: 'expire', child: childC.id, hard: false }], 'soft when sequence 4 is next');
});

t.test('a moved NAT mapping is reported once and ESP follows it', async (t) => {
  const [a, b] = sides();
  const [childA, childB] = childPair();
  await a.backend.install(childA);
  await b.backend.install(childB);
  b.inject(udpPacket('10.2.0.1', '10.1.0.1', 1, 2));
  t.same(a.events, [], 'from the negotiated endpoint: nothing');
  const moved = { address: B.address, port: 61000 };
  b.nat = () => moved;
  b.inject(udpPacket('10.2.0.1', '10.1.0.1', 1, 2), udpPacket('10.2.0.1', '10.1.0.1', 1, 2));
  t.same(a.events, [{ type: 'mapping', child: childA.id, remote: moved }], 'once');
  a.inject(udpPacket('10.1.0.1', '10.2.0.1', 1, 2));
  t.same(a.sent.at(-1)!.to, moved, 'ESP goes to the new mapping');
  // A forged packet from yet another port moves nothing: it fails the ICV first.
  const forged = Uint8Array.from(b.sent.at(-1)!.data);
  forged[20]! ^= 1;
  a.backend.receiveEsp(forged, A, { address: B.address, port: 1 });
  t.equal(a.events.length, 1);
});

t.test('transport mode, behind a NAT: rebuilt packets carry valid checksums', async (t) => {
  const [a, b] = sides();
  const natA: Endpoint = { address: '198.51.100.7', port: 1024 };
  // A is behind a NAT: B sees it as 198.51.100.7:1024; B's selectors name that address.
  const [childA, childB] = childPair({
    mode: 'transport',
    aTs: ['192.0.2.1/32'],
    bTs: ['192.0.2.2/32'],
    aSeenByB: natA,
  });
  await a.backend.install({ ...childA, localTs: [parseTrafficSelector('192.0.2.1')] });
  await b.backend.install({ ...childB, remoteTs: [parseTrafficSelector('198.51.100.7')] });
  a.nat = () => natA;
  t.same(a.routes, ['192.0.2.2/32']);
  t.notOk(
    a.routeLog.some((l) => l.startsWith('exclude')),
    'transport mode: no exclude route',
  );

  const sent = udpPacket('192.0.2.1', '192.0.2.2', 4000, 53, 333);
  a.inject(sent);
  await tick();
  t.equal(b.written.length, 1);
  const got = b.written[0]!;
  const flow = parsePacket(got)!;
  t.equal(flow.src.join('.'), '198.51.100.7', 'source: the NAT address B sees');
  t.equal(flow.dst.join('.'), '192.0.2.2');
  t.equal(flow.protocol, 17);
  t.equal(internetChecksum(got, 0, 20), 0, 'IPv4 header checksum');
  const pseudo = Buffer.alloc(12);
  pseudo.set(flow.src, 0);
  pseudo.set(flow.dst, 4);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(got.length - 20, 10);
  t.equal(internetChecksum(got, 20, got.length, 0x10000 - 1 - internetChecksum(pseudo)), 0, 'UDP checksum');
  t.equal(toHex(got.subarray(28)), toHex(sent.subarray(28)), 'data intact');
  t.equal(Buffer.from(got).readUInt16BE(20), 4000);

  b.inject(udpPacket('192.0.2.2', '198.51.100.7', 53, 4000, 10));
  await tick();
  t.equal(a.written.length, 1, 'and back');
  t.equal(parsePacket(a.written[0]!)!.src.join('.'), '192.0.2.2');
  // An IPv4 fragment cannot go in transport mode.
  const fragment = Buffer.from(udpPacket('192.0.2.1', '192.0.2.2', 4000, 53, 10));
  fragment[6] = 0x20;
  a.inject(fragment);
  t.equal(a.drops('bad-packet'), 1);
});

t.test('tunnels covering the peer address ask for an exclude route', async (t) => {
  const [a] = sides();
  const [childA] = childPair({ aTs: ['0.0.0.0/0'], bTs: ['0.0.0.0/0'] });
  await a.backend.install(childA);
  t.same(a.routeLog, ['add 0.0.0.0/0', `exclude ${B.address}`]);
  await a.backend.remove(childA);
  t.same(a.routeLog.slice(2).sort(), ['remove 0.0.0.0/0', `unexclude ${B.address}`]);
});

t.test('traps: ACQUIRE once per interval, then the child SA takes over', async (t) => {
  const [a, b] = sides();
  await a.backend.trap({
    connection: 'net-net',
    mode: 'tunnel',
    local: A.address,
    remote: B.address,
    localTs: [parseTrafficSelector('10.1.0.0/16')],
    remoteTs: [parseTrafficSelector('10.2.0.0/16')],
  });
  t.same(a.routes, ['10.2.0.0/16']);
  a.inject(udpPacket('10.1.0.1', '10.2.0.1', 1, 2), udpPacket('10.1.0.1', '10.2.0.1', 1, 2));
  t.same(a.events, [{ type: 'acquire', connection: 'net-net' }]);
  t.equal(a.drops('acquire'), 2);
  a.clock += 10_000;
  a.inject(udpPacket('10.1.0.1', '10.2.0.1', 1, 2));
  t.equal(a.events.length, 2, 'again after the interval');
  const [childA, childB] = childPair();
  await a.backend.install(childA);
  await b.backend.install(childB);
  a.inject(udpPacket('10.1.0.1', '10.2.0.1', 1, 2));
  await tick();
  t.equal(b.written.length, 1, 'the SA wins over the trap');
  await a.backend.remove(childA);
  t.same(a.routes, ['10.2.0.0/16'], 'the trap still needs the route');
  await a.backend.untrap('net-net');
  t.same(a.routes, []);
});

t.test('install refuses what it cannot carry; a failed route rolls back', async (t) => {
  const [a] = sides();
  const [childA] = childPair();
  await t.rejects(a.backend.install({ ...childA, encapsulation: false }), /without UDP encapsulation/);
  a.failRoute = '10.2.0.0/16';
  await t.rejects(a.backend.install(childA), /no route/);
  t.same(a.backend.installed(), []);
  a.failRoute = undefined;
  await a.backend.install(childA);
  t.same(a.routes, ['10.2.0.0/16'], 'a later install adds the route afresh');
  const [other] = childPair({ spis: [childA.spiIn, 0x9999] });
  await t.rejects(a.backend.install({ ...other, id: 77 }), /already used/);
  await a.backend.close();
  await t.rejects(a.backend.install(childA), /closed/);
});

t.test('allocateSpi: unique, never below 256', async (t) => {
  const [a] = sides();
  const spis = new Set<number>();
  for (let i = 0; i < 2000; i++) spis.add(a.backend.allocateSpi(A.address, B.address));
  t.equal(spis.size, 2000);
  t.ok([...spis].every((spi) => spi >= 256 && spi <= 0xffffffff));
});

t.test('removed while its routes were being added: nothing stays behind', async (t) => {
  const [a] = sides();
  const [childA] = childPair();
  const installing = a.backend.install(childA);
  await a.backend.remove(childA);
  await installing;
  t.same(a.backend.installed(), []);
  t.same(a.routes, [], 'the route added for it is gone again');
  a.inject(udpPacket('10.1.0.1', '10.2.0.1', 1, 2));
  t.equal(a.drops('no-policy'), 1);
});

t.test('a racing remove releases each shared route reference exactly once', async (t) => {
  const [a] = sides();
  const [y] = childPair({ id: 1, bTs: ['10.3.0.0/16'] });
  await a.backend.install(y);
  const [x] = childPair({ id: 2, bTs: ['10.2.0.0/16', '10.3.0.0/16'] });
  const installing = a.backend.install(x);
  await a.backend.remove(x);
  await installing;
  t.same(a.routes, ['10.3.0.0/16'], "y's route stays");
  await a.backend.remove(y);
  t.same(a.routes, []);
  t.same(a.routeLog, ['add 10.3.0.0/16', 'add 10.2.0.0/16', 'remove 10.2.0.0/16', 'remove 10.3.0.0/16']);
});
