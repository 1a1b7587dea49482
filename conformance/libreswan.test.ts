import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startCapture, tsharkProblems } from './lib/capture.js';
import { startIkeNode } from './lib/ike-node.js';
import {
  kernelHasEsp,
  libreswanMissing,
  libreswanTunnel,
  parsePlutoLog,
  startPluto,
  withoutDebug,
} from './lib/libreswan.js';
import {
  ends,
  type IkeNodeStatus,
  ikeNodeTunnel,
  missing,
  openLab,
  type TunnelSpec,
  until,
} from './lib/scenario.js';

/**
 * ike-node against libreswan (Debian's pluto 4.10, unpacked by conformance/setup.sh) with IKEv2, a
 * pre-shared key and tunnel mode between the direct topology's subnets, ike-node as initiator and
 * as responder.
 *
 * pluto can only install SAs into the kernel over XFRM. The lab host's kernel has no ESP (nor GCM),
 * so pluto negotiates the IKE SA and the first child SA, then fails to add the ESP state ("Protocol
 * not supported", or "Function not implemented" for GCM) and reacts as pluto 4.10 does:
 * - as responder it keeps the IKE SA and refuses the child with TS_UNACCEPTABLE (and so a retry in
 *   CREATE_CHILD_SA too);
 * - as initiator it treats the failure as fatal and deletes the IKE SA without a Delete (and would
 *   re-initiate at once, over and over: `--impair revival` turns that off).
 * So on such a kernel the tests check IKE-level interop (both sides established the same IKE SA
 * with the same algorithms and SPIs) and that the child failed only at installation, with the SPI
 * ike-node chose. Where the kernel has ESP (kernelHasEsp) they check the child SA's SPIs both ways:
 * a branch for machines with a stock kernel, never taken on the lab host or in CI, whose kernel has
 * no ESP. ESP with pluto is covered in the qemu kernel lab instead: the `libreswan` scenario of
 * conformance/kernel-lab/kernel-esp.ts (checked by conformance/kernel-esp.test.ts) runs both roles
 * with SAs in the guest kernel, pings both ways and compares both kernels' SPIs, keys and counters.
 */

const PSK = 'conformance-psk-3f9a';
const absent = libreswanMissing();

t.setTimeout(120_000);

interface Suite {
  /** ike-node's proposals, as its status prints them. */
  ike: string;
  esp: string;
  /** The same in libreswan's ipsec.conf syntax. */
  libreswan: { ike: string; esp: string };
  /** How pluto logs them: the IKE SA's `{cipher=... integ=... prf=... group=...}`, the chosen ESP. */
  pluto: { ike: Record<string, string>; esp: string };
}

const SUITES: Suite[] = [
  {
    ike: 'aes256-sha256-modp2048',
    esp: 'aes256-sha256',
    libreswan: { ike: 'aes256-sha2_256-modp2048', esp: 'aes256-sha2_256' },
    pluto: {
      ike: { cipher: 'AES_CBC_256', integ: 'HMAC_SHA2_256_128', prf: 'HMAC_SHA2_256', group: 'MODP2048' },
      esp: 'ESP=AES_CBC_256-HMAC_SHA2_256_128-DISABLED',
    },
  },
  {
    ike: 'aes256-sha256-modp2048',
    esp: 'aes128gcm16',
    libreswan: { ike: 'aes256-sha2_256-modp2048', esp: 'aes_gcm128' },
    pluto: {
      ike: { cipher: 'AES_CBC_256', integ: 'HMAC_SHA2_256_128', prf: 'HMAC_SHA2_256', group: 'MODP2048' },
      esp: 'ESP=AES_GCM_C_128-DISABLED',
    },
  },
  {
    ike: 'aes128gcm16-prfsha256-ecp256',
    esp: 'aes128gcm16',
    libreswan: { ike: 'aes_gcm128-sha2_256-dh19', esp: 'aes_gcm128' },
    pluto: {
      ike: { cipher: 'AES_GCM_16_128', integ: 'n/a', prf: 'HMAC_SHA2_256', group: 'DH19' },
      esp: 'ESP=AES_GCM_C_128-DISABLED',
    },
  },
];

async function scenario(t: Test, role: 'initiator' | 'responder', suite: Suite): Promise<void> {
  const lab = await openLab(t, 'direct', `libreswan-${role}`, 40);
  const { dir, topology } = lab;
  const { ours, theirs } = ends(topology, 'left');
  const esp = await kernelHasEsp(theirs.ns);
  t.comment(`the kernel ${esp ? 'has' : 'has no'} ESP: pluto's child SA ${esp ? 'is' : 'is not'} checked`);
  const tunnel: TunnelSpec = {
    dir,
    ours,
    theirs,
    psk: PSK,
    version: 2,
    role,
    ike: suite.ike,
    esp: suite.esp,
  };
  let plutoLog = () => '';
  try {
    const pluto = await startPluto(theirs.ns, {
      name: 'libreswan',
      dir: join(dir, 'libreswan'),
      conns: [libreswanTunnel(tunnel, suite.libreswan)],
      // pluto re-initiates a connection it initiated as soon as its IKE SA goes away (here right
      // after the failed child install, over and over): the test decides when to initiate.
      impair: ['revival'],
    });
    plutoLog = pluto.log;
    const capture = await startCapture(ours.ns, ours.iface, join(dir, 'ike-node.pcap'));
    const ikeNode = await startIkeNode(ours.ns, ikeNodeTunnel(tunnel), { dir });
    lab.ikeNode = ikeNode;
    if (role === 'responder') {
      const initiated = await pluto.initiate('net');
      t.equal(initiated.code, 0, 'whack --initiate returned 0');
      t.match(initiated.stdout, /initiator established IKE SA/, 'whack --initiate: IKE SA established');
    }

    // pluto's view, from its log: the IKE SA, and the child SA installed or failing to install.
    const seen = await until(
      async () => {
        const parsed = parsePlutoLog(pluto.log());
        const ike = parsed.ikeSas.find((sa) => sa.established && sa.spiR !== undefined);
        const child = parsed.childSas.find((sa) => (esp ? sa.established : sa.installError !== undefined));
        return ike && child ? { ike, child } : undefined;
      },
      10_000,
      'pluto to establish the IKE SA and finish with the child SA',
    );
    // ike-node's view: Active when it has the child, Error when pluto refused it.
    const status = await until(
      async () => {
        const st = (await ikeNode.status()) as IkeNodeStatus;
        const net = st[0];
        const settled = net?.status === 'Active' || net?.status === 'Error';
        return settled && net.ikeSas[0]?.state === 'ESTABLISHED' ? net : undefined;
      },
      10_000,
      'ike-node to establish the IKE SA',
    );
    const ikeSa = status.ikeSas[0]!;

    t.match(
      seen.ike,
      {
        conn: 'net',
        role: role === 'initiator' ? 'responder' : 'initiator',
        peerId: `ID_IPV4_ADDR '${ours.address}'`,
        algorithms: suite.pluto.ike,
      },
      'pluto: IKE SA established with the configured algorithms, ike-node authenticated',
    );
    t.match(
      ikeSa,
      {
        version: 2,
        state: 'ESTABLISHED',
        role,
        algorithms: suite.ike,
        localId: ours.address,
        remoteId: theirs.address,
        natDetected: false,
      },
      'ike-node: IKE SA established with the configured algorithms',
    );
    t.equal(ikeSa.spiI, seen.ike.spiI, 'IKE SPIi agree');
    t.equal(ikeSa.spiR, seen.ike.spiR, 'IKE SPIr agree');
    if (role === 'initiator') t.equal(seen.child.proposal, suite.pluto.esp, 'pluto chose the ESP proposal');

    const child = status.childSas[0];
    const childShape = {
      mode: 'tunnel',
      algorithms: suite.esp,
      localTs: [ours.subnet],
      remoteTs: [theirs.subnet],
    };
    if (esp) {
      t.equal(status.status, 'Active', 'ike-node: child SA installed');
      t.match(child, childShape, 'ike-node: tunnel-mode child SA between the subnets');
      t.equal(child?.spiIn, seen.child.spiOut, 'child SPIs agree (ike-node in = pluto out)');
      t.equal(child?.spiOut, seen.child.spiIn, 'child SPIs agree (ike-node out = pluto in)');
    } else {
      // EPROTONOSUPPORT: no ESP in the kernel; ENOSYS: the AEAD (rfc4106(gcm(aes))) is looked up first,
      // and the lab host's kernel has no GCM either.
      t.match(
        seen.child.installError,
        /^(Protocol not supported \(errno 93\)|Function not implemented \(errno 38\))$/,
        'pluto: the kernel refused the ESP SA',
      );
      t.equal(seen.child.addDestination, ours.address, "pluto: it was the SA towards ike-node's address");
      if (role === 'initiator') {
        // pluto answered the IKE_AUTH child (and ike-node's retry in CREATE_CHILD_SA) with TS_UNACCEPTABLE.
        t.match(status, { status: 'Error', error: /TS_UNACCEPTABLE/ }, 'ike-node: pluto refused the child');
        t.equal(status.childSas.length, 0, 'ike-node: no child SA');
        const states = await pluto.states();
        t.ok(
          states.some((s) => s.serial === seen.ike.serial && s.state === 'STATE_V2_ESTABLISHED_IKE_SA'),
          'pluto: still holds the IKE SA (whack --showstates)',
        );
      } else {
        // ike-node (memory backend) installed the child before pluto tried to.
        t.equal(status.status, 'Active', 'ike-node: child SA installed');
        t.match(child, childShape, 'ike-node: tunnel-mode child SA between the subnets');
        t.equal(seen.child.addSpi, child?.spiIn, "pluto tried to add ike-node's inbound SPI");
        await until(
          async () =>
            parsePlutoLog(pluto.log()).ikeSas.find((sa) => sa.serial === seen.ike.serial)?.deleted
              ? true
              : undefined,
          5000,
          'pluto to drop its IKE SA',
        );
        t.pass('pluto: dropped its IKE SA after the failed install (without a Delete)');
      }
    }

    // ike-node sends a Delete for its IKE SA on SIGTERM; pluto removes whatever it still holds.
    const code = await ikeNode.stop();
    lab.ikeNode = undefined;
    t.equal(code, 0, 'ike-node exits 0 on SIGTERM');
    await until(
      async () => ((await pluto.states()).length === 0 ? true : undefined),
      5000,
      'pluto to drop every state',
    );
    t.ok(
      parsePlutoLog(pluto.log()).ikeSas.find((sa) => sa.serial === seen.ike.serial)?.deleted,
      'pluto: IKE SA deleted, no states left (whack --showstates)',
    );

    await capture.stop();
    const problems = await tsharkProblems(join(dir, 'ike-node.pcap'));
    t.same(problems, [], 'tshark: no malformed packets, no expert warnings');
  } finally {
    if (!t.passing()) {
      const tail = withoutDebug(plutoLog()).split('\n').slice(-40).join('\n');
      t.comment(`--- pluto log (without debug lines)\n${tail}`);
    }
  }
}

for (const role of ['initiator', 'responder'] as const) {
  for (const suite of SUITES) {
    t.test(`IKEv2 direct: ike-node ${role} with libreswan, ${suite.ike} / ${suite.esp}`, (t) =>
      missing(t, absent) ? undefined : scenario(t, role, suite),
    );
  }
}
