import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startIkeNode } from '../lib/ike-node.js';
import { ikeNodeChildren, tunnelUp } from '../lib/impair.js';
import { delay, signal } from '../lib/netns.js';
import {
  type IkeNodeStatus,
  ends,
  ikeNodeTunnel,
  openLab,
  swanctlTunnel,
  type TunnelSpec,
} from '../lib/scenario.js';
import { startCharon, swanctlConnection } from '../lib/strongswan.js';

/**
 * A peer that reboots: strongSwan 5.9.8 has a tunnel up with ike-node, its charon is SIGKILLed (no
 * Delete goes out) and a fresh charon with no state starts in its place and connects again,
 * sending INITIAL-CONTACT (RFC 2407 4.6.3.3 in main mode message 5, RFC 7296 2.4 in IKE_AUTH).
 * ike-node must take the old IKE SA and its child for stale and end with exactly one IKE SA and
 * one child SA for the peer, the new ones, for IKEv1 and IKEv2, whether ike-node initiated the
 * first tunnel or answered it. The four run at once.
 */

const PSK = 'conformance-reboot-psk-1e6b';
const SUITE = 'aes128-sha1-modp1024';
/** After the new tunnel is up: long enough for a re-initiation or a late delete to show. */
const SETTLE_MS = 3000;

t.setTimeout(120_000);

async function scenario(t: Test, version: 1 | 2, role: 'initiator' | 'responder'): Promise<string> {
  const label = `IKEv${version} ike-node ${role}`;
  const lab = await openLab(t, 'direct', `reboot-v${version}-${role}`);
  const { ours, theirs } = ends(lab.topology, 'left');
  const tunnel: TunnelSpec = { dir: lab.dir, ours, theirs, psk: PSK, version, role, ike: SUITE, esp: SUITE };
  const conf = swanctlConnection(swanctlTunnel(tunnel));
  const before = await startCharon(theirs.ns, { name: 'strongswan', dir: join(lab.dir, 'strongswan-1') });
  lab.charon = before;
  await before.load(conf);
  const ikeNode = await startIkeNode(ours.ns, ikeNodeTunnel(tunnel), { dir: lab.dir });
  lab.ikeNode = ikeNode;
  if (role === 'responder') t.ok((await before.initiate('net', 'net')).ok, `${label}: strongSwan initiated`);
  const first = await tunnelUp(ikeNode, before, 15_000);

  // The reboot: SIGKILL charon itself, then a new one from scratch that initiates.
  signal(before.pid, 'SIGKILL');
  t.equal(await before.stop(), 137, `${label}: the first charon died of SIGKILL`);
  const rebootedAt = Date.now();
  const after = await startCharon(theirs.ns, { name: 'strongswan', dir: join(lab.dir, 'strongswan-2') });
  lab.charon = after;
  await after.load(conf);
  t.ok((await after.initiate('net', 'net')).ok, `${label}: the rebooted strongSwan connected again`);
  const second = await tunnelUp(ikeNode, after, 15_000, { ikeNode: 2, charon: 1 });
  const upIn = second.at - rebootedAt;
  await ikeNode.logged(/INITIAL-CONTACT: removing stale SAs/, 5000);
  t.pass(`${label}: ike-node acted on INITIAL-CONTACT`);

  await delay(SETTLE_MS);
  const [net] = (await ikeNode.status()) as IkeNodeStatus;
  const sas = await after.listSas();
  t.equal(net?.status, 'Active', `${label}: ike-node Active`);
  t.equal(net?.ikeSas.length, 1, `${label}: ike-node has exactly one IKE SA`);
  t.equal(net?.childSas.length, 1, `${label}: ike-node has exactly one child SA`);
  t.equal(sas.length, 1, `${label}: strongSwan has one IKE SA`);
  t.equal(sas[0]?.children.length, 1, `${label}: strongSwan has one child SA`);
  t.not(net?.ikeSas[0]?.spiI, first.net.ikeSas[0]?.spiI, `${label}: the IKE SA is a new one`);
  t.equal(
    net?.ikeSas[0]?.spiI,
    String(sas[0]?.raw['initiator-spi'] ?? ''),
    `${label}: ike-node's IKE SA is the rebooted peer's`,
  );
  t.equal(net?.childSas[0]?.spiIn, sas[0]?.children[0]?.spiOut, `${label}: child SPIs agree`);
  t.equal(
    net?.childSas[0]?.spiOut,
    sas[0]?.children[0]?.spiIn,
    `${label}: child SPIs agree (other direction)`,
  );
  t.equal(second.net.childSas.length, 1, `${label}: the stale child was gone when the new one was up`);
  return `${label}: ${ikeNodeChildren(ikeNode.log())} child SAs installed in all; back up ${(upIn / 1000).toFixed(1)} s after the new charon started`;
}

t.test('a peer that reboots: IKEv1 and IKEv2, both roles', async (t) => {
  const lines = await Promise.all(
    ([1, 2] as const).flatMap((version) =>
      (['initiator', 'responder'] as const).map((role) => scenario(t, version, role)),
    ),
  );
  for (const line of lines) t.comment(line);
});
