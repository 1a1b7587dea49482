import { join } from 'node:path';
import t from 'tap';
import { isakmpSummary, startCapture, tsharkProblems } from './lib/capture.js';
import { startIkeNode } from './lib/ike-node.js';
import {
  ends,
  type IkeNodeStatus,
  ikeNodeTunnel,
  openLab,
  swanctlTunnel,
  type TunnelSpec,
  until,
} from './lib/scenario.js';
import { startCharon, swanctlConnection } from './lib/strongswan.js';

/**
 * ike-node does not do aggressive mode (it exposes a hash of the PSK to offline guessing). A client
 * that tries it must hear so at once, in a notify it understands, instead of timing out: strongSwan
 * initiates aggressive mode, ike-node answers UNSUPPORTED-EXCHANGE-TYPE and keeps no state.
 */

const PSK = 'conformance-ikev1-aggressive-psk-41f0';

t.setTimeout(60_000);

t.test('an aggressive-mode initiator is told UNSUPPORTED-EXCHANGE-TYPE', async (t) => {
  const lab = await openLab(t, 'direct', 'v1-aggressive');
  const { dir, topology } = lab;
  const { ours, theirs } = ends(topology, 'left');
  const charon = await startCharon(theirs.ns, { name: 'strongswan', dir: join(dir, 'strongswan') });
  lab.charon = charon;
  const capture = await startCapture(ours.ns, ours.iface, join(dir, 'ike-node.pcap'));
  const tunnel: TunnelSpec = {
    dir,
    ours,
    theirs,
    psk: PSK,
    role: 'responder',
    ike: 'aes128-sha1-modp1024',
    esp: 'aes128-sha1',
    swan: { aggressive: true },
  };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  const ikeNode = await startIkeNode(ours.ns, ikeNodeTunnel(tunnel), { dir });
  lab.ikeNode = ikeNode;

  const started = Date.now();
  const initiated = await charon.initiate('net', 'net', 8);
  t.notOk(initiated.ok, 'strongSwan could not establish');
  t.ok(Date.now() - started < 4000, `it failed at once, not by timeout (${Date.now() - started} ms)`);
  // strongSwan has no name for notify 29 (UNSUPPORTED-EXCHANGE-TYPE, RFC 2408 section 3.14.1).
  await until(
    async () => (/received \(29\) error notify/.test(charon.log()) ? true : undefined),
    3000,
    'strongSwan to log the notify',
  );
  t.pass('strongSwan: "received (29) error notify", and it gave up');
  t.match(
    await ikeNode.logged(/info +ike refused AGGRESSIVE from 192\.0\.2\.2:500: only main mode/),
    /refused AGGRESSIVE/,
    'ike-node logged it',
  );
  const [net] = (await ikeNode.status()) as IkeNodeStatus;
  t.same([net?.status, net?.ikeSas.length], ['Down', 0], 'ike-node kept no state');

  await ikeNode.stop();
  await capture.stop();
  const pcap = join(dir, 'ike-node.pcap');
  t.same(await tsharkProblems(pcap), [], 'tshark: no malformed packets, no expert warnings');
  const frames = await isakmpSummary(pcap);
  t.same(
    frames.slice(0, 2).map((f) => [f.exchange, f.src, f.ispi]),
    [
      ['AGGRESSIVE', topology.rightAddress, frames[0]?.ispi],
      ['INFORMATIONAL_V1', topology.leftAddress, frames[0]?.ispi],
    ],
    "on the wire: the aggressive-mode offer, then our informational answer under the client's cookie",
  );
});
