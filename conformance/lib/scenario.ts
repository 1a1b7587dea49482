import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { ConnectionStatus } from '../../src/core/status.js';
import type { IkeNode } from './ike-node.js';
import { createTopology, type Ns, type Topology, type TopologyKind } from './netns.js';
import type { Charon } from './strongswan.js';

/** What every ike-node-versus-strongSwan scenario starts with and cleans up after. */

/** What `ike-node status --json` prints. */
export type IkeNodeStatus = ConnectionStatus[];

export interface Lab {
  readonly dir: string;
  readonly topology: Topology;
  /** Set them once started: teardown prints their logs on failure and stops ike-node. */
  charon?: Charon;
  ikeNode?: IkeNode | undefined;
}

/** A scratch directory and a topology, both removed when the test ends, whatever happened. */
export async function openLab(t: Test, kind: TopologyKind, label: string, logLines = 60): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), `ike-node-${label}-`));
  const lab: Lab = { dir, topology: await createTopology(kind) };
  t.teardown(async () => {
    if (!t.passing()) {
      const tail = (text: string) => text.split('\n').slice(-logLines).join('\n');
      if (lab.ikeNode) t.comment(`--- ike-node log\n${tail(lab.ikeNode.log())}`);
      if (lab.charon) t.comment(`--- charon log\n${tail(lab.charon.log())}`);
    }
    await lab.ikeNode?.stop().catch(() => {});
    await lab.topology.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  return lab;
}

/** Polls `probe` every 100 ms until it yields a value; probe errors count as "not yet". */
export async function until<T>(probe: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One end of a topology, as a scenario places a peer there. */
export interface End {
  ns: Ns;
  address: string;
  subnet: string;
  iface: string;
  /** How the other end addresses this one (the NAT's address for left in the nat topology). */
  seenAs: string;
}

/** ike-node's end and strongSwan's. Behind the NAT only the inside (left) end can initiate. */
export function ends(topology: Topology, ikeNodeSide: 'left' | 'right'): { ours: End; theirs: End } {
  const left: End = {
    ns: topology.left,
    address: topology.leftAddress,
    subnet: topology.leftSubnet,
    iface: topology.leftIface,
    seenAs: topology.leftSeenAs,
  };
  const right: End = {
    ns: topology.right,
    address: topology.rightAddress,
    subnet: topology.rightSubnet,
    iface: topology.rightIface,
    seenAs: topology.rightAddress,
  };
  return ikeNodeSide === 'left' ? { ours: left, theirs: right } : { ours: right, theirs: left };
}

/** Where ike-node goes: inside the NAT when it initiates, outside when it responds to a NATed peer. */
export function ikeNodeSide(kind: TopologyKind, role: 'initiator' | 'responder'): 'left' | 'right' {
  return kind === 'nat' && role === 'responder' ? 'right' : 'left';
}
