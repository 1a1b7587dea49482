import t from 'tap';
import { importNeutron } from '../../../src/config/import/index.js';
import { checked, fixture, importError } from './fixtures/helpers.js';

type Json = Record<string, unknown>;

t.test(
  'API lists: endpoint groups (cidr, and subnet resolved through subnets), DPD variants, vpnservice address',
  async (t) => {
    const lists = fixture('neutron-lists.json');
    const result = importNeutron(lists.text, lists.file);
    t.same(
      result.config.endpointGroups,
      { 'local-subnets': ['10.1.0.0/24'], peers: ['10.2.0.0/24', '10.3.0.0/24'] },
      'the groups the connections use, subnet ids as their CIDRs; the unused one left out',
    );
    const { byName } = checked(t, result);
    t.same(
      [...byName.keys()],
      ['vpnconnection1', 'vpnconnection1-2'],
      'names from Neutron names, made unique',
    );
    const first = byName.get('vpnconnection1')!;
    t.same(first.ike.proposals, ['aes256-sha256-modp2048'], 'aes-256, sha256, group14');
    t.equal(first.ike.version, 1);
    t.equal(first.ike.lifetime.seconds, 7200);
    t.same(first.ike.dpd, { delay: 60, timeout: 240, action: 'hold' });
    t.same(first.ipsec.proposals, ['aes256-sha256']);
    t.equal(first.ipsec.pfs, 'modp2048');
    t.equal(first.ipsec.mode, 'tunnel');
    t.equal(first.ipsec.lifetime.seconds, 3600);
    t.equal(first.local.address, '172.32.1.11', "the vpnservice's external_v4_ip");
    t.equal(first.local.endpointGroup, 'local-subnets');
    t.same(first.local.trafficSelectors, ['10.1.0.0/24']);
    t.equal(first.peer.address, '172.24.4.233');
    t.equal(first.peer.id, 'ipv4:172.24.4.233');
    t.equal(first.peer.endpointGroup, 'peers');
    t.same(first.peer.trafficSelectors, ['10.2.0.0/24', '10.3.0.0/24']);
    t.equal(first.start, 'initiate', 'bi-directional');
    const second = byName.get('vpnconnection1-2')!;
    t.equal(second.start, 'respond', 'response-only');
    t.equal(second.ike.name, 'ike-policy-dpd-off', 'the same ikepolicy without DPD is a second IKE policy');
    t.equal(second.ike.dpd, false, 'dpd action disabled');
    t.same(second.ike.proposals, first.ike.proposals);
    t.equal(second.local.id, 'fqdn:cloud.example.net', 'local_id');
    t.equal(second.peer.id, 'fqdn:branch2.example.net');
    t.same(result.config.listen, { addresses: ['172.32.1.11'] });
    t.match(result.warnings, [
      /ipsec_site_connections\[1\]\.mtu: 1400: ike-node sets no MTU/,
      /ipsec_site_connections\[2\]: admin_state_up is false: not imported/,
      /endpoint_groups\[2\]: endpoint group not used/,
    ]);
  },
);

t.test(
  'single-object wrappers, Neutron defaults, the older peer_cidrs and vpnservice subnet_id, AEAD ESP',
  async (t) => {
    const single = fixture('neutron-single.json');
    const result = importNeutron(single.text, single.file);
    const c = checked(t, result).byName.get('legacy-connection')!;
    t.equal(c.ike.name, 'ikepolicy-d3f373dc', 'a nameless policy is named by its id');
    t.same(c.ike.proposals, ['aes128-sha1-modp1536'], 'defaults: aes-128, sha1, group5');
    t.equal(c.ike.lifetime.seconds, 3600);
    t.same(c.ike.dpd, { delay: 30, timeout: 120, action: 'hold' }, 'no dpd: hold, 30 s, 120 s');
    t.same(c.ipsec.proposals, ['aes128gcm16'], 'aes-128-gcm-16 without its integrity');
    t.equal(c.ipsec.pfs, 'modp1024', 'group2');
    t.equal(c.ipsec.lifetime.seconds, 1800);
    t.same(c.local.trafficSelectors, ['10.0.0.0/24'], 'subnet_id through subnets');
    t.same(c.peer.trafficSelectors, ['10.2.0.0/24'], 'peer_cidrs');
    t.equal(c.local.address, '172.24.4.226');
    t.match(result.warnings, [/ipsecpolicy\.auth_algorithm: "sha1" is not used with aes-128-gcm-16/]);
    t.equal(result.warnings.length, 1, 'mtu "1500" is the default: no warning');
  },
);

/** A minimal valid input; `change` edits a copy. */
function input(change: (json: Json & { [k: string]: Json }) => void = () => {}): string {
  const json = {
    ikepolicy: { id: 'ike-1', name: 'ike' },
    ipsecpolicy: { id: 'esp-1', name: 'esp' },
    endpoint_groups: [
      { id: 'g-local', name: 'local', type: 'cidr', endpoints: ['10.0.0.0/24'] },
      { id: 'g-peer', name: 'peer', type: 'cidr', endpoints: ['10.1.0.0/24'] },
    ],
    ipsec_site_connection: {
      id: 'c-1',
      name: 'site',
      psk: 'secret',
      peer_address: '198.51.100.7',
      peer_id: '198.51.100.7',
      local_ep_group_id: 'g-local',
      peer_ep_group_id: 'g-peer',
      ikepolicy_id: 'ike-1',
      ipsecpolicy_id: 'esp-1',
    },
  };
  change(json as unknown as Json & { [k: string]: Json });
  return JSON.stringify(json, null, 2);
}

t.test('the minimal input imports', async (t) => {
  const result = importNeutron(input(), 'n.json');
  const c = checked(t, result).byName.get('site')!;
  t.same(c.local.trafficSelectors, ['10.0.0.0/24']);
  t.equal(c.local.address, 'any', 'no vpnservice: any of our addresses');
  t.equal(result.config.listen, undefined);
  t.same(result.warnings, []);
});

t.test('ike_version v2 is imported as an IKEv2 policy, without a warning', async (t) => {
  const result = importNeutron(
    input((j) => (j.ikepolicy!.ike_version = 'v2')),
    'n.json',
  );
  t.equal((result.config.ikePolicies as Record<string, Json>).ike!.version, 2);
  t.same(result.warnings, []);
  t.equal(checked(t, result).byName.get('site')!.ike.version, 2, 'checked: an IKEv2 connection');
});

t.test('what cannot be imported is an error naming the JSON path and what was expected', async (t) => {
  const cases: [string, string, string][] = [
    [
      input((j) => ((j.endpoint_groups as unknown as Json[])[0]!.type = 'subnet')),
      'n.json: endpoint_groups[0].endpoints[0]',
      'subnet ids cannot be resolved offline',
    ],
    [
      input((j) => ((j.endpoint_groups as unknown as Json[])[1]!.type = 'network')),
      'n.json: endpoint_groups[1].type',
      'cidr or subnet',
    ],
    [
      input((j) => (j.ipsecpolicy!.transform_protocol = 'ah-esp')),
      'n.json: ipsecpolicy.transform_protocol',
      'AH is not supported',
    ],
    [
      input((j) => (j.ikepolicy!.phase1_negotiation_mode = 'aggressive')),
      'n.json: ikepolicy.phase1_negotiation_mode',
      'aggressive mode is not supported',
    ],
    [
      input((j) => (j.ipsec_site_connection!.peer_address = 'vpn.example.net')),
      'n.json: ipsec_site_connection.peer_address',
      'host names cannot be resolved here',
    ],
    [
      input((j) => (j.ipsec_site_connection!.ikepolicy_id = 'nope')),
      'n.json: ipsec_site_connection.ikepolicy_id',
      'the id of an object in ikepolicies',
    ],
    [
      input((j) => (j.ikepolicy!.lifetime = { units: 'seconds', value: 100000 })),
      'n.json: ikepolicy.lifetime.value',
      '60 to 86400',
    ],
    [
      input((j) => (j.ikepolicy!.lifetime = { units: 'kilobytes', value: 1000 })),
      'n.json: ikepolicy.lifetime.units',
      'seconds',
    ],
    [
      input((j) => (j.ipsecpolicy!.auth_algorithm = 'aes-xcbc')),
      'n.json: ipsecpolicy.auth_algorithm',
      'sha1, sha256, sha384 or sha512',
    ],
    [
      input((j) => (j.ipsecpolicy!.encryption_algorithm = 'aes-128-ccm-16')),
      'n.json: ipsecpolicy.encryption_algorithm',
      'no CCM',
    ],
    [
      input((j) => (j.ikepolicy!.encryption_algorithm = 'aes-128-gcm-16')),
      'n.json: ikepolicy.encryption_algorithm',
      'for the IKE SA',
    ],
    [input((j) => (j.ikepolicy!.pfs = 'group21')), 'n.json: ikepolicy.pfs', 'a group ike-node implements'],
    [
      input((j) => (j.ipsec_site_connection!.psk = '')),
      'n.json: ipsec_site_connection.psk',
      'at least one character',
    ],
    [
      input((j) => (j.ipsec_site_connection!.dpd = { action: 'hold', interval: 0 })),
      'n.json: ipsec_site_connection.dpd.interval',
      'from 1 to 86400',
    ],
    [
      input((j) => (j.ipsec_site_connection!.initiator = 'sometimes')),
      'n.json: ipsec_site_connection.initiator',
      'bi-directional, response-only',
    ],
    [
      input((j) => delete j.ipsec_site_connection!.local_ep_group_id),
      'n.json: ipsec_site_connection',
      'local_ep_group_id, or a vpnservice_id',
    ],
    [
      input((j) => (j.ipsec_site_connection!.peer_cidrs = ['10.9.0.0/16'])),
      'n.json: ipsec_site_connection.peer_cidrs',
      'not both',
    ],
    [
      input((j) => (j.ipsec_site_connection!.peer_cidrs = ['10.9.0.0/33'])).replace(
        '"peer_ep_group_id": "g-peer",',
        '',
      ),
      'n.json: ipsec_site_connection.peer_cidrs[0]',
      'a CIDR',
    ],
    [input((j) => delete j.ipsec_site_connection), 'n.json: (top level)', 'ipsec_site_connections'],
    ['{ "ikepolicies": [', 'n.json', 'JSON'],
    ['[]', 'n.json: (top level)', 'an object of Neutron VPNaaS objects'],
  ];
  for (const [text, where, expected] of cases) {
    await t.test(`${where}: ${expected}`, async (t) => {
      importError(t, () => importNeutron(text, 'n.json'), where, expected);
    });
  }
});

t.test('unknown top-level keys and restart-by-peer are warnings', async (t) => {
  const result = importNeutron(
    input((j) => {
      j.networks = {};
      j.ipsec_site_connection!.dpd = { action: 'restart-by-peer' };
    }),
    'n.json',
  );
  checked(t, result);
  t.match(result.warnings, [
    /networks: not a VPNaaS object/,
    /dpd\.action: restart-by-peer .* becomes clear/,
  ]);
  t.same((result.config.ikePolicies as Record<string, Json>).ike!.dpd, {
    delay: 30,
    timeout: 120,
    action: 'clear',
  });
});
