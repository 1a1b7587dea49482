import t, { type Test } from 'tap';
import {
  attributeNumber,
  decodeHeader,
  decodeMessage,
  decodePayloads,
  encodeMessage,
  encodePayloads,
  type Payload,
} from '../../src/ikev1/codec.js';
import { ExchangeType, NotifyType, PayloadType } from '../../src/ikev1/constants.js';
import { DecodeError } from '../../src/wire/errors.js';
import { mainModeSa } from '../helpers/isakmp-fixtures.js';
import { fromHex, toHex } from '../../src/wire/bytes.js';

/** Asserts that `call` throws a DecodeError answering with `notify`. */
function throwsNotify(t: Test, call: () => unknown, notify: number, message = `notify ${notify}`): void {
  try {
    call();
    t.fail(`${message}: no error`);
  } catch (error) {
    t.ok(error instanceof DecodeError, `${message}: a DecodeError`);
    t.equal((error as DecodeError).notify, notify, message);
  }
}

const CKY_I = fromHex('0102030405060708');
const CKY_R = new Uint8Array(8);
const fields = { CKY_I, CKY_R, exchangeType: ExchangeType.IDENTITY_PROTECTION, flags: 0, messageId: 0 };

const sa = mainModeSa;
const message1: Payload[] = [
  sa,
  { kind: 'vendor', data: fromHex('4a131c81070358455c5728f20e95452f') },
  { kind: 'vendor', data: fromHex('afcad71368a1f1c96b8696fc77570100') },
];

t.test('a main mode message round-trips exactly', async (t) => {
  const bytes = encodeMessage(fields, message1);
  const decoded = decodeMessage(bytes);
  t.equal(decoded.header.length, bytes.length);
  t.equal(decoded.header.nextPayload, PayloadType.SA);
  t.equal(decoded.header.majorVersion, 1);
  t.same(decoded.payloads, message1);
  t.equal(toHex(encodeMessage(fields, decoded.payloads!)), toHex(bytes), 'encode(decode(x)) == x');
  const [decodedSa] = decoded.payloads!;
  const lifetime =
    decodedSa!.kind === 'sa' ? decodedSa.proposals[0]!.transforms[1]!.attributes[5]! : undefined;
  t.equal(attributeNumber(lifetime!), 86400, 'a 4-byte TLV life duration reads back as a number');
});

t.test('every payload kind round-trips', async (t) => {
  const all: Payload[] = [
    sa,
    { kind: 'ke', data: new Uint8Array(128).fill(7) },
    { kind: 'nonce', data: new Uint8Array(32).fill(9) },
    { kind: 'id', idType: 1, protocolId: 17, port: 500, data: fromHex('c0000201') },
    { kind: 'id', idType: 4, protocolId: 0, port: 0, data: fromHex('c6336400ffffff00') },
    { kind: 'hash', data: new Uint8Array(20).fill(1) },
    {
      kind: 'notify',
      doi: 1,
      protocolId: 3,
      notifyType: NotifyType.RESPONDER_LIFETIME,
      spi: fromHex('0a0b0c0d'),
      data: fromHex('80010001'),
    },
    {
      kind: 'notify',
      doi: 1,
      protocolId: 1,
      notifyType: NotifyType.R_U_THERE,
      spi: new Uint8Array(16),
      data: fromHex('00000001'),
    },
    { kind: 'delete', doi: 1, protocolId: 3, spiSize: 4, spis: [fromHex('01020304'), fromHex('05060708')] },
    { kind: 'nat-d', draft: false, data: new Uint8Array(20).fill(2) },
    { kind: 'nat-d', draft: true, data: new Uint8Array(20).fill(3) },
    { kind: 'nat-oa', draft: false, idType: 1, address: fromHex('c0000202') },
    { kind: 'nat-oa', draft: true, idType: 5, address: new Uint8Array(16).fill(1) },
    { kind: 'opaque', type: PayloadType.CERT, data: fromHex('04aabb') },
    { kind: 'opaque', type: 77, data: fromHex('ff') },
  ];
  const body = encodePayloads(all);
  t.same(decodePayloads(body, PayloadType.SA), all);
  t.equal(toHex(encodePayloads(decodePayloads(body, PayloadType.SA))), toHex(body));
});

t.test(
  'an encrypted body is handed back undecoded; padding after the chain is allowed there only',
  async (t) => {
    const body = encodePayloads([{ kind: 'hash', data: new Uint8Array(20) }]);
    const padded = new Uint8Array(body.length + 8);
    padded.set(body);
    const decoded = decodeMessage(encodeMessageWithBody(padded));
    t.equal(decoded.payloads, undefined);
    t.equal(decoded.body.length, padded.length);
    t.same(decodePayloads(padded, PayloadType.HASH, { allowTrailing: true }), [
      { kind: 'hash', data: new Uint8Array(20) },
    ]);
    throwsNotify(t, () => decodePayloads(padded, PayloadType.HASH), NotifyType.UNEQUAL_PAYLOAD_LENGTHS);
  },
);

function encodeMessageWithBody(body: Uint8Array): Uint8Array {
  const plain = encodeMessage({ ...fields, flags: 1 }, []);
  const out = new Uint8Array(plain.length + body.length);
  out.set(plain);
  out.set(body, plain.length);
  out[16] = PayloadType.HASH;
  new DataView(out.buffer).setUint32(24, out.length);
  return out;
}

t.test('header errors map to the notifies RFC 2408 prescribes', async (t) => {
  const good = encodeMessage(fields, message1);
  const mutate = (at: number, value: number) => {
    const copy = Uint8Array.from(good);
    copy[at] = value;
    return copy;
  };
  throwsNotify(t, () => decodeHeader(good.subarray(0, 27)), NotifyType.PAYLOAD_MALFORMED);
  throwsNotify(t, () => decodeHeader(mutate(17, 0x20)), NotifyType.INVALID_MAJOR_VERSION);
  throwsNotify(t, () => decodeHeader(mutate(17, 0x11)), NotifyType.INVALID_MINOR_VERSION);
  throwsNotify(t, () => decodeHeader(mutate(19, 0x80)), NotifyType.INVALID_FLAGS);
  throwsNotify(t, () => decodeHeader(mutate(27, good[27]! + 1)), NotifyType.UNEQUAL_PAYLOAD_LENGTHS);
});

t.test('lying lengths, mis-nesting and truncation are DecodeErrors with the right notify', async (t) => {
  const body = encodePayloads(message1);
  const at = (offset: number, value: number) => {
    const copy = Uint8Array.from(body);
    copy[offset] = value;
    return copy;
  };
  // Generic header of the SA: next(0) reserved(1) length(2..3).
  throwsNotify(
    t,
    () => decodePayloads(at(3, 0xff), PayloadType.SA),
    NotifyType.PAYLOAD_MALFORMED,
    'too long',
  );
  throwsNotify(
    t,
    () => decodePayloads(at(2, 0).fill(0, 3, 4).fill(2, 3, 4), PayloadType.SA),
    NotifyType.PAYLOAD_MALFORMED,
  );
  // The proposal's generic header starts after DOI and situation (offset 12); make it claim type T.
  throwsNotify(
    t,
    () => decodePayloads(at(12, PayloadType.T), PayloadType.SA),
    NotifyType.BAD_PROPOSAL_SYNTAX,
  );
  // Transform count (offset 12 + 7) one too many.
  throwsNotify(t, () => decodePayloads(at(19, 3), PayloadType.SA), NotifyType.BAD_PROPOSAL_SYNTAX);
  throwsNotify(
    t,
    () => decodePayloads(body.subarray(0, body.length - 3), PayloadType.SA),
    NotifyType.PAYLOAD_MALFORMED,
    'truncated',
  );
  const del = encodePayloads([
    { kind: 'delete', doi: 1, protocolId: 3, spiSize: 4, spis: [new Uint8Array(4)] },
  ]);
  del[11] = 2; // claims two SPIs
  throwsNotify(t, () => decodePayloads(del, PayloadType.D), NotifyType.PAYLOAD_MALFORMED, 'delete SPI count');
  const oa = encodePayloads([{ kind: 'nat-oa', draft: false, idType: 1, address: new Uint8Array(5) }]);
  throwsNotify(
    t,
    () => decodePayloads(oa, PayloadType.NAT_OA),
    NotifyType.PAYLOAD_MALFORMED,
    'NAT-OA address length',
  );
});

t.test('random corruption only ever produces DecodeErrors (deterministic fuzz)', async (t) => {
  const good = encodeMessage(fields, [
    ...message1,
    { kind: 'nat-d', draft: false, data: new Uint8Array(20) },
  ]);
  let seed = 0x2545f491;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  let decodeErrors = 0;
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    const copy = Uint8Array.from(good.subarray(0, 28 + Math.floor(random() * (good.length - 27))));
    for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) {
      copy[Math.floor(random() * copy.length)] = Math.floor(random() * 256);
    }
    new DataView(copy.buffer).setUint32(24, copy.length); // get past the length check most of the time
    copy[17] = 0x10;
    try {
      decodeMessage(copy);
      accepted++;
    } catch (error) {
      if (!(error instanceof DecodeError)) {
        t.fail(`non-DecodeError on input ${toHex(copy)}: ${String(error)}`);
        return;
      }
      decodeErrors++;
    }
  }
  t.equal(decodeErrors + accepted, 5000);
  t.ok(decodeErrors > 1000, `most corruptions are caught (${decodeErrors} errors, ${accepted} accepted)`);
});

t.test('error offsets point into the datagram, also inside nested payloads', async (t) => {
  const bytes = encodeMessage(fields, message1);
  // Header 28, SA header and DOI/situation 12, proposal 8, transform 1 (8 + six TVs + one 8-byte
  // TLV) 40: transform 2 starts at byte 88, its first attribute at 96. Make that TV a TLV whose
  // length runs past the transform.
  const firstAttribute = 28 + 12 + 8 + 40 + 8;
  const copy = Uint8Array.from(bytes);
  t.equal(copy[firstAttribute], 0x80, 'a TV attribute is where the layout says');
  copy[firstAttribute] = 0x00; // AF bit cleared: TLV
  copy[firstAttribute + 2] = 0x7f; // its length becomes 0x7fxx
  try {
    decodeMessage(copy);
    t.fail('a lying attribute length is accepted');
  } catch (error) {
    t.ok(error instanceof DecodeError);
    const { offset, notify } = error as DecodeError;
    t.equal(notify, NotifyType.PAYLOAD_MALFORMED);
    t.equal(offset, firstAttribute + 4, 'the offset of the attribute value in the datagram');
  }
});
