import { formatAddress, prefixMask, rangePrefixes } from '../../core/address.js';
import type { TrafficSelector } from '../../core/traffic-selector.js';
import { PfkeyUnsupportedError } from './errors.js';

/**
 * Traffic selectors as PF_KEY can say them. A PF_KEY selector is a prefix (Linux: address and
 * prefix length; OpenBSD: address and netmask), one protocol, and one port or any (Linux af_key.c
 * sets a port mask of 0xffff when the port is not zero; OpenBSD takes the 0xffff mask we send).
 * An address range that is not one prefix becomes several; a port range other than one port or
 * all ports cannot be said and is refused.
 */

export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  /** The netmask, for OpenBSD's mask sockaddrs. */
  readonly mask: string;
}

/** Most prefixes one range may split into before we refuse it. */
export const MAX_PREFIXES_PER_RANGE = 32;

/** The smallest list of prefixes that covers [start, end] exactly. */
export function rangeToCidrs(start: Uint8Array, end: Uint8Array, limit = MAX_PREFIXES_PER_RANGE): Cidr[] {
  const prefixes = rangePrefixes(start, end);
  if (prefixes.length > limit)
    throw new PfkeyUnsupportedError(
      `address range ${formatAddress(start)}-${formatAddress(end)} needs more than ${limit} prefixes`,
    );
  return prefixes.map(({ address, prefix }) => ({
    address: formatAddress(address),
    prefix,
    mask: formatAddress(prefixMask(prefix, start.length as 4 | 16)),
  }));
}

/** A selector's port as PF_KEY says it: 0 for any, the port for exactly one. */
export function selectorPort(ts: TrafficSelector): number {
  if (ts.startPort === 0 && ts.endPort === 65535) return 0;
  if (ts.startPort === ts.endPort) return ts.startPort;
  throw new PfkeyUnsupportedError(
    `port range ${ts.startPort}-${ts.endPort}: PF_KEY selectors take one port or all ports`,
  );
}

/** One (local, remote) selector pair as the kernel will hold it. */
export interface SelectorPair {
  readonly family: 4 | 6;
  readonly local: Cidr;
  readonly remote: Cidr;
  /** 0: any protocol. */
  readonly proto: number;
  readonly localPort: number;
  readonly remotePort: number;
}

/**
 * Every pair of local and remote selectors of the same family (as strongSwan installs a child's
 * policies), each range split into prefixes. Pairs whose protocols cannot meet are left out.
 */
export function selectorPairs(
  localTs: readonly TrafficSelector[],
  remoteTs: readonly TrafficSelector[],
): SelectorPair[] {
  const pairs: SelectorPair[] = [];
  const seen = new Set<string>();
  for (const local of localTs) {
    for (const remote of remoteTs) {
      if (local.start.length !== remote.start.length) continue;
      if (local.protocol !== 0 && remote.protocol !== 0 && local.protocol !== remote.protocol) continue;
      const proto = local.protocol || remote.protocol;
      const localPort = selectorPort(local);
      const remotePort = selectorPort(remote);
      for (const l of rangeToCidrs(local.start, local.end)) {
        for (const r of rangeToCidrs(remote.start, remote.end)) {
          const key = `${l.address}/${l.prefix}|${r.address}/${r.prefix}|${proto}|${localPort}|${remotePort}`;
          if (seen.has(key)) continue;
          seen.add(key);
          pairs.push({
            family: local.start.length === 4 ? 4 : 6,
            local: l,
            remote: r,
            proto,
            localPort,
            remotePort,
          });
        }
      }
    }
  }
  return pairs;
}

/** A stable text form of a pair, for keys and logs. */
export function formatPair(pair: SelectorPair): string {
  const end = (cidr: Cidr, port: number) => `${cidr.address}/${cidr.prefix}${port ? `:${port}` : ''}`;
  return `${end(pair.local, pair.localPort)} <=> ${end(pair.remote, pair.remotePort)}${pair.proto ? ` proto ${pair.proto}` : ''}`;
}
