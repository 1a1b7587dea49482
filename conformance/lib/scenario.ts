import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { ConnectionStatus } from '../../src/core/status.js';
import type { IkeNode } from './ike-node.js';
import { createTopology, type Ns, type Topology, type TopologyKind } from './netns.js';
import type { Charon, SwanctlChild, SwanctlConnectionSpec } from './strongswan.js';

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

/**
 * A peer or tool the suite needs is missing (`reason`): the test fails and says what to run. The
 * suite installs everything it needs (conformance/setup.sh), so a missing piece is a broken set-up,
 * never a reason to pass by skipping.
 */
export function missing(t: Test, reason: string | false | undefined): boolean {
  if (!reason) return false;
  t.fail(`cannot run: ${reason}`);
  return true;
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
  /** How the other end addresses this one (the router's address for left behind the NAT or relay). */
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
    seenAs: topology.rightSeenAs,
  };
  return ikeNodeSide === 'left' ? { ours: left, theirs: right } : { ours: right, theirs: left };
}

/** Where ike-node goes: inside the NAT when it initiates, outside when it responds to a NATed peer. */
export function ikeNodeSide(kind: TopologyKind, role: 'initiator' | 'responder'): 'left' | 'right' {
  return kind === 'nat' && role === 'responder' ? 'right' : 'left';
}

/**
 * One tunnel-mode connection named `net` between ike-node (`ours`) and strongSwan (`theirs`),
 * written for both sides: the peers.json ike-node reads and the swanctl connection strongSwan loads.
 */
export interface TunnelSpec {
  dir: string;
  ours: End;
  theirs: End;
  psk: string;
  /** IKE version (1 unless given). */
  version?: 1 | 2;
  /** Who starts: ike-node ('initiator') or strongSwan ('responder'). */
  role: 'initiator' | 'responder';
  ike: string;
  /** strongSwan's ESP proposal; a trailing DH group is the PFS group. */
  esp: string;
  /** Further fields of ike-node's policies (dpd, lifetime...). */
  ikePolicy?: Record<string, unknown>;
  ipsecPolicy?: Record<string, unknown>;
  /** Further swanctl connection and child options. */
  swan?: Partial<SwanctlConnectionSpec>;
  swanChild?: Partial<SwanctlChild>;
}

const DH_GROUP = /^(modp|ecp|curve|x25519|x448)/;

/** ike-node's peers.json for the tunnel (its ESP proposal without the group, which is `pfs`). */
export function ikeNodeTunnel(s: TunnelSpec): object {
  const esp = s.esp.split('-');
  const pfs = DH_GROUP.test(esp.at(-1) ?? '') ? esp.pop() : undefined;
  return {
    listen: { addresses: [s.ours.address] },
    control: { socket: join(s.dir, 'ike-node.sock') },
    log: { level: 'debug' },
    ikePolicies: { ike: { version: s.version ?? 1, proposals: s.ike.split(','), ...s.ikePolicy } },
    ipsecPolicies: { esp: { proposals: [esp.join('-')], ...(pfs && { pfs }), ...s.ipsecPolicy } },
    connections: {
      net: {
        ikePolicy: 'ike',
        ipsecPolicy: 'esp',
        local: { address: s.ours.address, id: s.ours.address, subnets: [s.ours.subnet] },
        peer: { address: s.theirs.seenAs, id: s.theirs.address, subnets: [s.theirs.subnet] },
        psk: s.psk,
        start: s.role === 'initiator' ? 'initiate' : 'respond',
      },
    },
  };
}

/** strongSwan's side of the tunnel, for swanctlConnection(). */
export function swanctlTunnel(s: TunnelSpec): SwanctlConnectionSpec {
  return {
    name: 'net',
    version: s.version ?? 1,
    local_addrs: s.theirs.address,
    remote_addrs: s.ours.seenAs,
    proposals: s.ike,
    local_id: s.theirs.address,
    remote_id: s.ours.address,
    psk: s.psk,
    ...s.swan,
    children: [
      {
        name: 'net',
        mode: 'tunnel',
        local_ts: s.theirs.subnet,
        remote_ts: s.ours.subnet,
        esp_proposals: s.esp,
        ...s.swanChild,
      },
    ],
  };
}
