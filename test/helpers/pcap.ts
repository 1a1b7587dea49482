/**
 * A minimal pcap writer (LINKTYPE_RAW: IPv4 packets), so tests can hand what we encode to
 * tshark, someone else's dissector. Addresses are TEST-NET; nothing is ever sent.
 */

export interface UdpDatagram {
  readonly source: string;
  readonly destination: string;
  readonly sourcePort: number;
  readonly destinationPort: number;
  readonly payload: Uint8Array;
}

const LINKTYPE_RAW = 101;

function ipv4(address: string): number[] {
  return address.split('.').map(Number);
}

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function udpPacket(d: UdpDatagram): Uint8Array {
  const total = 20 + 8 + d.payload.length;
  const packet = new Uint8Array(total);
  const view = new DataView(packet.buffer);
  packet.set([0x45, 0, total >> 8, total & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0]);
  packet.set(ipv4(d.source), 12);
  packet.set(ipv4(d.destination), 16);
  view.setUint16(10, checksum(packet.subarray(0, 20)));
  view.setUint16(20, d.sourcePort);
  view.setUint16(22, d.destinationPort);
  view.setUint16(24, 8 + d.payload.length);
  view.setUint16(26, 0); // no UDP checksum: allowed over IPv4
  packet.set(d.payload, 28);
  return packet;
}

export function pcapFile(datagrams: readonly UdpDatagram[]): Uint8Array {
  const header = new Uint8Array(24);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, 0xa1b2c3d4, true);
  hv.setUint16(4, 2, true);
  hv.setUint16(6, 4, true);
  hv.setUint32(16, 65535, true);
  hv.setUint32(20, LINKTYPE_RAW, true);
  const records = datagrams.map((d, i) => {
    const packet = udpPacket(d);
    const record = new Uint8Array(16 + packet.length);
    const rv = new DataView(record.buffer);
    rv.setUint32(0, 1_700_000_000 + i, true);
    rv.setUint32(8, packet.length, true);
    rv.setUint32(12, packet.length, true);
    record.set(packet, 16);
    return record;
  });
  const out = new Uint8Array(header.length + records.reduce((n, r) => n + r.length, 0));
  out.set(header);
  let offset = header.length;
  for (const record of records) {
    out.set(record, offset);
    offset += record.length;
  }
  return out;
}
