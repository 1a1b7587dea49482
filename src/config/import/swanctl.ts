import { isIP } from 'node:net';
import { formatAddress, parseAddress } from '../../core/address.js';
import { parseProposal, ProposalSyntaxError } from '../../core/proposal.js';
import { parseTrafficSelector } from '../../core/traffic-selector.js';
import { type Section, type Setting, parseSettings } from './swanctl-parse.js';
import {
  assemble,
  ImportError,
  type ImportResult,
  type JsonObject,
  lineOf,
  listenSection,
  Names,
  portNumber,
  protocolNumber,
  protocolValue,
} from './shared.js';

/**
 * The swanctl.conf subset of PSK site-to-site connections to peers.json. Defaults are strongSwan's
 * (swanctl.conf(5)): IKE rekey_time 4h with over_time 10% of it, CHILD rekey_time 1h with
 * life_time 110% of it, dpd_timeout 150s, local and remote traffic selectors "dynamic" (the
 * end's own address), remote id %any. A strongSwan ESP proposal with a DH group means PFS, which
 * peers.json writes as the IPsec policy's `pfs`.
 */

const IKE_REKEY_DEFAULT = 4 * 3600;
const CHILD_REKEY_DEFAULT = 3600;
const DPD_TIMEOUT_DEFAULT = 150;
const LIFETIME_MIN = 60;
const LIFETIME_MAX = 86400;

/** Connection settings the import reads; every other one is reported as not imported. */
const CONNECTION_KEYS = new Set([
  'version',
  'local_addrs',
  'remote_addrs',
  'remote_port',
  'proposals',
  'rekey_time',
  'reauth_time',
  'over_time',
  'rand_time',
  'dpd_delay',
  'dpd_timeout',
  'aggressive',
  'vips',
  'pools',
]);
const CHILD_KEYS = new Set([
  'local_ts',
  'remote_ts',
  'esp_proposals',
  'ah_proposals',
  'mode',
  'start_action',
  'dpd_action',
  'rekey_time',
  'life_time',
  'rand_time',
  'life_bytes',
]);
const AUTH_KEYS = new Set(['auth', 'id']);
const DPD_ACTIONS: Readonly<Record<string, string>> = {
  none: 'clear',
  clear: 'clear',
  trap: 'hold',
  restart: 'restart',
};

export function importSwanctl(text: string, file: string): ImportResult {
  return new SwanctlImport(file).run(parseSettings(text, file));
}

interface Secret {
  readonly ids: string[];
  readonly secret: Setting;
  readonly path: string;
}

interface Ends {
  readonly localAddress?: string;
  readonly remoteAddress: string;
  readonly localId?: string;
  readonly remoteId?: string;
}

class SwanctlImport {
  private readonly warnings: string[] = [];
  private readonly ikePolicies: JsonObject = {};
  private readonly ipsecPolicies: JsonObject = {};
  private readonly connections: JsonObject = {};
  /** Every connection's local and peer address, for the listen section. */
  private readonly addresses: { local?: string | undefined; peer: string }[] = [];
  private readonly ikeNames = new Names();
  private readonly childNames = new Names();
  private secrets: Secret[] = [];

  constructor(private readonly file: string) {}

  private at(setting: { line: number }): string {
    return lineOf(this.file, setting.line);
  }

  private fail(where: { line: number }, expected: string, got?: string): never {
    throw new ImportError(this.at(where), expected, got);
  }

  private ignore(section: Section, known: ReadonlySet<string>, subsections: ReadonlySet<string> = new Set()) {
    for (const [key, setting] of section.settings) {
      if (!known.has(key)) {
        this.warnings.push(`${this.at(setting)}: ${section.path}.${key} = ${setting.value}: not imported`);
      }
    }
    for (const [name, child] of section.sections) {
      if (!subsections.has(name)) this.warnings.push(`${this.at(child)}: ${child.path} { }: not imported`);
    }
  }

  run(root: Section): ImportResult {
    const connections = root.section('connections');
    if (!connections?.sections.size)
      throw new ImportError(this.file, 'a connections { } section with a connection', 'none');
    this.readSecrets(root.section('secrets'));
    this.ignore(root, new Set(), new Set(['connections', 'secrets']));
    this.ignore(connections, new Set(), new Set(connections.sections.keys()));
    for (const conn of connections.sections.values()) this.connection(conn);
    return {
      config: assemble({
        listen: listenSection(this.addresses),
        ikePolicies: this.ikePolicies,
        ipsecPolicies: this.ipsecPolicies,
        connections: this.connections,
      }),
      warnings: this.warnings.sort((a, b) => this.lineIn(a) - this.lineIn(b)),
    };
  }

  /** Every warning starts with file:line; they are reported in file order. */
  private lineIn(warning: string): number {
    return Number(/^\d+/.exec(warning.slice(this.file.length + 1))?.[0] ?? 0);
  }

  /** secrets.ike<suffix> { id<suffix> = ..., secret = ... }; other kinds are no PSK for IKE. */
  private readSecrets(secrets: Section | undefined): void {
    if (!secrets) return;
    for (const section of secrets.sections.values()) {
      if (!section.name.startsWith('ike')) {
        this.warnings.push(`${this.at(section)}: ${section.path}: not an IKE pre-shared key: not imported`);
        continue;
      }
      const secret = section.value('secret');
      if (!secret) this.fail(section, `a secret in ${section.path}`);
      const ids = [...section.settings].filter(([key]) => key.startsWith('id')).map(([, s]) => s.value);
      for (const [key, setting] of section.settings) {
        if (key !== 'secret' && !key.startsWith('id'))
          this.warnings.push(`${this.at(setting)}: ${section.path}.${key}: not imported`);
      }
      this.secrets.push({ ids, secret, path: section.path });
    }
    this.ignore(secrets, new Set(), new Set(secrets.sections.keys()));
  }

  private connection(conn: Section): void {
    this.ignore(
      conn,
      CONNECTION_KEYS,
      new Set([...conn.sections.keys()].filter((n) => n === 'children' || /^(local|remote)/.test(n))),
    );
    const version = conn.value('version');
    if (version?.value !== '1' && version?.value !== '2') {
      this.fail(
        version ?? conn,
        `version = 1 or 2 in ${conn.path} (strongSwan's default, 0, means either; peers.json needs one)`,
        version ? JSON.stringify(version.value) : 'no version',
      );
    }
    if (yes(conn.value('aggressive'))) {
      this.fail(conn.value('aggressive')!, 'aggressive = no (aggressive mode is not supported)', 'yes');
    }
    for (const key of ['vips', 'pools'] as const) {
      const setting = conn.value(key);
      if (setting?.value)
        this.fail(setting, `no ${key} (IKEv1 mode config and virtual IPs are not supported)`, setting.value);
    }
    const ends = this.ends(conn);
    const ikeName = this.ikeNames.unique(conn.name);
    const ike: JsonObject = {
      version: Number(version.value),
      proposals: this.proposals(conn, 'proposals', 'ike').map((p) => p.text),
      ...this.ikeLifetime(conn),
    };
    const children = conn.section('children');
    if (!children?.sections.size) this.fail(conn, `a children { } section in ${conn.path}`);
    this.ignore(children, new Set(), new Set(children.sections.keys()));
    const psk = this.psk(conn, ends);
    const dpdActions: { action: string; setting: Setting }[] = [];
    for (const child of children.sections.values()) {
      const name = this.childNames.unique(child.name);
      const { policy, start } = this.child(child);
      const action = child.value('dpd_action');
      if (action) dpdActions.push({ action: this.dpdAction(action), setting: action });
      this.ipsecPolicies[name] = policy;
      this.connections[name] = {
        ikePolicy: ikeName,
        ipsecPolicy: name,
        local: {
          ...(ends.localAddress && { address: ends.localAddress }),
          ...(ends.localId && { id: ends.localId }),
          ...this.selectors(child, 'local_ts', policy.mode as string, ends.localAddress),
        },
        peer: {
          address: ends.remoteAddress,
          ...this.remotePort(conn),
          ...(ends.remoteId && { id: ends.remoteId }),
          ...this.selectors(
            child,
            'remote_ts',
            policy.mode as string,
            ends.remoteAddress === 'any' ? undefined : ends.remoteAddress,
          ),
        },
        psk,
        start,
      };
      if (start !== 'respond' && ends.remoteAddress === 'any') {
        this.fail(
          child.value('start_action')!,
          `start_action = none for a connection to remote_addrs %any (there is no one to initiate to)`,
          child.value('start_action')!.value,
        );
      }
      this.addresses.push({ local: ends.localAddress, peer: ends.remoteAddress });
    }
    const dpd = this.dpd(conn, dpdActions);
    if (dpd) ike.dpd = dpd;
    this.ikePolicies[ikeName] = ike;
  }

  private remotePort(conn: Section): JsonObject {
    const setting = conn.value('remote_port');
    if (!setting) return {};
    const port = /^\d+$/.test(setting.value) ? Number(setting.value) : NaN;
    if (!(port >= 1 && port <= 65535)) this.fail(setting, 'a port 1-65535', setting.value);
    return port === 500 ? {} : { port };
  }

  /** local_addrs and remote_addrs (one address each, or %any) and the local and remote ids. */
  private ends(conn: Section): Ends {
    const address = (key: 'local_addrs' | 'remote_addrs'): string | undefined => {
      const setting = conn.value(key);
      const items = list(setting?.value ?? '%any');
      if (items.length === 1 && (items[0] === '%any' || items[0] === '%any4' || items[0] === '%any6'))
        return undefined;
      if (items.length !== 1 || !isIP(items[0]!)) {
        this.fail(
          setting!,
          `${key} = one IP address or %any (host names, ranges, subnets and lists cannot be expressed)`,
          setting!.value,
        );
      }
      return formatAddress(parseAddress(items[0]!));
    };
    const localAddress = address('local_addrs');
    const remoteAddress = address('remote_addrs');
    const localId = this.authRound(conn, 'local');
    const remoteId = this.authRound(conn, 'remote');
    if (remoteId === undefined && remoteAddress) {
      this.warnings.push(
        `${this.at(conn)}: ${conn.path}: no remote id: strongSwan accepts any identity (%any), ike-node expects ${remoteAddress}`,
      );
    }
    return {
      ...(localAddress && { localAddress }),
      remoteAddress: remoteAddress ?? 'any',
      ...(localId !== undefined && { localId }),
      ...(remoteId !== undefined && { remoteId }),
    };
  }

  /** The one local or remote authentication round: auth = psk, and its id. */
  private authRound(conn: Section, side: 'local' | 'remote'): string | undefined {
    const rounds = [...conn.sections.values()].filter((s) => s.name.startsWith(side));
    if (rounds.length > 1)
      this.fail(
        rounds[1]!,
        `one ${side} authentication round (multiple rounds are not supported)`,
        rounds[1]!.path,
      );
    const round = rounds[0];
    if (!round) {
      this.fail(conn, `a ${side} { auth = psk } section in ${conn.path}`);
    }
    this.ignore(round, AUTH_KEYS);
    const auth = round.value('auth');
    if (auth?.value !== 'psk') {
      this.fail(
        auth ?? round,
        `auth = psk in ${round.path} (certificates, EAP and XAuth are not supported)`,
        auth ? auth.value : 'no auth (strongSwan then uses public keys)',
      );
    }
    const id = round.value('id');
    if (!id || id.value === '%any') return undefined;
    if (id.value.includes('=') || id.value.startsWith('@#')) {
      this.fail(
        id,
        'an IP address, FQDN or user@FQDN identity (distinguished names and @# key ids are not supported)',
        id.value,
      );
    }
    return id.value;
  }

  /** The best ike secret for the connection's ids, as strongSwan ranks them; none with ids matches anyone. */
  private psk(conn: Section, ends: Ends): string {
    const local = new Set(
      [ends.localId, ends.localAddress].filter((x): x is string => x !== undefined).map(idKey),
    );
    const remote = new Set(
      [ends.remoteId, ends.remoteAddress].filter((x) => x !== undefined && x !== 'any').map((x) => idKey(x!)),
    );
    let best: { score: number; secret: Secret } | undefined;
    for (const secret of this.secrets) {
      const ids = secret.ids.map(idKey);
      const anyId = ids.includes('%any');
      const matchesLocal = ids.some((id) => local.has(id));
      const matchesRemote = ids.some((id) => remote.has(id));
      const score = !ids.length ? 0 : (matchesLocal ? 1 : 0) + (matchesRemote ? 2 : 0) + (anyId ? 0.5 : 0);
      if (ids.length && score === 0) continue;
      if (!best || score > best.score) best = { score, secret };
    }
    if (!best) {
      this.fail(
        conn,
        `an ike secret in secrets { } for ${conn.path} (ids ${[...local, ...remote].join(', ') || 'none'})`,
        'none',
      );
    }
    return decodeSecret(best.secret.secret, this.file);
  }

  private child(child: Section): { policy: JsonObject; start: 'initiate' | 'respond' | 'on-traffic' } {
    this.ignore(child, CHILD_KEYS);
    const ah = child.value('ah_proposals');
    if (ah?.value) this.fail(ah, 'no ah_proposals (AH is not supported)', ah.value);
    const modeSetting = child.value('mode');
    const mode = modeSetting?.value ?? 'tunnel';
    if (mode !== 'tunnel' && mode !== 'transport')
      this.fail(modeSetting!, 'mode = tunnel or transport', mode);
    const esp = this.proposals(child, 'esp_proposals', 'esp');
    const groups = [...new Set(esp.flatMap((p) => p.dh))];
    if (groups.length > 1 || (groups.length === 1 && esp.some((p) => !p.dh.length))) {
      this.warnings.push(
        `${this.at(child.value('esp_proposals')!)}: ${child.path}.esp_proposals: peers.json has one PFS group per policy; using ${groups[0]} (strongSwan would accept ${[...groups, ...(esp.some((p) => !p.dh.length) ? ['no PFS'] : [])].join(', ')})`,
      );
    }
    const startSetting = child.value('start_action');
    const starts = list(startSetting?.value.replace(/\|/g, ',') ?? 'none');
    if (starts.some((s) => !['none', 'trap', 'start'].includes(s)))
      this.fail(startSetting!, 'start_action = none, trap or start', startSetting!.value);
    return {
      policy: {
        mode,
        proposals: [...new Set(esp.map((p) => p.text))],
        pfs: groups[0] ?? 'none',
        ...this.childLifetime(child),
      },
      // trap|start: strongSwan installs trap policies and initiates at once; initiating covers both.
      start: starts.includes('start') ? 'initiate' : starts.includes('trap') ? 'on-traffic' : 'respond',
    };
  }

  /** Proposal lists; for ESP the DH groups come off (they are PFS, peers.json's `pfs`). */
  private proposals(section: Section, key: string, use: 'ike' | 'esp'): { text: string; dh: string[] }[] {
    const setting = section.value(key);
    if (!setting) {
      this.fail(
        section,
        `${key} in ${section.path} (strongSwan's default depends on its plugins: write the proposals out)`,
      );
    }
    const out: { text: string; dh: string[] }[] = [];
    for (const item of list(setting.value)) {
      if (item === 'default')
        this.fail(setting, `explicit ${key} (strongSwan's "default" depends on its plugins)`, item);
      const words = item.toLowerCase().split('-');
      if (words.includes('esn'))
        this.fail(setting, 'proposals without esn (extended sequence numbers are not supported)', item);
      const text = words.filter((w) => w !== 'noesn').join('-');
      try {
        const set = parseProposal(text, use);
        out.push(
          use === 'ike'
            ? { text, dh: [] }
            : {
                text: [...set.encr, ...set.integ].map((a) => a.name).join('-'),
                dh: set.dh.map((d) => d.name),
              },
        );
      } catch (error) {
        if (!(error instanceof ProposalSyntaxError)) throw error;
        this.fail(
          setting,
          `${use === 'ike' ? 'IKE' : 'ESP'} proposals such as ${use === 'ike' ? 'aes256-sha256-modp2048' : 'aes256-sha256'}`,
          `${JSON.stringify(item)} (${error.message.replace(/^'.*?': /, '')})`,
        );
      }
    }
    return out;
  }

  /** IKE: rekeying (or reauthentication) at rekey_time, expiry over_time later (strongSwan's IKEv1 reading). */
  private ikeLifetime(conn: Section): JsonObject {
    const rekey = this.time(conn, 'rekey_time') ?? this.time(conn, 'reauth_time') ?? IKE_REKEY_DEFAULT;
    const where = conn.value('rekey_time') ?? conn.value('reauth_time') ?? conn;
    if (rekey === 0)
      this.fail(
        where,
        'a rekey_time or reauth_time above 0 (an IKE SA that never expires cannot be expressed)',
        '0',
      );
    const over = this.time(conn, 'over_time') ?? Math.round(rekey / 10);
    const rand = this.time(conn, 'rand_time') ?? over;
    return this.lifetime(where, rekey + over, over, Math.min(rand, rekey - 1));
  }

  /** CHILD: rekey at rekey_time (minus up to rand_time), expiry at life_time. */
  private childLifetime(child: Section): JsonObject {
    const rekey = this.time(child, 'rekey_time') ?? CHILD_REKEY_DEFAULT;
    const where = child.value('life_time') ?? child.value('rekey_time') ?? child;
    if (rekey === 0)
      this.fail(where, 'a rekey_time above 0 (a child SA that never expires cannot be expressed)', '0');
    const life = this.time(child, 'life_time') ?? Math.round(rekey * 1.1);
    if (life <= rekey) this.fail(where, `a life_time above rekey_time (${rekey} s)`, `${life} s`);
    const rand = this.time(child, 'rand_time') ?? life - rekey;
    const out = this.lifetime(where, life, life - rekey, Math.min(rand, rekey - 1));
    const bytes = child.value('life_bytes');
    if (bytes) {
      const value = /^\d+$/.test(bytes.value) ? Number(bytes.value) : NaN;
      if (!(value > 0)) this.fail(bytes, 'life_bytes as a number of bytes', bytes.value);
      out.lifetimeKilobytes = Math.ceil(value / 1024);
    }
    return out;
  }

  private lifetime(where: { line: number }, seconds: number, margin: number, fuzz: number): JsonObject {
    if (seconds < LIFETIME_MIN || seconds > LIFETIME_MAX) {
      this.fail(
        where,
        `an SA lifetime of ${LIFETIME_MIN} to ${LIFETIME_MAX} s (what ike-node accepts)`,
        `${seconds} s`,
      );
    }
    return { lifetime: seconds, rekeyMargin: margin, rekeyFuzz: Math.max(0, fuzz) };
  }

  /** strongSwan time values: a number with an optional s, m, h or d. */
  private time(section: Section, key: string): number | undefined {
    const setting = section.value(key);
    if (!setting) return undefined;
    const match = /^(\d+)\s*([smhd])?$/.exec(setting.value);
    if (!match) this.fail(setting, `${key} as a time (3600, 60m, 1h, 1d)`, setting.value);
    const unit = { s: 1, m: 60, h: 3600, d: 86400 }[match[2] as 's' | 'm' | 'h' | 'd'] ?? 1;
    return Number(match[1]) * unit;
  }

  private dpd(conn: Section, actions: { action: string; setting: Setting }[]): JsonObject | undefined {
    const delay = this.time(conn, 'dpd_delay') ?? 0;
    if (!delay) {
      for (const { setting } of actions) {
        if (setting.value !== 'none')
          this.warnings.push(`${this.at(setting)}: dpd_action without dpd_delay in ${conn.path}: no DPD`);
      }
      return undefined;
    }
    const distinct = [...new Set(actions.map((a) => a.action))];
    if (distinct.length > 1) {
      this.warnings.push(
        `${this.at(actions[1]!.setting)}: ${conn.path}: children with different dpd_action; peers.json has one per IKE policy: using ${distinct[0]}`,
      );
    }
    return {
      delay,
      timeout: this.time(conn, 'dpd_timeout') ?? DPD_TIMEOUT_DEFAULT,
      action: distinct[0] ?? 'clear',
    };
  }

  private dpdAction(setting: Setting): string {
    const action = DPD_ACTIONS[setting.value];
    if (!action) this.fail(setting, 'dpd_action = none, clear, trap or restart', setting.value);
    return action;
  }

  /**
   * local_ts / remote_ts: subnets, ranges or addresses, each with an optional [protocol/port];
   * "dynamic" is the end's own address (in transport mode a selector without a subnet says so).
   */
  private selectors(
    child: Section,
    key: 'local_ts' | 'remote_ts',
    mode: string,
    host: string | undefined,
  ): JsonObject {
    const setting = child.value(key);
    const items = list(setting?.value ?? 'dynamic');
    const specs: JsonObject[] = [];
    for (const item of items) {
      const match = /^([^[\]]*)(?:\[([^/\]]*)(?:\/([^\]]*))?\])?$/.exec(item);
      if (!match) this.fail(setting!, `${key} entries such as 10.0.0.0/24 or dynamic[udp/1701]`, item);
      const [, subnetText, protoText, portText] = match;
      const spec: JsonObject = {};
      if (subnetText === 'dynamic' || subnetText === '%dynamic' || subnetText === '') {
        if (mode === 'tunnel') {
          if (host) spec.subnet = host;
          else if (key === 'remote_ts') continue;
          else
            this.fail(
              setting ?? child,
              `${key} with subnets in tunnel mode, or local_addrs (dynamic is the local address)`,
              item,
            );
        }
      } else if (subnetText === '0.0.0.0/0' || subnetText === '::/0' || validSubnet(subnetText!)) {
        spec.subnet = subnetText;
      } else {
        this.fail(
          setting!,
          `${key} entries such as 10.0.0.0/24, 10.0.0.1-10.0.0.9 or dynamic (host names cannot be resolved here)`,
          item,
        );
      }
      if (protoText && protoText !== '%any') {
        const protocol = protocolNumber(protoText);
        if (protocol === undefined) this.fail(setting!, `a protocol name or number in ${key}`, item);
        spec.protocol = protocolValue(protocol);
      }
      if (portText && portText !== '%any') {
        const port = portNumber(portText);
        if (port === undefined)
          this.fail(
            setting!,
            `a single port or service name in ${key} (port ranges cannot be expressed)`,
            item,
          );
        if (!spec.protocol) this.fail(setting!, `a protocol with the port in ${key}`, item);
        spec.port = port;
      }
      specs.push(spec);
    }
    // No selectors, or only "dynamic" in transport mode: the hosts themselves, peers.json's default.
    if (specs.every((s) => !Object.keys(s).length)) return {};
    if (specs.every((s) => Object.keys(s).length === 1 && s.subnet !== undefined)) {
      return { subnets: specs.map((s) => s.subnet) };
    }
    return { selectors: specs };
  }
}

function validSubnet(text: string): boolean {
  try {
    parseTrafficSelector(text);
    return true;
  } catch {
    return false;
  }
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

function yes(setting: Setting | undefined): boolean {
  return setting !== undefined && ['yes', 'true', 'enabled', '1'].includes(setting.value.toLowerCase());
}

/** Identities compare case-insensitively, with or without strongSwan's leading @ for FQDNs. */
function idKey(id: string): string {
  return id.replace(/^@/, '').toLowerCase();
}

/** A swanctl secret: text, 0x followed by hex (kept: peers.json reads it the same), or 0s base64. */
function decodeSecret(setting: Setting, file: string): string {
  const value = setting.value;
  if (!value) throw new ImportError(lineOf(file, setting.line), 'a non-empty secret', 'an empty one');
  if (/^0s/i.test(value)) {
    const base64 = value.slice(2);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
      throw new ImportError(lineOf(file, setting.line), 'a 0s secret in base64', 'other characters');
    }
    return `0x${Buffer.from(base64, 'base64').toString('hex')}`;
  }
  return value;
}
