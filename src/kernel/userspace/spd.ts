import { addressToBigInt, formatAddress, rangePrefixes } from '../../core/address.js';
import type { TrafficSelector } from '../../core/traffic-selector.js';
import type { Flow } from './packet.js';

/**
 * The userspace Security Policy Database (RFC 4301 section 4.4.1): which child SA an outgoing
 * packet belongs to, and whether a decrypted packet lies inside the selectors of the SA it came
 * through (section 5.2, step 4: "the packet ... MUST be checked against the SA's selectors").
 *
 * Entries are the pairs local × remote selector of each child SA (one XFRM policy each, in kernel
 * terms), ordered most specific first: narrower remote range, narrower local range, a named
 * protocol before "any", narrower port ranges; between equal selectors a child SA before a trap
 * and the newest child first, so a rekeyed child takes over outbound traffic when it is installed
 * while the old one still decrypts until it is removed.
 */

/** A traffic selector compiled for matching. */
export interface CompiledSelector {
  readonly version: 4 | 6;
  /** IPv4 range as unsigned numbers. */
  readonly start4: number;
  readonly end4: number;
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  readonly protocol: number;
  readonly startPort: number;
  readonly endPort: number;
  /** end - start, for ordering. */
  readonly span: bigint;
}

export function compileSelector(ts: TrafficSelector): CompiledSelector {
  const version = ts.start.length === 4 ? 4 : 6;
  const start = addressToBigInt(ts.start);
  const end = addressToBigInt(ts.end);
  return {
    version,
    start4: version === 4 ? Number(start) : 0,
    end4: version === 4 ? Number(end) : 0,
    start: Uint8Array.from(ts.start),
    end: Uint8Array.from(ts.end),
    protocol: ts.protocol,
    startPort: ts.startPort,
    endPort: ts.endPort,
    span: end - start,
  };
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function addressIn(sel: CompiledSelector, flow: Flow, which: 'src' | 'dst'): boolean {
  if (sel.version !== flow.version) return false;
  if (sel.version === 4) {
    const address = which === 'src' ? flow.src4 : flow.dst4;
    return address >= sel.start4 && address <= sel.end4;
  }
  const address = which === 'src' ? flow.src : flow.dst;
  return compareBytes(address, sel.start) >= 0 && compareBytes(address, sel.end) <= 0;
}

/**
 * A port (or ICMP type << 8 | code) against a selector's range. A packet without ports (or a
 * non-first fragment) matches only "any port", or the OPAQUE range of RFC 7296 section 3.13.1
 * (start 65535, end 0).
 */
function portIn(sel: CompiledSelector, port: number): boolean {
  if (sel.startPort === 0 && sel.endPort === 65535) return true;
  if (port < 0) return sel.startPort > sel.endPort;
  return port >= sel.startPort && port <= sel.endPort;
}

function protocolIn(sel: CompiledSelector, protocol: number): boolean {
  return sel.protocol === 0 || sel.protocol === protocol;
}

/** Whether a packet goes from `from` to `to`. */
export function flowMatches(flow: Flow, from: CompiledSelector, to: CompiledSelector): boolean {
  return (
    addressIn(from, flow, 'src') &&
    addressIn(to, flow, 'dst') &&
    protocolIn(from, flow.protocol) &&
    protocolIn(to, flow.protocol) &&
    portIn(from, flow.srcPort) &&
    portIn(to, flow.dstPort)
  );
}

/** Inbound check: a decrypted packet must come from a remote selector to a local one. */
export function flowMatchesAny(
  flow: Flow,
  from: readonly CompiledSelector[],
  to: readonly CompiledSelector[],
): boolean {
  for (const f of from) for (const t of to) if (flowMatches(flow, f, t)) return true;
  return false;
}

interface Entry<T> {
  readonly local: CompiledSelector;
  readonly remote: CompiledSelector;
  readonly target: T;
  /** 0 for SAs, 1 for traps: an SA wins over a trap with the same selectors. */
  readonly rank: number;
  readonly order: number;
}

function portSpan(sel: CompiledSelector): number {
  return sel.startPort > sel.endPort ? 0 : sel.endPort - sel.startPort;
}

function compareEntries<T>(a: Entry<T>, b: Entry<T>): number {
  const bySpan = (x: bigint, y: bigint): number => (x < y ? -1 : x > y ? 1 : 0);
  return (
    bySpan(a.remote.span, b.remote.span) ||
    bySpan(a.local.span, b.local.span) ||
    Number(a.remote.protocol === 0 && a.local.protocol === 0) -
      Number(b.remote.protocol === 0 && b.local.protocol === 0) ||
    portSpan(a.remote) - portSpan(b.remote) ||
    portSpan(a.local) - portSpan(b.local) ||
    a.rank - b.rank ||
    b.order - a.order
  );
}

/** Outbound policies: selector pairs leading to a target (a child SA's state, or a trap). */
export class PolicyTable<T> {
  #entries: Entry<T>[] = [];
  #order = 0;

  get size(): number {
    return this.#entries.length;
  }

  /** Adds every local × remote pair of selectors (of the same family) for `target`. */
  add(
    localTs: readonly CompiledSelector[],
    remoteTs: readonly CompiledSelector[],
    target: T,
    kind: 'sa' | 'trap' = 'sa',
    order = ++this.#order,
  ): void {
    for (const local of localTs) {
      for (const remote of remoteTs) {
        if (local.version !== remote.version) continue;
        this.#entries.push({ local, remote, target, rank: kind === 'sa' ? 0 : 1, order });
      }
    }
    this.#entries.sort(compareEntries);
  }

  /** New selectors for a target already in the table, keeping its place among equal entries. */
  replace(localTs: readonly CompiledSelector[], remoteTs: readonly CompiledSelector[], target: T): void {
    const old = this.#entries.find((entry) => entry.target === target);
    this.remove(target);
    this.add(localTs, remoteTs, target, old?.rank === 1 ? 'trap' : 'sa', old?.order);
  }

  remove(target: T): void {
    this.#entries = this.#entries.filter((entry) => entry.target !== target);
  }

  /** The most specific target whose selectors cover an outgoing packet. */
  lookup(flow: Flow): T | undefined {
    for (const entry of this.#entries) {
      if (flowMatches(flow, entry.local, entry.remote)) return entry.target;
    }
    return undefined;
  }
}

/** Whether a selector's address range contains an address (4 or 16 bytes). */
export function selectorContains(sel: CompiledSelector, address: Uint8Array): boolean {
  if (address.length !== sel.start.length) return false;
  return compareBytes(address, sel.start) >= 0 && compareBytes(address, sel.end) <= 0;
}

/**
 * A selector's address range as the fewest CIDR prefixes that cover it exactly, for routes:
 * "192.0.2.0/24", or for 192.0.2.10-192.0.2.20 the blocks .10/31, .12/30, .16/30, .20/32.
 */
export function selectorPrefixes(ts: TrafficSelector): string[] {
  return rangePrefixes(ts.start, ts.end).map(({ address, prefix }) => `${formatAddress(address)}/${prefix}`);
}
