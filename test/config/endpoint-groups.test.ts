import t from 'tap';
import { connectionSummary, parseConfig } from '../../src/config/index.js';
import { sameConnection } from '../../src/core/connection.js';
import { formatTrafficSelector } from '../../src/core/traffic-selector.js';
import { baseConfig, errorsOf, FILE, hasError, withValue } from './fixtures/helpers.js';

/** endpointGroups: named lists of subnets (as cloud VPN services define them), used by name. */

const C = 'connections.office';

function withGroups(groups: Record<string, unknown>, local: unknown, peer: unknown): Record<string, unknown> {
  const config = { endpointGroups: groups, ...baseConfig() };
  withValue(config, `${C}.local`, local);
  withValue(config, `${C}.peer`, peer);
  return config;
}

const GROUPS = { 'hq-nets': ['10.0.0.0/16', '10.1.0.0/16'], branch: ['172.16.5.0/24'] };

t.test('a group means its subnets; the connection is the same as with subnets written out', async (t) => {
  const grouped = withGroups(
    GROUPS,
    { address: '192.0.2.1', endpointGroup: 'hq-nets' },
    { address: '198.51.100.7', endpointGroup: 'branch' },
  );
  const written = withGroups(
    {},
    { address: '192.0.2.1', subnets: GROUPS['hq-nets'] },
    { address: '198.51.100.7', subnets: GROUPS.branch },
  );
  const [viaGroups] = parseConfig(JSON.stringify(grouped), FILE).connections;
  const [viaSubnets] = parseConfig(JSON.stringify(written), FILE).connections;
  t.same(viaGroups?.local.trafficSelectors.map(formatTrafficSelector), ['10.0.0.0/16', '10.1.0.0/16']);
  t.same(viaGroups?.peer.trafficSelectors.map(formatTrafficSelector), ['172.16.5.0/24']);
  t.ok(
    viaGroups && viaSubnets && sameConnection(viaGroups, viaSubnets),
    'the normalised Connection is unchanged',
  );
  t.notOk('endpointGroup' in (viaGroups?.local ?? {}), 'the engines see traffic selectors only');

  const summary = connectionSummary(viaGroups!);
  t.equal(summary.local.endpointGroup, 'hq-nets', 'ike-node check names the group');
  t.equal(summary.peer.endpointGroup, 'branch');
  t.equal(connectionSummary(viaSubnets!).local.endpointGroup, undefined);
  t.match(JSON.stringify(viaGroups), '"endpointGroup":"hq-nets"');
});

t.test('one group serves several connections, and combines with selectors', async (t) => {
  const config = withGroups(
    GROUPS,
    { endpointGroup: 'hq-nets', selectors: [{ subnet: '10.9.0.0/24', protocol: 'udp', port: 53 }] },
    { address: '198.51.100.7', endpointGroup: 'branch' },
  );
  const office = (config.connections as Record<string, Record<string, unknown>>).office!;
  withValue(config, 'connections.second', {
    ...office,
    peer: { address: '198.51.100.8', endpointGroup: 'branch' },
  });
  const connections = parseConfig(JSON.stringify(config), FILE).connections;
  t.equal(connections.length, 2);
  t.same(connections[0]?.local.trafficSelectors.map(formatTrafficSelector), [
    '10.0.0.0/16',
    '10.1.0.0/16',
    '10.9.0.0/24[udp/53]',
  ]);
  t.same(connections[1]?.peer.trafficSelectors.map(formatTrafficSelector), ['172.16.5.0/24']);
});

t.test('subnets and endpointGroup at once, and unknown names, are errors', async (t) => {
  const both = withGroups(
    GROUPS,
    { address: '192.0.2.1', subnets: ['10.0.0.0/24'], endpointGroup: 'hq-nets' },
    { address: '198.51.100.7', endpointGroup: 'branch' },
  );
  const error = hasError(
    t,
    errorsOf(t, both),
    `${C}.local.endpointGroup`,
    'either subnets or endpointGroup, not both',
  );
  t.equal(error?.got, 'both');

  const unknown = withGroups(
    GROUPS,
    { address: '192.0.2.1', endpointGroup: 'hq' },
    { address: '198.51.100.7', endpointGroup: 'branch' },
  );
  const named = hasError(
    t,
    errorsOf(t, unknown),
    `${C}.local.endpointGroup`,
    'the name of an entry of endpointGroups (hq-nets, branch)',
  );
  t.equal(named?.got, '"hq"');
  const none = withGroups(
    {},
    { address: '192.0.2.1', subnets: ['10.0.0.0/24'] },
    { address: '198.51.100.7', endpointGroup: 'branch' },
  );
  delete none.endpointGroups;
  hasError(
    t,
    errorsOf(t, none),
    `${C}.peer.endpointGroup`,
    'the name of an entry of endpointGroups (there are none)',
  );
  hasError(
    t,
    errorsOf(
      t,
      withGroups(
        GROUPS,
        { address: '192.0.2.1', endpointGroup: '' },
        { address: '198.51.100.7', endpointGroup: 'branch' },
      ),
    ),
    `${C}.local.endpointGroup`,
    'the name of an entry of endpointGroups',
  );
});

t.test('a broken group is reported once, at the group, not at the connections using it', async (t) => {
  const config = withGroups(
    {
      'hq-nets': ['10.0.0.0/16', '10.0.0.0/33'],
      empty: [],
      'bad name': ['10.0.0.0/8'],
      notAList: '10.0.0.0/8',
    },
    { address: '192.0.2.1', endpointGroup: 'hq-nets' },
    { address: '198.51.100.7', endpointGroup: 'empty' },
  );
  const errors = errorsOf(t, config);
  hasError(t, errors, 'endpointGroups.hq-nets[1]', 'a subnet (10.1.0.0/16), an address range');
  hasError(t, errors, 'endpointGroups.empty', 'a non-empty list of subnets');
  hasError(t, errors, 'endpointGroups["bad name"]', 'a name of up to 64 letters');
  hasError(t, errors, 'endpointGroups.notAList', 'a non-empty list of subnets');
  t.equal(errors.length, 4, errors.map((e) => e.message).join('\n'));
});

t.test('address families: a group is checked like the subnets it stands for', async (t) => {
  const v6 = withGroups(
    { v6: ['2001:db8:1::/48'] },
    { address: '192.0.2.1', subnets: ['10.0.0.0/24'] },
    { address: '198.51.100.7', endpointGroup: 'v6' },
  );
  hasError(t, errorsOf(t, v6), `${C}.peer.endpointGroup`, "IPv4 subnets, like local's");
  const transport = withValue(
    withGroups(
      { v6: ['2001:db8::1', '2001:db8::2'] },
      { address: '192.0.2.1', endpointGroup: 'v6' },
      { address: '198.51.100.7' },
    ),
    'ipsecPolicies.esp1.mode',
    'transport',
  );
  const errors = errorsOf(t, transport);
  hasError(t, errors, `${C}.local.endpointGroup`, "an IPv4 selector like the host's address");
  t.equal(errors.length, 1, 'once, however many of its subnets are wrong');
});
