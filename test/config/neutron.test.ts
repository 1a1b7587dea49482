import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { formatSuite } from '../../src/core/proposal.js';
import { baseConfig, errorsOf, FILE, hasError, withValue } from './fixtures/helpers.js';

/**
 * The algorithm table of OpenStack Neutron VPNaaS (the cloud VPN model), every value under its
 * usual name, with Neutron's field names (camelCase) as aliases of ours.
 */

const IKE = 'ikePolicies.ike1';
const ESP = 'ipsecPolicies.esp1';

function withPolicies(ike: object, esp: object = { proposals: ['aes128-sha256'] }) {
  return withValue(withValue(baseConfig(), IKE, ike), ESP, esp);
}

function connection(ike: object, esp?: object) {
  return parseConfig(JSON.stringify(withPolicies(ike, esp)), FILE).connections[0]!;
}

const FIELDS = { encryption: 'aes-128', integrity: 'sha1', dhGroup: 'group14' };

t.test('IKE version: 1, 2, "v1", "v2", as version or ikeVersion', async (t) => {
  for (const [value, version] of [
    [1, 1],
    [2, 2],
    ['v1', 1],
    ['v2', 2],
  ] as const) {
    t.equal(connection({ ...FIELDS, version: value }).ike.version, version, `version ${value}`);
    t.equal(connection({ ...FIELDS, ikeVersion: value }).ike.version, version, `ikeVersion ${value}`);
  }
  hasError(
    t,
    errorsOf(t, withPolicies({ ...FIELDS, ikeVersion: 'v3' })),
    `${IKE}.ikeVersion`,
    '1, 2, "v1" or "v2"',
  );
  hasError(
    t,
    errorsOf(t, withPolicies({ ...FIELDS, version: 2, ikeVersion: 'v2' })),
    `${IKE}.ikeVersion`,
    'either version or ikeVersion (the same thing), not both',
  );
});

t.test(
  'encryption aes-128, aes-192, aes-256, 3des and auth sha1, sha256, sha384, sha512, in IKE and ESP',
  async (t) => {
    const encryptions = { 'aes-128': 'aes128', 'aes-192': 'aes192', 'aes-256': 'aes256', '3des': '3des' };
    const auths = ['sha1', 'sha256', 'sha384', 'sha512'];
    for (const [neutron, keyword] of Object.entries(encryptions)) {
      for (const auth of auths) {
        const c = connection(
          { encryptionAlgorithm: neutron, authAlgorithm: auth, dhGroup: 'group14' },
          { encryptionAlgorithm: neutron, authAlgorithm: auth },
        );
        t.same(c.ike.proposals.map(formatSuite), [`${keyword}-${auth}-modp2048`], `IKE ${neutron} ${auth}`);
        t.same(c.ipsec.proposals.map(formatSuite), [`${keyword}-${auth}`], `ESP ${neutron} ${auth}`);
      }
    }
    const errors = errorsOf(
      t,
      withPolicies({ ...FIELDS, encryption: 'aes-128', encryptionAlgorithm: 'aes-256' }),
    );
    hasError(t, errors, `${IKE}.encryptionAlgorithm`, 'either encryption or encryptionAlgorithm');
    hasError(
      t,
      errorsOf(
        t,
        withPolicies({
          ...FIELDS,
          proposals: ['aes128-sha1-modp2048'],
          encryption: undefined,
          encryptionAlgorithm: 'aes-128',
        }),
      ),
      `${IKE}.proposals`,
      'either proposals or the fields',
    );
  },
);

t.test('phase 1 mode main (phase1NegotiationMode); aggressive is refused with the reason', async (t) => {
  t.equal(connection({ ...FIELDS, phase1NegotiationMode: 'main' }).ike.mode, 'main');
  const aggressive = hasError(
    t,
    errorsOf(t, withPolicies({ ...FIELDS, phase1NegotiationMode: 'aggressive' })),
    `${IKE}.phase1NegotiationMode`,
    '"main"',
  );
  t.match(aggressive?.expected, 'aggressive mode is not supported');
});

t.test('lifetime: 60 to 86400 seconds, as a number or as { units, value }', async (t) => {
  for (const seconds of [60, 3600, 86400]) {
    t.equal(connection({ ...FIELDS, lifetime: seconds }).ike.lifetime.seconds, seconds);
    t.equal(
      connection(FIELDS, { proposals: ['aes128-sha1'], lifetime: { units: 'seconds', value: seconds } }).ipsec
        .lifetime.seconds,
      seconds,
    );
  }
  for (const seconds of [59, 86401, 0, -60]) {
    hasError(
      t,
      errorsOf(t, withPolicies({ ...FIELDS, lifetime: seconds })),
      `${IKE}.lifetime`,
      'a whole number of seconds from 60 to 86400',
    );
    hasError(
      t,
      errorsOf(
        t,
        withPolicies(FIELDS, { proposals: ['aes128-sha1'], lifetime: { units: 'seconds', value: seconds } }),
      ),
      `${ESP}.lifetime.value`,
      'a whole number of seconds from 60 to 86400',
    );
  }
});

t.test('PFS group2, group5, group14', async (t) => {
  for (const [group, name] of [
    ['group2', 'modp1024'],
    ['group5', 'modp1536'],
    ['group14', 'modp2048'],
  ] as const) {
    t.equal(connection(FIELDS, { proposals: ['aes128-sha1'], pfs: group }).ipsec.pfs?.name, name, group);
    t.equal(connection({ ...FIELDS, dhGroup: group }).ike.proposals[0]?.dh?.name, name, `IKE ${group}`);
  }
});

t.test(
  'transform protocol esp (transformProtocol); encapsulation tunnel or transport (encapsulationMode)',
  async (t) => {
    const esp = { encryptionAlgorithm: 'aes-128', authAlgorithm: 'sha1' };
    t.equal(connection(FIELDS, { ...esp, transformProtocol: 'esp' }).ipsec.protocol, 'esp');
    for (const protocol of ['ah', 'ah-esp']) {
      const error = hasError(
        t,
        errorsOf(t, withPolicies(FIELDS, { ...esp, transformProtocol: protocol })),
        `${ESP}.transformProtocol`,
        '"esp" (AH is not supported)',
      );
      t.equal(error?.got, JSON.stringify(protocol));
    }
    t.equal(connection(FIELDS, { ...esp, encapsulationMode: 'tunnel' }).ipsec.mode, 'tunnel');
    const transport = withValue(
      withPolicies(FIELDS, { ...esp, encapsulationMode: 'transport' }),
      'connections.office.local.subnets',
      undefined,
    );
    withValue(transport, 'connections.office.peer.subnets', undefined);
    t.equal(parseConfig(JSON.stringify(transport), FILE).connections[0]?.ipsec.mode, 'transport');
    hasError(
      t,
      errorsOf(t, withPolicies(FIELDS, { ...esp, mode: 'tunnel', encapsulationMode: 'tunnel' })),
      `${ESP}.encapsulationMode`,
      'either mode or encapsulationMode',
    );
    hasError(
      t,
      errorsOf(t, withPolicies(FIELDS, { ...esp, protocol: 'esp', transformProtocol: 'esp' })),
      `${ESP}.transformProtocol`,
      'either protocol or transformProtocol',
    );
  },
);
