import { concat } from '../src/wire/bytes.js';
import type { Random } from './random.js';

/**
 * Mutations: byte-level ones for any format (bit flips, interesting values, truncation, garbage,
 * splices), length fields that lie (16 and 32 bits, either byte order, at aligned offsets), the
 * payload chains of IKE messages (RFC 2408 section 3.2 and RFC 7296 section 3.2 share the generic
 * payload header: next payload, flags, 16-bit length), and text for configuration formats.
 */

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x20, 0x40];
const INTERESTING_16 = [0, 1, 2, 3, 4, 7, 8, 0x7fff, 0x8000, 0xffff, 0xfff8];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0xffff];

export type ByteOrder = 'be' | 'le';

function put16(data: Uint8Array, offset: number, value: number, order: ByteOrder): void {
  if (offset + 2 > data.length) return;
  new DataView(data.buffer, data.byteOffset).setUint16(offset, value & 0xffff, order === 'le');
}

function put32(data: Uint8Array, offset: number, value: number, order: ByteOrder): void {
  if (offset + 4 > data.length) return;
  new DataView(data.buffer, data.byteOffset).setUint32(offset, value >>> 0, order === 'le');
}

/** What the byte mutations know of a format: where its length fields sit and in which order. */
export interface ByteFormat {
  readonly order: ByteOrder;
  /** Length fields are aligned to this (4 for netlink attributes, 8 for PF_KEY extensions). */
  readonly align: number;
}

/** One byte-level mutation of a copy of `input`; `others` are splice donors. */
export function mutateBytes(
  rng: Random,
  input: Uint8Array,
  others: readonly Uint8Array[],
  format: ByteFormat,
): Uint8Array {
  const data = new Uint8Array(input);
  const at = () => rng.below(Math.max(1, data.length));
  const aligned = () => rng.below(Math.max(1, Math.floor(data.length / format.align))) * format.align;
  switch (rng.below(12)) {
    case 0: {
      const n = 1 + rng.below(8);
      for (let i = 0; i < n && data.length; i++) data[at()]! ^= 1 << rng.below(8);
      return data;
    }
    case 1:
      if (data.length) data[at()] = rng.pick(INTERESTING_8);
      return data;
    case 2: {
      // A lying 16-bit length: small, huge, or off by a little from what follows.
      const offset = rng.chance(0.7) ? aligned() : at();
      const rest = data.length - offset;
      put16(
        data,
        offset,
        rng.pick([...INTERESTING_16, rest, rest + 1, rest - 1, rest >> 3, (rest >> 3) + 1]),
        format.order,
      );
      return data;
    }
    case 3: {
      const offset = rng.chance(0.7) ? aligned() : at();
      put32(
        data,
        offset,
        rng.pick([...INTERESTING_32, data.length, data.length + 1, data.length - 1]),
        format.order,
      );
      return data;
    }
    case 4:
      return data.subarray(0, at());
    case 5:
      return concat(data, rng.bytes(1 + rng.below(64)));
    case 6: {
      const from = at();
      const length = Math.min(data.length - from, 1 + rng.below(32));
      data.set(rng.bytes(length), from);
      return data;
    }
    case 7: {
      // Delete a range.
      const from = at();
      return concat(data.subarray(0, from), data.subarray(Math.min(data.length, from + 1 + rng.below(32))));
    }
    case 8: {
      // Duplicate a range in place (repeated structures, repeated attributes).
      const from = rng.chance(0.5) ? aligned() : at();
      const to = Math.min(data.length, from + format.align * (1 + rng.below(8)));
      return concat(data.subarray(0, to), data.subarray(from, to), data.subarray(to));
    }
    case 9: {
      if (others.length === 0) return data;
      const donor = rng.pick(others);
      const cut = at();
      const from = rng.below(donor.length + 1);
      return concat(data.subarray(0, cut), donor.subarray(from));
    }
    case 10: {
      const offset = at();
      put16(data, offset, rng.u32(), format.order);
      return data;
    }
    default:
      return concat(data.subarray(0, at()), rng.bytes(1 + rng.below(16)), data.subarray(at()));
  }
}

// ---------------------------------------------------------------------------------------------
// IKE payload chains

export const IKE_HEADER = 28;

interface Span {
  readonly offset: number;
  readonly length: number;
  readonly type: number;
}

/** The payloads of a chain that starts at `start` with type `first`, as far as it holds together. */
export function chainSpans(data: Uint8Array, start: number, first: number): Span[] {
  const spans: Span[] = [];
  let offset = start;
  let type = first;
  while (type !== 0 && offset + 4 <= data.length && spans.length < 64) {
    const length = (data[offset + 2]! << 8) | data[offset + 3]!;
    if (length < 4 || offset + length > data.length) break;
    spans.push({ offset, length, type });
    type = data[offset]!;
    offset += length;
  }
  return spans;
}

/** The message with `payloads` (raw, each with its generic header) chained after the header. */
function rechain(header: Uint8Array, payloads: readonly { type: number; bytes: Uint8Array }[]): Uint8Array {
  const out = concat(header.subarray(0, IKE_HEADER), ...payloads.map((p) => p.bytes));
  out[16] = payloads[0]?.type ?? 0;
  let offset = IKE_HEADER;
  for (let i = 0; i < payloads.length; i++) {
    out[offset] = payloads[i + 1]?.type ?? 0;
    offset += payloads[i]!.bytes.length;
  }
  put32(out, 24, out.length, 'be');
  return out;
}

/** Payload types worth naming in a mutated chain: both versions' registries and a few unknowns. */
const PAYLOAD_TYPES = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 20, 21, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
  44, 45, 46, 47, 48, 53, 128, 130, 131, 255,
];

/**
 * One mutation of an IKE message that knows its payload chain: reordered, duplicated, dropped or
 * spliced payloads (the header's length kept true, so the chain is what is tested), a payload's
 * length lying, a next payload naming another type, the header's fields changed.
 */
export function mutateIkeMessage(rng: Random, input: Uint8Array, others: readonly Uint8Array[]): Uint8Array {
  if (input.length < IKE_HEADER || rng.chance(0.35))
    return mutateBytes(rng, input, others, { order: 'be', align: 4 });
  const spans = chainSpans(input, IKE_HEADER, input[16]!);
  const payloads = spans.map((s) => ({ type: s.type, bytes: input.slice(s.offset, s.offset + s.length) }));
  const data = new Uint8Array(input);
  switch (rng.below(10)) {
    case 0: {
      if (payloads.length < 2) break;
      const i = rng.below(payloads.length);
      const j = rng.below(payloads.length);
      [payloads[i], payloads[j]] = [payloads[j]!, payloads[i]!];
      return rechain(input, payloads);
    }
    case 1: {
      if (!payloads.length) break;
      const i = rng.below(payloads.length);
      const copies = rng.chance(0.1) ? 50 : 1;
      payloads.splice(i, 0, ...Array.from({ length: copies }, () => payloads[i]!));
      return rechain(input, payloads);
    }
    case 2:
      if (!payloads.length) break;
      payloads.splice(rng.below(payloads.length), 1);
      return rechain(input, payloads);
    case 3: {
      const donor = others.length ? rng.pick(others) : input;
      const donated = chainSpans(donor, IKE_HEADER, donor[16] ?? 0);
      if (!donated.length) break;
      const s = rng.pick(donated);
      payloads.splice(rng.below(payloads.length + 1), 0, {
        type: s.type,
        bytes: donor.slice(s.offset, s.offset + s.length),
      });
      return rechain(input, payloads);
    }
    case 4: {
      if (!spans.length) break;
      const s = rng.pick(spans);
      put16(
        data,
        s.offset + 2,
        rng.pick([0, 1, 3, 4, 5, s.length - 1, s.length + 1, s.length + 4, 0xffff]),
        'be',
      );
      return data;
    }
    case 5: {
      const s = spans.length ? rng.pick(spans) : undefined;
      data[s && rng.chance(0.8) ? s.offset : 16] = rng.chance(0.8)
        ? rng.pick(PAYLOAD_TYPES)
        : rng.u32() & 0xff;
      return data;
    }
    case 6:
      // Header: version, exchange type, flags, message ID, length.
      switch (rng.below(5)) {
        case 0:
          data[17] = rng.pick([0x10, 0x20, 0x11, 0x21, 0x30, 0x00, 0xff]);
          break;
        case 1:
          data[18] = rng.pick([0, 1, 2, 4, 5, 6, 32, 33, 34, 35, 36, 37, 255]);
          break;
        case 2:
          data[19] = rng.u32() & 0xff;
          break;
        case 3:
          put32(data, 20, rng.pick([0, 1, 2, 0xffffffff, rng.u32()]), 'be');
          break;
        default:
          put32(data, 24, rng.pick([0, 27, 28, data.length - 1, data.length + 1, 0xffffffff]), 'be');
      }
      return data;
    case 7: {
      // Inside one payload's body: a nested length (proposal, transform, attribute) lies.
      if (!spans.length) break;
      const s = rng.pick(spans);
      if (s.length <= 4) break;
      const offset = s.offset + 4 + 2 * rng.below((s.length - 4) >> 1);
      put16(data, offset, rng.pick(INTERESTING_16), 'be');
      return data;
    }
    case 8:
      // Truncation at a payload boundary, or inside the last one.
      if (!spans.length) break;
      return data.subarray(0, rng.pick(spans).offset + rng.below(5));
    default:
      // SPIs: zero, swapped, or random.
      if (rng.chance(0.3)) data.fill(0, 8, 16);
      else if (rng.chance(0.5)) {
        data.set(input.subarray(8, 16), 0);
        data.set(input.subarray(0, 8), 8);
      } else data.set(rng.bytes(8), rng.chance(0.5) ? 0 : 8);
      return data;
  }
  return mutateBytes(rng, input, others, { order: 'be', align: 4 });
}

/**
 * A plaintext payload chain under encryption mutated without changing its size (the header and
 * the Encrypted payload's length are written before the plaintext is encrypted): bit flips,
 * lying lengths, next payload types, payloads swapped with the chain kept, garbage.
 */
export function mutateSealedChain(rng: Random, plaintext: Uint8Array, first: number): Uint8Array {
  const data = new Uint8Array(plaintext);
  const spans = chainSpans(data, 0, first);
  switch (rng.below(6)) {
    case 0: {
      if (!spans.length) break;
      const s = rng.pick(spans);
      put16(data, s.offset + 2, rng.pick([0, 1, 3, 4, 5, s.length - 1, s.length + 1, 0xffff]), 'be');
      return data;
    }
    case 1: {
      if (!spans.length) break;
      data[rng.pick(spans).offset] = rng.chance(0.8) ? rng.pick(PAYLOAD_TYPES) : rng.u32() & 0xff;
      return data;
    }
    case 2: {
      // Nested lengths and counts inside a payload (proposals, transforms, selectors, attributes).
      if (!spans.length) break;
      const s = rng.pick(spans);
      if (s.length <= 5) break;
      put16(data, s.offset + 4 + rng.below(s.length - 5), rng.pick(INTERESTING_16), 'be');
      return data;
    }
    case 3: {
      // Two payloads after the first swap places; the chain's types move with them.
      if (spans.length < 3) break;
      const i = 1 + rng.below(spans.length - 1);
      const j = 1 + rng.below(spans.length - 1);
      if (i === j) break;
      const [a, b] = i < j ? [spans[i]!, spans[j]!] : [spans[j]!, spans[i]!];
      const end = spans[spans.length - 1]!;
      const types = spans.map((s) => s.type);
      [types[i], types[j]] = [types[j]!, types[i]!];
      const pieces = spans.map((s) => plaintext.slice(s.offset, s.offset + s.length));
      [pieces[spans.indexOf(a)], pieces[spans.indexOf(b)]] = [
        pieces[spans.indexOf(b)]!,
        pieces[spans.indexOf(a)]!,
      ];
      let at = 0;
      pieces.forEach((piece, k) => {
        piece[0] = types[k + 1] ?? 0;
        data.set(piece, at);
        at += piece.length;
      });
      if (at !== end.offset + end.length) break;
      return data;
    }
    case 4: {
      const n = 1 + rng.below(8);
      for (let i = 0; i < n && data.length; i++) data[rng.below(data.length)]! ^= 1 << rng.below(8);
      return data;
    }
    default: {
      if (!data.length) break;
      const from = rng.below(data.length);
      data.set(rng.bytes(Math.min(data.length - from, 1 + rng.below(24))), from);
      return data;
    }
  }
  if (data.length) data[rng.below(data.length)]! ^= 1 << rng.below(8);
  return data;
}

// ---------------------------------------------------------------------------------------------
// Text

const TOKENS = [
  '{',
  '}',
  '[',
  ']',
  '"',
  ',',
  ':',
  '=',
  ';',
  '\n',
  ' ',
  '\\',
  '\\u0000',
  '#',
  '//',
  '/*',
  '*/',
  '0',
  '-1',
  '1e309',
  '99999999999999999999',
  '4294967296',
  '65536',
  'null',
  'true',
  'false',
  '""',
  '{}',
  '[]',
  '0.0.0.0/0',
  '::/0',
  '256.1.1.1',
  '192.0.2.1/33',
  'any',
  '%any',
  '$',
  '${',
  '\u{1F600}',
  '\ud800',
  '__proto__',
  'constructor',
  'toString',
  '"__proto__"',
  '\t',
  '\r\n',
  '\0',
];

/** One mutation of a text: tokens inserted, ranges deleted, duplicated or moved, lines swapped, deep nesting. */
export function mutateText(rng: Random, input: string, others: readonly string[]): string {
  const at = () => rng.below(input.length + 1);
  switch (rng.below(9)) {
    case 0: {
      const i = at();
      return input.slice(0, i) + rng.pick(TOKENS) + input.slice(i);
    }
    case 1: {
      const i = at();
      return input.slice(0, i) + input.slice(i + 1 + rng.below(40));
    }
    case 2: {
      const i = at();
      const j = Math.min(input.length, i + 1 + rng.below(200));
      return input.slice(0, j) + input.slice(i, j) + input.slice(j);
    }
    case 3: {
      const lines = input.split('\n');
      const i = rng.below(lines.length);
      const j = rng.below(lines.length);
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      return lines.join('\n');
    }
    case 4: {
      // A word replaced by another word of the text or of another seed (keys, values, keywords).
      const words = (rng.chance(0.5) && others.length ? rng.pick(others) : input).match(/[\w.%/:-]+/g) ?? [
        'x',
      ];
      const here = [...input.matchAll(/[\w.%/:-]+/g)];
      if (!here.length) return input + rng.pick(words);
      const m = rng.pick(here);
      return input.slice(0, m.index) + rng.pick(words) + input.slice(m.index + m[0].length);
    }
    case 5: {
      const depth = rng.pick([10, 100, 5000]);
      const i = at();
      const open = rng.pick(['[', '{"a":', '{', 'x {']);
      return input.slice(0, i) + open.repeat(depth) + input.slice(i);
    }
    case 6: {
      const i = at();
      return input.slice(0, i) + String.fromCharCode(rng.below(0x110)) + input.slice(i + 1);
    }
    case 7: {
      if (!others.length) return input;
      const donor = rng.pick(others);
      return input.slice(0, at()) + donor.slice(rng.below(donor.length + 1));
    }
    default: {
      const i = at();
      return input.slice(0, i) + rng.pick(TOKENS).repeat(1 + rng.below(1000)) + input.slice(i);
    }
  }
}
