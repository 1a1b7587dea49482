import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { encodeMessage, type Payload } from '../src/ikev1/codec.js';
import { ExchangeType, NotifyType } from '../src/ikev1/constants.js';
import { fromHex } from '../src/wire/bytes.js';
import { mainModeSa } from '../test/helpers/isakmp-fixtures.js';
import { isakmpSummary, tsharkProblems } from './lib/capture.js';
import { pcapFile, type UdpDatagram } from '../test/helpers/pcap.js';

/**
 * Wire correctness checked by someone else's code: every ISAKMP payload kind we encode is
 * dissected by tshark without malformed packets or expert warnings, and tshark reads back the
 * fields we meant.
 */

const CKY_I = fromHex('1122334455667788');
const CKY_R = fromHex('99aabbccddeeff00');

const sa = mainModeSa;

const messages: Payload[][] = [
  [sa, { kind: 'vendor', data: fromHex('4a131c81070358455c5728f20e95452f') }],
  [
    { kind: 'ke', data: new Uint8Array(128).fill(0x42) },
    { kind: 'nonce', data: new Uint8Array(32).fill(0x17) },
    { kind: 'nat-d', draft: false, data: new Uint8Array(20).fill(1) },
    { kind: 'nat-d', draft: false, data: new Uint8Array(20).fill(2) },
  ],
  [
    { kind: 'id', idType: 1, protocolId: 17, port: 500, data: fromHex('c0000201') },
    { kind: 'hash', data: new Uint8Array(20).fill(3) },
  ],
  [
    { kind: 'id', idType: 4, protocolId: 0, port: 0, data: fromHex('c6336400ffffff00') },
    { kind: 'nat-oa', draft: false, idType: 1, address: fromHex('c0000202') },
  ],
  [
    { kind: 'hash', data: new Uint8Array(20).fill(4) },
    {
      kind: 'notify',
      doi: 1,
      protocolId: 1,
      notifyType: NotifyType.R_U_THERE,
      spi: new Uint8Array(16),
      data: fromHex('00000001'),
    },
  ],
  [
    { kind: 'hash', data: new Uint8Array(20).fill(5) },
    { kind: 'delete', doi: 1, protocolId: 3, spiSize: 4, spis: [fromHex('c0ffee01'), fromHex('c0ffee02')] },
  ],
];

t.test('tshark dissects every payload kind cleanly', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-dissect-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const datagrams: UdpDatagram[] = messages.map((payloads, i) => ({
    source: '192.0.2.1',
    destination: '192.0.2.2',
    sourcePort: 500,
    destinationPort: 500,
    payload: encodeMessage(
      {
        CKY_I,
        CKY_R: i === 0 ? new Uint8Array(8) : CKY_R,
        exchangeType: i < 3 ? ExchangeType.IDENTITY_PROTECTION : ExchangeType.INFORMATIONAL,
        flags: 0,
        messageId: i < 3 ? 0 : 0x01020304,
      },
      payloads,
    ),
  }));
  const pcap = join(dir, 'isakmp.pcap');
  writeFileSync(pcap, pcapFile(datagrams));

  const problems = execFileSync(
    'tshark',
    [
      '-r',
      pcap,
      '-Y',
      '_ws.malformed || _ws.expert.severity >= "Warning"',
      '-T',
      'fields',
      '-e',
      'frame.number',
    ],
    { encoding: 'utf8' },
  ).trim();
  t.equal(problems, '', 'no malformed frames, no expert warnings or errors');

  const fields = execFileSync(
    'tshark',
    [
      '-r',
      pcap,
      '-T',
      'fields',
      '-E',
      'separator=|',
      '-e',
      'isakmp.exchangetype',
      '-e',
      'isakmp.length',
      '-e',
      'isakmp.typepayload',
    ],
    { encoding: 'utf8' },
  )
    .trim()
    .split('\n');
  t.equal(fields.length, messages.length, 'one ISAKMP message per frame');
  fields.forEach((line, i) => {
    const [exchange, length, types] = line.split('|');
    t.equal(Number(exchange), i < 3 ? 2 : 5, `frame ${i + 1} exchange type`);
    t.equal(Number(length), datagrams[i]!.payload.length, `frame ${i + 1} length`);
    t.ok(types && types.split(',').length >= messages[i]!.length, `frame ${i + 1} payloads: ${types}`);
  });
});

t.test(
  'IKE through a NAT that mapped port 500 to 53 and 4500 to 1194 is still dissected as IKE',
  async (t) => {
    // A masquerading router maps 500 to a random port of 1-511; tshark tries the lower port's
    // dissector first, so without natDecodeAs main mode from port 53 is DNS and seems missing.
    const dir = mkdtempSync(join(tmpdir(), 'ike-node-dissect-nat-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const message = (payloads: Payload[]) =>
      encodeMessage(
        {
          CKY_I,
          CKY_R: new Uint8Array(8),
          exchangeType: ExchangeType.IDENTITY_PROTECTION,
          flags: 0,
          messageId: 0,
        },
        payloads,
      );
    const nonEspMarker = (data: Uint8Array) => Uint8Array.from([0, 0, 0, 0, ...data]);
    const pcap = join(dir, 'nat.pcap');
    writeFileSync(
      pcap,
      pcapFile([
        {
          source: '192.0.2.1',
          destination: '192.0.2.2',
          sourcePort: 53,
          destinationPort: 500,
          payload: message(messages[0]!),
        },
        {
          source: '192.0.2.2',
          destination: '192.0.2.1',
          sourcePort: 500,
          destinationPort: 53,
          payload: message(messages[0]!),
        },
        {
          source: '192.0.2.1',
          destination: '192.0.2.2',
          sourcePort: 1194,
          destinationPort: 4500,
          payload: nonEspMarker(message(messages[2]!)),
        },
      ]),
    );
    const plain = await isakmpSummary(pcap, { natDecodeAs: false });
    t.same(
      plain.map((f) => f.frame),
      [],
      'without it tshark finds none of the three: DNS and OpenVPN instead',
    );
    const frames = await isakmpSummary(pcap);
    t.same(
      frames.map((f) => [f.srcPort, f.dstPort, f.exchange]),
      [
        [53, 500, 'ID_PROT'],
        [500, 53, 'ID_PROT'],
        [1194, 4500, 'ID_PROT'],
      ],
      'with it, all three are main mode',
    );
    t.same(await tsharkProblems(pcap), [], 'and none is malformed');
  },
);
