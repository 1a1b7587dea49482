import { HeaderFlag } from '../../src/ikev2/constants.js';
import type { EnginePair, Packet, Side } from './engine-pair.js';

/**
 * Network faults for engine pairs, by IKEv2 exchange: drop or duplicate the first messages that
 * match (the header's exchange type and Response flag, optionally only one side's), and a
 * masquerading NAT.
 */

export interface Fault {
  exchange: number;
  response: boolean;
  /** Only messages sent by this side. */
  from?: 'a' | 'b';
  action: 'drop' | 'duplicate';
  /** How many matching messages it hits (default 1). */
  times?: number;
}

/** Puts `faults` on the wire between `a` and the other side (keepalives pass untouched). */
export function applyFaults(pair: EnginePair, a: Side, faults: readonly Fault[]): void {
  const left = faults.map((fault) => ({ fault, times: fault.times ?? 1 }));
  const inner = pair.wire;
  pair.wire = (packet: Packet) => {
    if (packet.keepalive || packet.data.length < 28) return inner(packet);
    const exchange = packet.data[18]!;
    const response = (packet.data[19]! & HeaderFlag.RESPONSE) !== 0;
    const from = packet.from.address === a.address ? 'a' : 'b';
    const hit = left.find(
      ({ fault, times }) =>
        times > 0 &&
        fault.exchange === exchange &&
        fault.response === response &&
        (!fault.from || fault.from === from),
    );
    if (!hit) return inner(packet);
    hit.times--;
    return hit.fault.action === 'drop' ? undefined : [packet, packet].flatMap((p) => inner(p) ?? []);
  };
}

/**
 * A masquerading NAT in front of `inside`: its packets leave from `nat` with ports 500 and 4500
 * mapped to 1024 and 1025, and answers to those are mapped back; what arrives for a port with no
 * mapping is dropped, as a NAT drops it. `dropped` lists those.
 */
export function masquerade(pair: EnginePair, inside: string, nat: string): { dropped: Packet[] } {
  const ports = new Map<number, number>([
    [500, 1024],
    [4500, 1025],
  ]);
  const dropped: Packet[] = [];
  pair.wire = (p) => {
    if (p.from.address === inside) return { ...p, from: { address: nat, port: ports.get(p.from.port)! } };
    if (p.to.address === nat) {
      const mapping = [...ports].find(([, outside]) => outside === p.to.port);
      if (!mapping) {
        dropped.push(p);
        return undefined;
      }
      return { ...p, to: { address: inside, port: mapping[0] } };
    }
    return p;
  };
  return { dropped };
}
