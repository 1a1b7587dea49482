import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importIsakmpd } from '../../src/config/import/index.js';
import { IKE_FILTER, startCapture, type Capture } from '../lib/capture.js';
import { startIkeNode, type IkeNode } from '../lib/ike-node.js';
import {
  decodeGuestRun,
  type GuestRun,
  isMainModule,
  keepCaptures,
  runGuestScenarios,
} from '../lib/kernel-lab-guest.js';
import { createTopology, type Topology, type TopologyKind } from '../lib/netns.js';
import { type IkeNodeStatus, until } from '../lib/scenario.js';
import { startCharon, swanctlConnection, type Charon, type ParsedSa } from '../lib/strongswan.js';

/**
 * Runs INSIDE the qemu kernel lab (conformance/ikev1-macos-offer.test.ts boots it:
 * `node --import tsx conformance/kernel-lab/ikev1-macos-offer.ts`), because strongSwan's
 * kernel-libipsec cannot install transport-mode SAs and the host kernel has no ESP: here strongSwan
 * runs kernel-netlink and installs real XFRM states.
 *
 * strongSwan plays a macOS/iOS L2TP/IPsec client: IKEv1 main mode with PSK and the 14-transform
 * proposal those clients send, then quick mode for transport mode, udp/1701 on both sides, no PFS.
 * ike-node plays an OpenBSD isakmpd gateway configured as
 * `ike passive esp transport proto udp from $gw port 1701 to any main group "modp1024"
 * quick group none psk "..."`: it answers anyone (`peer.address: "any"`). Three scenarios in one
 * boot: direct, and the client behind a masquerading NAT (an iPhone behind a home router), both
 * with that hand-written peers.json; then direct again with the peers.json that the isakmpd
 * importer makes of the line (`ISAKMPD_LINE`), which must accept the same offer.
 *
 * Output: result.json and one pcap per captured interface in $KLAB_OUT, and, because klab-run
 * deletes $KLAB_OUT after a successful run, the same result (pcaps base64 encoded inside) printed
 * on the console as gzip+base64 lines between RESULT_BEGIN and RESULT_END, which
 * `decodeGuestResult` turns back into a GuestResult on the host.
 */

export const PSK = 'conformance-macos-l2tp-psk-7c41';

/** What macOS and iOS (racoon-derived IKEv1) offer in main mode, most preferred first. */
export const MACOS_IKE_PROPOSALS = [
  'aes256-sha256-modp2048',
  'aes128-sha256-modp2048',
  'aes256-sha1-modp2048',
  'aes128-sha1-modp2048',
  '3des-sha1-modp2048',
  'aes256-sha256-modp1536',
  'aes256-sha1-modp1536',
  'aes128-sha1-modp1536',
  '3des-sha1-modp1536',
  'aes256-sha256-modp1024',
  'aes256-sha1-modp1024',
  'aes128-sha1-modp1024',
  '3des-sha1-modp1024',
  '3des-md5-modp1024',
] as const;

/** Quick mode offer: no DH group, macOS never does PFS. */
export const MACOS_ESP_PROPOSALS = [
  'aes256-sha1',
  'aes128-sha1',
  '3des-sha1',
  'aes256-md5',
  'aes128-md5',
  '3des-md5',
] as const;

/** The gateway's main mode suites, as isakmpd's `main group "modp1024"`, in its preference order. */
export const GATEWAY_IKE_PROPOSALS = ['aes128-sha1-modp1024', '3des-sha1-modp1024'] as const;
export const GATEWAY_ESP_PROPOSALS = ['aes128-sha1', '3des-sha1'] as const;

export const L2TP_PORT = 1701;

/**
 * The ipsec.conf line; GATEWAY becomes the topology's gateway address and PSK the
 * scenario's pre-shared key. A tunnel-mode rule with PFS: the importer's isakmpd leniencies
 * (acceptModes, every ESP suite after the rule's own, acceptPfs with "none") let the transport,
 * no-PFS macOS offer through, as isakmpd -K does.
 */
export const ISAKMPD_LINE =
  'ike passive esp tunnel from GATEWAY to any main group "modp1024" quick group "modp1024" psk "PSK"';

export const isakmpdLine = (gateway: string, psk: string = PSK): string =>
  ISAKMPD_LINE.replace('GATEWAY', gateway).replace('"PSK"', JSON.stringify(psk));

export type GatewayConfigKind = 'hand-written' | 'isakmpd-import';

export interface Scenario {
  /** Unique in the boot: names the captures and the host's subtests. */
  name: string;
  kind: TopologyKind;
  gateway: GatewayConfigKind;
}

export const SCENARIOS: readonly Scenario[] = [
  { name: 'direct', kind: 'direct', gateway: 'hand-written' },
  { name: 'nat', kind: 'nat', gateway: 'hand-written' },
  { name: 'isakmpd-import', kind: 'direct', gateway: 'isakmpd-import' },
];

export interface ScenarioResult {
  name: string;
  kind: TopologyKind;
  gatewayConfig: GatewayConfigKind;
  /** For 'isakmpd-import': the line imported and the importer's warnings. */
  imported?: { line: string; warnings: string[] };
  /** True when every step ran; assertions are the host's business. */
  completed: boolean;
  error?: string;
  client: { address: string; seenAs: string };
  gateway: { address: string };
  initiate?: { code: number; ms: number; output: string };
  /** `swanctl --list-sas --raw`, parsed, after the exchange and the probe. */
  sas?: ParsedSa[];
  /** One UDP datagram client:1701 -> gateway:1701, which the client's kernel must send as ESP. */
  probe?: { code: number; stderr: string };
  /** strongSwan's log lines for the quick mode messages it parsed (which payloads we sent). */
  quickModeParsed?: string[];
  /** `ip -s xfrm state` and `ip xfrm policy` in strongSwan's namespace. */
  xfrmState?: string;
  xfrmPolicy?: string;
  ikeNodeStatus?: IkeNodeStatus;
  /** ike-node's status after strongSwan deleted the IKE SA (swanctl --terminate). */
  statusAfterDelete?: IkeNodeStatus;
  /** Milliseconds per step. */
  timings: Record<string, number>;
  /** Capture file names (in $KLAB_OUT and in `GuestResult.files`), by where they were taken. */
  pcaps: { client?: string; gateway?: string };
  /** tcpdump's closing counters, by capture file name. */
  captureCounters?: Record<string, string>;
  logs: { charon: string; ikeNode: string };
}

export type GuestResult = GuestRun<ScenarioResult>;

/** Finds the console copy in klab-run's output and decodes it. */
export function decodeGuestResult(output: string): GuestResult | undefined {
  return decodeGuestRun<ScenarioResult>(output);
}

const tail = (text: string, lines = 80): string => text.split('\n').slice(-lines).join('\n');
const now = (): number => performance.now();

/** The hand-written gateway: isakmpd's `ike passive esp transport proto udp ... quick group none`. */
function handWrittenGateway(gatewayAddress: string, dir: string): object {
  return {
    listen: { addresses: [gatewayAddress] },
    control: { socket: join(dir, 'ike-node.sock') },
    log: { level: 'debug' },
    ikePolicies: { 'l2tp-main': { proposals: [...GATEWAY_IKE_PROPOSALS] } },
    ipsecPolicies: {
      'l2tp-quick': {
        mode: 'transport',
        proposals: [...GATEWAY_ESP_PROPOSALS],
        // macOS and iOS never do PFS in quick mode: gateways serving them configure
        // `quick group none` (isakmpd), so no DH group here.
        pfs: 'none',
      },
    },
    connections: {
      'l2tp-clients': {
        ikePolicy: 'l2tp-main',
        ipsecPolicy: 'l2tp-quick',
        local: { address: gatewayAddress, selectors: [{ protocol: 'udp', port: L2TP_PORT }] },
        peer: { address: 'any', selectors: [{ protocol: 'udp' }] },
        psk: PSK,
      },
    },
  };
}

/** The importer's peers.json for the line, unchanged but for listen, control and log. */
function importedGateway(
  gatewayAddress: string,
  dir: string,
): { config: object; line: string; warnings: string[] } {
  const line = isakmpdLine(gatewayAddress);
  const { config, warnings } = importIsakmpd(`${line}\n`, 'ipsec.conf');
  return {
    config: {
      ...config,
      listen: { addresses: [gatewayAddress] },
      control: { socket: join(dir, 'ike-node.sock') },
      log: { level: 'debug' },
    },
    line,
    warnings,
  };
}

async function scenario(spec: Scenario, out: string): Promise<ScenarioResult> {
  const { name, kind } = spec;
  const dir = mkdtempSync(join(tmpdir(), `ike-node-macos-${name}-`));
  const timings: Record<string, number> = {};
  let t0 = now();
  const step = (label: string) => {
    timings[label] = Math.round(now() - t0);
    t0 = now();
  };
  let topology: Topology | undefined;
  let charon: Charon | undefined;
  let ikeNode: IkeNode | undefined;
  const captures: Capture[] = [];
  const result: ScenarioResult = {
    name,
    kind,
    gatewayConfig: spec.gateway,
    completed: false,
    client: { address: '', seenAs: '' },
    gateway: { address: '' },
    timings,
    pcaps: {},
    logs: { charon: '', ikeNode: '' },
  };
  try {
    topology = await createTopology(kind);
    // strongSwan is the client on the left (behind the NAT in 'nat'); ike-node the gateway on the right.
    const client = topology.left;
    const gateway = topology.right;
    const clientAddress = topology.leftAddress;
    const gatewayAddress = topology.rightAddress;
    result.client = { address: clientAddress, seenAs: topology.leftSeenAs };
    result.gateway = { address: gatewayAddress };
    step('topology');

    // IKE, and ESP (plain or, on 4500, in UDP) so the probe below shows on the wire.
    const pcap = (side: string) => `${name}-${side}.pcap`;
    const filter = `${IKE_FILTER} or esp`;
    captures.push(await startCapture(client, topology.leftIface, join(dir, pcap('client')), filter));
    result.pcaps.client = pcap('client');
    captures.push(await startCapture(gateway, topology.rightIface, join(dir, pcap('gateway')), filter));
    result.pcaps.gateway = pcap('gateway');
    step('captures');

    charon = await startCharon(client, {
      name: 'macos',
      dir: join(dir, 'strongswan'),
      kernel: 'netlink',
      readyTimeoutMs: 30_000,
    });
    await charon.load(
      swanctlConnection({
        name: 'l2tp',
        version: 1,
        local_addrs: clientAddress,
        remote_addrs: gatewayAddress,
        proposals: [...MACOS_IKE_PROPOSALS],
        // Behind the NAT the gateway sees another address: the client's id stays its real one.
        local_id: clientAddress,
        remote_id: gatewayAddress,
        psk: PSK,
        children: [
          {
            name: 'l2tp',
            mode: 'transport',
            local_ts: `${clientAddress}[udp/${L2TP_PORT}]`,
            remote_ts: `${gatewayAddress}[udp/${L2TP_PORT}]`,
            esp_proposals: [...MACOS_ESP_PROPOSALS],
          },
        ],
      }),
    );
    step('charon');

    let gatewayConfig: object;
    if (spec.gateway === 'isakmpd-import') {
      const imported = importedGateway(gatewayAddress, dir);
      result.imported = { line: imported.line, warnings: imported.warnings };
      gatewayConfig = imported.config;
    } else {
      gatewayConfig = handWrittenGateway(gatewayAddress, dir);
    }
    ikeNode = await startIkeNode(gateway, gatewayConfig, {
      dir: join(dir, 'ike-node'),
      readyTimeoutMs: 30_000,
    });
    step('ikeNode');

    const started = now();
    const initiated = await charon.initiate('l2tp', 'l2tp', 30);
    result.initiate = {
      code: initiated.code,
      ms: Math.round(now() - started),
      output: tail(initiated.stdout + initiated.stderr, 20),
    };
    step('initiate');

    // What the L2TP client would send next: the kernel must put it into the transport-mode SA.
    // (ike-node runs the 'memory' kernel backend, so nothing decrypts it on the gateway.)
    const probe = await client.exec(
      process.execPath,
      [
        '-e',
        `const s = require('node:dgram').createSocket('udp4');
         s.bind(${L2TP_PORT}, '${clientAddress}', () =>
           s.send('l2tp probe', ${L2TP_PORT}, '${gatewayAddress}', (e) => { s.close(); if (e) throw e; }));`,
      ],
      { allowFail: true },
    );
    result.probe = { code: probe.code, stderr: probe.stderr };
    result.sas = await charon.listSas();
    result.quickModeParsed = charon
      .log()
      .split('\n')
      .filter((line) => /parsed QUICK_MODE/.test(line));
    result.xfrmState = (await client.exec('ip', ['-s', 'xfrm', 'state'], { allowFail: true })).stdout;
    result.xfrmPolicy = (await client.exec('ip', ['xfrm', 'policy'], { allowFail: true })).stdout;
    step('strongSwanState');

    const node = ikeNode;
    result.ikeNodeStatus = await until(
      async () => {
        const status = (await node.status()) as IkeNodeStatus;
        return status[0]?.status === 'Active' || !initiated.ok ? status : undefined;
      },
      20_000,
      'ike-node to report Active',
    );
    step('ikeNodeStatus');

    // strongSwan deletes; ike-node must drop its SAs (and the Delete goes through tshark too).
    await charon.terminate('l2tp');
    result.statusAfterDelete = await until(
      async () => {
        const status = (await node.status()) as IkeNodeStatus;
        return status[0]?.status !== 'Active' ? status : undefined;
      },
      20_000,
      'ike-node to act on the Delete',
    );
    step('delete');
    result.completed = true;
  } catch (error) {
    result.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
  } finally {
    result.logs = { charon: tail(charon?.log() ?? ''), ikeNode: tail(ikeNode?.log() ?? '') };
    result.captureCounters = {};
    result.error = await keepCaptures(captures, result.pcaps, dir, out, result.error, result.captureCounters);
    const cleanup = now();
    await ikeNode?.stop().catch(() => {});
    await topology?.destroy();
    rmSync(dir, { recursive: true, force: true });
    timings.cleanup = Math.round(now() - cleanup);
  }
  return result;
}

if (isMainModule(import.meta.url)) {
  await runGuestScenarios('macos', SCENARIOS, scenario);
}
