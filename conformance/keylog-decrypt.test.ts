import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { ChildSa } from '../src/core/sa.js';
import { algorithmsOf, createCryptoProvider, Encryption, Integrity, sealKeys } from '../src/crypto/index.js';
import { KeyLog, KEY_LOG_FILES } from '../src/daemon/keylog.js';
import { concat, toHex, u32be } from '../src/wire/bytes.js';
import { pcapFile, type UdpDatagram } from '../test/helpers/pcap.js';
import { startCapture, type Capture } from './lib/capture.js';
import { startIkeNode } from './lib/ike-node.js';
import { run } from './lib/netns.js';
import {
  ends,
  type IkeNodeStatus,
  ikeNodeTunnel,
  openLab,
  swanctlTunnel,
  type TunnelSpec,
  until,
} from './lib/scenario.js';
import { startCharon, swanctlConnection } from './lib/strongswan.js';

/**
 * The debug key log (`debug.keyLog`) proven by someone else's code: tshark decrypts captured
 * exchanges using only the directory ike-node wrote, as its configuration directory
 * (WIRESHARK_CONFIG_DIR), which is how an operator would use it.
 *
 * - ike-node against ike-node: main mode messages 5 and 6, quick mode and the Deletes decrypt
 *   with either side's key log, and not without it.
 * - ike-node against strongSwan (kernel-libipsec, so IKE floats to 4500 and ESP goes in UDP): a
 *   ping from strongSwan's side crosses the wire as ESP that tshark decrypts with ike-node's
 *   esp_sa (the inbound direction: ike-node's memory backend sends no ESP of its own).
 * - Every ESP cipher and integrity algorithm we negotiate, both directions: packets built with the
 *   project's crypto from keys the key log wrote, decrypted and ICV-checked by tshark.
 */

t.setTimeout(120_000);

const PSK = 'conformance-keylog-psk-6e2d';

/** tshark with `keys` as its configuration directory; one array of fields per frame. */
async function tshark(file: string, keys: string, fields: string[], filter?: string): Promise<string[][]> {
  const { stdout } = await run(
    'tshark',
    [
      '-n',
      '-r',
      file,
      ...(filter ? ['-Y', filter] : []),
      '-T',
      'fields',
      '-E',
      'separator=\t',
      '-E',
      'aggregator=,',
      ...fields.flatMap((f) => ['-e', f]),
    ],
    { env: { ...process.env, WIRESHARK_CONFIG_DIR: keys } },
  );
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.split('\t'));
}

interface IsakmpView {
  frame: number;
  exchange: number;
  encrypted: boolean;
  /** Payload types tshark found, decrypted ones included. */
  payloads: number[];
}

async function isakmpView(file: string, keys: string): Promise<IsakmpView[]> {
  const rows = await tshark(
    file,
    keys,
    ['frame.number', 'isakmp.exchangetype', 'isakmp.flags', 'isakmp.typepayload'],
    'isakmp',
  );
  return rows.map(([frame, exchange, flags, payloads]) => ({
    frame: Number(frame),
    exchange: Number(exchange?.split(',')[0]),
    encrypted: (Number(flags?.split(',')[0]) & 1) === 1,
    payloads: (payloads ?? '').split(',').filter(Boolean).map(Number),
  }));
}

/** Malformed frames and expert warnings or errors, as conformance/lib/capture.ts counts them. */
async function problems(file: string, keys: string): Promise<string[][]> {
  return tshark(
    file,
    keys,
    ['frame.number', '_ws.expert.message'],
    '_ws.malformed || _ws.expert.severity >= "Warning"',
  );
}

const PAYLOAD = { SA: 1, KE: 4, ID: 5, HASH: 8, NONCE: 10, DELETE: 12 } as const;
const MAIN_MODE = 2;
const QUICK_MODE = 32;
const INFORMATIONAL = 5;

function checkIsakmp(t: Test, view: IsakmpView[], who: string): void {
  const main = view.filter((v) => v.exchange === MAIN_MODE && v.encrypted);
  t.equal(main.length, 2, `${who}: main mode messages 5 and 6 are encrypted`);
  for (const [i, message] of main.entries())
    t.ok(
      message.payloads.includes(PAYLOAD.ID) && message.payloads.includes(PAYLOAD.HASH),
      `${who}: message ${5 + i} decrypts to ID and HASH (${message.payloads.join(',')})`,
    );
  const quick = view.filter((v) => v.exchange === QUICK_MODE);
  t.equal(quick.length, 3, `${who}: three quick mode messages`);
  for (const message of quick.slice(0, 2))
    t.ok(
      [PAYLOAD.HASH, PAYLOAD.SA, PAYLOAD.NONCE, PAYLOAD.ID].every((p) => message.payloads.includes(p)),
      `${who}: quick mode frame ${message.frame} decrypts to HASH, SA, Nonce, IDs (${message.payloads})`,
    );
  t.same(quick[2]?.payloads, [PAYLOAD.HASH], `${who}: quick mode message 3 is HASH(3)`);
  const deletes = view.filter((v) => v.exchange === INFORMATIONAL && v.payloads.includes(PAYLOAD.DELETE));
  t.ok(deletes.length >= 2, `${who}: the Deletes (ESP and ISAKMP) decrypt`);
}

/** Lines of a key log table that are records, not comments. */
function records(keys: string, name: string): string[] {
  return readFileSync(join(keys, name), 'utf8')
    .split('\n')
    .filter((line) => line && !line.startsWith('#'));
}

t.test(
  'ike-node to ike-node: tshark decrypts main mode, quick mode and Deletes with either key log',
  async (t) => {
    const lab = await openLab(t, 'direct', 'keylog-pair');
    const { dir, topology } = lab;
    const left = ends(topology, 'left');
    const right = ends(topology, 'right');
    const spec = (side: 'left' | 'right'): TunnelSpec => ({
      dir: join(dir, side),
      ...(side === 'left' ? left : right),
      psk: PSK,
      role: side === 'left' ? 'initiator' : 'responder',
      ike: 'aes256-sha256-modp2048',
      esp: 'aes128-sha256-modp2048',
    });
    // Relative to each peers.json: DIR/left/keys and DIR/right/keys.
    const config = (side: 'left' | 'right') => ({ ...ikeNodeTunnel(spec(side)), debug: { keyLog: 'keys' } });
    const capture: Capture = await startCapture(left.ours.ns, left.ours.iface, join(dir, 'pair.pcap'));
    const responder = await startIkeNode(right.ours.ns, config('right'), { dir: join(dir, 'right') });
    const initiator = await startIkeNode(left.ours.ns, config('left'), { dir: join(dir, 'left') });
    lab.ikeNode = initiator;
    for (const node of [initiator, responder])
      await until(
        async () => (((await node.status()) as IkeNodeStatus)[0]?.status === 'Active' ? true : undefined),
        10_000,
        'both ike-nodes Active',
      );
    t.equal(await initiator.stop(), 0, 'initiator stops, sending Deletes');
    lab.ikeNode = responder;
    await until(
      async () => (((await responder.status()) as IkeNodeStatus)[0]?.status === 'Down' ? true : undefined),
      5000,
      'the responder to act on the Deletes',
    );
    await capture.stop();

    const keys = { left: join(dir, 'left', 'keys'), right: join(dir, 'right', 'keys') };
    t.equal(records(keys.left, KEY_LOG_FILES.ikev1).length, 1, 'one ISAKMP SA logged');
    t.same(
      records(keys.left, KEY_LOG_FILES.ikev1),
      records(keys.right, KEY_LOG_FILES.ikev1),
      'both sides logged the same cookie and key',
    );
    t.match(
      initiator.log(),
      /warn\s+crypto debug\.keyLog is set: IKE and ESP keys are written to .*\/left\/keys/,
    );
    const [, key] = records(keys.left, KEY_LOG_FILES.ikev1)[0]!.split(',');
    t.notOk(initiator.log().includes(key!), 'the phase 1 key is in no log line (debug level)');

    // Without the key log, nothing past message 4 is readable: the decryption below is the key log's.
    const empty = mkdtempSync(join(tmpdir(), 'ike-node-nokeys-'));
    t.teardown(() => rmSync(empty, { recursive: true, force: true }));
    const blind = await isakmpView(capture.file, empty);
    t.ok(
      blind.filter((v) => v.encrypted).every((v) => v.payloads.length === 0),
      'without keys no encrypted payload is dissected',
    );
    for (const side of ['left', 'right'] as const) {
      const view = await isakmpView(capture.file, keys[side]);
      const summary = view.map((v) => `#${v.frame} exchange ${v.exchange} payloads ${v.payloads.join(',')}`);
      t.comment(`${side}'s key log: ${summary.join('; ')}`);
      checkIsakmp(t, view, `${side}'s key log`);
      t.same(
        await problems(capture.file, keys[side]),
        [],
        `${side}'s key log: no malformed frames or expert warnings`,
      );
    }
  },
);

const STRONGSWAN_SUITES = [
  { ike: 'aes128-sha256-modp2048', esp: 'aes128-sha256-modp2048', wireshark: 'AES-CBC [RFC3602]' },
  {
    ike: 'aes256-sha256-modp2048',
    esp: 'aes256gcm16-modp2048',
    wireshark: 'AES-GCM with 16 octet ICV [RFC4106]',
  },
];

for (const suite of STRONGSWAN_SUITES) {
  t.test(`strongSwan's ESP (${suite.esp}) decrypts with ike-node's esp_sa`, async (t) => {
    const lab = await openLab(t, 'direct', 'keylog-swan');
    const { dir, topology } = lab;
    const { ours, theirs } = ends(topology, 'left');
    const charon = await startCharon(theirs.ns, { name: 'strongswan', dir: join(dir, 'strongswan') });
    lab.charon = charon;
    const capture = await startCapture(ours.ns, ours.iface, join(dir, 'swan.pcap'));
    const tunnel: TunnelSpec = {
      dir,
      ours,
      theirs,
      psk: PSK,
      role: 'initiator',
      ike: suite.ike,
      esp: suite.esp,
    };
    await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
    const ikeNode = await startIkeNode(
      ours.ns,
      { ...ikeNodeTunnel(tunnel), debug: { keyLog: 'keys' } },
      { dir },
    );
    lab.ikeNode = ikeNode;
    await until(
      async () =>
        (await charon.listSas()).find((x) => x.name === 'net' && x.children[0]?.state === 'INSTALLED'),
      10_000,
      'strongSwan to install the child SA',
    );
    const status = await until(
      async () => {
        const st = (await ikeNode.status()) as IkeNodeStatus;
        return st[0]?.status === 'Active' ? st : undefined;
      },
      5000,
      'ike-node to report Active',
    );
    const childSa = status[0]!.childSas[0]!;
    // Echo requests from strongSwan's protected address into the tunnel; nothing answers them
    // (ike-node's memory backend drops ESP), so the ping itself fails: its packets are what counts.
    await topology.right.exec(
      'ping',
      ['-c', '3', '-i', '0.2', '-W', '1', '-I', topology.rightInner, topology.leftInner],
      { allowFail: true },
    );
    await capture.stop();

    const keys = join(dir, 'keys');
    const esp = records(keys, KEY_LOG_FILES.esp);
    t.equal(esp.length, 2, 'two esp_sa records, one per direction');
    t.match(
      esp[0],
      `"IPv4","${theirs.address}","${ours.address}","0x${childSa.spiIn}","${suite.wireshark}"`,
      'inbound: from strongSwan to us under our SPI',
    );
    checkIsakmpOverNatT(t, await isakmpView(capture.file, keys));

    const fields = ['esp.spi', 'ip.src', 'ip.dst', 'icmp.type', 'esp.icv_good', 'esp.protocol'];
    const frames = await tshark(capture.file, keys, fields, 'esp');
    const inbound = frames.filter(([spi]) => Number(spi) === parseInt(childSa.spiIn, 16));
    t.ok(inbound.length >= 3, `${inbound.length} ESP frames under ike-node's inbound SPI ${childSa.spiIn}`);
    t.comment(`${fields.join(' ')}: ${inbound.map((frame) => frame.join(' ')).join(' | ')}`);
    for (const [, src, dst, icmp, good, next] of inbound) {
      t.same(
        { src, dst, icmp, good, next },
        {
          src: `${theirs.address},${topology.rightInner}`,
          dst: `${ours.address},${topology.leftInner}`,
          icmp: '8',
          good: '1',
          next: '0x04',
        },
        'decrypted: an IPv4 echo request between the protected addresses, ICV good',
      );
    }
    const blind = mkdtempSync(join(tmpdir(), 'ike-node-nokeys-'));
    t.teardown(() => rmSync(blind, { recursive: true, force: true }));
    t.equal(
      (await tshark(capture.file, blind, ['icmp.type'], 'icmp')).length,
      0,
      'without the key log no ICMP is visible',
    );
    t.same(await problems(capture.file, keys), [], 'no malformed frames or expert warnings');
  });
}

/** IKEv2 payload types (RFC 7296 3.2) and exchanges (3.1) as tshark reports them. */
const V2 = { SA: 33, KE: 34, IDI: 35, IDR: 36, AUTH: 39, NONCE: 40, DELETE: 42, TSI: 44, SK: 46 } as const;
const V2_EXCHANGE = { IKE_AUTH: 35, CREATE_CHILD_SA: 36, INFORMATIONAL: 37 } as const;

for (const ike of ['aes256-sha256-modp2048', 'aes128gcm16-prfsha256-modp2048', '3des-sha1-modp1024']) {
  t.test(`IKEv2 (${ike}): tshark decrypts IKE_AUTH, an IKE SA rekey and the Delete`, async (t) => {
    const lab = await openLab(t, 'direct', 'keylog-v2');
    const { dir, topology } = lab;
    const { ours, theirs } = ends(topology, 'left');
    const charon = await startCharon(theirs.ns, { name: 'strongswan', dir: join(dir, 'strongswan') });
    lab.charon = charon;
    const capture = await startCapture(ours.ns, ours.iface, join(dir, 'v2.pcap'), 'udp');
    const tunnel: TunnelSpec = {
      dir,
      ours,
      theirs,
      psk: PSK,
      version: 2,
      role: 'initiator',
      ike,
      esp: 'aes128gcm16',
    };
    await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
    const ikeNode = await startIkeNode(
      ours.ns,
      { ...ikeNodeTunnel(tunnel), debug: { keyLog: 'keys' } },
      { dir },
    );
    lab.ikeNode = ikeNode;
    const status = async () => ((await ikeNode.status()) as IkeNodeStatus)[0];
    const first = await until(
      async () => ((await status())?.status === 'Active' ? (await status())!.ikeSas[0] : undefined),
      10_000,
      'ike-node to report Active',
    );
    t.equal((await charon.swanctl(['--rekey', '--ike', 'net'], 10)).code, 0, 'strongSwan rekeyed the IKE SA');
    await until(
      async () => {
        const sas = (await status())?.ikeSas ?? [];
        return sas.length === 1 && sas[0]!.id !== first.id ? true : undefined;
      },
      10_000,
      'the rekeyed IKE SA alone at ike-node',
    );
    t.equal(await ikeNode.stop(), 0, 'ike-node stops, deleting the IKE SA');
    lab.ikeNode = undefined;
    await until(async () => ((await charon.listSas()).length === 0 ? true : undefined), 5000, 'the Delete');
    await capture.stop();

    const keys = join(dir, 'keys');
    const logged = records(keys, KEY_LOG_FILES.ikev2);
    t.equal(logged.length, 2, 'two IKE SAs logged: the first and the rekeyed one');
    t.match(logged[0], new RegExp(`^${first.spiI},${first.spiR},`), 'under the SPIs of the first SA');
    const [, , key] = logged[0]!.split(',');
    t.notOk(ikeNode.log().includes(key!), 'SK_ei is in no log line (debug level)');
    const rows = await tshark(capture.file, keys, ['isakmp.exchangetype', 'isakmp.typepayload'], 'isakmp');
    const view = rows.map(([exchange, payloads]) => ({
      exchange: Number(exchange?.split(',')[0]),
      payloads: (payloads ?? '').split(',').filter(Boolean).map(Number),
    }));
    t.comment(view.map((v) => `${v.exchange}: ${v.payloads.join(',')}`).join('; '));
    const auth = view.filter((v) => v.exchange === V2_EXCHANGE.IKE_AUTH);
    t.equal(auth.length, 2, 'IKE_AUTH request and response');
    t.ok(
      auth.every(
        (m) => m.payloads.includes(V2.AUTH) && m.payloads.includes(V2.TSI) && m.payloads.includes(V2.SA),
      ),
      'both decrypt to AUTH, SA and the traffic selectors',
    );
    t.ok(auth[0]!.payloads.includes(V2.IDI) && auth[1]!.payloads.includes(V2.IDR), 'IDi, then IDr');
    const rekey = view.filter((v) => v.exchange === V2_EXCHANGE.CREATE_CHILD_SA);
    t.ok(
      rekey.length === 2 && rekey.every((m) => [V2.SA, V2.NONCE, V2.KE].every((p) => m.payloads.includes(p))),
      'the IKE SA rekey decrypts to SA, Nonce and KE',
    );
    const deletes = view.filter(
      (v) => v.exchange === V2_EXCHANGE.INFORMATIONAL && v.payloads.includes(V2.DELETE),
    );
    t.ok(deletes.length >= 2, 'the Deletes decrypt: the old SA under its keys, ours under the rekeyed keys');
    const blind = mkdtempSync(join(tmpdir(), 'ike-node-nokeys-'));
    t.teardown(() => rmSync(blind, { recursive: true, force: true }));
    const unreadable = await tshark(capture.file, blind, ['isakmp.typepayload'], 'isakmp');
    t.notOk(
      unreadable.some(([payloads]) => (payloads ?? '').split(',').map(Number).includes(V2.AUTH)),
      'without the key log no AUTH payload is visible',
    );
    t.same(await problems(capture.file, keys), [], 'no malformed frames or expert warnings');
  });
}

/** With kernel-libipsec IKE floats to 4500 after message 4: tshark must still decrypt 5 and 6. */
function checkIsakmpOverNatT(t: Test, view: IsakmpView[]): void {
  const main = view.filter((v) => v.exchange === MAIN_MODE && v.encrypted);
  t.equal(main.length, 2, 'main mode 5 and 6 (on 4500)');
  t.ok(
    main.every((m) => m.payloads.includes(PAYLOAD.ID) && m.payloads.includes(PAYLOAD.HASH)),
    'decrypt to ID and HASH',
  );
  const quick = view.filter((v) => v.exchange === QUICK_MODE).slice(0, 2);
  t.ok(
    quick.length === 2 &&
      quick.every((m) => m.payloads.includes(PAYLOAD.SA) && m.payloads.includes(PAYLOAD.NONCE)),
    'quick mode decrypts to SA and Nonce',
  );
}

/** An IPv4/UDP packet to the discard port, the plaintext a tunnel would carry. */
function innerPacket(source: string, destination: string, payload: Uint8Array): Uint8Array {
  const packet = new Uint8Array(28 + payload.length);
  const view = new DataView(packet.buffer);
  packet.set([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17]);
  view.setUint16(2, packet.length);
  packet.set(source.split('.').map(Number), 12);
  packet.set(destination.split('.').map(Number), 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += view.getUint16(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  view.setUint16(10, ~sum & 0xffff);
  view.setUint16(20, 40000);
  view.setUint16(22, 9);
  view.setUint16(24, 8 + payload.length);
  packet.set(payload, 28);
  return packet;
}

const crypto = createCryptoProvider('node');

/**
 * RFC 4303 ESP in tunnel mode: SPI, sequence number, IV, the encrypted packet with its padding,
 * pad length and next header (4, IPv4), then the ICV: the HMAC over everything before it, or for
 * AEADs the tag, with SPI and sequence number as additional data (RFC 4106 section 5).
 */
function espPacket(child: ChildSa, direction: 'in' | 'out', seq: number, inner: Uint8Array): Uint8Array {
  const encryption = new Encryption(crypto, child.suite.encr);
  const spi = direction === 'in' ? child.spiIn : child.spiOut;
  const key = direction === 'in' ? child.keys.encrIn : child.keys.encrOut;
  const header = concat(u32be(spi), u32be(seq));
  const iv = crypto.randomBytes(encryption.ivLength);
  const align = encryption.blockSize;
  const padLength = (align - ((inner.length + 2) % align)) % align;
  const padding = Uint8Array.from({ length: padLength }, (_, i) => i + 1);
  const plaintext = concat(inner, padding, Uint8Array.of(padLength, 4));
  if (encryption.isAead) return concat(header, iv, encryption.encrypt(key, iv, plaintext, header));
  const ciphertext = encryption.encrypt(key, iv, plaintext);
  const integKey = direction === 'in' ? child.keys.integIn : child.keys.integOut;
  const icv = new Integrity(crypto, child.suite.integ!).compute(integKey, header, iv, ciphertext);
  return concat(header, iv, ciphertext, icv);
}

t.test('every ESP suite we negotiate, both directions, decrypts and verifies in tshark', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-keylog-esp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = new KeyLog(join(dir, 'keys'));
  log.open();
  const integrity = algorithmsOf('integ');
  // ChaCha20-Poly1305 has no IKEv1 ESP number and no ESP decryption in Wireshark 4.0.
  const ciphers = algorithmsOf('encr').filter((encr) => encr.primitive !== 'chacha20-poly1305');
  const local = { address: '192.0.2.1', port: 4500 };
  const remote = { address: '198.51.100.7', port: 4500 };
  const datagrams: UdpDatagram[] = [];
  const expected: { name: string; spi: number; src: string; payload: string; good: boolean }[] = [];
  for (const [n, encr] of ciphers.entries()) {
    const integ = encr.icvLength > 0 ? undefined : integrity[n % integrity.length]!;
    const name = integ ? `${encr.name}-${integ.name}` : encr.name;
    const material = () => crypto.randomBytes(encr.keyLength + encr.saltLength);
    const authKey = () => crypto.randomBytes(integ?.keyLength ?? 0);
    const child: ChildSa = {
      id: n + 1,
      connection: name,
      ikeSaId: 1,
      protocol: 'esp',
      mode: 'tunnel',
      encapsulation: true,
      local,
      remote,
      spiIn: 0xa0000000 + n * 2,
      spiOut: 0xb0000000 + n * 2,
      localTs: [],
      remoteTs: [],
      suite: { encr, ...(integ && { integ }) },
      keys: sealKeys('ChildSaKeys', {
        encrIn: material(),
        integIn: authKey(),
        encrOut: material(),
        integOut: authKey(),
      }),
      lifetime: { seconds: 3600 },
      installedAt: 0,
      rekeyAt: 0,
      expiresAt: 0,
    };
    log.child(child);
    for (const direction of ['in', 'out'] as const) {
      const [from, to] = direction === 'in' ? [remote, local] : [local, remote];
      const text = new TextEncoder().encode(`ike-node ${name} ${direction}`);
      const packet = (seq: number) =>
        espPacket(child, direction, seq, innerPacket('203.0.113.1', '198.51.100.1', text));
      // The second packet's ICV is damaged: tshark must say so (its check is real).
      const damaged = packet(2);
      damaged[damaged.length - 1]! ^= 0x01;
      for (const [payload, good] of [
        [packet(1), true],
        [damaged, false],
      ] as const) {
        datagrams.push({
          source: from.address,
          destination: to.address,
          sourcePort: 4500,
          destinationPort: 4500,
          payload,
        });
        expected.push({
          name: `${name} ${direction}${good ? '' : ' (damaged ICV)'}`,
          spi: direction === 'in' ? child.spiIn : child.spiOut,
          src: from.address,
          payload: toHex(text),
          good,
        });
      }
    }
  }
  const file = join(dir, 'crafted.pcap');
  writeFileSync(file, pcapFile(datagrams));
  const frames = await tshark(file, join(dir, 'keys'), [
    'esp.spi',
    'ip.src',
    'ip.dst',
    'udp.dstport',
    'data.data',
    'esp.icv_good',
    'esp.icv_bad',
  ]);
  t.equal(frames.length, expected.length, `${expected.length} frames`);
  for (const [i, want] of expected.entries()) {
    const [spi, src, dst, ports, data, good, bad] = frames[i] ?? [];
    t.equal(Number(spi), want.spi, `${want.name}: SPI`);
    t.same(
      { src, dst, ports, data },
      {
        src: `${want.src},203.0.113.1`,
        dst: `${want.src === remote.address ? local.address : remote.address},198.51.100.1`,
        ports: '4500,9',
        data: want.payload,
      },
      `${want.name}: decrypted to the inner packet`,
    );
    t.same(
      [good, bad],
      want.good ? ['1', '0'] : ['0', '1'],
      `${want.name}: ICV ${want.good ? 'good' : 'bad'}`,
    );
  }
});
