import t from 'tap';
import { PROVIDER_NAMES } from '../../src/crypto/providers/index.js';
import { loadCryptoProvider } from '../../src/crypto/providers/load.js';
import type { DhJobResult } from '../../src/crypto/dh-job.js';
import { ComputePool } from '../../src/daemon/compute-pool.js';
import { equalBytes } from '../../src/wire/bytes.js';

/**
 * The Diffie-Hellman worker threads load only the provider they are given (load.ts), and each
 * provider's threads agree with each other on g^xy: two key pairs, then each side's secret.
 */

for (const name of PROVIDER_NAMES) {
  t.test(`workers with the ${name} provider compute matching shared secrets`, async (t) => {
    const pool = new ComputePool(2, name);
    t.teardown(() => pool.close());
    const result = async (job: Parameters<ComputePool['run']>[0]) => {
      const answer = await pool.run(job);
      if (answer instanceof Error) throw answer;
      return answer;
    };
    const [a, b] = await Promise.all([result({ group: 'modp2048' }), result({ group: 'modp2048' })]);
    const secret = (own: DhJobResult, peer: DhJobResult) =>
      result({ group: 'modp2048', privateKey: own.privateKey, peerPublic: peer.publicKey });
    const [ab, ba] = await Promise.all([secret(a, b), secret(b, a)]);
    t.equal(ab.sharedSecret?.length, 256, 'g^xy is the group size (RFC 7296 / 2409: padded to it)');
    t.ok(equalBytes(ab.sharedSecret!, ba.sharedSecret!), 'both ends agree');
  });
}

t.test('loadCryptoProvider loads each provider by name, and refuses another', async (t) => {
  for (const name of PROVIDER_NAMES) t.equal((await loadCryptoProvider(name)).name, name);
  await t.rejects(loadCryptoProvider('openssl' as never), RangeError);
});
