import t from 'tap';
import { Writer } from '../../src/wire/writer.js';

// Writers build in scratch buffers that finished writers hand back: what each returns must be
// its own bytes, however writers interleave, grow or are used again.

t.test('fields are written big-endian and length fields patched afterwards', async (t) => {
  const w = new Writer();
  w.u8(1).u16(0).u32(0xdeadbeef).bytes(Uint8Array.of(9, 8));
  w.patchU16(1, w.offset);
  t.same([...w.finish()], [1, 0, 9, 0xde, 0xad, 0xbe, 0xef, 9, 8]);
  const v = new Writer(4);
  v.u32(0);
  v.patchU32(0, 0x01020304);
  t.same([...v.finish()], [1, 2, 3, 4]);
});

t.test('writers alive at once never share bytes, and finished output is never touched again', async (t) => {
  const outer = new Writer();
  outer.u8(0xaa);
  const inner = new Writer();
  inner.u8(0xbb).u8(0xbb);
  outer.u8(0xcc);
  const first = inner.finish();
  // The next writer may take the scratch buffer `inner` gave back; `first` must not change.
  const next = new Writer();
  next.u8(0xdd).u8(0xdd).u8(0xdd);
  t.same([...outer.finish()], [0xaa, 0xcc]);
  t.same([...first], [0xbb, 0xbb]);
  t.same([...next.finish()], [0xdd, 0xdd, 0xdd]);
  t.not(first.buffer, outer.finish().buffer, 'each result in a buffer of its own');
});

t.test('a finished writer starts again from nothing', async (t) => {
  const w = new Writer();
  w.bytes(Uint8Array.of(1, 2, 3));
  t.same([...w.finish()], [1, 2, 3]);
  t.equal(w.offset, 0);
  w.u16(0x0405);
  t.same([...w.finish()], [4, 5]);
  t.same([...w.finish()], []);
});

t.test('a copy midway leaves the writer going', async (t) => {
  const w = new Writer();
  w.u8(1).u8(2);
  const before = w.copy();
  w.u8(3);
  t.same([...before], [1, 2]);
  t.same([...w.finish()], [1, 2, 3]);
});

t.test('a message larger than any scratch buffer grows its own', async (t) => {
  const big = Uint8Array.from({ length: 70_000 }, (_, i) => i & 0xff);
  const w = new Writer();
  w.u8(7).bytes(big).u8(8);
  const out = w.finish();
  t.equal(out.length, 70_002);
  t.equal(out[0], 7);
  t.equal(out[70_001], 8);
  t.same(out.subarray(1, 70_001), big);
  const sized = new Writer(100_000);
  sized.bytes(big);
  t.same(sized.finish(), big);
});
