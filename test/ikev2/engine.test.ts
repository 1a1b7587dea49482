import t from 'tap';
import { onlyChild, sitePair } from '../helpers/engine-pair.js';
import { equalBytes } from '../../src/wire/bytes.js';

/** IKEv2 between two engines with a fake clock: IKE_SA_INIT, IKE_AUTH with its child, Deletes. */

const v2 = { version: 2 as const, ike: ['aes128-sha256-modp2048'], esp: ['aes128-sha256'] };

t.test(
  'IKE_SA_INIT and IKE_AUTH with a pre-shared key: one child SA on each side, keys crossing',
  async (t) => {
    const { pair, a, b } = sitePair({ both: v2 });
    pair.initiate(a);
    const ca = onlyChild(a);
    const cb = onlyChild(b);
    t.equal(ca.spiIn, cb.spiOut);
    t.equal(ca.spiOut, cb.spiIn);
    t.ok(equalBytes(ca.keys.encrIn, cb.keys.encrOut), 'encryption keys cross over');
    t.ok(equalBytes(ca.keys.integOut, cb.keys.integIn), 'integrity keys cross over');
    t.notOk(equalBytes(ca.keys.encrIn, ca.keys.encrOut), 'directions differ');
    const [sa] = a.engine.status()[0]!.ikeSas;
    t.match(sa, {
      version: 2,
      state: 'ESTABLISHED',
      role: 'initiator',
      algorithms: 'aes128-sha256-modp2048',
    });
    t.equal(b.engine.status()[0]!.status, 'Active');
    t.same(b.engine.status()[0]!.childSas[0]!.localTs, ['203.0.113.0/24']);
  },
);

t.test('a wrong pre-shared key: AUTHENTICATION_FAILED, nothing installed on either side', async (t) => {
  const { pair, a, b } = sitePair({ both: v2, b: { psk: 'another key' } });
  pair.initiate(a);
  t.equal(a.installed.size + b.installed.size, 0);
  t.match(a.engine.status()[0], { status: 'Error', error: /AUTHENTICATION_FAILED/ });
  t.match(b.engine.status()[0], { status: 'Error', error: /does not verify/ });
});

t.test('terminate sends a Delete: both sides clear', async (t) => {
  const { pair, a, b } = sitePair({ both: v2 });
  pair.initiate(a);
  pair.run(a, a.engine.terminate('test', pair.now));
  t.equal(a.installed.size + b.installed.size, 0);
  t.equal(b.engine.status()[0]!.status, 'Down');
});

t.test('child SAs are rekeyed with CREATE_CHILD_SA, with and without PFS', async (t) => {
  for (const pfs of [undefined, 'modp2048']) {
    const { pair, a, b } = sitePair({ both: { ...v2, childLifetime: 120, ...(pfs && { pfs }) } });
    pair.initiate(a);
    const first = onlyChild(a);
    pair.advance(115);
    const second = onlyChild(a);
    t.not(second.spiIn, first.spiIn, `pfs=${pfs}: rekeyed`);
    t.equal(onlyChild(b).spiOut, second.spiIn, 'the responder has the new one, and only it');
    t.equal(second.suite.dh?.name, pfs);
  }
});
