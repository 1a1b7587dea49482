import t from 'tap';
import { parseTrafficSelector } from '../../../src/core/traffic-selector.js';
import { algorithm } from '../../../src/crypto/registry.js';
import {
  algorithmAttributes,
  describeKernelAlgorithms,
  kernelAlgorithms,
  XfrmAlgorithmError,
} from '../../../src/kernel/xfrm/algorithms.js';
import { XFRMA_ALG_AEAD, XFRMA_ALG_AUTH_TRUNC, XFRMA_ALG_CRYPT } from '../../../src/kernel/xfrm/constants.js';
import {
  addressBlocks,
  portBlocks,
  selectorSpecificity,
  selectorsFor,
  XfrmSelectorError,
} from '../../../src/kernel/xfrm/selectors.js';
import { hex, ip4, Layout } from './layout.js';

t.test('registry rows map to kernel names, key bits (salt included) and ICV bits', async (t) => {
  const cases: [string, string | undefined, string][] = [
    ['aes128', 'sha1', 'cbc(aes) 128-bit key + hmac(sha1) 160-bit key 96-bit ICV'],
    ['aes256', 'sha256', 'cbc(aes) 256-bit key + hmac(sha256) 256-bit key 128-bit ICV'],
    ['aes192', 'sha384', 'cbc(aes) 192-bit key + hmac(sha384) 384-bit key 192-bit ICV'],
    ['3des', 'md5', 'cbc(des3_ede) 192-bit key + hmac(md5) 128-bit key 96-bit ICV'],
    ['aes128ctr', 'sha512', 'rfc3686(ctr(aes)) 160-bit key + hmac(sha512) 512-bit key 256-bit ICV'],
    ['aes128gcm16', undefined, 'rfc4106(gcm(aes)) 160-bit key 128-bit ICV'],
    ['aes256gcm8', undefined, 'rfc4106(gcm(aes)) 288-bit key 64-bit ICV'],
    ['aes192gcm12', undefined, 'rfc4106(gcm(aes)) 224-bit key 96-bit ICV'],
    ['chacha20poly1305', undefined, 'rfc7539esp(chacha20,poly1305) 288-bit key 128-bit ICV'],
  ];
  for (const [encr, integ, expected] of cases) {
    const suite = { encr: algorithm('encr', encr), ...(integ && { integ: algorithm('integ', integ) }) };
    t.equal(describeKernelAlgorithms(kernelAlgorithms(suite)), expected, `${encr}-${integ ?? 'aead'}`);
  }
  t.equal(kernelAlgorithms({ encr: algorithm('encr', 'aes128gcm16') }).encryption.attribute, XFRMA_ALG_AEAD);
});

t.test('algorithm attributes: CRYPT + AUTH_TRUNC, or one AEAD; wrong key lengths are refused', async (t) => {
  const cbc = kernelAlgorithms({ encr: algorithm('encr', 'aes128'), integ: algorithm('integ', 'sha256') });
  const key = new Uint8Array(16).fill(0x11);
  const ikey = new Uint8Array(32).fill(0x22);
  const attrs = algorithmAttributes(cbc, key, ikey);
  t.same(
    attrs.map((a) => a.type),
    [XFRMA_ALG_CRYPT, XFRMA_ALG_AUTH_TRUNC],
  );
  t.equal(hex(attrs[0]!.value), hex(new Layout(84).ascii(0, 'cbc(aes)').u32(64, 128).put(68, key).bytes));
  t.equal(
    hex(attrs[1]!.value),
    hex(new Layout(104).ascii(0, 'hmac(sha256)').u32(64, 256).u32(68, 128).put(72, ikey).bytes),
  );
  t.throws(() => algorithmAttributes(cbc, new Uint8Array(20), ikey), /cbc\(aes\) takes a 128-bit key/);
  t.throws(() => algorithmAttributes(cbc, key, new Uint8Array(20)), /hmac\(sha256\) takes a 256-bit key/);

  const gcm = kernelAlgorithms({ encr: algorithm('encr', 'aes256gcm16') });
  const gkey = new Uint8Array(36).fill(0x33);
  const [aead, ...rest] = algorithmAttributes(gcm, gkey, new Uint8Array(0));
  t.equal(rest.length, 0);
  t.equal(aead!.type, XFRMA_ALG_AEAD);
  t.equal(
    hex(aead!.value),
    hex(new Layout(108).ascii(0, 'rfc4106(gcm(aes))').u32(64, 288).u32(68, 128).put(72, gkey).bytes),
  );
  t.throws(() => algorithmAttributes(gcm, new Uint8Array(32), new Uint8Array(0)), /salt included/);
});

t.test('suites the kernel backend cannot express are clear errors', async (t) => {
  t.throws(() => kernelAlgorithms({ encr: algorithm('encr', 'aes128') }), XfrmAlgorithmError);
  t.throws(
    () => kernelAlgorithms({ encr: algorithm('encr', 'aes128gcm16'), integ: algorithm('integ', 'sha1') }),
    /AEAD and takes no integrity/,
  );
  const strange = { ...algorithm('encr', 'aes128'), name: 'serpent128', primitive: 'serpent-cbc' };
  t.throws(
    () => kernelAlgorithms({ encr: strange as never, integ: algorithm('integ', 'sha1') }),
    /encryption 'serpent128' \(serpent-cbc\) has no XFRM equivalent/,
  );
});

t.test('address ranges become exact CIDR blocks, port ranges aligned port/mask blocks', async (t) => {
  const blocks = addressBlocks(Uint8Array.from(ip4('192.0.2.10')), Uint8Array.from(ip4('192.0.2.20')));
  t.same(
    blocks.map((b) => `${b.address.join('.')}/${b.prefix}`),
    ['192.0.2.10/31', '192.0.2.12/30', '192.0.2.16/30', '192.0.2.20/32'],
  );
  t.same(
    addressBlocks(Uint8Array.from(ip4('0.0.0.0')), Uint8Array.from(ip4('255.255.255.255'))).map(
      (b) => b.prefix,
    ),
    [0],
  );
  t.same(portBlocks(0, 65535), [{ port: 0, mask: 0 }]);
  t.same(portBlocks(443, 443), [{ port: 443, mask: 0xffff }]);
  t.same(portBlocks(1024, 65535), [
    { port: 1024, mask: 0xfc00 },
    { port: 2048, mask: 0xf800 },
    { port: 4096, mask: 0xf000 },
    { port: 8192, mask: 0xe000 },
    { port: 16384, mask: 0xc000 },
    { port: 32768, mask: 0x8000 },
  ]);
});

t.test('selectors for a pair of traffic selectors', async (t) => {
  const local = parseTrafficSelector('198.51.100.0/24');
  const remote = parseTrafficSelector('203.0.113.0/24');
  const [one, ...none] = selectorsFor(local, remote);
  t.equal(none.length, 0);
  t.equal(one!.prefixlenS, 24);
  t.equal(one!.family, 2);
  t.same([...one!.saddr], ip4('198.51.100.0'));

  const web = selectorsFor(
    parseTrafficSelector('192.0.2.1', 6),
    parseTrafficSelector('203.0.113.0/24', 6, 443),
  );
  t.equal(web.length, 1);
  t.equal(web[0]!.proto, 6);
  t.equal(web[0]!.dport, 443);
  t.equal(web[0]!.dportMask, 0xffff);
  t.equal(web[0]!.sportMask, 0, 'any source port');
  t.ok(selectorSpecificity(web[0]!) > selectorSpecificity(one!));

  const icmp = { ...parseTrafficSelector('192.0.2.1', 1), startPort: 0x0800, endPort: 0x0800 };
  const echo = selectorsFor(icmp, parseTrafficSelector('203.0.113.0/24', 1));
  t.same([echo[0]!.sport, echo[0]!.sportMask, echo[0]!.dport, echo[0]!.dportMask], [8, 0xffff, 0, 0xffff]);
  t.throws(
    () => selectorsFor({ ...icmp, startPort: 0x0800, endPort: 0x0a00 }, remote),
    /ICMP type\/code range 2048-2560/,
  );

  t.same(selectorsFor(local, parseTrafficSelector('2001:db8::/32')), [], 'different families never meet');
  t.same(selectorsFor(parseTrafficSelector('192.0.2.1', 6), parseTrafficSelector('192.0.2.2', 17)), []);
  const wide = { ...parseTrafficSelector('192.0.2.1-192.0.2.254', 6), startPort: 1, endPort: 65534 };
  t.throws(() => selectorsFor(wide, wide), XfrmSelectorError);
  t.throws(() => selectorsFor(wide, wide), /needs \d+ kernel selectors \(more than 256\)/);
});
