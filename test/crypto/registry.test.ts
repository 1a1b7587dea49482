import t from 'tap';
import { ALGORITHMS, algorithm, findAlgorithm, findIkev2 } from '../../src/crypto/index.js';

t.test('names and aliases resolve to exactly one row per kind', async (t) => {
  const seen = new Set<string>();
  for (const row of ALGORITHMS) {
    for (const name of [row.name, ...row.aliases]) {
      const key = `${row.kind}:${name}`;
      t.notOk(seen.has(key), `${key} is unique`);
      seen.add(key);
      t.equal(findAlgorithm(row.kind, name), row);
    }
  }
  t.equal(findAlgorithm('encr', 'AES-CBC-256')?.name, 'aes256', 'case-insensitive');
  t.equal(findAlgorithm('dh', 'group14')?.name, 'modp2048', 'Neutron-style group names');
  t.throws(() => algorithm('encr', 'rot13'), { message: "unknown encr algorithm 'rot13'" });
});

t.test('IKEv2 transform ids map back to their rows', async (t) => {
  for (const row of ALGORITHMS) {
    const id = row.kind === 'dh' ? row.ikev2 : row.ikev2.id;
    const bits = row.kind === 'encr' && row.ikev2.keyLengthAttribute ? row.keyLength * 8 : undefined;
    t.equal(findIkev2(row.kind, id, bits), row, `${row.kind} ${row.name} <- ${id}${bits ? `/${bits}` : ''}`);
  }
  t.equal(findIkev2('encr', 12, 128)?.name, 'aes128', 'ENCR_AES_CBC with 128-bit key');
  t.equal(findIkev2('encr', 20, 256)?.name, 'aes256gcm16', 'ENCR_AES_GCM_16');
  t.equal(findIkev2('integ', 12)?.name, 'sha256', 'AUTH_HMAC_SHA2_256_128');
  t.equal(findIkev2('prf', 5)?.name, 'prfsha256', 'PRF_HMAC_SHA2_256');
  t.equal(findIkev2('dh', 31)?.name, 'curve25519');
  t.equal(findIkev2('encr', 12, 64), undefined, 'no AES with a 64-bit key');
});

t.test('IKEv1 identifiers follow RFC 2409 and the IPsec DOI', async (t) => {
  const ids = (name: string) => findAlgorithm('encr', name)?.ikev1;
  t.same(ids('3des'), { phase1: 5, esp: 3, keyLengthAttribute: false });
  t.same(ids('aes256'), { phase1: 7, esp: 12, keyLengthAttribute: true });
  t.same(ids('aes128gcm16'), { esp: 20, keyLengthAttribute: true });
  t.equal(ids('chacha20poly1305'), undefined, 'no IKEv1 identifier exists for ChaCha20-Poly1305');
  t.same(findAlgorithm('prf', 'prfsha256')?.ikev1, { hash: 4 });
  t.same(findAlgorithm('integ', 'sha256')?.ikev1, { esp: 5 });
  t.equal(findAlgorithm('dh', 'modp1024')?.ikev1, 2);
});
