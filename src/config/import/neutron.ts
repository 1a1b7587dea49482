import { isIP } from 'node:net';
import { formatAddress, parseAddress } from '../../core/address.js';
import { parseTrafficSelector } from '../../core/traffic-selector.js';
import {
  assemble,
  ImportError,
  type ImportResult,
  type JsonObject,
  listenSection,
  Names,
  validName,
} from './shared.js';

/**
 * OpenStack Neutron VPNaaS objects, as its API returns them (neutron-lib
 * api/definitions/vpn.py and vpn_endpoint_groups.py), to peers.json. Input: one JSON object with
 * the lists (`ikepolicies`, `ipsecpolicies`, `endpoint_groups`, `ipsec_site_connections`, and
 * optionally `vpnservices` and `subnets`) or the single-object wrappers (`ikepolicy`...). Defaults
 * are Neutron's: aes-128, sha1, group5, lifetime 3600 s, main mode, IKEv1, ESP in tunnel mode,
 * DPD hold every 30 s with a 120 s timeout, initiator bi-directional. Subnet ids (subnet-type
 * endpoint groups, a vpnservice's subnet_id) resolve through `subnets` ({ id, cidr } objects from
 * GET /v2.0/subnets) when the file has them; there is no other way to know them offline.
 */

const SECTIONS = {
  ikepolicies: 'ikepolicy',
  ipsecpolicies: 'ipsecpolicy',
  endpoint_groups: 'endpoint_group',
  ipsec_site_connections: 'ipsec_site_connection',
  vpnservices: 'vpnservice',
  subnets: 'subnet',
} as const;
type SectionName = keyof typeof SECTIONS;

const ENCRYPTION = new Set(['3des', 'aes-128', 'aes-192', 'aes-256']);
const AEAD = /^aes-(128|192|256)-gcm-(8|12|16)$/;
const INTEGRITY = new Set(['sha1', 'sha256', 'sha384', 'sha512']);
/** The groups of Neutron's pfs list that ike-node implements (group31, Curve25519: IKEv2 only). */
const GROUPS = new Set([
  'group2',
  'group5',
  'group14',
  'group15',
  'group16',
  'group19',
  'group20',
  'group31',
]);
const DPD_ACTIONS: Readonly<Record<string, string>> = { hold: 'hold', clear: 'clear', restart: 'restart' };
const LIFETIME_MAX = 86400;

/** A JSON value with the path that names it in messages. */
class At {
  constructor(
    readonly value: unknown,
    readonly path: string,
    readonly file: string,
  ) {}

  fail(expected: string, got: string = describe(this.value)): never {
    throw new ImportError(`${this.file}: ${this.path || '(top level)'}`, expected, got);
  }

  key(name: string): At {
    const object = isObject(this.value) ? this.value : {};
    return new At(object[name], this.path ? `${this.path}.${name}` : name, this.file);
  }

  get present(): boolean {
    return this.value !== undefined && this.value !== null;
  }

  string(expected: string): string {
    if (typeof this.value !== 'string') this.fail(expected);
    return this.value;
  }

  /** Absent or null: the fallback (Neutron's default); otherwise one of `options`. */
  choice(options: readonly string[], fallback: string): string {
    if (!this.present) return fallback;
    const value = this.string(`one of ${options.join(', ')}`);
    if (!options.includes(value)) this.fail(`one of ${options.join(', ')}`);
    return value;
  }

  integer(min: number, max: number, unit: string): number {
    const value = this.value;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      return this.fail(`an integer from ${min} to ${max} ${unit}`);
    }
    return value;
  }

  items(expected: string): At[] {
    if (!Array.isArray(this.value)) this.fail(expected);
    return this.value.map((item, i) => new At(item, `${this.path}[${i}]`, this.file));
  }

  objects(): At[] {
    return this.items('a list of objects').map((at) => (isObject(at.value) ? at : at.fail('an object')));
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export function importNeutron(text: string, file: string): ImportResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ImportError(file, 'JSON', (error as Error).message);
  }
  return new NeutronImport(new At(json, '', file)).run();
}

class NeutronImport {
  private readonly warnings: string[] = [];
  private readonly objects = new Map<SectionName, Map<string, At>>();
  private readonly ikeNames = new Names();
  private readonly ipsecNames = new Names();
  private readonly groupNames = new Names();
  private readonly connectionNames = new Names();
  private readonly ikePolicies: JsonObject = {};
  private readonly ipsecPolicies: JsonObject = {};
  private readonly endpointGroups: JsonObject = {};
  /** Neutron id (and, for IKE policies, the DPD settings) to peers.json name. */
  private readonly ikeByKey = new Map<string, string>();
  /** The name of an ikepolicy's first variant, which later variants extend. */
  private readonly ikeBaseById = new Map<string, string>();
  private readonly ipsecById = new Map<string, string>();
  private readonly groupById = new Map<string, string>();

  constructor(private readonly root: At) {}

  run(): ImportResult {
    if (!isObject(this.root.value)) this.root.fail('an object of Neutron VPNaaS objects');
    for (const key of Object.keys(this.root.value)) {
      const known = Object.entries(SECTIONS).some(([plural, single]) => key === plural || key === single);
      if (!known) this.warnings.push(`${this.root.key(key).path}: not a VPNaaS object: not imported`);
    }
    for (const [plural, single] of Object.entries(SECTIONS) as [SectionName, string][]) {
      const byId = new Map<string, At>();
      const items = [
        ...(this.root.key(plural).present ? this.root.key(plural).objects() : []),
        ...(this.root.key(single).present ? [this.singular(single)] : []),
      ];
      for (const item of items) {
        const id = item.key('id').string('the object id');
        if (byId.has(id)) item.key('id').fail(`each ${single} id once`);
        byId.set(id, item);
      }
      this.objects.set(plural, byId);
    }
    const connections: JsonObject = {};
    const ends: { local?: string | undefined; peer: string }[] = [];
    const sites = [...this.objects.get('ipsec_site_connections')!.values()];
    if (!sites.length)
      this.root.fail('ipsec_site_connections (or ipsec_site_connection) with a connection', 'none');
    for (const site of sites) {
      const imported = this.connection(site);
      if (!imported) continue;
      connections[imported.name] = imported.connection;
      const { local, peer } = imported.connection as {
        local: { address?: string };
        peer: { address: string };
      };
      ends.push({ local: local.address, peer: peer.address });
    }
    if (!Object.keys(connections).length)
      this.root.fail('at least one connection to import', 'none (all administratively down)');
    for (const [id, group] of this.objects.get('endpoint_groups')!) {
      if (!this.groupById.has(id))
        this.warnings.push(`${group.path}: endpoint group not used by any connection: not imported`);
    }
    return {
      config: assemble({
        listen: listenSection(ends),
        endpointGroups: this.endpointGroups,
        ikePolicies: this.ikePolicies,
        ipsecPolicies: this.ipsecPolicies,
        connections,
      }),
      warnings: this.warnings,
    };
  }

  private singular(key: string): At {
    const at = this.root.key(key);
    if (!isObject(at.value)) at.fail('an object');
    return at;
  }

  /** The object an `*_id` field names, or a failure there. */
  private find(at: At, section: SectionName): At {
    const id = at.string(`the id of an object in ${section}`);
    const found = this.objects.get(section)!.get(id);
    if (!found) at.fail(`the id of an object in ${section} (or ${SECTIONS[section]})`, JSON.stringify(id));
    return found;
  }

  /** A peers.json name from the object's name, or its type and id when it has none. */
  private nameOf(at: At, kind: string, names: Names): string {
    const name = at.key('name').present ? at.key('name').string('a name') : '';
    const id = at.key('id').string('the object id');
    return names.unique(name.trim() ? validName(name) : `${kind}-${id.slice(0, 8)}`);
  }

  private connection(site: At): { name: string; connection: JsonObject } | undefined {
    if (site.key('admin_state_up').value === false) {
      this.warnings.push(`${site.path}: admin_state_up is false: not imported`);
      return undefined;
    }
    const service = site.key('vpnservice_id').present ? this.service(site.key('vpnservice_id')) : undefined;
    if (service?.key('admin_state_up').value === false) {
      this.warnings.push(`${site.path}: its vpnservice's admin_state_up is false: not imported`);
      return undefined;
    }
    const peerAddressAt = site.key('peer_address');
    const peerAddress = peerAddressAt.string('the peer address');
    if (!isIP(peerAddress))
      peerAddressAt.fail('an IPv4 or IPv6 address (host names cannot be resolved here)');
    const family = isIP(peerAddress);
    const local: JsonObject = {};
    const address = service?.key(family === 4 ? 'external_v4_ip' : 'external_v6_ip');
    if (address?.present) local.address = normal(address);
    const localId = site.key('local_id');
    if (localId.present && localId.string('an identity')) local.id = localId.value;
    Object.assign(local, this.localSubnets(site, service));
    const peer: JsonObject = { address: formatAddress(parseAddress(peerAddress)) };
    const peerId = site.key('peer_id');
    if (peerId.present && peerId.string('an identity')) peer.id = peerId.value;
    Object.assign(peer, this.peerSubnets(site));
    const psk = site.key('psk').string('the pre-shared key');
    if (!psk) site.key('psk').fail('a pre-shared key of at least one character', 'an empty string');
    const mtu = site.key('mtu');
    if (mtu.present && Number(mtu.value) !== 1500) {
      this.warnings.push(`${mtu.path}: ${describe(mtu.value)}: ike-node sets no MTU: not imported`);
    }
    const initiator = site.key('initiator').choice(['bi-directional', 'response-only'], 'bi-directional');
    return {
      name: this.nameOf(site, 'connection', this.connectionNames),
      connection: {
        ikePolicy: this.ikePolicy(this.find(site.key('ikepolicy_id'), 'ikepolicies'), site),
        ipsecPolicy: this.ipsecPolicy(this.find(site.key('ipsecpolicy_id'), 'ipsecpolicies')),
        local,
        peer,
        psk,
        start: initiator === 'bi-directional' ? 'initiate' : 'respond',
      },
    };
  }

  /** The connection's vpnservice, when the file has it: it knows the local address and subnet. */
  private service(at: At): At | undefined {
    return this.objects.get('vpnservices')!.get(at.string('the id of a vpnservice'));
  }

  /** local_ep_group_id, or (the older form) the vpnservice's subnet_id. */
  private localSubnets(site: At, service: At | undefined): JsonObject {
    const group = site.key('local_ep_group_id');
    if (group.present) return { endpointGroup: this.endpointGroup(group) };
    const subnet = service?.key('subnet_id');
    if (subnet?.present) return { subnets: [this.subnetCidr(subnet)] };
    return site.fail(
      'local_ep_group_id, or a vpnservice_id naming an object of vpnservices with a subnet_id (the local subnets)',
      'neither',
    );
  }

  private peerSubnets(site: At): JsonObject {
    const group = site.key('peer_ep_group_id');
    const cidrs = site.key('peer_cidrs');
    const hasCidrs = Array.isArray(cidrs.value) && cidrs.value.length > 0;
    if (group.present && hasCidrs)
      cidrs.fail('peer_cidrs or peer_ep_group_id, not both (as Neutron requires)', 'both');
    if (group.present) return { endpointGroup: this.endpointGroup(group) };
    if (!hasCidrs) site.fail('peer_ep_group_id or peer_cidrs (the peer subnets)', 'neither');
    return { subnets: cidrs.items('a list of CIDRs').map(cidr) };
  }

  /** An endpoint group as peers.json's endpointGroups entry: its CIDRs, subnet ids resolved. */
  private endpointGroup(idAt: At): string {
    const group = this.find(idAt, 'endpoint_groups');
    const id = group.key('id').value as string;
    const known = this.groupById.get(id);
    if (known) return known;
    const type = group.key('type').string('the endpoint group type');
    const endpoints = group.key('endpoints');
    const items = endpoints.items('a non-empty list of endpoints');
    if (!items.length) endpoints.fail('a non-empty list of endpoints');
    let cidrs: string[];
    if (type === 'cidr') cidrs = items.map(cidr);
    else if (type === 'subnet') cidrs = items.map((item) => this.subnetCidr(item));
    else
      cidrs = group
        .key('type')
        .fail(
          'an endpoint group of type cidr or subnet (network, router and vlan groups cannot be expressed)',
        );
    const name = this.nameOf(group, 'endpoint-group', this.groupNames);
    this.endpointGroups[name] = cidrs;
    this.groupById.set(id, name);
    return name;
  }

  private subnetCidr(at: At): string {
    const id = at.string('a Neutron subnet id');
    const subnet = this.objects.get('subnets')!.get(id);
    if (!subnet) {
      at.fail(
        'a subnet id with its Neutron subnet object in "subnets" (GET /v2.0/subnets): subnet ids cannot be resolved offline otherwise',
        JSON.stringify(id),
      );
    }
    return cidr(subnet.key('cidr'));
  }

  /** One peers.json IKE policy per Neutron ikepolicy and DPD setting (peers.json keeps DPD there). */
  private ikePolicy(policy: At, site: At): string {
    const dpd = this.dpd(site.key('dpd'));
    const id = policy.key('id').value as string;
    const key = `${id} ${JSON.stringify(dpd)}`;
    const known = this.ikeByKey.get(key);
    if (known) return known;
    const base = this.ikeBaseById.get(id);
    const name = base
      ? this.ikeNames.unique(`${base}-dpd-${dpd ? `${dpd.action}-${dpd.delay}` : 'off'}`)
      : this.nameOf(policy, 'ikepolicy', this.ikeNames);
    if (!base) this.ikeBaseById.set(id, name);
    const mode = policy.key('phase1_negotiation_mode').choice(['main', 'aggressive'], 'main');
    if (mode === 'aggressive')
      policy.key('phase1_negotiation_mode').fail('main (aggressive mode is not supported)');
    const version = policy.key('ike_version').choice(['v1', 'v2'], 'v1') === 'v2' ? 2 : 1;
    const encryption = policy.key('encryption_algorithm');
    if (encryption.present && AEAD.test(encryption.string('an encryption algorithm'))) {
      encryption.fail(
        '3des, aes-128, aes-192 or aes-256 for the IKE SA (GCM there needs a PRF peers.json fields cannot name)',
      );
    }
    this.ikePolicies[name] = {
      ...(version === 2 && { version }),
      encryption: this.encryption(encryption, false),
      integrity: this.integrity(policy.key('auth_algorithm')),
      dhGroup: this.group(policy.key('pfs')),
      lifetime: this.lifetime(policy.key('lifetime')),
      ...(dpd && { dpd }),
    };
    this.ikeByKey.set(key, name);
    return name;
  }

  private ipsecPolicy(policy: At): string {
    const id = policy.key('id').value as string;
    const known = this.ipsecById.get(id);
    if (known) return known;
    const name = this.nameOf(policy, 'ipsecpolicy', this.ipsecNames);
    const protocol = policy.key('transform_protocol').choice(['esp', 'ah', 'ah-esp'], 'esp');
    if (protocol !== 'esp') policy.key('transform_protocol').fail('esp (AH is not supported)');
    const encryption = this.encryption(policy.key('encryption_algorithm'), true);
    const aead = AEAD.test(encryption);
    const auth = policy.key('auth_algorithm');
    if (aead && auth.present) {
      this.warnings.push(
        `${auth.path}: ${describe(auth.value)} is not used with ${encryption}, which authenticates itself`,
      );
    }
    this.ipsecPolicies[name] = {
      mode: policy.key('encapsulation_mode').choice(['tunnel', 'transport'], 'tunnel'),
      encryption,
      ...(!aead && { integrity: this.integrity(auth) }),
      pfs: this.group(policy.key('pfs')),
      lifetime: this.lifetime(policy.key('lifetime')),
    };
    this.ipsecById.set(id, name);
    return name;
  }

  private encryption(at: At, esp: boolean): string {
    if (!at.present) return 'aes-128';
    const value = at.string('an encryption algorithm');
    if (ENCRYPTION.has(value) || (esp && AEAD.test(value))) return value;
    return at.fail(
      `an encryption algorithm ike-node implements: 3des, aes-128, aes-192, aes-256${esp ? ', aes-N-gcm-8/12/16' : ''} (no CCM)`,
    );
  }

  private integrity(at: At): string {
    if (!at.present) return 'sha1';
    const value = at.string('an auth algorithm');
    if (!INTEGRITY.has(value))
      at.fail('an auth algorithm ike-node implements: sha1, sha256, sha384 or sha512');
    return value;
  }

  private group(at: At): string {
    if (!at.present) return 'group5';
    const value = at.string('a pfs group');
    if (!GROUPS.has(value)) at.fail(`a group ike-node implements: ${[...GROUPS].join(', ')}`);
    return value;
  }

  private lifetime(at: At): { units: 'seconds'; value: number } {
    if (!at.present || (isObject(at.value) && !Object.keys(at.value).length))
      return { units: 'seconds', value: 3600 };
    if (!isObject(at.value)) at.fail('{ "units": "seconds", "value": N }');
    at.key('units').choice(['seconds'], 'seconds');
    const value = at.key('value');
    if (!value.present) return { units: 'seconds', value: 3600 };
    return { units: 'seconds', value: value.integer(60, LIFETIME_MAX, 'seconds (what ike-node accepts)') };
  }

  /** Neutron's dpd: absent or {} means its defaults (hold, 30 s, 120 s); "disabled" means none. */
  private dpd(at: At): { delay: number; timeout: number; action: string } | undefined {
    if (at.present && !isObject(at.value)) at.fail('{ "action", "interval", "timeout" }');
    const action = at
      .key('action')
      .choice(['hold', 'clear', 'restart', 'disabled', 'restart-by-peer'], 'hold');
    if (action === 'disabled') return undefined;
    if (action === 'restart-by-peer') {
      this.warnings.push(
        `${at.key('action').path}: restart-by-peer (clear, and wait for the peer to come back) becomes clear`,
      );
    }
    const seconds = (key: string, fallback: number): number => {
      const field = at.key(key);
      if (!field.present) return fallback;
      return field.integer(1, 86400, 'seconds');
    };
    return {
      delay: seconds('interval', 30),
      timeout: seconds('timeout', 120),
      action: DPD_ACTIONS[action] ?? 'clear',
    };
  }
}

function normal(at: At): string {
  const text = at.string('an IP address');
  if (!isIP(text)) at.fail('an IP address');
  return formatAddress(parseAddress(text));
}

function cidr(at: At): string {
  const text = at.string('a CIDR such as 10.0.0.0/24');
  try {
    parseTrafficSelector(text);
  } catch {
    return at.fail('a CIDR such as 10.0.0.0/24');
  }
  return text;
}
