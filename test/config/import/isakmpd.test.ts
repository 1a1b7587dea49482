import t from 'tap';
import { importIsakmpd } from '../../../src/config/import/index.js';
import { checked, fixture, importError } from './fixtures/helpers.js';

/** The line of the "operations" issue, imported with isakmpd's defaults filled in. */
const ISSUE_LINE =
  'ike passive esp tunnel from 192.0.2.1 to any main group "modp1024" quick group "modp1024" psk "my-tunnel-is-private"';

const ISSUE_CONFIG = {
  ikePolicies: {
    'peer-default': { proposals: ['aes128-aes192-aes256-sha1-modp1024'], lifetime: 3600 },
  },
  ipsecPolicies: {
    'from-192.0.2.1-to-any': {
      mode: 'tunnel',
      proposals: [
        'aes128-aes192-aes256-sha256',
        'aes256-aes192-aes128-sha256-sha384-sha512-sha1-md5',
        'aes256ctr-aes192ctr-aes128ctr-sha256-sha384-sha512-sha1-md5',
        'aes256gcm16-aes192gcm16-aes128gcm16',
        '3des-sha256-sha1-md5',
      ],
      pfs: 'modp1024',
      lifetime: 1200,
      acceptModes: ['tunnel', 'transport'],
      acceptPfs: ['modp1024', 'modp1536', 'modp2048', 'modp3072', 'modp4096', 'ecp256', 'ecp384', 'none'],
    },
  },
  connections: {
    'from-192.0.2.1-to-any': {
      ikePolicy: 'peer-default',
      ipsecPolicy: 'from-192.0.2.1-to-any',
      local: { subnets: ['192.0.2.1'] },
      peer: { address: 'any', subnets: ['0.0.0.0/0'] },
      psk: 'my-tunnel-is-private',
      start: 'respond',
    },
  },
};

t.test('the issue line: isakmpd defaults, the default peer, a responder', async (t) => {
  const line = fixture('isakmpd-l2tp.conf');
  t.equal(line.text.trim(), ISSUE_LINE, 'the fixture is the issue line');
  const result = importIsakmpd(line.text, line.file);
  t.same(result.config, ISSUE_CONFIG, 'the whole peers.json');
  const { byName } = checked(t, result);
  const c = byName.get('from-192.0.2.1-to-any')!;
  t.same(c.ike.proposals, ['aes128-sha1-modp1024', 'aes192-sha1-modp1024', 'aes256-sha1-modp1024']);
  t.equal(c.ike.lifetime.seconds, 3600, 'main mode lifetime: LIFE_MAIN_MODE');
  t.equal(c.ike.dpd, false, 'no DPD unless dynamic');
  t.equal(c.ipsec.mode, 'tunnel');
  t.same(
    c.ipsec.proposals.slice(0, 3),
    ['aes128-sha256', 'aes192-sha256', 'aes256-sha256'],
    'quick default: aes, hmac-sha2-256, preferred',
  );
  t.ok(c.ipsec.proposals.includes('aes128-sha1'), 'then what isakmpd -K also answers');
  t.equal(c.ipsec.pfs, 'modp1024', 'quick group: PFS');
  t.equal(c.ipsec.lifetime.seconds, 1200, 'quick mode lifetime: LIFE_QUICK_MODE');
  t.same(c.local.trafficSelectors, ['192.0.2.1/32']);
  t.equal(c.peer.address, 'any', 'to any: the default peer answers anyone');
  t.same(c.peer.trafficSelectors, ['0.0.0.0/0']);
  t.equal(c.start, 'respond');
  t.equal(result.warnings.length, 1, 'one warning');
  t.match(
    result.warnings[0],
    /-K.*any transform, encapsulation mode and PFS group.*acceptModes, acceptPfs.*macOS/,
  );
});

t.test('the issue line written with macros imports the same', async (t) => {
  const macros = fixture('isakmpd-l2tp-macros.conf');
  t.match(macros.text, /from \$gw to any/);
  const result = importIsakmpd(macros.text, macros.file);
  t.same(result.config, ISSUE_CONFIG);
  checked(t, result);
});

t.test(
  'site to site: lists, peer, local, transforms, lifetimes, ids, dynamic, transport, proto/port',
  async (t) => {
    const site = fixture('isakmpd-site.conf');
    const result = importIsakmpd(site.text, site.file);
    const { config, byName } = checked(t, result);
    t.same(
      config.connections.map((c) => c.name),
      [
        'from-10.0.0.0-24-to-172.16.5.0-24',
        'from-10.0.1.0-24-to-172.16.5.0-24',
        'from-192.0.2.1-17-1701-to-203.0.113.9-17',
      ],
      'one connection per source of the { list }',
    );
    for (const name of ['from-10.0.0.0-24-to-172.16.5.0-24', 'from-10.0.1.0-24-to-172.16.5.0-24']) {
      const c = byName.get(name)!;
      t.equal(c.start, 'initiate', `${name}: active initiates`);
      t.equal(c.ike.name, 'peer-198.51.100.7-local-192.0.2.1', 'one shared phase 1 section');
      t.same(c.ike.proposals, ['aes256-sha256-modp2048']);
      t.equal(c.ike.lifetime.seconds, 8 * 3600, 'lifetime 8h');
      t.same(c.ipsec.proposals, ['aes256-sha256']);
      t.equal(c.ipsec.pfs, 'modp2048');
      t.equal(c.ipsec.lifetime.seconds, 1800, 'lifetime 30m');
      t.equal(c.local.address, '192.0.2.1', 'local');
      t.equal(c.local.id, 'fqdn:hq.example.net', 'srcid');
      t.equal(c.peer.address, '198.51.100.7', 'peer');
      t.equal(c.peer.id, 'fqdn:branch1.example.net', 'dstid');
      t.same(c.peer.trafficSelectors, ['172.16.5.0/24']);
    }
    const l2tp = byName.get('from-192.0.2.1-17-1701-to-203.0.113.9-17')!;
    t.equal(l2tp.ipsec.mode, 'transport');
    t.same(l2tp.ipsec.proposals, ['aes128gcm16'], 'aes-128-gcm: AES_GCM_16, no auth');
    t.equal(l2tp.ipsec.pfs, 'none', 'group none');
    t.same(
      l2tp.ike.proposals,
      ['aes128-sha1-modp3072', 'aes192-sha1-modp3072', 'aes256-sha1-modp3072'],
      'main defaults',
    );
    t.same(l2tp.ike.dpd, { delay: 5, timeout: 120, action: 'restart' }, 'dynamic: DPD every 5 s');
    t.equal(l2tp.start, 'initiate');
    t.equal(l2tp.peer.address, '203.0.113.9', 'a single-host destination is the peer');
    t.same(l2tp.local.trafficSelectors, ['192.0.2.1/32[udp/1701]'], 'proto udp, port l2tp');
    t.same(l2tp.peer.trafficSelectors, ['203.0.113.9/32[udp]'], 'the protocol on both sides, no port');
    t.equal(
      (result.config.connections as Record<string, { psk: string }>)[l2tp.name]!.psk,
      '0x7365637265742d32',
    );
    t.equal(
      l2tp.local.address,
      '192.0.2.1',
      'transport mode without local: the single-host source is where IKE runs',
    );
    t.same(
      result.config.listen,
      { addresses: ['192.0.2.1'] },
      'every connection has a local address: ike-node listens there, not on 0.0.0.0',
    );
    t.match(result.warnings, [
      /isakmpd-site\.conf:15: a flow rule .* not imported/,
      /peer-203\.0\.113\.9: no dstid/,
      /-K/,
    ]);
  },
);

t.test(
  'defaults of a bare rule: active, tunnel, aes/sha1/modp3072 and aes/sha2-256 with PFS modp3072',
  async (t) => {
    const result = importIsakmpd(
      'ike from 10.0.0.0/24 to 10.1.0.0/24 peer 198.51.100.7 psk "k"\n',
      'ipsec.conf',
    );
    const [c] = checked(t, result).byName.values();
    t.equal(c!.start, 'initiate');
    t.equal(c!.ipsec.mode, 'tunnel');
    t.same(c!.ike.proposals, ['aes128-sha1-modp3072', 'aes192-sha1-modp3072', 'aes256-sha1-modp3072']);
    t.same(c!.ipsec.proposals, ['aes128-sha256', 'aes192-sha256', 'aes256-sha256']);
    t.equal(c!.ipsec.pfs, 'modp3072', 'no quick group: PFS with modp3072');
  },
);

t.test('transform names as ipsecctl matches them (by prefix) and lifetimes in m and h', async (t) => {
  const result = importIsakmpd(
    'ike esp from 10.0.0.0/8 to 10.1.0.0/16 peer 198.51.100.7 main auth hmac-md5 enc 3des group grp2 lifetime 90m quick enc aesctr auth hmac-sha1 group modp1536 lifetime 2h psk "k"',
    'ipsec.conf',
  );
  const [c] = checked(t, result).byName.values();
  t.same(c!.ike.proposals, ['3des-md5-modp1024'], '3des is 3des-cbc, grp2 is modp1024');
  t.equal(c!.ike.lifetime.seconds, 5400);
  t.same(c!.ipsec.proposals, ['aes128ctr-sha1'], 'aesctr is 128-bit AES-CTR in ike.c');
  t.equal(c!.ipsec.pfs, 'modp1536');
  t.equal(c!.ipsec.lifetime.seconds, 7200);
});

t.test('any to any expands to IPv4 and IPv6, like ipsecctl', async (t) => {
  const result = importIsakmpd('ike passive from any to any psk "k"', 'ipsec.conf');
  const { byName } = checked(t, result);
  t.same([...byName.keys()], ['from-any-to-any', 'from-any-ipv6-to-any-ipv6']);
  t.same(byName.get('from-any-ipv6-to-any-ipv6')!.local.trafficSelectors, ['::/0']);
});

t.test('rules sharing the default peer share its last key, with a warning', async (t) => {
  const text = [
    'ike passive from 10.0.0.0/24 to any psk "first"',
    'ike passive from 10.0.1.0/24 to any quick group none psk "second"',
  ].join('\n');
  const result = importIsakmpd(text, 'ipsec.conf');
  checked(t, result);
  const connections = result.config.connections as Record<string, { psk: string; ikePolicy: string }>;
  t.same(
    Object.values(connections).map((c) => [c.ikePolicy, c.psk]),
    [
      ['peer-default', 'second'],
      ['peer-default', 'second'],
    ],
  );
  t.match(result.warnings[0], /ipsec\.conf:2: another psk for peer-default than line 1/);
});

t.test('what cannot be imported is an error naming file:line and what was expected', async (t) => {
  const cases: [string, string, string][] = [
    [
      'ike esp from 10.0.0.0/8 to any psk "k"\nike ah from 10.0.0.0/8 to any psk "k"',
      'f:2',
      'AH is not supported',
    ],
    ['ike from 10.0.0.0/8 to any aggressive psk "k"', 'f:1', 'aggressive mode is not supported'],
    ['ike passive from 10.0.0.0/8 to any', 'f:1', 'RSA signatures, which are not supported'],
    ['ike passive from 10.0.0.0/8 to any rsa', 'f:1', 'RSA signature authentication is not supported'],
    ['# gateway\n\nike passive from $gw to any psk "k"', 'f:3', 'a defined macro'],
    ['group = "modp1024"', 'f:1', 'a rule'],
    ['ike passive from gw.example.net to any psk "k"', 'f:1', 'cannot be resolved here'],
    [
      'ike passive from 10.0.0.0/8 to any main enc blowfish psk "k"',
      'f:1',
      'main mode enc ike-node supports',
    ],
    ['ike passive from 10.0.0.0/8 to any quick auth hmac-ripemd160 psk "k"', 'f:1', 'quick mode auth'],
    ['ike passive from 10.0.0.0/8 to any main group modp8192 psk "k"', 'f:1', 'main mode group'],
    [
      'ike passive from 10.0.0.0/8 to any quick enc aes-128-gcm auth hmac-sha1 psk "k"',
      'f:1',
      'authentication is implicit',
    ],
    ['include "/etc/ipsec.other.conf"', 'f:1', 'no include'],
    ['ike active from 10.0.0.0/8 to any psk "k"', 'f:1', 'a peer for an active rule'],
    ['ike passive from 192.0.2.1 port 1701 to any psk "k"', 'f:1', 'proto tcp or proto udp before ports'],
    ['ike passive from 10.0.0.0/8 to any main lifetime 100000 psk "k"', 'f:1', '60 to 86400 seconds'],
    [
      'ike passive from 10.0.0.0/8 to any main lifetime 10s psk "k"',
      'f:1',
      'a lifetime: seconds, or a number with m or h',
    ],
    ['ike passive from 10.0.0.0/8 to any psk "k\n\n', 'f:1', 'a closing "'],
    ['ike passive from 192.0.2.1 to ::/0 psk "k"', 'f:1', 'one address family'],
    ['ike passive from 10.0.0.0/8 to any psk "k" main group modp1024', 'f:1', 'in ipsec.conf order'],
    ['ike interface sec0 peer 198.51.100.7 psk "k"', 'f:1', 'sec(4) interface rules are not supported'],
    ['ike passive from 10.0.0.0/8 to any srcid "@user" psk "k"', 'f:1', 'USER_FQDN'],
    ['ike passive from 10.0.0.0/8 to any psk "k" tag', 'f:1', 'a tag name'],
  ];
  for (const [text, where, expected] of cases) {
    await t.test(`${expected}`, async (t) => {
      importError(t, () => importIsakmpd(text, 'f'), where, expected);
    });
  }
});

t.test('a line continued with a backslash reports errors on the line they are on', async (t) => {
  const text = 'gw = "192.0.2.1"\nike passive from $gw to any \\\n  main enc cast128 psk "k"\n';
  importError(t, () => importIsakmpd(text, 'ipsec.conf'), 'ipsec.conf:3', 'main mode enc');
});

t.test('flows, manual SAs and tags are warnings; a file without ike rules is an error', async (t) => {
  const text = [
    'flow esp from 10.0.0.0/8 to 10.1.0.0/16 peer 198.51.100.7',
    'esp from 192.0.2.1 to 198.51.100.7 spi 0x1000 authkey file "a" enckey file "e"',
    'tcpmd5 from 192.0.2.1 to 198.51.100.7 spi 0x1000 authkey 0x12',
    'ike passive from 10.0.0.0/8 to any psk "k" tag "vpn"',
  ].join('\n');
  const result = importIsakmpd(text, 'f');
  checked(t, result);
  t.match(result.warnings, [
    /f:1: a flow rule/,
    /f:2: a manually keyed SA rule/,
    /f:3: a tcpmd5 SA rule/,
    /f:4: tag "vpn" .* not imported/,
    /-K/,
  ]);
  importError(
    t,
    () => importIsakmpd('flow esp from 10.0.0.0/8 to 10.1.0.0/16 peer 1.2.3.4\n', 'f'),
    'f',
    'at least one ike rule',
  );
});

t.test('a second rule for the same flow replaces the first, as in isakmpd', async (t) => {
  const text = [
    'ike passive from 10.0.0.0/24 to any quick group none psk "k"',
    'ike passive from 10.0.0.0/24 to any quick group modp2048 psk "k"',
  ].join('\n');
  const result = importIsakmpd(text, 'f');
  const { byName } = checked(t, result);
  t.same([...byName.keys()], ['from-10.0.0.0-24-to-any']);
  t.equal(byName.get('from-10.0.0.0-24-to-any')!.ipsec.pfs, 'modp2048', 'the later rule');
  t.match(
    result.warnings[0],
    /f:2: the flow from-10\.0\.0\.0\/24-to-any again \(line 1\): isakmpd keeps this rule/,
  );
});
