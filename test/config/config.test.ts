import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { formatAddress } from '../../src/core/address.js';
import type { Connection } from '../../src/core/connection.js';
import { formatSuite } from '../../src/core/proposal.js';
import { formatTrafficSelector } from '../../src/core/traffic-selector.js';
import {
  CONFIG_DEFAULTS,
  ConfigErrors,
  connectionSummary,
  loadConfig,
  parseConfig,
  parseIdentity,
} from '../../src/config/index.js';
import { toHex } from '../../src/wire/bytes.js';
import { FILE, PSK } from './fixtures/helpers.js';

/**
 * The OpenBSD iked line
 *   ike passive esp tunnel from $gw to any main group "modp1024" quick group "modp1024" psk "..."
 * as the built-in Windows/macOS/iOS/Android L2TP clients actually use it: transport mode, UDP 1701.
 */
const L2TP_GATEWAY = {
  listen: { addresses: ['192.0.2.1'] },
  kernel: 'xfrm',
  ikePolicies: {
    'l2tp-main': {
      proposals: ['aes256-sha1-modp1024', 'aes128-sha1-modp1024', '3des-sha1-modp1024'],
      lifetime: 28800,
      dpd: { delay: 20 },
    },
  },
  ipsecPolicies: {
    'l2tp-quick': {
      mode: 'transport',
      proposals: ['aes256-sha1', 'aes128-sha1', '3des-sha1'],
      pfs: 'modp1024',
    },
  },
  connections: {
    'l2tp-clients': {
      ikePolicy: 'l2tp-main',
      ipsecPolicy: 'l2tp-quick',
      local: { address: '192.0.2.1', selectors: [{ protocol: 'udp', port: 1701 }] },
      peer: { address: 'any', selectors: [{ protocol: 'udp' }] },
      psk: { env: 'L2TP_PSK' },
    },
  },
};

/** A site-to-site tunnel written with OpenStack Neutron's field names. */
const SITE_TO_SITE = {
  listen: { addresses: ['0.0.0.0'], port: 500, natPort: 4500 },
  crypto: 'noble',
  log: { level: 'debug' },
  ikePolicies: {
    neutron: {
      encryption: ['aes-256', 'aes-128'],
      authAlgorithm: 'sha256',
      dhGroup: 'group14',
      lifetime: { units: 'seconds', value: 3600 },
      rekeyMargin: 300,
    },
  },
  ipsecPolicies: {
    neutron: {
      encryption: 'aes-256',
      integrity: ['sha256', 'sha1'],
      pfs: 'group14',
      lifetime: { units: 'seconds', value: 1800 },
      lifetimeKilobytes: 4194304,
    },
  },
  connections: {
    'branch-office': {
      ikePolicy: 'neutron',
      ipsecPolicy: 'neutron',
      local: { address: '203.0.113.5', id: '@hq.example.net', subnets: ['10.0.0.0/16', '10.2.0.0/24'] },
      peer: { address: '198.51.100.7', id: 'gw@branch.example.net', subnets: ['172.16.5.0/24'] },
      psk: { file: 'keys/branch.psk' },
      start: 'initiate',
    },
  },
};

const encoder = new TextEncoder();

function only(config: { connections: Connection[] }): Connection {
  t.equal(config.connections.length, 1, 'one connection');
  return config.connections[0]!;
}

t.test('the L2TP/IPsec gateway normalises to transport-mode udp/1701 with modp1024', async (t) => {
  const config = parseConfig(JSON.stringify(L2TP_GATEWAY), FILE, { L2TP_PSK: PSK });
  t.equal(config.file, FILE);
  t.same(config.listen, { addresses: ['192.0.2.1'], port: 500, natPort: 4500 });
  t.equal(config.kernel, 'xfrm');
  t.equal(config.crypto, 'node');
  t.equal(config.control.socket, '/run/ike-node/ike-node.sock');
  t.equal(config.log.level, 'info');
  const c = only(config);
  t.equal(c.name, 'l2tp-clients');
  t.equal(c.start, 'respond', 'respond is the default');

  t.equal(c.ike.name, 'l2tp-main');
  t.equal(c.ike.version, 1);
  t.equal(c.ike.mode, 'main');
  t.same(c.ike.proposals.map(formatSuite), [
    'aes256-sha1-modp1024',
    'aes128-sha1-modp1024',
    '3des-sha1-modp1024',
  ]);
  for (const suite of c.ike.proposals) {
    t.equal(suite.prf?.name, 'prfsha1', 'the PRF follows the integrity hash');
    t.equal(suite.dh?.name, 'modp1024');
    t.equal(suite.dh?.ikev1, 2, 'modp1024 is IKEv1 group 2');
  }
  t.same(c.ike.lifetime, { seconds: 28800, rekeyMargin: 540, rekeyFuzz: 180 });
  t.same(c.ike.dpd, { delay: 20, timeout: 120, action: 'clear' });

  t.equal(c.ipsec.name, 'l2tp-quick');
  t.equal(c.ipsec.protocol, 'esp');
  t.equal(c.ipsec.mode, 'transport');
  t.same(c.ipsec.proposals.map(formatSuite), ['aes256-sha1', 'aes128-sha1', '3des-sha1']);
  t.ok(c.ipsec.proposals.every((suite) => suite.dh === undefined && suite.prf === undefined));
  t.equal(c.ipsec.pfs?.name, 'modp1024');
  t.same(c.ipsec.lifetime, { seconds: 3600, rekeyMargin: 360, rekeyFuzz: 120 });

  t.equal(c.local.address, '192.0.2.1');
  t.equal(c.local.id?.type, 'ipv4', 'local.id defaults to the local address');
  t.equal(c.local.id?.type === 'ipv4' && formatAddress(c.local.id.address), '192.0.2.1');
  t.same(c.local.trafficSelectors.map(formatTrafficSelector), ['192.0.2.1/32[udp/1701]']);
  const [local] = c.local.trafficSelectors;
  t.same([local?.protocol, local?.startPort, local?.endPort], [17, 1701, 1701]);

  t.equal(c.peer.address, 'any');
  t.equal(c.peer.port, 500);
  t.equal(c.peer.natPort, undefined, 'the NAT-T port defaults in the engine (4500)');
  t.equal(c.peer.id, undefined, 'any identity from an "any" peer');
  t.same(
    c.peer.trafficSelectors.map(formatTrafficSelector),
    ['0.0.0.0/0[udp]'],
    'the client, whatever its address, on any UDP port (narrowed to its address at run time)',
  );
  t.same([c.peer.trafficSelectors[0]?.startPort, c.peer.trafficSelectors[0]?.endPort], [0, 65535]);

  t.equal(toHex(c.psk), toHex(encoder.encode(PSK)), 'the key is the variable, as UTF-8');
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.connections) && Object.isFrozen(c));
  t.ok(Object.isFrozen(c.ike) && Object.isFrozen(c.ike.proposals) && Object.isFrozen(c.ike.lifetime));
  t.ok(Object.isFrozen(c.local.trafficSelectors) && Object.isFrozen(c.peer));
  t.throws(() => {
    (c as { start: string }).start = 'initiate';
  }, TypeError);
});

t.test('the Neutron-style site-to-site tunnel normalises', async (t) => {
  const reads: string[] = [];
  const readFile = (path: string) => {
    reads.push(path);
    return Buffer.from(`${PSK}\n`);
  };
  const config = parseConfig(JSON.stringify(SITE_TO_SITE), FILE, {}, readFile);
  t.same(reads, ['/etc/ike-node/keys/branch.psk'], 'relative key paths resolve against the file');
  t.equal(config.crypto, 'noble');
  t.equal(config.log.level, 'debug');
  const c = only(config);
  t.equal(c.start, 'initiate');
  t.same(
    c.ike.proposals.map(formatSuite),
    ['aes256-sha256-modp2048', 'aes128-sha256-modp2048'],
    'lists expand with encryption varying slowest; group14 is modp2048',
  );
  t.same(
    c.ike.proposals.map((s) => [s.encr.keyLength, s.integ?.name, s.prf?.name, s.dh?.ikev1]),
    [
      [32, 'sha256', 'prfsha256', 14],
      [16, 'sha256', 'prfsha256', 14],
    ],
  );
  t.same(
    c.ike.lifetime,
    { seconds: 3600, rekeyMargin: 300, rekeyFuzz: 100 },
    'fuzz follows the given margin',
  );
  t.equal(c.ike.dpd, undefined, 'no dpd key: no DPD');
  t.same(c.ipsec.proposals.map(formatSuite), ['aes256-sha256', 'aes256-sha1']);
  t.equal(c.ipsec.mode, 'tunnel', 'tunnel is the default');
  t.equal(c.ipsec.pfs?.name, 'modp2048');
  t.same(c.ipsec.lifetime, { seconds: 1800, kilobytes: 4194304, rekeyMargin: 180, rekeyFuzz: 60 });
  t.same(c.local.trafficSelectors.map(formatTrafficSelector), ['10.0.0.0/16', '10.2.0.0/24']);
  t.same(c.peer.trafficSelectors.map(formatTrafficSelector), ['172.16.5.0/24']);
  t.ok(
    c.local.trafficSelectors.every((ts) => ts.protocol === 0 && ts.startPort === 0 && ts.endPort === 65535),
  );
  t.same(c.local.id, { type: 'fqdn', value: 'hq.example.net' }, 'a leading @ is dropped');
  t.same(c.peer.id, { type: 'user-fqdn', value: 'gw@branch.example.net' });
  t.equal(toHex(c.psk), toHex(encoder.encode(PSK)), 'one trailing newline is trimmed');
});

t.test('defaults for an empty file, and connection summaries', async (t) => {
  const config = parseConfig('{}', FILE);
  t.same(config.listen, CONFIG_DEFAULTS.listen);
  t.same([config.kernel, config.crypto, config.log.level], ['memory', 'node', 'info']);
  t.same(config.connections, []);

  const gateway = only(parseConfig(JSON.stringify(L2TP_GATEWAY), FILE, { L2TP_PSK: PSK }));
  const summary = connectionSummary(gateway);
  t.equal(summary.psk, `<secret ${PSK.length} bytes>`);
  t.same(
    summary.peer,
    { address: 'any', port: 500, natPort: 4500, id: 'any', trafficSelectors: ['0.0.0.0/0[udp]'] },
    'the defaults in effect are written out: natPort, and any identity',
  );
  t.equal(summary.local.id, 'ipv4:192.0.2.1');
  t.same(summary.ipsec.pfs, 'modp1024');
  t.same([summary.ipsec.acceptModes, summary.ipsec.acceptPfs], [['transport'], ['modp1024']]);
  t.same(JSON.parse(JSON.stringify(gateway)), summary, 'JSON.stringify gives the summary');
  t.equal(String(gateway), 'Connection l2tp-clients');
});

t.test('transport mode without selectors protects the two hosts', async (t) => {
  const connection = (local: object, peer: object) =>
    only(
      parseConfig(
        JSON.stringify({
          listen: { addresses: ['0.0.0.0', '::'] },
          ikePolicies: { p: { proposals: 'aes128-sha256-modp2048' } },
          ipsecPolicies: { q: { mode: 'transport', proposals: ['aes128gcm16'] } },
          connections: { c: { ikePolicy: 'p', ipsecPolicy: 'q', local, peer, psk: 'k' } },
        }),
        FILE,
      ),
    );
  const v4 = connection({ address: '192.0.2.1' }, { address: '198.51.100.7' });
  t.same(v4.local.trafficSelectors.map(formatTrafficSelector), ['192.0.2.1/32']);
  t.same(v4.peer.trafficSelectors.map(formatTrafficSelector), ['198.51.100.7/32']);
  t.same(v4.ipsec.proposals.map(formatSuite), ['aes128gcm16'], 'an AEAD ESP proposal needs no integrity');
  const v6 = connection({ address: '2001:DB8:0::1' }, { address: '2001:db8::7' });
  t.equal(v6.local.address, '2001:db8::1', 'addresses are stored in canonical form');
  t.same(v6.local.trafficSelectors.map(formatTrafficSelector), ['2001:db8::1/128']);
  t.same(v6.peer.trafficSelectors.map(formatTrafficSelector), ['2001:db8::7/128']);
  t.equal(v6.peer.id?.type, 'ipv6', 'peer.id defaults to the peer address');
  const anywhere = connection({}, { address: 'any' });
  t.same(anywhere.local.trafficSelectors, [], 'no local address: our address, whatever it is');
  t.same(anywhere.peer.trafficSelectors, [], 'an "any" peer: its own address, whatever it is');
  t.equal(anywhere.local.address, undefined);
  t.equal(anywhere.local.id, undefined);
  const both = connection({ selectors: [{ protocol: 'udp', port: 1701 }] }, { address: 'any' });
  t.same(
    both.local.trafficSelectors.map(formatTrafficSelector),
    ['0.0.0.0/0[udp/1701]', '::/0[udp/1701]'],
    'neither address known: both families, narrowed to the host at run time',
  );
});

t.test('an "any" peer in tunnel mode takes whatever subnet its client proposes', async (t) => {
  const config = {
    ikePolicies: { p: { version: 2, proposals: ['aes256gcm16-prfsha256-curve25519'] } },
    ipsecPolicies: { q: { proposals: ['aes256gcm16', 'chacha20poly1305'] } },
    connections: {
      c: {
        ikePolicy: 'p',
        ipsecPolicy: 'q',
        local: { subnets: ['0.0.0.0/0'] },
        peer: { address: 'any' },
        psk: 'k',
      },
    },
  };
  const c = only(parseConfig(JSON.stringify(config), FILE));
  t.equal(c.ike.version, 2, 'IKEv2 connections are accepted');
  t.same(c.ike.proposals.map(formatSuite), ['aes256gcm16-prfsha256-curve25519']);
  t.same(c.ipsec.proposals.map(formatSuite), ['aes256gcm16', 'chacha20poly1305']);
  t.same(c.peer.trafficSelectors, []);
});

t.test('inline policies, ranges, selectors and ports', async (t) => {
  const config = {
    connections: {
      inline: {
        ikePolicy: { proposals: ['aes128-sha1-modp2048'], lifetime: 600, rekeyFuzz: 0, dpd: false },
        ipsecPolicy: { proposals: ['aes128-sha1'], pfs: 'none', lifetime: 60 },
        local: {
          subnets: ['10.0.0.10-10.0.0.20'],
          selectors: [
            { subnet: '10.0.1.0/24', protocol: 'tcp', port: 443 },
            { subnet: '10.0.2.0/24', protocol: 47 },
          ],
        },
        peer: {
          address: '198.51.100.7',
          port: 1500,
          natPort: 14500,
          id: 'keyid:branch-7',
          subnets: ['10.1.0.0/16'],
        },
        psk: 'k',
      },
    },
  };
  const c = only(parseConfig(JSON.stringify(config), FILE));
  t.equal(c.ike.name, 'inline', 'an inline policy takes the connection name');
  t.same(c.ike.lifetime, { seconds: 600, rekeyMargin: 60, rekeyFuzz: 0 });
  t.equal(c.ike.dpd, undefined);
  t.equal(c.ipsec.pfs, undefined);
  t.same(c.ipsec.lifetime, { seconds: 60, rekeyMargin: 6, rekeyFuzz: 2 });
  t.same(c.local.trafficSelectors.map(formatTrafficSelector), [
    '10.0.0.10-10.0.0.20',
    '10.0.1.0/24[tcp/443]',
    '10.0.2.0/24[47]',
  ]);
  t.equal(c.peer.port, 1500);
  t.equal(c.peer.natPort, 14500, 'where IKE floats to once a NAT is detected');
  t.same(c.peer.id, { type: 'key-id', value: 'branch-7' });
  t.equal(c.local.id, undefined, 'no local address, no default identity');
});

t.test('identities', async (t) => {
  t.same(parseIdentity('vpn.example.net'), { type: 'fqdn', value: 'vpn.example.net' });
  t.same(parseIdentity('@vpn.example.net'), { type: 'fqdn', value: 'vpn.example.net' });
  t.same(parseIdentity('alice@example.net'), { type: 'user-fqdn', value: 'alice@example.net' });
  t.same(parseIdentity('keyid:0a1b'), { type: 'key-id', value: '0a1b' });
  const v4 = parseIdentity('192.0.2.9');
  t.equal(v4?.type, 'ipv4');
  t.equal(v4?.type === 'ipv4' && toHex(v4.address), 'c0000209');
  const v6 = parseIdentity('2001:db8::9');
  t.equal(v6?.type === 'ipv6' && toHex(v6.address), '20010db8000000000000000000000009');
  t.equal(parseIdentity('@'), undefined);
  t.equal(parseIdentity('keyid:'), undefined);
  t.equal(parseIdentity(''), undefined);
});

t.test('pre-shared key sources', async (t) => {
  const withPsk = (psk: unknown) =>
    JSON.stringify({
      connections: {
        c: {
          ikePolicy: { proposals: ['aes128-sha256-modp2048'] },
          ipsecPolicy: { proposals: ['aes128-sha256'] },
          local: { subnets: ['10.0.0.0/24'] },
          peer: { address: '198.51.100.7', subnets: ['10.1.0.0/24'] },
          psk,
        },
      },
    });
  const key = (psk: unknown, env = {}, readFile?: (path: string) => Uint8Array | string) =>
    toHex(only(parseConfig(withPsk(psk), FILE, env, readFile)).psk);

  t.equal(key('secret'), toHex(encoder.encode('secret')));
  t.equal(key('pässwörd'), toHex(encoder.encode('pässwörd')), 'text is UTF-8');
  t.equal(key('0x00ff10AB'), '00ff10ab', '0x means hex bytes');
  t.equal(key({ env: 'K' }, { K: '0xdeadbeef' }), 'deadbeef', 'hex from a variable too');
  t.equal(
    key({ env: 'K' }, { K: 'a b\n' }),
    toHex(encoder.encode('a b\n')),
    'variables are taken as they are',
  );
  t.equal(
    key({ file: '/abs/k' }, {}, () => 'key\r\n'),
    toHex(encoder.encode('key')),
    'CRLF counts as one newline',
  );
  t.equal(
    key({ file: '/abs/k' }, {}, () => 'key\n\n'),
    toHex(encoder.encode('key\n')),
    'only one newline goes',
  );
  t.equal(
    key({ file: '/abs/k' }, {}, () => '0xc0ffee\n'),
    'c0ffee',
    'a key file may hold hex',
  );
  const binary = Uint8Array.of(0, 1, 2, 255, 10, 13);
  t.equal(
    key({ file: '/abs/k' }, {}, () => binary),
    '000102ff0a0d',
    'binary files are bytes',
  );
  let readPath = '';
  key({ file: '/abs/k' }, {}, (path) => {
    readPath = path;
    return 'x';
  });
  t.equal(readPath, '/abs/k', 'absolute paths are kept');

  // Through the real file system, with loadConfig.
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Key files must be private (permissions.test.ts shows what happens otherwise).
  writeFileSync(join(dir, 'office.psk'), `${PSK}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'peers.json'), withPsk({ file: 'office.psk' }), { mode: 0o600 });
  const loaded = only(loadConfig(join(dir, 'peers.json')));
  t.equal(toHex(loaded.psk), toHex(encoder.encode(PSK)));
  const missing = join(dir, 'absent.json');
  const error = t.throws(() => loadConfig(missing)) as ConfigErrors;
  t.ok(error instanceof ConfigErrors);
  t.match(error.message, `${missing}: expected a readable configuration file, got ENOENT`);
});

t.test("the README's peers.json examples are valid and mean what the README says", async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(
    readme.indexOf('## Configuration: peers.json'),
    readme.indexOf('## Development'),
  );
  const examples = [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((match) => match[1]!);
  t.equal(examples.length, 2, 'two examples');
  const readFile = (path: string) => {
    t.equal(path, '/etc/ike-node/branch.psk');
    return `${PSK}\n`;
  };
  const [gateway, tunnel] = examples.map((text) =>
    only(parseConfig(text, FILE, { L2TP_PSK: PSK }, readFile)),
  );
  t.equal(gateway?.ipsec.mode, 'transport');
  t.equal(gateway?.peer.address, 'any');
  t.equal(gateway?.ike.proposals[0]?.dh?.name, 'modp1024');
  t.equal(gateway?.ipsec.pfs?.name, 'modp1024');
  t.same(gateway?.local.trafficSelectors.map(formatTrafficSelector), ['192.0.2.1/32[udp/1701]']);
  t.equal(tunnel?.start, 'initiate');
  t.equal(tunnel?.ipsec.mode, 'tunnel');
  t.same(tunnel?.ike.proposals.map(formatSuite), ['aes256-sha256-modp2048', 'aes128-sha256-modp2048']);
  t.same(tunnel?.ike.dpd, { delay: 30, timeout: 120, action: 'restart' });
  t.equal(tunnel?.ike.version, 1, 'ikeVersion "v1"');
  t.same(tunnel?.ipsec.proposals.map(formatSuite), ['aes256-sha256'], 'Neutron field names for ESP');
  t.equal(tunnel?.ipsec.pfs?.name, 'modp2048');
  t.same(tunnel?.local.trafficSelectors.map(formatTrafficSelector), ['10.0.0.0/16', '10.1.0.0/16']);
  t.same(tunnel?.peer.trafficSelectors.map(formatTrafficSelector), ['172.16.5.0/24']);
  t.equal(tunnel && connectionSummary(tunnel).local.endpointGroup, 'hq-nets');
});

t.test('acceptModes and acceptPfs: what a responder takes beyond what it proposes', async (t) => {
  const text = (policy: object) =>
    JSON.stringify({
      ipsecPolicies: { gw: { proposals: ['aes128-sha1'], pfs: 'modp1024', ...policy } },
      ikePolicies: { ike: { proposals: ['aes128-sha1-modp1024'] } },
      connections: {
        clients: {
          ikePolicy: 'ike',
          ipsecPolicy: 'gw',
          local: { address: '192.0.2.1', subnets: ['192.0.2.1'] },
          peer: { address: 'any', subnets: ['0.0.0.0/0'] },
          psk: 'accept-test-key',
        },
      },
    });
  const { ipsec } = parseConfig(
    text({ acceptModes: ['tunnel', 'transport'], acceptPfs: ['modp1024', 'none'] }),
    'a.json',
  ).connections[0]!;
  t.equal(ipsec.mode, 'tunnel', 'proposes tunnel');
  t.same(ipsec.acceptModes, ['tunnel', 'transport']);
  t.same(
    ipsec.acceptPfs?.map((p) => (p === 'none' ? p : p.name)),
    ['modp1024', 'none'],
  );
  t.throws(
    () => parseConfig(text({ acceptModes: ['beet'], acceptPfs: ['modp9'] }), 'b.json'),
    /acceptModes\[0\]: expected .*tunnel.*got "beet"[\s\S]*acceptPfs\[0\]: expected .*got "modp9"/,
  );
});

t.test("ESP proposals with groups, in strongSwan's syntax, mean PFS (either IKE version)", async (t) => {
  const policy = (proposals: string[], version: 1 | 2) =>
    only(
      parseConfig(
        JSON.stringify({
          connections: {
            c: {
              ikePolicy: { version, proposals: ['aes256-sha256-modp2048'] },
              ipsecPolicy: { proposals },
              local: { subnets: ['10.0.0.0/24'] },
              peer: { address: '198.51.100.7', subnets: ['10.1.0.0/24'] },
              psk: 'k',
            },
          },
        }),
        FILE,
      ),
    ).ipsec;
  for (const version of [1, 2] as const) {
    const one = policy(['aes256gcm16-modp2048'], version);
    t.equal(one.pfs?.name, 'modp2048', `IKEv${version}: the group is the PFS group`);
    t.same(one.proposals.map(formatSuite), ['aes256gcm16'], 'the proposal without it');
    t.equal(one.acceptPfs, undefined, 'only that group');
  }
  const several = policy(['aes256gcm16-modp2048', 'aes128-sha256-ecp256', 'aes128-sha1'], 2);
  t.equal(several.pfs?.name, 'modp2048', 'the first group is proposed');
  t.same(
    several.acceptPfs?.map((g) => (g === 'none' ? g : g.name)),
    ['modp2048', 'ecp256', 'none'],
    'a responder accepts every group written, and no PFS for the proposal without one',
  );
});

t.test(
  "connections with equal local ends or selectors share one object (a gateway's hundred thousand clients)",
  async (t) => {
    const client = (id: string, subnets = ['10.0.0.0/8'], peerSubnets?: string[]) => ({
      ikePolicy: 'ike',
      ipsecPolicy: 'esp',
      local: { address: '192.0.2.1', subnets },
      peer: { address: 'any', id, ...(peerSubnets && { subnets: peerSubnets }) },
      psk: PSK,
    });
    const { connections } = parseConfig(
      JSON.stringify({
        listen: { addresses: ['192.0.2.1'] },
        ikePolicies: { ike: { version: 1, proposals: ['aes128-sha1-modp2048'] } },
        ipsecPolicies: { esp: { proposals: ['aes128-sha1'] } },
        connections: {
          a: client('a.example', ['10.0.0.0/8'], ['198.51.100.0/24']),
          b: client('b.example', ['10.0.0.0/8'], ['198.51.100.0/24']),
          c: client('c.example', ['10.1.0.0/16'], ['198.51.100.0/25']),
        },
      }),
      FILE,
    );
    const [a, b, c] = ['a', 'b', 'c'].map((name) => connections.find((x) => x.name === name)!);
    t.equal(a!.local, b!.local, 'equal local ends: one object');
    t.equal(a!.peer.trafficSelectors, b!.peer.trafficSelectors, 'equal peer selectors: one list');
    t.not(a!.peer, b!.peer, 'the peers differ (their identities)');
    t.not(a!.local, c!.local, 'another local subnet: its own end');
    t.same(c!.local.trafficSelectors.map(formatTrafficSelector), ['10.1.0.0/16']);
    t.same(c!.peer.trafficSelectors.map(formatTrafficSelector), ['198.51.100.0/25']);
    t.ok(Object.isFrozen(a!.local) && Object.isFrozen(a!.peer.trafficSelectors), 'shared, and frozen');
  },
);
