import { alignedBlocks, rangePrefixes } from '../../core/address.js';
import { formatTrafficSelector, type TrafficSelector } from '../../core/traffic-selector.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from './constants.js';
import { familyOf, type XfrmSelector } from './structs.js';

/**
 * Traffic selectors (address ranges, port ranges) to xfrm_selector (a prefix and a port/mask per
 * side). A range that is not one CIDR block becomes several selectors that cover it exactly, never
 * a wider one: a policy wider than what was negotiated would send or accept traffic the peer never
 * agreed to.
 */

export class XfrmSelectorError extends Error {
  override readonly name = 'XfrmSelectorError';
}

export interface AddressBlock {
  readonly address: Uint8Array;
  readonly prefix: number;
}

export interface PortBlock {
  readonly port: number;
  readonly mask: number;
}

export function addressBlocks(start: Uint8Array, end: Uint8Array): AddressBlock[] {
  if (start.length !== end.length) throw new XfrmSelectorError('an address range mixes IPv4 and IPv6');
  return rangePrefixes(start, end);
}

export function portBlocks(start: number, end: number): PortBlock[] {
  if (start === 0 && end === 0xffff) return [{ port: 0, mask: 0 }];
  return alignedBlocks(BigInt(start), BigInt(end), 16).map(({ base, size }) => ({
    port: Number(base),
    mask: (0xffff << size) & 0xffff,
  }));
}

const ANY_PORTS: readonly PortBlock[] = [{ port: 0, mask: 0 }];

function isAnyPort(ts: TrafficSelector): boolean {
  return ts.startPort === 0 && ts.endPort === 0xffff;
}

/**
 * ICMP: IKEv2 carries type and code as one 16-bit "port" (RFC 7296 3.13.1: type in the high
 * byte); the kernel's selector matches the type as sport and the code as dport.
 */
function icmpPorts(src: TrafficSelector, dst: TrafficSelector): { sport: PortBlock; dport: PortBlock } {
  const ts = !isAnyPort(src) ? src : dst;
  if (isAnyPort(ts)) return { sport: { port: 0, mask: 0 }, dport: { port: 0, mask: 0 } };
  const type = ts.startPort >> 8;
  if (ts.startPort === ts.endPort)
    return { sport: { port: type, mask: 0xffff }, dport: { port: ts.startPort & 0xff, mask: 0xffff } };
  if (ts.startPort === type << 8 && ts.endPort === (type << 8) + 0xff)
    return { sport: { port: type, mask: 0xffff }, dport: { port: 0, mask: 0 } };
  throw new XfrmSelectorError(
    `ICMP type/code range ${ts.startPort}-${ts.endPort} cannot be expressed as an xfrm selector`,
  );
}

/**
 * The selectors for traffic from `src` to `dst`: empty when the two cannot meet (different
 * families or protocols), several when a range needs several prefixes. `limit` bounds the product.
 */
export function selectorsFor(src: TrafficSelector, dst: TrafficSelector, limit = 256): XfrmSelector[] {
  if (src.start.length !== dst.start.length) return [];
  if (src.protocol !== 0 && dst.protocol !== 0 && src.protocol !== dst.protocol) return [];
  const proto = src.protocol || dst.protocol;
  const family = familyOf(src.start);
  const sources = addressBlocks(src.start, src.end);
  const destinations = addressBlocks(dst.start, dst.end);
  let sports: readonly PortBlock[];
  let dports: readonly PortBlock[];
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    const icmp = icmpPorts(src, dst);
    sports = [icmp.sport];
    dports = [icmp.dport];
  } else {
    sports = isAnyPort(src) ? ANY_PORTS : portBlocks(src.startPort, src.endPort);
    dports = isAnyPort(dst) ? ANY_PORTS : portBlocks(dst.startPort, dst.endPort);
  }
  const count = sources.length * destinations.length * sports.length * dports.length;
  if (count > limit)
    throw new XfrmSelectorError(
      `${formatTrafficSelector(src)} -> ${formatTrafficSelector(dst)} needs ${count} kernel selectors ` +
        `(more than ${limit}): narrow the traffic selectors to CIDR blocks`,
    );
  const out: XfrmSelector[] = [];
  for (const s of sources)
    for (const d of destinations)
      for (const sp of sports)
        for (const dp of dports)
          out.push({
            daddr: d.address,
            saddr: s.address,
            dport: dp.port,
            dportMask: dp.mask,
            sport: sp.port,
            sportMask: sp.mask,
            family,
            prefixlenD: d.prefix,
            prefixlenS: s.prefix,
            proto,
            ifindex: 0,
            user: 0,
          });
  return out;
}

function popcount16(value: number): number {
  let count = 0;
  for (let v = value & 0xffff; v; v &= v - 1) count++;
  return count;
}

/** How specific a selector is (0..545): more prefix bits, a protocol and port bits all count. */
export function selectorSpecificity(sel: XfrmSelector): number {
  return (
    2 * (sel.prefixlenS + sel.prefixlenD) +
    (sel.proto ? 1 : 0) +
    popcount16(sel.sportMask) +
    popcount16(sel.dportMask)
  );
}
