import t from 'tap';
import { importSwanctl } from '../../../src/config/import/index.js';
import { checked, fixture, importError } from './fixtures/helpers.js';

type Connections = Record<string, { psk: string }>;

t.test(
  'site to site: IKEv1, two children, PFS from the ESP proposals, DPD, rekey times, ids, secrets',
  async (t) => {
    const site = fixture('swanctl-site.conf');
    const result = importSwanctl(site.text, site.file);
    const { byName } = checked(t, result);
    t.same([...byName.keys()], ['lan', 'voip'], 'one connection per child');
    const lan = byName.get('lan')!;
    t.equal(lan.ike.name, 'branch', 'the IKE policy is the connection');
    t.equal(lan.ike.version, 1);
    t.same(lan.ike.proposals, ['aes256-sha256-modp2048', 'aes128-sha1-modp2048']);
    t.same(
      lan.ike.lifetime,
      { seconds: 8 * 3600 + 2880, rekeyMargin: 2880, rekeyFuzz: 2880 },
      'rekey_time 8h, over_time 10% of it, rand_time = over_time',
    );
    t.same(
      lan.ike.dpd,
      { delay: 30, timeout: 120, action: 'restart' },
      'dpd_delay 30s, dpd_timeout 2m, restart',
    );
    t.equal(lan.ipsec.mode, 'tunnel');
    t.same(lan.ipsec.proposals, ['aes256-sha256', 'aes128-sha256'], 'ESP proposals without their DH group');
    t.equal(lan.ipsec.pfs, 'modp2048', 'the DH group of the ESP proposals is PFS');
    t.same(lan.ipsec.lifetime, { seconds: 3960, rekeyMargin: 360, rekeyFuzz: 360 }, 'rekey 1h, life 66m');
    t.equal(lan.local.address, '192.0.2.1');
    t.equal(lan.local.id, 'fqdn:hq.example.net');
    t.equal(lan.peer.address, '198.51.100.7');
    t.equal(lan.peer.id, 'fqdn:branch.example.net');
    t.same(lan.local.trafficSelectors, ['10.0.0.0/16']);
    t.same(lan.peer.trafficSelectors, ['172.16.5.0/24', '172.16.6.0/24']);
    t.equal(lan.start, 'initiate', 'start_action = start');
    const voip = byName.get('voip')!;
    t.same(voip.ipsec.proposals, ['aes128gcm16']);
    t.equal(voip.ipsec.pfs, 'none', 'no DH group: no PFS');
    t.same(voip.local.trafficSelectors, ['10.1.0.0/24[udp/5060]']);
    t.same(voip.peer.trafficSelectors, ['172.16.7.0/24[udp]']);
    const connections = result.config.connections as Connections;
    t.equal(connections.lan!.psk, 'the "branch" key', 'the secret whose ids match both ends, unquoted');
    t.equal(connections.voip!.psk, 'the "branch" key');
    t.same(
      result.config.listen,
      { addresses: ['192.0.2.1'] },
      'every connection has local_addrs: listen on it',
    );
    t.match(result.warnings, [
      /swanctl-site\.conf:36: connections\.branch\.children\.voip\.updown = .*: not imported/,
    ]);
    t.equal(result.warnings.length, 1);
  },
);

t.test(
  'an L2TP responder: %any, transport, dynamic selectors with protocol and port, a 0s secret',
  async (t) => {
    const l2tp = fixture('swanctl-l2tp.conf');
    const result = importSwanctl(l2tp.text, l2tp.file);
    const c = checked(t, result).byName.get('l2tp')!;
    t.equal(c.start, 'respond', 'no start_action: respond');
    t.equal(c.peer.address, 'any', 'remote_addrs absent: %any');
    t.equal(c.ipsec.mode, 'transport');
    t.equal(c.ipsec.pfs, 'none');
    t.same(c.local.trafficSelectors, ['192.0.2.1/32[udp/1701]'], 'dynamic[udp/l2tp]: the local address');
    t.same(
      c.peer.trafficSelectors,
      ['0.0.0.0/0[udp]'],
      'dynamic[udp] of an %any peer: its address, at run time',
    );
    t.same(c.ike.lifetime, { seconds: 15840, rekeyMargin: 1440, rekeyFuzz: 1440 }, 'IKE defaults: 4h + 10%');
    t.same(c.ipsec.lifetime, { seconds: 3960, rekeyMargin: 360, rekeyFuzz: 360 }, 'CHILD defaults: 1h, 110%');
    t.equal(c.ike.dpd, false, 'no dpd_delay: no DPD');
    const psk = (result.config.connections as Connections).l2tp!.psk;
    t.equal(psk, `0x${Buffer.from('my-tunnel-is-private').toString('hex')}`, '0s base64 becomes 0x hex');
    t.same(result.warnings, []);
  },
);

/** A one-connection swanctl.conf with `extra` settings in the connection and `child` in its child. */
function conf(extra = '', child = '', secrets = 'secrets { ike { secret = k } }'): string {
  return `connections {
  c {
    version = 1
    remote_addrs = 198.51.100.7
    proposals = aes128-sha256-modp2048
    local { auth = psk }
    remote { auth = psk
      id = 198.51.100.7 }
    ${extra}
    children {
      net {
        local_ts = 10.0.0.0/24
        remote_ts = 10.1.0.0/24
        esp_proposals = aes128-sha256
        ${child}
      }
    }
  }
}
${secrets}
`;
}

t.test('the helper configuration imports cleanly', async (t) => {
  const result = importSwanctl(conf(), 'swanctl.conf');
  t.same(result.warnings, []);
  const c = checked(t, result).byName.get('net')!;
  t.equal(c.peer.id, 'ipv4:198.51.100.7');
  t.equal(c.local.address, 'any', 'no local_addrs: any of ours');
});

t.test('secrets: the best match of the ids wins; a secret without ids is for anyone', async (t) => {
  const secrets = `secrets {
  ike-other { id = 203.0.113.1
    secret = wrong }
  ike-any { secret = fallback }
  ike-peer { id-1 = 203.0.113.9
    id-2 = 198.51.100.7
    secret = "0xc0ffee" }
}`;
  const picked = importSwanctl(conf('', '', secrets), 'swanctl.conf');
  t.equal((picked.config.connections as Connections).net!.psk, '0xc0ffee', 'the secret naming the peer');
  const fallback = importSwanctl(
    conf('', '', 'secrets { ike-x { id = 203.0.113.1\n secret = no }\n ike { secret = yes } }'),
    'f',
  );
  t.equal((fallback.config.connections as Connections).net!.psk, 'yes');
  importError(
    t,
    () => importSwanctl(conf('', '', 'secrets { ike-x { id = 203.0.113.1\n secret = no } }'), 'f'),
    'f:2',
    'an ike secret',
  );
});

t.test('ESP proposals with differing DH groups: the first is pfs, with a warning', async (t) => {
  const result = importSwanctl(conf('', 'esp_proposals = aes256-sha256-modp3072, aes128-sha256'), 'f');
  const c = checked(t, result).byName.get('net')!;
  t.equal(c.ipsec.pfs, 'modp3072');
  t.same(c.ipsec.proposals, ['aes256-sha256', 'aes128-sha256']);
  t.match(result.warnings, [
    /one PFS group per policy; using modp3072 \(strongSwan would accept modp3072, no PFS\)/,
  ]);
});

t.test('unknown settings and sections are reported, not dropped silently', async (t) => {
  const text = `${conf('mobike = no\n    unique = replace', 'close_action = trap')}authorities { ca { cacert = ca.pem } }`;
  const result = importSwanctl(text, 'f');
  checked(t, result);
  t.match(result.warnings, [
    /connections\.c\.mobike = no: not imported/,
    /connections\.c\.unique = replace: not imported/,
    /connections\.c\.children\.net\.close_action = trap: not imported/,
    /authorities \{ \}: not imported/,
  ]);
});

t.test('what cannot be imported is an error naming file:line and what was expected', async (t) => {
  const cases: [string, string, string][] = [
    [conf().replace('version = 1', ''), 'f:2', "version = 1 or 2 in connections.c (strongSwan's default, 0"],
    [
      conf().replace('local { auth = psk }', 'local { auth = pubkey }'),
      'f:6',
      'auth = psk in connections.c.local',
    ],
    [conf().replace('local { auth = psk }', ''), 'f:2', 'a local { auth = psk } section'],
    [conf('local-2 { auth = psk }'), 'f:9', 'one local authentication round'],
    [
      conf().replace('remote_addrs = 198.51.100.7', 'remote_addrs = vpn.example.net'),
      'f:4',
      'remote_addrs = one IP address or %any',
    ],
    [
      conf().replace('esp_proposals = aes128-sha256', ''),
      'f:11',
      'esp_proposals in connections.c.children.net',
    ],
    [
      conf().replace('esp_proposals = aes128-sha256', 'esp_proposals = default'),
      'f:14',
      'explicit esp_proposals',
    ],
    [
      conf().replace('esp_proposals = aes128-sha256', 'esp_proposals = aes128-sha999'),
      'f:14',
      'ESP proposals such as',
    ],
    [
      conf().replace('esp_proposals = aes128-sha256', 'esp_proposals = aes128-sha256-esn'),
      'f:14',
      'without esn',
    ],
    [conf().replace('aes128-sha256-modp2048', 'aes128-sha256'), 'f:5', 'IKE proposals such as'],
    [conf('', 'mode = pass'), 'f:15', 'mode = tunnel or transport'],
    [conf('', 'ah_proposals = sha256'), 'f:15', 'AH is not supported'],
    [conf('aggressive = yes'), 'f:9', 'aggressive mode is not supported'],
    [conf('vips = 0.0.0.0'), 'f:9', 'virtual IPs are not supported'],
    [conf('', 'rekey_time = 30h'), 'f:15', '60 to 86400'],
    [conf('', 'rekey_time = soon'), 'f:15', 'rekey_time as a time'],
    [conf('', 'dpd_action = hold'), 'f:15', 'dpd_action = none, clear, trap or restart'],
    [conf('', 'remote_ts = 10.1.0.0/24[tcp/1000-2000]'), 'f:15', 'port ranges cannot be expressed'],
    [conf('', 'local_ts = lan.example.net'), 'f:15', 'host names cannot be resolved here'],
    [conf('include other.conf'), 'f:9', 'no include'],
    [conf('c2 : c { }'), 'f:9', 'without references'],
    ['connections {\n  c {\n    version = 1\n', 'f:4', "'}' closing connections.c (opened on line 2)"],
    ['connections { }', 'f', 'a connections { } section with a connection'],
    [conf('', '', 'secrets { ike { secret = "" } }'), 'f:20', 'a non-empty secret'],
  ];
  for (const [text, where, expected] of cases) {
    await t.test(expected, async (t) => {
      importError(t, () => importSwanctl(text, 'f'), where, expected);
    });
  }
});

t.test('a connection to %any cannot start', async (t) => {
  const text = conf('', 'start_action = start').replace('remote_addrs = 198.51.100.7', '');
  importError(
    t,
    () => importSwanctl(text, 'f'),
    'f:15',
    'start_action = none for a connection to remote_addrs %any',
  );
});

t.test(
  'an IPv6 peer without local_addrs: listen on "::", which the 0.0.0.0 default would not cover',
  async (t) => {
    const text = conf()
      .replace(/198\.51\.100\.7/g, '2001:db8::7')
      .replace('10.0.0.0/24', '2001:db8:a::/64')
      .replace('10.1.0.0/24', '2001:db8:b::/64');
    const result = importSwanctl(text, 'f');
    t.same(result.config.listen, { addresses: ['::'] });
    const c = checked(t, result).byName.get('net')!;
    t.equal(c.peer.address, '2001:db8::7');
    t.equal(c.peer.id, 'ipv6:2001:db8::7');
  },
);

t.test('version = 2 imports an IKEv2 connection; ESP groups become its PFS group', async (t) => {
  const text = conf()
    .replace('version = 1', 'version = 2')
    .replace('esp_proposals = aes128-sha256', 'esp_proposals = aes256gcm16-modp2048');
  const result = importSwanctl(text, 'swanctl.conf');
  t.same(result.warnings, []);
  const c = checked(t, result).byName.get('net')!;
  t.equal(c.ike.version, 2);
  t.same(c.ipsec.pfs, 'modp2048');
  t.same(c.ipsec.proposals, ['aes256gcm16']);
});
