import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startCapture, tsharkProblems, type Capture } from './lib/capture.js';
import { startIkeNode } from './lib/ike-node.js';
import type { TopologyKind } from './lib/netns.js';
import {
  ends,
  ikeNodeSide,
  type IkeNodeStatus,
  ikeNodeTunnel,
  openLab,
  swanctlTunnel,
  type TunnelSpec,
  until,
} from './lib/scenario.js';
import { startCharon, swanctlConnection } from './lib/strongswan.js';

/**
 * ike-node against strongSwan 5.9.8 in network namespaces with a pre-shared key and tunnel mode:
 * IKEv1 main mode + quick mode and IKEv2 IKE_SA_INIT + IKE_AUTH, each suite with ike-node as
 * initiator and as responder, directly and through a masquerading NAT. strongSwan runs
 * kernel-libipsec, which always fakes a NAT (LAB.md), so IKE floats to 4500 in every scenario.
 * Assertions read `swanctl --list-sas` and `ike-node status --json`; tshark dissects every
 * captured exchange.
 */

const PSK = 'conformance-psk-5b1e';

// About 2 s per scenario alone; more when the kernel-lab file runs beside this one.
t.setTimeout(240_000);

interface Suite {
  ike: string;
  /** The ESP proposal; a trailing group is the PFS group. */
  esp: string;
  /** How strongSwan names the IKE SA's algorithms. */
  swan: Record<string, string | number>;
}

const SUITES: Record<1 | 2, Suite[]> = {
  1: [
    {
      ike: 'aes128-sha1-modp1024',
      esp: 'aes128-sha1-modp1024',
      swan: { encrAlg: 'AES_CBC', encrKeysize: 128, integAlg: 'HMAC_SHA1_96', dhGroup: 'MODP_1024' },
    },
    {
      ike: 'aes256-sha256-modp2048',
      esp: 'aes256-sha256-modp2048',
      swan: { encrAlg: 'AES_CBC', encrKeysize: 256, integAlg: 'HMAC_SHA2_256_128', dhGroup: 'MODP_2048' },
    },
    {
      ike: '3des-sha1-modp1024',
      esp: '3des-sha1-modp1024',
      swan: { encrAlg: '3DES_CBC', integAlg: 'HMAC_SHA1_96', dhGroup: 'MODP_1024' },
    },
  ],
  // The cloud-VPN table sampled so that each cipher, hash and group appears, then AEAD and ECDH.
  2: [
    {
      ike: 'aes256-sha256-modp2048',
      esp: 'aes256-sha256-modp2048',
      swan: {
        encrAlg: 'AES_CBC',
        encrKeysize: 256,
        integAlg: 'HMAC_SHA2_256_128',
        prfAlg: 'PRF_HMAC_SHA2_256',
        dhGroup: 'MODP_2048',
      },
    },
    {
      ike: 'aes128-sha1-modp1024',
      esp: 'aes128-sha1-modp1024',
      swan: {
        encrAlg: 'AES_CBC',
        encrKeysize: 128,
        integAlg: 'HMAC_SHA1_96',
        prfAlg: 'PRF_HMAC_SHA1',
        dhGroup: 'MODP_1024',
      },
    },
    {
      ike: 'aes192-sha384-modp1536',
      esp: 'aes192-sha384-modp1536',
      swan: {
        encrAlg: 'AES_CBC',
        encrKeysize: 192,
        integAlg: 'HMAC_SHA2_384_192',
        prfAlg: 'PRF_HMAC_SHA2_384',
        dhGroup: 'MODP_1536',
      },
    },
    {
      ike: '3des-sha512-modp2048',
      esp: '3des-sha512-modp2048',
      swan: {
        encrAlg: '3DES_CBC',
        integAlg: 'HMAC_SHA2_512_256',
        prfAlg: 'PRF_HMAC_SHA2_512',
        dhGroup: 'MODP_2048',
      },
    },
    {
      ike: 'aes256gcm16-prfsha256-curve25519',
      esp: 'aes256gcm16-curve25519',
      swan: { encrAlg: 'AES_GCM_16', encrKeysize: 256, prfAlg: 'PRF_HMAC_SHA2_256', dhGroup: 'CURVE_25519' },
    },
  ],
};

interface Scenario {
  version: 1 | 2;
  kind: TopologyKind;
  role: 'initiator' | 'responder';
  suite: Suite;
}

async function scenario(t: Test, s: Scenario): Promise<void> {
  const lab = await openLab(t, s.kind, `v${s.version}-${s.kind}-${s.role}`, 40);
  const { dir, topology } = lab;
  const captures: Capture[] = [];

  const { ours, theirs } = ends(topology, ikeNodeSide(s.kind, s.role));
  const charon = await startCharon(theirs.ns, { name: 'strongswan', dir: join(dir, 'strongswan') });
  lab.charon = charon;
  captures.push(await startCapture(ours.ns, ours.iface, join(dir, 'ike-node.pcap')));
  const tunnel: TunnelSpec = {
    dir,
    ours,
    theirs,
    psk: PSK,
    version: s.version,
    role: s.role,
    ike: s.suite.ike,
    esp: s.suite.esp,
    ikePolicy: { dpd: { delay: 5, timeout: 20, action: 'clear' } },
  };
  await charon.load(swanctlConnection(swanctlTunnel(tunnel)));
  const ikeNode = await startIkeNode(ours.ns, ikeNodeTunnel(tunnel), { dir });
  lab.ikeNode = ikeNode;
  if (s.role === 'responder') {
    const initiated = await charon.initiate('net', 'net');
    t.ok(initiated.ok, `strongSwan initiated (${initiated.stdout.split('\n').slice(-2).join(' ')})`);
  }
  const sa = await until(
    async () =>
      (await charon.listSas()).find(
        (x) => x.name === 'net' && x.state === 'ESTABLISHED' && x.children[0]?.state === 'INSTALLED',
      ),
    10000,
    'strongSwan to install the child SA',
  );
  t.match(
    sa,
    { version: s.version, ...s.suite.swan, initiator: s.role === 'responder' },
    'strongSwan: IKE SA with the configured algorithms',
  );
  t.match(
    sa.children[0],
    {
      mode: 'TUNNEL',
      protocol: 'ESP',
      localTs: [theirs.subnet],
      remoteTs: [ours.subnet],
      // IKEv2's first child comes out of IKE_AUTH, keyed without a Diffie-Hellman of its own.
      dhGroup: s.version === 1 ? s.suite.swan['dhGroup'] : undefined,
    },
    'strongSwan: child SA',
  );
  const status = await until(
    async () => {
      const st = (await ikeNode.status()) as IkeNodeStatus;
      return st[0]?.status === 'Active' ? st : undefined;
    },
    5000,
    'ike-node to report Active',
  );
  const [net] = status;
  t.equal(net!.ikeSas[0]!.algorithms, s.suite.ike, 'ike-node: IKE algorithms');
  const firstChild = s.version === 1 ? s.suite.esp : s.suite.esp.replace(/-(modp|curve)\w+$/, '');
  t.equal(net!.childSas[0]!.algorithms, firstChild, 'ike-node: child algorithms');
  t.equal(net!.childSas[0]!.spiIn, sa.children[0]!.spiOut, 'SPIs agree (ike-node in = strongSwan out)');
  t.equal(net!.childSas[0]!.spiOut, sa.children[0]!.spiIn, 'SPIs agree (ike-node out = strongSwan in)');
  t.ok(
    net!.ikeSas[0]!.natDetected,
    'NAT detected (kernel-libipsec fakes one; the nat topology has a real one)',
  );
  t.ok(net!.childSas[0]!.encapsulation, 'ESP in UDP negotiated');

  // Delete: ike-node initiates the teardown when it was the initiator, strongSwan otherwise.
  if (s.role === 'initiator') {
    const code = await ikeNode.stop();
    lab.ikeNode = undefined;
    t.equal(code, 0, 'ike-node exits 0 on SIGTERM');
    await until(
      async () => ((await charon.listSas()).length === 0 ? true : undefined),
      5000,
      'strongSwan to act on the Delete',
    );
    t.pass('strongSwan removed its SAs after our Delete');
  } else {
    await charon.terminate('net');
    await until(
      async () => (((await ikeNode.status()) as IkeNodeStatus)[0]?.status === 'Down' ? true : undefined),
      5000,
      'ike-node to act on the Delete',
    );
    t.pass("ike-node removed its SAs after strongSwan's Delete");
  }
  for (const capture of captures) await capture.stop();
  const problems = await tsharkProblems(join(dir, 'ike-node.pcap'));
  t.same(problems, [], 'tshark: no malformed packets, no expert warnings');
}

for (const version of [1, 2] as const) {
  for (const kind of ['direct', 'nat'] as TopologyKind[]) {
    for (const role of ['initiator', 'responder'] as const) {
      // Behind the NAT one suite per version: NAT handling does not depend on the algorithms.
      for (const suite of kind === 'direct' ? SUITES[version] : SUITES[version].slice(0, 1)) {
        t.test(`IKEv${version} ${kind}: ike-node ${role}, ${suite.ike}`, (t) =>
          scenario(t, { version, kind, role, suite }),
        );
      }
    }
  }
}
