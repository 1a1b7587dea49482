import { join } from 'node:path';
import t, { type Test } from 'tap';
import { isakmpSummary, readCapture, startCapture, tsharkProblems } from './lib/capture.js';
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
 * IKEv2 against strongSwan 5.9.8 beyond the plain handshake (direct topology, tunnel mode): the
 * INVALID_KE_PAYLOAD retry in both directions, a cookie demanded by ike-node (threshold 0),
 * fragmentation over 576-byte datagrams (a child rekey with a modp4096 KE, fragmented by both
 * sides), a wrong pre-shared key in both roles (nothing installed anywhere), and the longest
 * lifetimes the cloud-VPN table allows. Every capture is dissected by tshark.
 */

t.setTimeout(240_000);

const PSK = 'conformance-ikev2-negotiation-psk-9d0b';

interface Scenario {
  label: string;
  role: 'initiator' | 'responder';
  ike: string;
  /** strongSwan's IKE proposal when it differs from ike-node's. */
  swanIke?: string;
  esp?: string;
  /** Merged into ike-node's peers.json. */
  ikeNode?: Record<string, unknown>;
  ikePolicy?: Record<string, unknown>;
  ipsecPolicy?: Record<string, unknown>;
  swanPsk?: string;
  /** Further swanctl connection options. */
  swanExtra?: Record<string, string>;
  extraCharonConf?: string;
}

async function open(t: Test, s: Scenario) {
  const lab = await openLab(t, 'direct', `v2-${s.label}`, 80);
  const { dir, topology } = lab;
  const { ours, theirs } = ends(topology, 'left');
  const charon = await startCharon(theirs.ns, {
    name: 'strongswan',
    dir: join(dir, 'strongswan'),
    ...(s.extraCharonConf && { extraCharonConf: s.extraCharonConf }),
  });
  lab.charon = charon;
  const pcap = join(dir, 'ike-node.pcap');
  const capture = await startCapture(ours.ns, ours.iface, pcap, 'udp');
  const tunnel: TunnelSpec = {
    dir,
    ours,
    theirs,
    psk: PSK,
    version: 2,
    role: s.role,
    ike: s.ike,
    esp: s.esp ?? 'aes128gcm16',
    ...(s.ikePolicy && { ikePolicy: s.ikePolicy }),
    ...(s.ipsecPolicy && { ipsecPolicy: s.ipsecPolicy }),
    swan: {
      ...(s.swanIke && { proposals: s.swanIke }),
      ...(s.swanPsk && { psk: s.swanPsk }),
      ...(s.swanExtra && { extra: s.swanExtra }),
    },
  };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  const ikeNode = await startIkeNode(ours.ns, { ...ikeNodeTunnel(tunnel), ...s.ikeNode }, { dir });
  lab.ikeNode = ikeNode;
  const initiated = s.role === 'responder' ? await charon.initiate('net', 'net', 10) : undefined;
  const status = async () => ((await ikeNode.status()) as IkeNodeStatus)[0]!;
  const active = () =>
    until(async () => ((await status()).status === 'Active' ? status() : undefined), 10_000, 'Active');
  const finish = async () => {
    await ikeNode.stop();
    lab.ikeNode = undefined;
    await capture.stop();
    t.same(await tsharkProblems(pcap), [], 'tshark: no malformed packets, no expert warnings');
    return isakmpSummary(pcap);
  };
  return { lab, charon, ikeNode, pcap, status, active, finish, initiated };
}

t.test('INVALID_KE_PAYLOAD: ike-node offers modp2048 first, strongSwan wants curve25519', async (t) => {
  const s = await open(t, {
    label: 'invalid-ke-ours',
    role: 'initiator',
    ike: 'aes128-sha256-modp2048,aes128-sha256-curve25519',
    swanIke: 'aes128-sha256-curve25519',
  });
  const net = await s.active();
  t.equal(net.ikeSas[0]!.algorithms, 'aes128-sha256-curve25519', 'ike-node tried again with curve25519');
  const [sa] = await s.charon.listSas();
  t.equal(sa?.dhGroup, 'CURVE_25519', 'strongSwan agrees');
  t.match(
    await s.ikeNode.logged(/INVALID_KE_PAYLOAD/),
    /INVALID_KE_PAYLOAD/,
    'ike-node logged the request for another group',
  );
  const frames = await s.finish();
  t.equal(frames.filter((f) => f.exchange === 'IKE_SA_INIT').length, 4, 'IKE_SA_INIT twice');
});

t.test('INVALID_KE_PAYLOAD: strongSwan offers modp2048 first, ike-node wants curve25519', async (t) => {
  const s = await open(t, {
    label: 'invalid-ke-theirs',
    role: 'responder',
    ike: 'aes128-sha256-curve25519',
    swanIke: 'aes128-sha256-modp2048,aes128-sha256-curve25519',
  });
  t.ok(s.initiated?.ok, 'strongSwan initiated');
  const net = await s.active();
  t.equal(net.ikeSas[0]!.algorithms, 'aes128-sha256-curve25519');
  t.match(
    s.charon.log(),
    /peer didn't accept DH group MODP_2048, it requested CURVE_25519/,
    'strongSwan retried',
  );
  await s.finish();
});

t.test('cookies: ike-node demands one (threshold 0), strongSwan proves its address', async (t) => {
  const s = await open(t, {
    label: 'cookie',
    role: 'responder',
    ike: 'aes256-sha256-modp2048',
    ikeNode: { ike: { cookieThreshold: 0 } },
  });
  t.ok(s.initiated?.ok, 'strongSwan initiated');
  await s.active();
  t.match(s.charon.log(), /received COOKIE/i, 'strongSwan saw the COOKIE');
  const frames = await s.finish();
  t.equal(frames.filter((f) => f.exchange === 'IKE_SA_INIT').length, 4, 'IKE_SA_INIT twice');
});

t.test('childless (RFC 6023): strongSwan makes the IKE SA alone, then the child SA', async (t) => {
  const s = await open(t, {
    label: 'childless',
    role: 'responder',
    ike: 'aes256-sha256-modp2048',
    swanExtra: { childless: 'force' },
  });
  t.ok(s.initiated?.ok, 'strongSwan initiated');
  const net = await s.active();
  t.equal(net.childSas.length, 1, 'the child SA came after');
  const frames = await s.finish();
  t.same(
    frames.map((f) => f.exchange).slice(0, 6),
    ['IKE_SA_INIT', 'IKE_SA_INIT', 'IKE_AUTH', 'IKE_AUTH', 'CREATE_CHILD_SA', 'CREATE_CHILD_SA'],
    'IKE_SA_INIT, IKE_AUTH alone, then CREATE_CHILD_SA',
  );
});

t.test(
  'fragmentation: 576-byte datagrams, a child rekey with a modp4096 KE in fragments both ways',
  async (t) => {
    const s = await open(t, {
      label: 'fragments',
      role: 'initiator',
      ike: 'aes128-sha256-modp2048',
      esp: 'aes128-sha256-modp4096',
      ikeNode: { ike: { fragmentSize: 576 } },
      extraCharonConf: '  fragment_size = 576\n',
    });
    const first = await s.active();
    t.equal(
      (await s.charon.swanctl(['--rekey', '--child', 'net'], 20)).code,
      0,
      'strongSwan rekeyed the child SA',
    );
    const after = await until(
      async () => {
        const net = await s.status();
        return net.childSas.length === 1 && net.childSas[0]!.spiIn !== first.childSas[0]!.spiIn
          ? net
          : undefined;
      },
      15_000,
      'the rekeyed child SA at ike-node',
    );
    t.equal(after.childSas[0]!.algorithms, 'aes128-sha256-modp4096', 'with its modp4096 Diffie-Hellman');
    const stdout = await readCapture(s.pcap, [
      '-Y',
      'isakmp.nextpayload == 53',
      '-T',
      'fields',
      '-e',
      'ip.src',
    ]);
    const sources = stdout.split('\n').filter(Boolean);
    t.ok(sources.length >= 4, `SKF payloads on the wire (${sources.length})`);
    t.ok(
      sources.includes(s.lab.topology.leftAddress) && sources.includes(s.lab.topology.rightAddress),
      'sent by both sides',
    );
    const frames = await s.finish();
    t.ok(
      frames.every((f) => f.length + 28 + 4 <= 576),
      'no IKE datagram over 576 bytes',
    );
  },
);

for (const role of ['initiator', 'responder'] as const) {
  t.test(`a wrong pre-shared key, ike-node ${role}: AUTHENTICATION_FAILED, nothing installed`, async (t) => {
    const s = await open(t, {
      label: `wrong-psk-${role}`,
      role,
      ike: 'aes128-sha256-modp2048',
      swanPsk: 'not the same key at all',
    });
    if (s.initiated) t.notOk(s.initiated.ok, 'strongSwan could not initiate');
    const net = await until(
      async () => ((await s.status()).status === 'Error' ? s.status() : undefined),
      10_000,
      'ike-node to report Error',
    );
    t.match(net.error, role === 'initiator' ? /AUTHENTICATION_FAILED/ : /does not verify/, net.error ?? '');
    t.same([net.ikeSas, net.childSas], [[], []], 'ike-node holds nothing');
    t.same(
      (await s.charon.listSas()).filter((sa) => sa.state === 'ESTABLISHED'),
      [],
      'strongSwan holds nothing',
    );
    await s.finish();
  });
}

t.test('the longest lifetimes of the table (86400 s) at both ends', async (t) => {
  const s = await open(t, {
    label: 'lifetimes',
    role: 'initiator',
    ike: 'aes256-sha256-modp2048',
    ikePolicy: { lifetime: 86400, rekeyFuzz: 0 },
    ipsecPolicy: { lifetime: 86400, rekeyFuzz: 0 },
  });
  const net = await s.active();
  const ike = net.ikeSas[0]!;
  const child = net.childSas[0]!;
  t.equal(ike.expiresAt! - ike.establishedAt!, 86400, 'the IKE SA lives a day');
  t.equal(ike.rekeyAt! - ike.establishedAt!, 86400 - 540, 'and is rekeyed 9 minutes before');
  t.equal(child.expiresAt - child.installedAt, 86400, 'the child SA lives a day');
  await s.finish();
});
