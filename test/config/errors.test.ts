import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { baseConfig, errorsOf, FILE, hasError, hasUnknownKey, withValue } from './fixtures/helpers.js';

const C = 'connections.office';

t.test('the base configuration is valid', async (t) => {
  t.equal(parseConfig(JSON.stringify(baseConfig()), FILE).connections.length, 1);
});

t.test('the message names the file, the JSON path, what was expected and what was found', async (t) => {
  const errors = errorsOf(t, withValue(baseConfig(), `${C}.ikePolicy`, 'foo'));
  t.equal(errors.length, 1);
  t.equal(
    errors[0]?.message,
    `${FILE}: ${C}.ikePolicy: expected the name of an entry of ikePolicies (ike1), got "foo"`,
  );
  t.same(
    [errors[0]?.file, errors[0]?.path, errors[0]?.expected, errors[0]?.got],
    [FILE, `${C}.ikePolicy`, 'the name of an entry of ikePolicies (ike1)', '"foo"'],
  );
  hasError(
    t,
    errorsOf(t, withValue(baseConfig(), `${C}.ipsecPolicy`, 'bar')),
    `${C}.ipsecPolicy`,
    'the name of an entry of ipsecPolicies (esp1)',
  );
  hasError(
    t,
    errorsOf(t, withValue(withValue(baseConfig(), 'ipsecPolicies', undefined), `${C}.ipsecPolicy`, 'bar')),
    `${C}.ipsecPolicy`,
    'the name of an entry of ipsecPolicies (there are none)',
  );
});

t.test('unknown keys anywhere: "did you mean", or the allowed keys when none is close', async (t) => {
  const top = hasUnknownKey(t, errorsOf(t, withValue(baseConfig(), 'conections', {})), 'conections', {
    suggestion: 'connections',
  });
  t.match(top?.expected, 'one of the keys listen, kernel', 'the allowed keys are still in the error');
  hasUnknownKey(t, errorsOf(t, withValue(baseConfig(), 'peer', {})), 'peer', {
    allowed:
      'listen, kernel, crypto, workers, control, log, metrics, debug, dataPlane, retransmit, ike, endpointGroups',
  });
  hasUnknownKey(
    t,
    errorsOf(t, withValue(baseConfig(), `${C}.peer.adress`, '198.51.100.8')),
    `${C}.peer.adress`,
    {
      suggestion: 'address',
    },
  );
  hasUnknownKey(t, errorsOf(t, withValue(baseConfig(), `${C}.ikepolicy`, 'ike1')), `${C}.ikepolicy`, {
    suggestion: 'ikePolicy',
  });
  hasUnknownKey(
    t,
    errorsOf(t, withValue(baseConfig(), 'ikePolicies.ike1.ike_version', 2)),
    'ikePolicies.ike1.ike_version',
    {
      suggestion: 'ikeVersion',
    },
  );
  hasUnknownKey(
    t,
    errorsOf(t, withValue(baseConfig(), 'ikePolicies.ike1.pfs', 'group14')),
    'ikePolicies.ike1.pfs',
    {
      allowed: 'dhGroup',
    },
  );
  hasUnknownKey(t, errorsOf(t, withValue(baseConfig(), 'listen.ports', 500)), 'listen.ports', {
    suggestion: 'port',
  });
  hasUnknownKey(
    t,
    errorsOf(t, withValue(baseConfig(), `${C}.local.selectors`, [{ subnet: '10.0.0.0/24', proto: 'udp' }])),
    `${C}.local.selectors[0].proto`,
    { allowed: 'subnet, protocol, port' },
  );
  hasUnknownKey(
    t,
    errorsOf(t, withValue(baseConfig(), `${C}.psk`, { file: 'k', mode: 1 })),
    `${C}.psk.mode`,
    {
      allowed: 'file, env',
    },
  );
  hasUnknownKey(t, errorsOf(t, withValue(baseConfig(), `${C}.pks`, 'k')), `${C}.pks`, { suggestion: 'psk' });
});

t.test('top-level settings', async (t) => {
  const errors = errorsOf(t, {
    listen: { addresses: ['192.0.2.1', 'vpn.example.net', '192.0.2.01'], port: 500, natPort: 500 },
    kernel: 'netlink',
    crypto: 'openssl',
    control: { socket: 7 },
    log: { level: 'verbose' },
  });
  hasError(t, errors, 'listen.addresses[1]', 'an IPv4 or IPv6 address');
  hasError(t, errors, 'listen.addresses[2]', 'an IPv4 or IPv6 address');
  hasError(t, errors, 'listen.natPort', 'different ports');
  hasError(t, errors, 'kernel', '"memory", "xfrm", "pfkey" or "userspace"');
  hasError(t, errors, 'crypto', '"node" or "noble"');
  hasError(t, errors, 'control.socket', 'the path of the control socket');
  hasError(t, errors, 'log.level', '"error", "warn", "info" or "debug"');
  t.equal(errors.length, 7, 'and nothing else');
  hasError(t, errorsOf(t, '[]'), '', 'an object with the keys listen');
  hasError(
    t,
    errorsOf(t, { listen: { addresses: [] } }),
    'listen.addresses',
    'a list of IPv4 or IPv6 addresses',
  );
  hasError(t, errorsOf(t, { listen: { port: 0 } }), 'listen.port', 'a whole number from 1 to 65535');
  hasError(t, errorsOf(t, { connections: [] }), 'connections', 'an object of connections by name');
  hasError(
    t,
    errorsOf(t, { ikePolicies: { 'bad name': {} } }),
    'ikePolicies["bad name"]',
    'a name of up to 64 letters',
  );
});

t.test('IKE policies', async (t) => {
  const ike = (policy: object) => errorsOf(t, withValue(baseConfig(), 'ikePolicies.ike1', policy));
  const P = 'ikePolicies.ike1';
  const aggressive = hasError(
    t,
    ike({ mode: 'aggressive', proposals: ['aes128-sha1-modp1024'] }),
    `${P}.mode`,
    '"main"',
  );
  t.match(aggressive?.message, 'aggressive mode is not supported');
  hasError(t, ike({ version: 3, proposals: ['aes128-sha1-modp1024'] }), `${P}.version`, '1, 2, "v1" or "v2"');
  hasError(
    t,
    ike({ version: '1', proposals: ['aes128-sha1-modp1024'] }),
    `${P}.version`,
    '1, 2, "v1" or "v2"',
  );
  const both = hasError(
    t,
    ike({ proposals: ['aes128-sha1-modp1024'], encryption: 'aes-128' }),
    `${P}.proposals`,
    'either proposals or the fields encryption, integrity and dhGroup, not both',
  );
  t.match(both?.got, 'encryption');
  hasError(
    t,
    ike({}),
    `${P}.proposals`,
    'a list of proposals, or the fields encryption, integrity and dhGroup',
  );
  const noDh = hasError(
    t,
    ike({ proposals: ['aes128-sha1-modp1024', 'aes256-sha256'] }),
    `${P}.proposals[1]`,
    'an IKE proposal such as',
  );
  t.match(noDh?.got, '"aes256-sha256" (no Diffie-Hellman group)');
  hasError(
    t,
    ike({ proposals: ['aes128-sha1-modp1024', 'blowfish-sha1-modp1024'] }),
    `${P}.proposals[1]`,
    'an IKE proposal such as',
  );
  hasError(t, ike({ proposals: [] }), `${P}.proposals`, 'a list of IKE proposals');
  hasError(
    t,
    ike({ encryption: 'aes-512', integrity: 'sha1', dhGroup: 'group2' }),
    `${P}.encryption`,
    'aes-128, aes-192, aes-256',
  );
  hasError(
    t,
    ike({ encryption: ['aes-128', 'des'], integrity: 'sha1', dhGroup: 'group2' }),
    `${P}.encryption[1]`,
    'an encryption algorithm',
  );
  hasError(
    t,
    ike({ encryption: 'aes-128', integrity: 'sha3', dhGroup: 'group2' }),
    `${P}.integrity`,
    'md5, sha1, sha256',
  );
  hasError(
    t,
    ike({ encryption: 'aes-128', integrity: 'sha1', dhGroup: 'group99' }),
    `${P}.dhGroup`,
    'group14',
  );
  hasError(t, ike({ encryption: 'aes-128', integrity: 'sha1' }), `${P}.dhGroup`, 'a Diffie-Hellman group');
  hasError(t, ike({ encryption: 'aes-128', dhGroup: 'group14' }), `${P}.integrity`, 'an integrity algorithm');
  hasError(
    t,
    ike({ encryption: 'aes-128', integrity: 'sha1', authAlgorithm: 'sha1', dhGroup: 'group14' }),
    `${P}.authAlgorithm`,
    'either integrity or authAlgorithm',
  );
  // IKEv1 phase 1 has no AES-GCM, no Curve25519, and one hash for integrity and PRF.
  hasError(
    t,
    ike({ proposals: ['aes128gcm16-prfsha256-modp2048'] }),
    `${P}.proposals[0]`,
    'IKEv1 can negotiate for the IKE SA',
  );
  hasError(
    t,
    ike({ proposals: ['aes128-sha256-curve25519'] }),
    `${P}.proposals[0]`,
    'a Diffie-Hellman group IKEv1 can negotiate',
  );
  hasError(
    t,
    ike({ proposals: ['aes128-sha256-prfsha1-modp2048'] }),
    `${P}.proposals[0]`,
    'one hash for both',
  );
  t.equal(
    parseConfig(
      JSON.stringify(
        withValue(baseConfig(), 'ikePolicies.ike1', {
          version: 2,
          proposals: ['aes128gcm16-prfsha256-curve25519'],
        }),
      ),
      FILE,
    ).connections[0]?.ike.version,
    2,
    'IKEv2 takes them',
  );
});

t.test('lifetimes, rekeying and DPD', async (t) => {
  const ike = (fields: object) =>
    errorsOf(
      t,
      withValue(baseConfig(), 'ikePolicies.ike1', { proposals: ['aes128-sha1-modp2048'], ...fields }),
    );
  const P = 'ikePolicies.ike1';
  hasError(t, ike({ lifetime: 30 }), `${P}.lifetime`, 'a whole number of seconds from 60 to 86400');
  hasError(t, ike({ lifetime: 86401 }), `${P}.lifetime`, 'from 60 to 86400');
  hasError(t, ike({ lifetime: 3600.5 }), `${P}.lifetime`, 'a whole number');
  hasError(t, ike({ lifetime: { units: 'seconds', value: 10 } }), `${P}.lifetime.value`, 'from 60 to 86400');
  hasError(t, ike({ lifetime: { units: 'minutes', value: 100 } }), `${P}.lifetime.units`, '"seconds"');
  hasError(
    t,
    ike({ lifetime: 600, rekeyMargin: 600 }),
    `${P}.rekeyMargin`,
    'from 0 to 599 (less than the lifetime)',
  );
  hasError(t, ike({ lifetime: 600, rekeyMargin: 500, rekeyFuzz: 100 }), `${P}.rekeyFuzz`, 'from 0 to 99');
  hasError(t, ike({ dpd: { action: 'restart', delay: 0 } }), `${P}.dpd.delay`, 'from 1 to 86400');
  hasError(t, ike({ dpd: { action: 'reboot' } }), `${P}.dpd.action`, '"clear", "restart" or "hold"');
  hasError(t, ike({ dpd: true }), `${P}.dpd`, 'or false for no DPD');
  const esp = errorsOf(
    t,
    withValue(baseConfig(), 'ipsecPolicies.esp1', {
      proposals: ['aes128-sha256'],
      lifetime: { units: 'kilobytes', value: 1000 },
      lifetimeKilobytes: 0,
    }),
  );
  hasError(t, esp, 'ipsecPolicies.esp1.lifetime.units', 'use lifetimeKilobytes');
  hasError(t, esp, 'ipsecPolicies.esp1.lifetimeKilobytes', 'a whole number of kilobytes');
});

t.test('IPsec policies', async (t) => {
  const esp = (policy: object) => errorsOf(t, withValue(baseConfig(), 'ipsecPolicies.esp1', policy));
  const P = 'ipsecPolicies.esp1';
  const ah = hasError(t, esp({ protocol: 'ah', proposals: ['sha256'] }), `${P}.protocol`, '"esp"');
  t.match(ah?.expected, 'AH is not supported');
  hasError(t, esp({ mode: 'beet', proposals: ['aes128-sha1'] }), `${P}.mode`, '"tunnel" or "transport"');
  hasError(
    t,
    esp({ proposals: ['aes128-sha1-modp1024'], pfs: 'modp2048' }),
    `${P}.pfs`,
    'no "pfs" when the ESP proposals name their Diffie-Hellman groups',
  );
  hasError(t, esp({ proposals: ['aes128-sha1-prfsha1'] }), `${P}.proposals[0]`, 'an ESP proposal such as');
  hasError(t, esp({ proposals: ['aes128'] }), `${P}.proposals[0]`, 'an ESP proposal such as');
  hasError(t, esp({ encryption: 'aes-128' }), `${P}.integrity`, 'required unless the encryption is AEAD');
  hasError(t, esp({ encryption: 'aes128gcm16', integrity: 'sha1' }), P, 'algorithms that work together');
  hasError(
    t,
    esp({ proposals: ['aes128-sha1'], pfs: 'group42' }),
    `${P}.pfs`,
    '"none", false, or a Diffie-Hellman group',
  );
  hasError(t, esp({ proposals: ['aes128-sha1'], pfs: true }), `${P}.pfs`, '"none", false');
  // IKEv1 quick mode has no ChaCha20-Poly1305 or Curve25519.
  hasError(
    t,
    esp({ proposals: ['chacha20poly1305'], pfs: 'curve25519' }),
    `${C}.ipsecPolicy`,
    'ESP algorithms IKEv1 can negotiate',
  );
});

t.test('the crypto provider must implement the algorithms', async (t) => {
  const config = withValue(baseConfig(), 'crypto', 'noble');
  withValue(config, 'ikePolicies.ike1', {
    encryption: ['aes-128', '3des'],
    integrity: 'sha1',
    dhGroup: 'group2',
  });
  withValue(config, 'ipsecPolicies.esp1', { proposals: ['aes128-sha1', '3des-md5'] });
  const errors = errorsOf(t, config);
  hasError(t, errors, 'ikePolicies.ike1.encryption', 'an algorithm the "noble" crypto provider implements');
  hasError(t, errors, 'ipsecPolicies.esp1.proposals[1]', 'the "noble" crypto provider');
  t.equal(errors.length, 2);
});

t.test('connections', async (t) => {
  const conn = (path: string, value: unknown) => errorsOf(t, withValue(baseConfig(), `${C}.${path}`, value));
  hasError(
    t,
    conn('peer.address', 'vpn.example.net'),
    `${C}.peer.address`,
    'an IPv4 or IPv6 address, or "any"',
  );
  hasError(t, conn('peer.address', undefined), `${C}.peer.address`, 'an IPv4 or IPv6 address, or "any"');
  hasError(t, conn('peer', undefined), `${C}.peer`, 'an object');
  hasError(t, conn('local.address', '192.0.2.300'), `${C}.local.address`, 'an IPv4 or IPv6 address');
  hasError(t, conn('peer.port', 70000), `${C}.peer.port`, 'from 1 to 65535');
  hasError(t, conn('peer.natPort', 0), `${C}.peer.natPort`, 'from 1 to 65535');
  hasError(t, conn('peer.id', '@'), `${C}.peer.id`, 'an identity');
  hasError(t, conn('start', 'auto'), `${C}.start`, '"initiate", "respond" or "on-traffic"');
  hasError(t, conn('psk', undefined), `${C}.psk`, 'a pre-shared key');
  hasError(
    t,
    conn('ikePolicy', 7),
    `${C}.ikePolicy`,
    'the name of an entry of ikePolicies, or a policy object',
  );
  const any = withValue(baseConfig(), `${C}.peer.address`, 'any');
  const initiate = hasError(t, errorsOf(t, any), `${C}.start`, '"respond"');
  t.match(initiate?.expected, 'peer.address is "any"');
  hasError(
    t,
    errorsOf(t, {
      connections: { 'bad/name': (baseConfig().connections as Record<string, unknown>).office },
    }),
    'connections["bad/name"]',
    'a name of up to 64 letters',
  );
});

t.test('traffic selectors', async (t) => {
  const conn = (path: string, value: unknown) => errorsOf(t, withValue(baseConfig(), `${C}.${path}`, value));
  hasError(
    t,
    conn('local.subnets', ['10.0.0.0/24', '10.0.0.0/33']),
    `${C}.local.subnets[1]`,
    'a subnet (10.1.0.0/16)',
  );
  hasError(t, conn('local.subnets', ['10.0.0.9-10.0.0.1']), `${C}.local.subnets[0]`, 'an address range');
  hasError(t, conn('local.subnets', '10.0.0.0/24'), `${C}.local.subnets`, 'a list of subnets');
  hasError(t, conn('local.subnets', undefined), `${C}.local.subnets`, 'tunnel mode needs them');
  hasError(t, conn('local', undefined), `${C}.local.subnets`, 'tunnel mode needs them');
  hasError(t, conn('peer.subnets', undefined), `${C}.peer.subnets`, 'tunnel mode needs them');
  hasError(t, conn('peer.subnets', ['2001:db8:1::/48']), `${C}.peer.subnets`, 'IPv4 subnets, like local');
  hasError(
    t,
    conn('local.selectors', [{ protocol: 'udp', port: 1701 }]),
    `${C}.local.selectors[0].subnet`,
    'tunnel mode needs one',
  );
  hasError(
    t,
    conn('local.selectors', [{ subnet: '10.0.9.0/24', port: 80 }]),
    `${C}.local.selectors[0].port`,
    'only together with a protocol',
  );
  hasError(
    t,
    conn('local.selectors', [{ subnet: '10.0.9.0/24', protocol: 'gre' }]),
    `${C}.local.selectors[0].protocol`,
    'from 0 to 255',
  );
  hasError(
    t,
    conn('local.selectors', [{ subnet: '10.0.9.0/24', protocol: 'tcp', port: -1 }]),
    `${C}.local.selectors[0].port`,
    'from 0 to 65535',
  );
  const initiator = withValue(baseConfig(), 'ipsecPolicies.esp1.mode', 'transport');
  withValue(initiator, `${C}.local`, { selectors: [{ protocol: 'udp', port: 1701 }] });
  withValue(initiator, 'listen.addresses', ['0.0.0.0']);
  hasError(
    t,
    errorsOf(t, initiator),
    `${C}.local.selectors[0].subnet`,
    'an initiator proposes its own address',
  );
  const transport = withValue(baseConfig(), 'ipsecPolicies.esp1.mode', 'transport');
  withValue(transport, `${C}.local.subnets`, ['2001:db8::1']);
  hasError(t, errorsOf(t, transport), `${C}.local.subnets[0]`, "an IPv4 selector like the host's address");
});

t.test('outer addresses: families and listen addresses', async (t) => {
  const v6peer = withValue(baseConfig(), `${C}.peer.address`, '2001:db8::7');
  hasError(t, errorsOf(t, v6peer), `${C}.peer.address`, 'an IPv4 address, like local.address');
  hasError(
    t,
    errorsOf(t, withValue(baseConfig(), `${C}.local.address`, '192.0.2.9')),
    `${C}.local.address`,
    'one of listen.addresses (192.0.2.1)',
  );
  const noLocal = withValue(
    withValue(baseConfig(), `${C}.local.address`, undefined),
    `${C}.peer.address`,
    '2001:db8::7',
  );
  hasError(t, errorsOf(t, noLocal), `${C}.peer.address`, 'an address of a family listen.addresses serve');
  const wildcard = withValue(baseConfig(), 'listen.addresses', ['0.0.0.0']);
  withValue(wildcard, `${C}.local.address`, '192.0.2.9');
  t.equal(
    parseConfig(JSON.stringify(wildcard), FILE).connections[0]?.local.address,
    '192.0.2.9',
    '0.0.0.0 covers it',
  );
});

t.test('IKEv1 connections between the same addresses with different keys are ambiguous', async (t) => {
  const config = baseConfig();
  const connections = config.connections as Record<string, Record<string, unknown>>;
  const other = { ...connections.office!, psk: 'another key' };
  connections.second = { ...other, local: { address: '192.0.2.1', subnets: ['10.9.0.0/24'] } };
  const error = hasError(
    t,
    errorsOf(t, config),
    'connections.second.peer.address',
    'no IKEv1 connection with another pre-shared key uses',
  );
  t.match(error?.got, 'connections.office');
  connections.second = { ...other, local: { subnets: ['10.9.0.0/24'] } };
  hasError(t, errorsOf(t, config), 'connections.second.peer.address', 'main mode picks the key by address');

  connections.second = { ...connections.office!, local: { address: '192.0.2.1', subnets: ['10.9.0.0/24'] } };
  t.equal(
    parseConfig(JSON.stringify(config), FILE).connections.length,
    2,
    'with the same key they are siblings sharing one ISAKMP SA',
  );
  connections.second = { ...other, peer: { address: '198.51.100.8', subnets: ['10.8.0.0/24'] } };
  t.equal(parseConfig(JSON.stringify(config), FILE).connections.length, 2, 'another peer is fine');
  withValue(config, 'ikePolicies.v2', { version: 2, proposals: ['aes128-sha256-modp2048'] });
  connections.second = { ...other, ikePolicy: 'v2' };
  connections.third = { ...other, psk: 'a third key', ikePolicy: 'v2' };
  t.equal(
    parseConfig(JSON.stringify(config), FILE).connections.length,
    3,
    'IKEv2 finds connections by identity',
  );
  const responders = baseConfig();
  const office = (responders.connections as Record<string, Record<string, unknown>>).office!;
  responders.connections = {
    a: { ...office, peer: { address: 'any' }, start: 'respond' },
    b: { ...office, peer: { address: 'any' }, start: 'respond', psk: 'another key' },
  };
  t.equal(parseConfig(JSON.stringify(responders), FILE).connections.length, 2, '"any" peers are not checked');
});

t.test('pre-shared key problems', async (t) => {
  const psk = (value: unknown, env = {}, readFile?: (path: string) => Uint8Array | string) =>
    errorsOf(t, withValue(baseConfig(), `${C}.psk`, value), env, readFile);
  const unset = hasError(
    t,
    psk({ env: 'OFFICE_PSK' }),
    `${C}.psk.env`,
    'the name of a set environment variable',
  );
  t.match(unset?.got, '"OFFICE_PSK", which is not set');
  hasError(t, psk(''), `${C}.psk`, 'at least 1 byte');
  hasError(t, psk({ env: 'E' }, { E: '' }), `${C}.psk.env`, 'at least 1 byte');
  hasError(
    t,
    psk({ file: '/k' }, {}, () => '\n'),
    `${C}.psk.file`,
    'at least 1 byte',
  );
  hasError(t, psk('0xabc'), `${C}.psk`, '0x followed by an even number of hex digits');
  hasError(t, psk('0x'), `${C}.psk`, '0x followed by an even number of hex digits');
  hasError(t, psk({ file: 'k', env: 'K' }), `${C}.psk`, 'exactly one of "file" or "env"');
  hasError(t, psk({}), `${C}.psk`, 'exactly one of "file" or "env"');
  hasError(t, psk(1234), `${C}.psk`, 'a pre-shared key');
  const missing = hasError(
    t,
    psk({ file: 'keys/office.psk' }, {}, (path) => {
      throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
    }),
    `${C}.psk.file`,
    'a readable file holding the key',
  );
  t.equal(missing?.got, 'ENOENT reading /etc/ike-node/keys/office.psk');
});

t.test('every problem in the file is reported at once, in file order', async (t) => {
  const config = { kernel: 'bsd', ...baseConfig() };
  withValue(config, 'ikePolicies.ike1.mode', 'aggressive');
  withValue(config, 'ipsecPolicies.esp1.protocol', 'ah');
  withValue(config, 'ipsecPolicies.unused', { proposals: ['aes128-sha1'], lifetime: 5 });
  withValue(config, `${C}.peer.adress`, 'x');
  withValue(config, 'connections.home', {
    ikePolicy: 'nope',
    ipsecPolicy: 'esp1',
    local: { subnets: ['10.0.0.0/24'] },
    peer: { address: 'any' },
    psk: { env: 'HOME_PSK' },
  });
  withValue(config, 'connections.last', { ikePolicy: 'ike1', ipsecPolicy: 'esp1', peer: { address: 'any' } });
  withValue(config, 'retransmit', { tries: 100 });
  const errors = errorsOf(t, config);
  t.same(
    errors.map((e) => e.path),
    [
      'kernel',
      'ikePolicies.ike1.mode',
      'ipsecPolicies.esp1.protocol',
      'ipsecPolicies.unused.lifetime',
      `${C}.peer.adress`,
      'connections.home.ikePolicy',
      'connections.home.psk.env',
      'connections.last.psk',
      'retransmit.tries',
    ],
    'each problem once, structural and semantic ones in file order (a missing key after its object), and none caused by another (the policies that failed are not re-reported)',
  );
});

t.test('duplicate keys are errors, not silently overwritten', async (t) => {
  const text = JSON.stringify(baseConfig(), null, 2).replace(
    '"connections": {',
    '"connections": {\n "office": {},',
  );
  const errors = errorsOf(t, text);
  hasError(t, errors, 'connections.office', 'each key once in its object');
});
