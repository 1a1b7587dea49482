import t from 'tap';
import { parseTrafficSelector } from '../../src/core/traffic-selector.js';
import {
  CriticalPayloadError,
  decodeMessage,
  encodeMessage,
  type HeaderFields,
  type Payload,
} from '../../src/ikev2/codec.js';
import { ExchangeType, NotifyType, PayloadType } from '../../src/ikev2/constants.js';
import { u16be } from '../../src/wire/bytes.js';
import { DecodeError } from '../../src/wire/errors.js';

/**
 * The IKEv2 codec (RFC 7296 section 3): every payload kind survives a round trip byte for byte;
 * unknown payloads are skipped unless critical, which is a CriticalPayloadError naming the type;
 * every malformed message is a DecodeError carrying INVALID_SYNTAX (or the notify RFC 7296 names).
 */

const header: HeaderFields = {
  spiI: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]),
  spiR: new Uint8Array(8),
  exchangeType: ExchangeType.IKE_SA_INIT,
  flags: 0x08,
  messageId: 0,
};

const bytes = (length: number, first = 1) => Uint8Array.from({ length }, (_, i) => (first + i) & 0xff);

const EVERY_KIND: Payload[] = [
  {
    kind: 'sa',
    proposals: [
      {
        number: 1,
        protocolId: 1,
        spi: new Uint8Array(0),
        transforms: [
          { type: 1, id: 12, attributes: [{ type: 14, value: 256 }] },
          { type: 2, id: 5, attributes: [] },
          { type: 3, id: 12, attributes: [] },
          { type: 4, id: 14, attributes: [] },
        ],
      },
      {
        number: 2,
        protocolId: 1,
        spi: new Uint8Array(0),
        transforms: [{ type: 1, id: 20, attributes: [{ type: 14, value: 128 }] }],
      },
    ],
  },
  { kind: 'ke', group: 14, data: bytes(256) },
  { kind: 'nonce', data: bytes(32) },
  { kind: 'id', role: 'i', idType: 2, data: new TextEncoder().encode('gw.example.net') },
  { kind: 'id', role: 'r', idType: 1, data: Uint8Array.of(192, 0, 2, 1) },
  { kind: 'auth', method: 2, data: bytes(32) },
  { kind: 'notify', protocolId: 3, spi: bytes(4), notifyType: NotifyType.REKEY_SA, data: new Uint8Array(0) },
  { kind: 'notify', protocolId: 0, spi: new Uint8Array(0), notifyType: NotifyType.COOKIE, data: bytes(20) },
  { kind: 'delete', protocolId: 3, spiSize: 4, spis: [bytes(4), bytes(4, 9)] },
  { kind: 'delete', protocolId: 1, spiSize: 0, spis: [] },
  { kind: 'vendor', data: bytes(16) },
  {
    kind: 'ts',
    role: 'i',
    selectors: [parseTrafficSelector('198.51.100.0/24'), parseTrafficSelector('192.0.2.1', 17, 1701)],
  },
  { kind: 'ts', role: 'r', selectors: [parseTrafficSelector('2001:db8::/32', 6, 443)] },
  { kind: 'cp', cfgType: 1, attributes: [{ type: 1, value: new Uint8Array(0) }] },
  { kind: 'opaque', type: 37, critical: false, data: bytes(10) },
];

t.test('every payload kind: decode(encode(x)) is x, and encode(decode(bytes)) is bytes', async (t) => {
  const datagram = encodeMessage(header, EVERY_KIND);
  const decoded = decodeMessage(datagram);
  t.same(decoded.payloads, EVERY_KIND, 'the same payloads');
  t.match(decoded.header, { ...header, majorVersion: 2, length: datagram.length });
  t.same(encodeMessage(header, decoded.payloads), datagram, 'the same bytes again');
});

/** A message whose payloads are `body`, a raw chain beginning with a payload of type `first`. */
function raw(first: number, body: Uint8Array): Uint8Array {
  const datagram = new Uint8Array(28 + body.length);
  datagram.set(header.spiI, 0);
  datagram[16] = first;
  datagram[17] = 0x20;
  datagram[18] = header.exchangeType;
  datagram[19] = header.flags;
  new DataView(datagram.buffer).setUint32(24, datagram.length);
  datagram.set(body, 28);
  return datagram;
}

/** A generic payload header (next, critical bit, length) and a body. */
function payload(next: number, critical: boolean, body: Uint8Array): Uint8Array {
  return Uint8Array.from([next, critical ? 0x80 : 0, ...u16be(4 + body.length), ...body]);
}

t.test('an unknown payload is skipped when not critical, refused when critical', async (t) => {
  const nonce = payload(0, false, bytes(16));
  const skipped = decodeMessage(
    raw(200, Uint8Array.from([...payload(PayloadType.NONCE, false, bytes(6)), ...nonce])),
  );
  t.match(skipped.payloads, [{ kind: 'opaque', type: 200, critical: false }, { kind: 'nonce' }]);
  const critical = raw(200, Uint8Array.from([...payload(PayloadType.NONCE, true, bytes(6)), ...nonce]));
  t.throws(() => decodeMessage(critical), CriticalPayloadError);
  try {
    decodeMessage(critical);
  } catch (error) {
    t.equal((error as CriticalPayloadError).payloadType, 200, 'names the type');
    t.equal((error as DecodeError).notify, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD);
  }
  // A known payload with the critical bit set is just that payload (section 2.5).
  t.match(decodeMessage(raw(PayloadType.NONCE, payload(0, true, bytes(16)))).payloads, [{ kind: 'nonce' }]);
});

t.test('malformed messages: a DecodeError with the notify to answer (INVALID_SYNTAX, mostly)', async (t) => {
  const good = encodeMessage(header, EVERY_KIND);
  const cases: [string, Uint8Array, number?][] = [
    ['shorter than a header', good.subarray(0, 20)],
    ['the header length is not the datagram length', good.subarray(0, good.length - 1)],
    [
      'a payload longer than what is left',
      raw(PayloadType.NONCE, payload(0, false, bytes(16)).subarray(0, 10)),
    ],
    ['a payload length below 4', raw(PayloadType.NONCE, Uint8Array.of(0, 0, 0, 2, 1, 2))],
    ['a nonce of 15 bytes', raw(PayloadType.NONCE, payload(0, false, bytes(15)))],
    ['a nonce of 257 bytes', raw(PayloadType.NONCE, payload(0, false, bytes(257)))],
    [
      'a Delete whose SPIs do not fill it',
      raw(PayloadType.DELETE, payload(0, false, Uint8Array.of(3, 4, 0, 2, 1, 2, 3, 4))),
    ],
    [
      'a proposal whose "last" byte is neither 0 nor 2',
      raw(PayloadType.SA, payload(0, false, Uint8Array.of(7, 0, 0, 8, 1, 1, 0, 0))),
    ],
    [
      'a transform count the proposal does not hold',
      raw(PayloadType.SA, payload(0, false, Uint8Array.of(0, 0, 0, 8, 1, 1, 0, 2))),
    ],
    [
      'a traffic selector of an unknown type (TS_UNACCEPTABLE: section 3.13.1)',
      raw(PayloadType.TSi, payload(0, false, Uint8Array.of(1, 0, 0, 0, 99, 0, 0, 8))),
      NotifyType.TS_UNACCEPTABLE,
    ],
  ];
  const major = good.slice();
  major[17] = 0x30;
  cases.push(['IKE major version 3', major, NotifyType.INVALID_MAJOR_VERSION]);
  for (const [what, datagram, notify = NotifyType.INVALID_SYNTAX] of cases) {
    try {
      decodeMessage(datagram);
      t.fail(`${what}: decoded`);
    } catch (error) {
      t.ok(error instanceof DecodeError, `${what}: DecodeError`);
      t.equal((error as DecodeError).notify, notify, `${what}: notify ${notify}`);
    }
  }
});

t.test('random bytes never escape as anything but a DecodeError', async (t) => {
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const good = encodeMessage(header, EVERY_KIND);
  let errors = 0;
  for (let i = 0; i < 3000; i++) {
    const datagram = good.slice();
    for (let flips = 1 + (i % 8); flips > 0; flips--)
      datagram[28 + ((random() * 7) % (good.length - 28))]! ^= 1 << (random() % 8);
    try {
      decodeMessage(datagram);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      errors++;
    }
  }
  t.ok(errors > 0, `${errors} of 3000 damaged messages refused, the rest decoded, nothing else thrown`);
});
