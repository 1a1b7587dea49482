import { keptBytes, keptCopy } from '../wire/kept-bytes.js';
import { compareAddresses, formatAddress, maskPrefix, parseAddress, prefixMask } from './address.js';

/**
 * A traffic selector: an address range with an IP protocol and a port range, the common model
 * behind IKEv1 ID payloads in quick mode (RFC 2407 4.6.2) and IKEv2 TS payloads (RFC 7296 3.13.1).
 */
export interface TrafficSelector {
  /** Inclusive address range, both ends of the same family (4 or 16 bytes). */
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  /** IP protocol number; 0 means any. */
  readonly protocol: number;
  /** Inclusive port range; 0-65535 means any. */
  readonly startPort: number;
  readonly endPort: number;
}

export const ANY_PORT = { startPort: 0, endPort: 65535 } as const;

/** From a CIDR ("198.51.100.0/24"), a single address, or a range ("192.0.2.10-192.0.2.20"). */
/**
 * Recently parsed selectors by their text: a configuration with thousands of connections to the
 * same local subnet holds one selector for all of them. Bounded (the oldest goes first), since
 * the texts come from configurations and from peers' addresses.
 */
const parsed = new Map<string, TrafficSelector>();
const PARSED_KEPT = 1024;

export function parseTrafficSelector(text: string, protocol = 0, port?: number): TrafficSelector {
  const key = `${text}|${protocol}|${port ?? 0}`;
  const known = parsed.get(key);
  if (known) return known;
  const ts = Object.freeze(parseUncached(text, protocol, port));
  if (parsed.size >= PARSED_KEPT) parsed.delete(parsed.keys().next().value!);
  parsed.set(key, ts);
  return ts;
}

function parseUncached(text: string, protocol: number, port: number | undefined): TrafficSelector {
  const ports = port === undefined || port === 0 ? ANY_PORT : { startPort: port, endPort: port };
  const dash = text.indexOf('-');
  if (dash > 0) {
    const start = parseAddress(text.slice(0, dash).trim());
    const end = parseAddress(text.slice(dash + 1).trim());
    if (start.length !== end.length) throw new RangeError(`range '${text}' mixes IPv4 and IPv6`);
    if (compareAddresses(start, end) > 0) throw new RangeError(`range '${text}' ends before it starts`);
    return compactSelector(start, end, protocol, ports.startPort, ports.endPort);
  }
  const [address, prefixText] = text.split('/') as [string, string | undefined];
  const base = parseAddress(address);
  const prefix = prefixText === undefined ? base.length * 8 : Number(prefixText);
  if (prefixText !== undefined && !/^\d+$/.test(prefixText))
    throw new RangeError(`'${text}': bad prefix length`);
  const mask = prefixMask(prefix, base.length as 4 | 16);
  const start = base.map((byte, i) => byte & mask[i]!);
  const end = base.map((byte, i) => (byte & mask[i]!) | (~mask[i]! & 0xff));
  return compactSelector(start, end, protocol, ports.startPort, ports.endPort);
}

/**
 * A selector holding both ends of its range in kept bytes (wire/kept-bytes.ts): a copy, since
 * `start` is often a view of a decoded message (a Buffer, whose slice() is another view) that
 * would keep the whole message alive. Written field by field: in V8 an object literal that begins
 * with a spread gets a hidden class of its own, about 250 bytes more for every child SA that
 * holds one.
 */
function compactSelector(
  start: Uint8Array,
  end: Uint8Array,
  protocol: number,
  startPort: number,
  endPort: number,
): TrafficSelector {
  if (compareAddresses(start, end) === 0) {
    // One address (a client's /32): both ends are the same bytes.
    const address = keptCopy(start);
    return { start: address, end: address, protocol, startPort, endPort };
  }
  const store = keptBytes(start.length + end.length);
  store.set(start);
  store.set(end, start.length);
  return {
    start: store.subarray(0, start.length),
    end: store.subarray(start.length),
    protocol,
    startPort,
    endPort,
  };
}

/** The subnet's prefix length when the range is exactly one CIDR block, else undefined. */
export function subnetPrefix(ts: TrafficSelector): number | undefined {
  const mask = ts.start.map((byte, i) => ~(byte ^ ts.end[i]!) & 0xff);
  const prefix = maskPrefix(mask);
  if (prefix === undefined) return undefined;
  const netmask = prefixMask(prefix, ts.start.length as 4 | 16);
  const aligned =
    ts.start.every((byte, i) => (byte & ~netmask[i]!) === 0) &&
    ts.end.every((byte, i) => (byte | netmask[i]!) === 0xff);
  return aligned ? prefix : undefined;
}

export function formatTrafficSelector(ts: TrafficSelector): string {
  const prefix = subnetPrefix(ts);
  const range =
    prefix === undefined
      ? `${formatAddress(ts.start)}-${formatAddress(ts.end)}`
      : `${formatAddress(ts.start)}/${prefix}`;
  if (ts.protocol === 0 && ts.startPort === 0 && ts.endPort === 65535) return range;
  const ports =
    ts.startPort === 0 && ts.endPort === 65535
      ? ''
      : ts.startPort === ts.endPort
        ? `/${ts.startPort}`
        : `/${ts.startPort}-${ts.endPort}`;
  return `${range}[${PROTOCOL_NAMES[ts.protocol] ?? ts.protocol}${ports}]`;
}

const PROTOCOL_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'ipv6-icmp' };

/** The overlap of two selectors (RFC 7296 2.9 narrowing), or undefined when they are disjoint. */
export function intersect(a: TrafficSelector, b: TrafficSelector): TrafficSelector | undefined {
  if (a.start.length !== b.start.length) return undefined;
  if (a.protocol !== 0 && b.protocol !== 0 && a.protocol !== b.protocol) return undefined;
  const start = compareAddresses(a.start, b.start) >= 0 ? a.start : b.start;
  const end = compareAddresses(a.end, b.end) <= 0 ? a.end : b.end;
  if (compareAddresses(start, end) > 0) return undefined;
  const startPort = Math.max(a.startPort, b.startPort);
  const endPort = Math.min(a.endPort, b.endPort);
  if (startPort > endPort) return undefined;
  return { start, end, protocol: a.protocol || b.protocol, startPort, endPort };
}

export function sameTrafficSelector(a: TrafficSelector, b: TrafficSelector): boolean {
  return (
    compareAddresses(a.start, b.start) === 0 &&
    compareAddresses(a.end, b.end) === 0 &&
    a.protocol === b.protocol &&
    a.startPort === b.startPort &&
    a.endPort === b.endPort
  );
}

/**
 * An equal selector from `known` (the connection's own), else a compact copy of `ts`: child SAs
 * that carry the configured selectors share them, and the others hold their two addresses in
 * one small buffer rather than as views that keep the whole decoded message alive.
 */
export function sharedTrafficSelector(
  ts: TrafficSelector,
  known: readonly TrafficSelector[],
): TrafficSelector {
  const same = known.find((candidate) => candidate === ts || sameTrafficSelector(candidate, ts));
  if (same) return same;
  return compactSelector(ts.start, ts.end, ts.protocol, ts.startPort, ts.endPort);
}

/** Whether `inner` lies entirely within `outer`. */
export function contains(outer: TrafficSelector, inner: TrafficSelector): boolean {
  const overlap = intersect(outer, inner);
  return (
    overlap !== undefined &&
    compareAddresses(overlap.start, inner.start) === 0 &&
    compareAddresses(overlap.end, inner.end) === 0 &&
    overlap.protocol === inner.protocol &&
    overlap.startPort === inner.startPort &&
    overlap.endPort === inner.endPort
  );
}
