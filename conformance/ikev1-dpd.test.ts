import { join } from 'node:path';
import t from 'tap';
import { isakmpSummary, startCapture, tsharkProblems } from './lib/capture.js';
import { startIkeNode } from './lib/ike-node.js';
import { delay, listNamespaces, signal } from './lib/netns.js';
import { type IkeNodeStatus, openLab, until } from './lib/scenario.js';
import { startCharon, swanctlConnection } from './lib/strongswan.js';

/**
 * IKEv1 dead peer detection (RFC 3706) against strongSwan 5.9.8 (direct topology, tunnel mode,
 * aes128-sha1-modp1024, PFS modp1024): while strongSwan lives, ike-node's R-U-THERE messages are
 * answered and the connection stays Active; once charon is SIGKILLed, ike-node must declare the
 * peer dead within delay + timeout and drop its SAs (action clear).
 */

const PSK = 'conformance-ikev1-dpd-psk-41af';
const SUITE = 'aes128-sha1-modp1024';
const DPD = { delay: 2, timeout: 6, action: 'clear' } as const;

t.test('direct: ike-node initiator detects a SIGKILLed strongSwan by DPD', async (t) => {
  const lab = await openLab(t, 'direct', 'v1-dpd');
  const { dir, topology } = lab;

  const charon = await startCharon(topology.right, { name: 'strongswan', dir: join(dir, 'strongswan') });
  lab.charon = charon;

  const pcap = join(dir, 'ike-node.pcap');
  const capture = await startCapture(topology.left, topology.leftIface, pcap);
  await charon.load(
    swanctlConnection({
      name: 'net',
      version: 1,
      local_addrs: topology.rightAddress,
      remote_addrs: topology.leftAddress,
      proposals: SUITE,
      local_id: topology.rightAddress,
      remote_id: topology.leftAddress,
      psk: PSK,
      // strongSwan sends no DPD of its own: every R-U-THERE on the wire is ike-node's.
      dpd_delay: 0,
      children: [
        {
          name: 'net',
          mode: 'tunnel',
          local_ts: topology.rightSubnet,
          remote_ts: topology.leftSubnet,
          esp_proposals: SUITE,
        },
      ],
    }),
  );
  const ikeNode = await startIkeNode(
    topology.left,
    {
      listen: { addresses: [topology.leftAddress] },
      control: { socket: join(dir, 'ike-node.sock') },
      log: { level: 'debug' },
      ikePolicies: { ike: { proposals: [SUITE], dpd: DPD } },
      ipsecPolicies: { esp: { proposals: ['aes128-sha1'], pfs: 'modp1024' } },
      connections: {
        net: {
          ikePolicy: 'ike',
          ipsecPolicy: 'esp',
          local: { address: topology.leftAddress, id: topology.leftAddress, subnets: [topology.leftSubnet] },
          peer: {
            address: topology.rightAddress,
            id: topology.rightAddress,
            subnets: [topology.rightSubnet],
          },
          psk: PSK,
          start: 'initiate',
        },
      },
    },
    { dir },
  );
  lab.ikeNode = ikeNode;

  const established = await until(
    async () => {
      const [net] = (await ikeNode.status()) as IkeNodeStatus;
      return net?.status === 'Active' && net.childSas.length === 1 ? net : undefined;
    },
    10_000,
    'ike-node to establish the child SA',
  );
  const swanChild = await until(
    async () =>
      (await charon.listSas())
        .find((x) => x.name === 'net' && x.state === 'ESTABLISHED')
        ?.children.find((c) => c.state === 'INSTALLED'),
    5000,
    'strongSwan to install the child SA',
  );
  t.equal(swanChild.spiIn, established.childSas[0]!.spiOut, 'SPIs agree (ike-node out = strongSwan in)');
  t.equal(swanChild.spiOut, established.childSas[0]!.spiIn, 'SPIs agree (ike-node in = strongSwan out)');

  // Idle past 2 × delay: R-U-THERE goes out at least twice, and strongSwan answers each one.
  await delay(DPD.delay * 2 * 1000 + 1500);
  const [alive] = (await ikeNode.status()) as IkeNodeStatus;
  t.equal(alive!.status, 'Active', `still Active after ${DPD.delay * 2 + 1.5} s of DPD`);
  t.same(
    alive!.childSas.map((c) => c.spiIn),
    established.childSas.map((c) => c.spiIn),
    'the same child SA',
  );
  const log = charon.log();
  const requests = log.match(/parsed INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD\) \]/g) ?? [];
  const acks = log.match(/generating INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD_ACK\) \]/g) ?? [];
  t.ok(requests.length >= 2, `strongSwan received R-U-THERE (${requests.length})`);
  t.equal(acks.length, requests.length, 'strongSwan answered every R-U-THERE with R-U-THERE-ACK');
  const wire = await isakmpSummary(pcap).catch(() => []);
  const informational = wire.filter((f) => f.exchange === 'INFORMATIONAL_V1');
  t.ok(
    informational.some((f) => f.src === topology.leftAddress) &&
      informational.some((f) => f.src === topology.rightAddress),
    'informational exchanges in both directions on the wire',
  );

  // SIGKILL charon itself (the handle's pid is charon's: `sh -c … exec charon`): no Delete goes out.
  const killedAt = Date.now();
  signal(charon.pid, 'SIGKILL');
  t.equal(await charon.stop(), 137, 'charon died of SIGKILL');
  const dead = await until(
    async () => {
      const [net] = (await ikeNode.status()) as IkeNodeStatus;
      return net?.status === 'Error' ? net : undefined;
    },
    12_000,
    'ike-node to declare the peer dead',
  );
  const detectedIn = (Date.now() - killedAt) / 1000;
  t.comment(`dead peer detected ${detectedIn.toFixed(1)} s after the kill`);
  t.match(dead.error, /dead peer/, `status Error: ${dead.error}`);
  t.same(dead.childSas, [], 'no child SA left');
  t.same(dead.ikeSas, [], 'no IKE SA left');
  t.ok(detectedIn >= DPD.timeout - DPD.delay - 0.5, 'not declared dead before the timeout could run');
  t.match(ikeNode.log(), /dead peer: no answer for \d+ s, action clear/, 'ike-node logged the dead peer');

  await ikeNode.stop();
  lab.ikeNode = undefined;
  await capture.stop();
  t.same(await tsharkProblems(pcap), [], 'tshark: no malformed packets, no expert warnings');
  await topology.destroy();
  t.same(
    (await listNamespaces()).filter((name) => name.startsWith(topology.prefix)),
    [],
    'no namespace left behind',
  );
});
