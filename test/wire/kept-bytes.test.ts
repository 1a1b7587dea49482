import t from 'tap';
import { keptBytes, keptCopy } from '../../src/wire/kept-bytes.js';

// What an SA keeps for its lifetime shares a few small buffers rather than owning one each (an
// ArrayBuffer of its own costs about 250 bytes of bookkeeping beyond its data).

t.test('kept bytes share small slabs', async (t) => {
  const kept = Array.from({ length: 20_000 }, (_, i) => keptCopy(Uint8Array.of(198, 51, i >> 8, i & 0xff)));
  const buffers = new Set(kept.map((bytes) => bytes.buffer));
  t.ok(buffers.size <= 41, `20,000 addresses in ${buffers.size} buffers`);
  for (const buffer of buffers) t.ok(buffer.byteLength <= 2048, 'each a small slab');
  // Every copy holds its own bytes, however many share a slab.
  t.same([...kept[0]!], [198, 51, 0, 0]);
  t.same([...kept[19_999]!], [198, 51, 78, 31]);
  t.ok(
    kept.every((bytes, i) => bytes.length === 4 && bytes[2] === i >> 8 && bytes[3] === (i & 0xff)),
    'no copy overlaps another',
  );
});

t.test('kept bytes start zeroed, and their owner may fill them in place', async (t) => {
  const before = keptCopy(Uint8Array.of(1, 2, 3));
  const cookies = keptBytes(16);
  const after = keptCopy(Uint8Array.of(4, 5, 6));
  t.same([...cookies], new Array(16).fill(0));
  cookies.subarray(8).fill(0xee);
  t.same([...before], [1, 2, 3], 'its neighbours are untouched');
  t.same([...after], [4, 5, 6]);
});

t.test('a copy is not a view of its source, and large ones get their own buffer', async (t) => {
  const datagram = Buffer.from([0, 0, 203, 0, 113, 9, 0, 0]);
  const address = keptCopy(datagram.subarray(2, 6));
  t.not(address.buffer, datagram.buffer, 'the datagram is not kept alive');
  datagram.fill(0);
  t.same([...address], [203, 0, 113, 9]);
  const large = keptBytes(1024);
  t.equal(large.buffer.byteLength, 1024, 'more than an eighth of a slab: an allocation of its own');
});
