import { endianness } from 'node:os';
import type { Endpoint } from '../core/endpoint.js';

/**
 * The batches of the shim's watchBatch (src/native/shim.c, BATCH_RECORD): `count` records of
 * RECORD bytes, then the datagrams back to back. A record holds int32 fields in the host's byte
 * order, [0] the datagram's offset in the batch, [1] its length, [2] the source's address family
 * (4, 6, or 0 when the descriptor is no IP socket), [3] the source port, [4] the IPv6 scope id;
 * bytes 32-47 the source address as the sockaddr holds it; bytes 48-111 the address as text, as
 * Node gives it in rinfo.address, NUL-terminated.
 */
const RECORD = 112;
const ADDRESS = 32;
const TEXT = 48;
const TEXT_SIZE = 64;
const LITTLE_ENDIAN = endianness() === 'LE';

function view(batch: Buffer): DataView {
  return new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
}

/**
 * The datagrams of a batch, as views into it (Buffers, not copies), each without its first
 * `skip` bytes (a TUN device's virtio_net_hdr).
 */
export function batchDatagrams(batch: Buffer, count: number, skip = 0): Buffer[] {
  const fields = view(batch);
  const datagrams: Buffer[] = new Array<Buffer>(count);
  for (let i = 0; i < count; i++) {
    const offset = fields.getInt32(i * RECORD, LITTLE_ENDIAN);
    const length = fields.getInt32(i * RECORD + 4, LITTLE_ENDIAN);
    datagrams[i] = batch.subarray(offset + Math.min(skip, length), offset + length);
  }
  return datagrams;
}

/**
 * The datagrams of a UDP socket's batches with their sources. Consecutive datagrams mostly come
 * from one peer: its Endpoint is made once and handed out again for as long as the source's
 * bytes stay the same (so one object serves a whole stream of ESP).
 */
export class DatagramReader {
  #family = -1;
  #port = -1;
  #scope = 0;
  readonly #address = new Int32Array(4);
  #endpoint: Endpoint | undefined;

  /** Calls `each` with every datagram (a view into the batch) and where it came from. */
  read(batch: Buffer, count: number, each: (datagram: Buffer, source: Endpoint) => void): void {
    const fields = view(batch);
    for (let i = 0; i < count; i++) {
      const record = i * RECORD;
      const offset = fields.getInt32(record, LITTLE_ENDIAN);
      const length = fields.getInt32(record + 4, LITTLE_ENDIAN);
      each(batch.subarray(offset, offset + length), this.#source(batch, fields, record));
    }
  }

  #source(batch: Buffer, fields: DataView, record: number): Endpoint {
    const family = fields.getInt32(record + 8, LITTLE_ENDIAN);
    const port = fields.getInt32(record + 12, LITTLE_ENDIAN);
    const scope = fields.getInt32(record + 16, LITTLE_ENDIAN);
    const a = this.#address;
    const a0 = fields.getInt32(record + ADDRESS, true);
    const a1 = fields.getInt32(record + ADDRESS + 4, true);
    const a2 = fields.getInt32(record + ADDRESS + 8, true);
    const a3 = fields.getInt32(record + ADDRESS + 12, true);
    if (
      this.#endpoint !== undefined &&
      family === this.#family &&
      port === this.#port &&
      scope === this.#scope &&
      a0 === a[0] &&
      a1 === a[1] &&
      a2 === a[2] &&
      a3 === a[3]
    ) {
      return this.#endpoint;
    }
    const start = record + TEXT;
    let end = start;
    while (end < start + TEXT_SIZE && batch[end] !== 0) end++;
    this.#family = family;
    this.#port = port;
    this.#scope = scope;
    a[0] = a0;
    a[1] = a1;
    a[2] = a2;
    a[3] = a3;
    this.#endpoint = { address: batch.toString('latin1', start, end), port };
    return this.#endpoint;
  }
}
