import t from 'tap';
import { parseAddress } from '../../../src/core/address.js';
import { parseTrafficSelector } from '../../../src/core/traffic-selector.js';
import { algorithm } from '../../../src/crypto/registry.js';
import { sadbAlgorithms } from '../../../src/kernel/pfkey/algorithms.js';
import { pfkeyFlavourOf } from '../../../src/kernel/pfkey/backend.js';
import { PfkeyUnsupportedError } from '../../../src/kernel/pfkey/errors.js';
import { rangeToCidrs, selectorPairs } from '../../../src/kernel/pfkey/selectors.js';

t.test('address ranges become the fewest prefixes, with netmasks for OpenBSD', async (t) => {
  const cidrs = (start: string, end: string) =>
    rangeToCidrs(parseAddress(start), parseAddress(end)).map((c) => `${c.address}/${c.prefix} ${c.mask}`);
  t.same(cidrs('10.0.0.0', '10.0.255.255'), ['10.0.0.0/16 255.255.0.0']);
  t.same(cidrs('192.0.2.10', '192.0.2.20'), [
    '192.0.2.10/31 255.255.255.254',
    '192.0.2.12/30 255.255.255.252',
    '192.0.2.16/30 255.255.255.252',
    '192.0.2.20/32 255.255.255.255',
  ]);
  t.same(cidrs('0.0.0.0', '255.255.255.255'), ['0.0.0.0/0 0.0.0.0']);
  t.same(cidrs('2001:db8::', '2001:db8::ffff'), ['2001:db8::/112 ffff:ffff:ffff:ffff:ffff:ffff:ffff:0']);
  t.same(cidrs('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), ['::/0 ::']);
  t.throws(
    () => rangeToCidrs(parseAddress('10.0.0.1'), parseAddress('10.255.255.254')),
    PfkeyUnsupportedError,
  );
});

t.test('selector pairs: same family only, protocols that meet, one port or any', async (t) => {
  const pairs = selectorPairs(
    [parseTrafficSelector('10.1.0.0/16'), parseTrafficSelector('2001:db8:1::/48')],
    [parseTrafficSelector('10.2.0.0/24', 6, 443), parseTrafficSelector('2001:db8:2::/48', 17)],
  );
  t.same(
    pairs.map((p) => [
      p.family,
      `${p.local.address}/${p.local.prefix}`,
      `${p.remote.address}/${p.remote.prefix}`,
      p.proto,
      p.localPort,
      p.remotePort,
    ]),
    [
      [4, '10.1.0.0/16', '10.2.0.0/24', 6, 0, 443],
      [6, '2001:db8:1::/48', '2001:db8:2::/48', 17, 0, 0],
    ],
  );
  t.same(
    selectorPairs([parseTrafficSelector('10.1.0.0/16', 6)], [parseTrafficSelector('10.2.0.0/24', 17)]),
    [],
  );
  t.throws(
    () =>
      selectorPairs(
        [{ ...parseTrafficSelector('10.1.0.0/16', 6), startPort: 1024, endPort: 65535 }],
        [parseTrafficSelector('10.2.0.0/24')],
      ),
    /port range 1024-65535/,
  );
});

t.test('algorithm ids per kernel, and what each cannot do through PF_KEY', async (t) => {
  const suite = (encr: string, integ?: string) => ({
    encr: algorithm('encr', encr),
    ...(integ && { integ: algorithm('integ', integ) }),
  });
  // pfkeyv2.h: SADB_EALG_3DESCBC 3, SADB_X_EALG_AES(CBC) 12, SADB_X_EALG_AESCTR 13;
  // SADB_AALG_MD5HMAC 2, SADB_AALG_SHA1HMAC 3, SADB_X_AALG_SHA2_256/384/512 5/6/7.
  for (const flavour of ['linux', 'openbsd'] as const) {
    t.same(sadbAlgorithms(suite('3des', 'md5'), flavour), { encrypt: 3, auth: 2 });
    t.same(sadbAlgorithms(suite('aes256', 'sha1'), flavour), { encrypt: 12, auth: 3 });
    t.same(sadbAlgorithms(suite('aes128ctr', 'sha384'), flavour), { encrypt: 13, auth: 6 });
    t.same(sadbAlgorithms(suite('aes192', 'sha512'), flavour), { encrypt: 12, auth: 7 });
  }
  t.same(sadbAlgorithms(suite('aes128', 'sha256'), 'openbsd'), { encrypt: 12, auth: 5 });
  t.throws(() => sadbAlgorithms(suite('aes128', 'sha256'), 'linux'), /icv_truncbits 96/);
  t.same(sadbAlgorithms(suite('aes256gcm16'), 'openbsd'), { encrypt: 20, auth: 0 });
  t.same(sadbAlgorithms(suite('chacha20poly1305'), 'openbsd'), { encrypt: 22, auth: 0 });
  t.throws(() => sadbAlgorithms(suite('aes128gcm8'), 'openbsd'), /16-byte ICV only/);
  t.throws(() => sadbAlgorithms(suite('aes128gcm16'), 'linux'), /no AEAD/);
  t.throws(() => sadbAlgorithms(suite('chacha20poly1305'), 'linux'), /no AEAD/);
});

t.test('the flavour of a platform', async (t) => {
  t.equal(pfkeyFlavourOf('linux'), 'linux');
  t.equal(pfkeyFlavourOf('openbsd'), 'openbsd');
  t.equal(pfkeyFlavourOf('darwin'), undefined, 'macOS PF_KEY is neither (no SPD messages we speak)');
});
