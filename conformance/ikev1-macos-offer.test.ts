import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { isakmpSummary, readCapture, tsharkProblems } from './lib/capture.js';
import { REPO_ROOT } from './lib/ike-node.js';
import { kernelLabMissing, runInKernelLab } from './lib/kernel-lab.js';
import { missing } from './lib/scenario.js';
import {
  decodeGuestResult,
  GATEWAY_ESP_PROPOSALS,
  GATEWAY_IKE_PROPOSALS,
  isakmpdLine,
  MACOS_ESP_PROPOSALS,
  MACOS_IKE_PROPOSALS,
  SCENARIOS,
  type ScenarioResult,
} from './kernel-lab/ikev1-macos-offer.js';

/**
 * The macOS/iOS L2TP/IPsec offer against ike-node configured like an OpenBSD isakmpd gateway
 * (`ike passive esp transport ... main group "modp1024" quick group none psk "..."`, a peer of
 * `"any"`): strongSwan sends the 14-transform main mode proposal and asks for transport mode,
 * udp/1701 on both sides, without PFS. A third scenario replaces the hand-written peers.json with
 * what the isakmpd importer makes of the line (`ike passive esp tunnel from $gw to any
 * main group "modp1024" quick group "modp1024" psk "..."`): the issue is done when that config,
 * run as a responder, accepts this offer. strongSwan's kernel-libipsec cannot install
 * transport-mode SAs and the host kernel has no ESP, so all three scenarios (direct, the client
 * behind a masquerading NAT, and direct against the imported config) run in ONE boot of the qemu
 * kernel lab, where strongSwan uses kernel-netlink
 * (conformance/kernel-lab/ikev1-macos-offer.ts). Its results and captures come back on the
 * console; tshark judges the captures here on the host. Skipped, with the reason, where the lab
 * is not installed.
 */

const GUEST = join(dirname(fileURLToPath(import.meta.url)), 'kernel-lab', 'ikev1-macos-offer.ts');
/**
 * Loaded at boot: ESP and XFRM netlink, veth, and the nftables masquerade of the NAT router. The
 * guest's kernel would load the latter on demand too (its init points the kernel's modprobe
 * helper at busybox and the host's module tree); naming them makes a missing one show at boot.
 */
const MODULES = ['esp4', 'xfrm_user', 'veth', 'nf_tables', 'nft_chain_nat', 'nft_masq'];
/** The whole VM (boot, three scenarios, shutdown) measured about 90 s; this is its hard limit. */
const LAB_TIMEOUT_SEC = 175;

t.setTimeout((LAB_TIMEOUT_SEC + 60) * 1000);

const unavailable = kernelLabMissing();

const tail = (text: string, lines: number) => text.split('\n').slice(-lines).join('\n');
/** The console without the encoded result block. */
const consoleText = (output: string) => output.replace(/RESULT_BEGIN[\s\S]*?RESULT_END\n?/, '');

// ---------------------------------------------------------------------------------------------------
// The first main mode message, read by tshark: every transform of every proposal, as a suite name.

const ENCRYPTION: Record<string, string> = { '5': '3des', '7': 'aes' };
const HASH: Record<string, string> = { '1': 'md5', '2': 'sha1', '4': 'sha256', '5': 'sha384', '6': 'sha512' };
const GROUP: Record<string, string> = { '2': 'modp1024', '5': 'modp1536', '14': 'modp2048' };

interface Offer {
  /** The frame's exchange type and its proposals' transforms, as strongSwan proposal strings. */
  exchange: string;
  proposals: { number: string; transformsField: string; suites: string[]; authMethods: string[] }[];
}

type Json = string | Json[] | { [key: string]: Json };

/** Every object under `node` that has `key` (tshark's JSON nests payloads in `*_tree` members). */
function objectsWith(node: Json, key: string, found: { [key: string]: Json }[] = []) {
  if (Array.isArray(node)) for (const item of node) objectsWith(item, key, found);
  else if (typeof node === 'object') {
    if (key in node) found.push(node);
    for (const value of Object.values(node)) objectsWith(value, key, found);
  }
  return found;
}

const field = (node: { [key: string]: Json }, key: string): string | undefined => {
  const value = node[key];
  return typeof value === 'string' ? value : undefined;
};

async function firstOffer(pcap: string): Promise<Offer> {
  const stdout = await readCapture(pcap, [
    '-Y',
    'frame.number == 1',
    '-T',
    'json',
    '--no-duplicate-keys',
    '-J',
    'isakmp',
  ]);
  const frames = JSON.parse(stdout) as { _source: { layers: { isakmp?: Json } } }[];
  const isakmp = frames[0]?._source.layers.isakmp;
  if (isakmp === undefined) throw new Error(`${pcap}: frame 1 is not ISAKMP`);
  const header = typeof isakmp === 'object' && !Array.isArray(isakmp) ? isakmp : {};
  return {
    exchange: field(header, 'isakmp.exchangetype') ?? '',
    proposals: objectsWith(isakmp, 'isakmp.prop.number').map((proposal) => {
      const transforms = objectsWith(proposal, 'isakmp.trans.number');
      const suites: string[] = [];
      const authMethods: string[] = [];
      for (const transform of transforms) {
        const attrs = objectsWith(transform, 'isakmp.ike.attr.type');
        const attr = (name: string) =>
          attrs.map((a) => field(a, `isakmp.ike.attr.${name}`)).find((v) => v !== undefined) ?? '?';
        const keyLength = attr('key_length');
        const encryption = ENCRYPTION[attr('encryption_algorithm')] ?? `encr${attr('encryption_algorithm')}`;
        suites.push(
          `${encryption}${keyLength === '?' ? '' : keyLength}-${HASH[attr('hash_algorithm')] ?? '?'}-` +
            `${GROUP[attr('group_description')] ?? '?'}`,
        );
        authMethods.push(attr('authentication_method'));
      }
      return {
        number: field(proposal, 'isakmp.prop.number') ?? '',
        transformsField: field(proposal, 'isakmp.prop.transforms') ?? '',
        suites,
        authMethods,
      };
    }),
  };
}

/** ESP SPIs (hex, no 0x) of the ESP packets in a capture, plain or UDP-encapsulated. */
async function espSpis(pcap: string): Promise<string[]> {
  const stdout = await readCapture(pcap, ['-Y', 'esp', '-T', 'fields', '-e', 'esp.spi']);
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((spi) => Number(spi).toString(16).padStart(8, '0'));
}

/** The `ip xfrm state` entries, one string each. */
const xfrmStates = (text: string): string[] => text.split(/\n(?=src )/).filter((s) => s.startsWith('src '));
const packetsOf = (state: string): number => Number(/(\d+)\(packets\)/.exec(state)?.[1] ?? -1);

/**
 * What the gateway chooses from the macOS offer, by its config. The hand-written one lists its own
 * suites (GATEWAY_*_PROPOSALS). The imported isakmpd line keeps isakmpd's defaults: main mode
 * `aes128-aes192-aes256-sha1-modp1024` answers the offer with aes128-sha1-modp1024, and quick
 * mode, as isakmpd -K, takes the client's first ESP suite the import lists, aes256-sha1
 * (test/config/import/macos-offer.test.ts shows both in process).
 */
const CHOSEN = {
  'hand-written': {
    ike: GATEWAY_IKE_PROPOSALS[0],
    esp: GATEWAY_ESP_PROPOSALS[0],
    espKeysize: 128,
  },
  'isakmpd-import': { ike: 'aes128-sha1-modp1024', esp: 'aes256-sha1', espKeysize: 256 },
} as const;

// ---------------------------------------------------------------------------------------------------

async function checkScenario(t: Test, s: ScenarioResult, dir: string): Promise<void> {
  const nat = s.kind === 'nat';
  const chosen = CHOSEN[s.gatewayConfig];
  const clientTs = new RegExp(`^${s.client.address.replace(/\./g, '\\.')}/32\\[udp/(1701|l2f)\\]$`);
  const gatewayTs = new RegExp(`^${s.gateway.address.replace(/\./g, '\\.')}/32\\[udp/(1701|l2f)\\]$`);
  t.comment(`guest timings (ms): ${JSON.stringify(s.timings)}`);
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`--- charon log\n${s.logs.charon}`);
    t.comment(`--- ike-node log\n${s.logs.ikeNode}`);
  });
  if (!t.ok(s.completed && s.error === undefined, 'the guest script ran every step', { error: s.error }))
    return;
  if (s.gatewayConfig === 'isakmpd-import') {
    t.equal(s.imported?.line, isakmpdLine(s.gateway.address), `the gateway imported: ${s.imported?.line}`);
    t.comment(`importer warnings: ${JSON.stringify(s.imported?.warnings)}`);
  }
  t.equal(s.initiate?.code, 0, `swanctl --initiate succeeded (${s.initiate?.ms} ms)`);

  // What strongSwan sent: one proposal of 14 transforms, macOS's order, ike-node's choice 12th.
  const offer = await firstOffer(join(dir, s.pcaps.client!));
  t.equal(offer.exchange, '2', 'first packet: main mode (identity protection)');
  t.equal(offer.proposals.length, 1, 'first packet: one proposal');
  t.equal(offer.proposals[0]?.transformsField, '14', 'its header counts 14 transforms');
  t.same(offer.proposals[0]?.suites, MACOS_IKE_PROPOSALS, 'the 14 transforms, in the macOS order');
  t.same(offer.proposals[0]?.authMethods, Array(14).fill('1'), 'each with pre-shared key authentication');
  t.equal(MACOS_IKE_PROPOSALS.indexOf(chosen.ike), 11, `${chosen.ike} is the 12th transform`);

  // strongSwan: the IKE SA with the gateway's preferred suite, and a transport-mode child.
  const sa = s.sas?.find((x) => x.name === 'l2tp');
  if (!sa) return void t.fail('strongSwan lists no IKE SA', { sas: s.sas });
  t.match(
    sa,
    {
      state: 'ESTABLISHED',
      version: 1,
      initiator: true,
      encrAlg: 'AES_CBC',
      encrKeysize: 128,
      integAlg: 'HMAC_SHA1_96',
      prfAlg: 'PRF_HMAC_SHA1',
      dhGroup: 'MODP_1024',
      localId: s.client.address,
      remoteId: s.gateway.address,
    },
    `strongSwan: IKEv1 ESTABLISHED with ${chosen.ike}, the gateway's preference`,
  );
  // kernel-netlink does not fake a NAT (kernel-libipsec does): flags and ports tell the truth.
  t.match(
    sa,
    nat
      ? { natLocal: true, natRemote: false, natFake: false, natAny: true, localPort: 4500, remotePort: 4500 }
      : { natLocal: false, natRemote: false, natFake: false, natAny: false, localPort: 500, remotePort: 500 },
    nat ? 'strongSwan: behind a NAT, IKE floated to 4500' : 'strongSwan: no NAT, IKE stayed on 500',
  );
  const child = sa.children.find((c) => c.name === 'l2tp');
  if (!child) return void t.fail('strongSwan lists no child SA', { sa: sa.raw });
  t.match(
    child,
    {
      state: 'INSTALLED',
      mode: 'TRANSPORT',
      protocol: 'ESP',
      encap: nat,
      encrAlg: 'AES_CBC',
      encrKeysize: chosen.espKeysize,
      integAlg: 'HMAC_SHA1_96',
    },
    `strongSwan: child INSTALLED, transport mode, ${chosen.esp}${nat ? ', ESP in UDP' : ''}`,
  );
  t.equal(child.dhGroup, undefined, 'strongSwan: no PFS group on the child');
  t.ok(MACOS_ESP_PROPOSALS.includes(chosen.esp), 'the ESP suite was in the client offer');
  t.match(child.localTs, [clientTs], 'strongSwan: local selector = the client, udp/1701');
  t.equal(child.localTs.length, 1, 'strongSwan: one local selector');
  t.match(child.remoteTs, [gatewayTs], 'strongSwan: remote selector = the gateway, udp/1701');
  t.equal(child.remoteTs.length, 1, 'strongSwan: one remote selector');
  t.equal(s.probe?.code, 0, 'the udp/1701 probe was sent');
  t.ok(child.packetsOut >= 1, `strongSwan counted the probe on its outbound SA (${child.packetsOut})`);

  // The guest kernel's XFRM database in strongSwan's namespace.
  const states = xfrmStates(s.xfrmState ?? '');
  t.equal(states.length, 2, 'two ESP states in the kernel');
  for (const [spi, direction] of [
    [child.spiOut, 'outbound'],
    [child.spiIn, 'inbound'],
  ] as const) {
    const state = states.find((x) => x.includes(`proto esp spi 0x${spi}`));
    if (state === undefined) {
      t.fail(`kernel: no ${direction} ESP state with SPI 0x${spi}`);
      continue;
    }
    t.match(state, /mode transport/, `kernel: ${direction} state in transport mode`);
    if (nat)
      t.match(state, /encap type espinudp sport 4500 dport 4500/, `kernel: ${direction} state espinudp`);
    else t.notMatch(state, /encap/, `kernel: ${direction} state without UDP encapsulation`);
    if (direction === 'outbound')
      t.ok(packetsOf(state) >= 1, `kernel: the probe went out through the outbound state`);
  }
  const policy = s.xfrmPolicy ?? '';
  for (const direction of ['out', 'in']) {
    t.match(
      policy,
      new RegExp(
        `proto udp sport 1701 dport 1701 \\n\\tdir ${direction} [^\\n]*\\n\\ttmpl [^\\n]*\\n\\t\\tproto esp [^\\n]*mode transport`,
      ),
      `kernel: udp/1701 ${direction} policy with a transport-mode ESP template`,
    );
  }

  // ike-node: Active, one ISAKMP SA, one transport child, SPIs mirrored.
  const [status] = s.ikeNodeStatus ?? [];
  const ike = status?.ikeSas[0];
  const esp = status?.childSas[0];
  t.equal(status?.status, 'Active', 'ike-node: Active');
  t.match(
    ike,
    {
      version: 1,
      state: 'ESTABLISHED',
      role: 'responder',
      algorithms: chosen.ike,
      remoteId: s.client.address,
      natDetected: nat,
      nat: { local: false, remote: nat },
    },
    `ike-node: ISAKMP SA ${chosen.ike}, ${nat ? 'the peer behind a NAT' : 'no NAT'}`,
  );
  t.match(
    esp,
    {
      mode: 'transport',
      encapsulation: nat,
      algorithms: chosen.esp,
      localTs: [`${s.gateway.address}/32[udp/1701]`],
      // Transport mode through a NAT: the policy names the address the gateway's kernel sees.
      remoteTs: [`${s.client.seenAs}/32[udp/1701]`],
    },
    'ike-node: transport-mode child, udp/1701 both sides',
  );
  // RFC 3947 section 5.2: UDP-encapsulated transport mode carries the original addresses both ways.
  const response = s.quickModeParsed?.find((line) => /parsed QUICK_MODE response/.test(line)) ?? '';
  if (nat) t.match(response, /\bNAT-OA NAT-OA\b/, 'strongSwan parsed NAT-OAi and NAT-OAr in our answer');
  else t.notMatch(response, /NAT-OA/, 'no NAT-OA in our answer without a NAT');
  t.match(response, /\[ HASH SA No ID ID /, `strongSwan parsed our quick mode answer: ${response.trim()}`);
  t.equal(esp?.spiIn, child.spiOut, 'SPIs agree (ike-node in = strongSwan out)');
  t.equal(esp?.spiOut, child.spiIn, 'SPIs agree (ike-node out = strongSwan in)');
  t.match(
    s.statusAfterDelete,
    [{ status: 'Down', ikeSas: [], childSas: [] }],
    'ike-node: Down after the Delete',
  );

  // The wire: every ISAKMP message dissects cleanly; main mode, quick mode, then the Deletes.
  for (const side of ['client', 'gateway'] as const) {
    const pcap = join(dir, s.pcaps[side]!);
    t.same(
      await tsharkProblems(pcap),
      [],
      `tshark: ${side} capture clean (no malformed, no expert warnings)`,
    );
  }
  // Under TCG the guest kernel's first SA install takes seconds (crypto self-tests), so ike-node
  // may retransmit its quick mode answer meanwhile: compare the order of exchanges and minimum
  // counts, not an exact frame list.
  const frames = await isakmpSummary(join(dir, s.pcaps.gateway!));
  const exchanges = frames.map((f) => f.exchange);
  // What tcpdump itself counted, and when each step ended: a capture short of frames shows here
  // whether the kernel dropped them or they were never sent.
  t.comment(
    `gateway capture: ${s.captureCounters?.[s.pcaps.gateway!] ?? 'no counters'}; steps ${JSON.stringify(s.timings)}`,
  );
  const frameList = frames.map(
    (f) => `${f.time.toFixed(3)} ${f.srcPort}->${f.dstPort} ${f.exchange}${f.natT ? ' natT' : ''}`,
  );
  const count = (name: string) => exchanges.filter((x) => x === name).length;
  t.same(
    exchanges.filter((x, i) => x !== exchanges[i - 1]),
    ['ID_PROT', 'QUICK_MODE', 'INFORMATIONAL_V1'],
    'gateway capture: main mode, quick mode, then the Deletes',
  );
  t.ok(
    count('ID_PROT') >= 6 && count('QUICK_MODE') >= 3 && count('INFORMATIONAL_V1') >= 2,
    `gateway capture: 6 main mode, 3 quick mode, 2 informational messages at least (${exchanges.length} in all)`,
    { frames: frameList },
  );
  if (exchanges.length > 11) t.comment(`retransmissions seen: ${exchanges.join(' ')}`);
  if (nat) {
    const mainMode = frames.filter((f) => f.exchange === 'ID_PROT');
    t.match(frames[0], { natT: false, dstPort: 500 }, 'gateway capture: main mode starts on port 500', {
      frames: frameList,
    });
    t.ok(
      mainMode.slice(-2).every((f) => f.natT) && frames.every((f) => f.exchange === 'ID_PROT' || f.natT),
      'gateway capture: main mode messages 5 and 6 and everything after are UDP-encapsulated on 4500',
    );
  } else {
    t.ok(
      frames.every((f) => !f.natT && f.srcPort === 500 && f.dstPort === 500),
      'gateway capture: IKE stays on port 500, never encapsulated',
    );
  }
  t.ok(
    (await espSpis(join(dir, s.pcaps.gateway!))).includes(child.spiOut!),
    `gateway capture: the probe arrived as ESP${nat ? ' in UDP' : ''} with SPI 0x${child.spiOut}`,
  );
}

t.test(
  'macOS/iOS L2TP offer (14 transforms, transport udp/1701, no PFS) to an isakmpd-style gateway, in the kernel lab',
  { timeout: (LAB_TIMEOUT_SEC + 45) * 1000 },
  async (t) => {
    if (missing(t, unavailable)) return;
    const dir = mkdtempSync(join(tmpdir(), 'ike-node-macos-offer-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const lab = await runInKernelLab(process.execPath, {
      args: ['--import', 'tsx', GUEST],
      cwd: REPO_ROOT,
      timeoutSec: LAB_TIMEOUT_SEC,
      modules: MODULES,
    });
    t.comment(`kernel lab run: ${lab.ms.toFixed(0)} ms (${lab.stderr.trim().split('\n').join('; ')})`);
    const result = decodeGuestResult(lab.output);
    if (!t.equal(lab.code, 0, 'the guest script exited 0') || !t.ok(result, 'the guest reported a result')) {
      t.comment(`--- guest console\n${tail(consoleText(lab.output), 80)}\n--- klab-run\n${lab.stderr}`);
      return;
    }
    t.comment(`guest: kernel ${result!.kernel}, node ${result!.node}, scenarios ${result!.totalMs} ms`);
    t.comment(`guest modules: ${result!.modules.join(' ')}`);
    for (const [name, base64] of Object.entries(result!.files ?? {})) {
      writeFileSync(join(dir, name), Buffer.from(base64, 'base64'));
    }
    t.same(
      result!.scenarios.map((s) => s.name),
      ['direct', 'nat', 'isakmpd-import'],
      'the three scenarios ran',
    );
    t.same(
      result!.scenarios.map((s) => ({ name: s.name, kind: s.kind, gateway: s.gatewayConfig })),
      SCENARIOS,
      'each on its topology, with its gateway config',
    );
    for (const s of result!.scenarios) {
      const gateway = s.gatewayConfig === 'isakmpd-import' ? 'the imported isakmpd line' : 'the gateway';
      await t.test(`${s.name}: strongSwan as a macOS client, ike-node as ${gateway}`, (t) =>
        checkScenario(t, s, dir),
      );
    }
  },
);
