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

t.test('no proposal chosen: the responder says what each side offers and what to change', async (t) => {
  // IKE_SA_INIT: the peer's suite, ours, the closest pair and the policy to change.
  const ike = sitePair({
    both: v2,
    a: { ike: ['3des-sha1-modp1024'] },
    b: { ike: ['aes256-sha256-modp2048'] },
  });
  ike.pair.initiate(ike.a);
  t.match(
    ike.b.logs.join('\n'),
    /IKE_SA_INIT from .* refused: no proposal chosen: peer offers 3des-sha1-modp1024; we accept aes256-sha256-modp2048; closest: peer's 3des-sha1-modp1024 against our aes256-sha256-modp2048; allow 3des \(encryption\) and sha1 \(integrity\) and modp1024 \(DH group\) in ikePolicy '[^']+' to match/,
  );
  t.match(
    ike.b.engine.status()[0]!.error,
    /peer offers 3des-sha1-modp1024.*allow 3des/,
    "the responder's status",
  );
  t.match(ike.a.engine.status()[0]!.error, /NO_PROPOSAL_CHOSEN/, 'the initiator learns it from the notify');
  t.equal(ike.a.installed.size + ike.b.installed.size, 0, 'nothing installed');

  // The first child SA in IKE_AUTH: the IKE SA stands, the child is refused with the same detail.
  const esp = sitePair({ both: v2, a: { esp: ['aes128-sha1'] }, b: { esp: ['aes256-sha256'] } });
  esp.pair.initiate(esp.a);
  t.match(
    esp.b.logs.join('\n'),
    /child SA: no proposal chosen: peer offers aes128-sha1; we accept aes256-sha256; closest: peer's aes128-sha1 against our aes256-sha256; allow aes128 \(encryption\) and sha1 \(integrity\) in ipsecPolicy '[^']+' to match/,
  );
  t.match(esp.a.engine.status()[0]!.error ?? '', /NO_PROPOSAL_CHOSEN/, 'the initiator shows the refusal');
  t.equal(esp.a.installed.size + esp.b.installed.size, 0, 'no child SA installed');

  // PFS asked for but not offered: "no DH group". Each side's rekey is refused by the other; a
  // refusal comes at once, so asking again at once would loop for as long as the child SA lives.
  const pfs = sitePair({ both: { ...v2, childLifetime: 300 }, b: { pfs: 'modp2048' } });
  pfs.pair.initiate(pfs.a);
  const first = onlyChild(pfs.a);
  const refusals = () => pfs.b.logs.filter((line) => /CREATE_CHILD_SA from .* refused/.test(line)).length;
  const times: number[] = [];
  let seen = refusals();
  pfs.pair.advance(first.rekeyAt - pfs.pair.now - 1);
  while (pfs.pair.now < first.expiresAt - 2) {
    pfs.pair.advance(1);
    if (refusals() > seen) times.push(pfs.pair.now);
    seen = refusals();
  }
  t.match(
    pfs.b.logs.join('\n'),
    /allow no DH group \(the peer offers none\) in ipsecPolicy '[^']+' to match/,
  );
  t.ok(times.length >= 2, `the rekey was tried again (${times.length} times)`);
  const gaps = times.slice(1).map((at, i) => at - times[i]!);
  t.ok(
    gaps.every((gap) => gap >= 10),
    `never again at once: ${gaps.join(', ')} s apart`,
  );
  t.equal(onlyChild(pfs.b).spiOut, first.spiIn, 'the first child SA carries on meanwhile');
});
