import { encodeMessage } from '../src/ikev1/codec.js';
import { ExchangeType } from '../src/ikev1/constants.js';
import { mainModeSa } from '../test/helpers/isakmp-fixtures.js';
import { Random } from './random.js';
import { watchedPair } from './session.js';
import { recipes } from './targets/session.js';

/**
 * The seed corpus of the IKE targets: the datagrams of real exchanges between two engines (no
 * mutation), recorded from a fixed seed so that every run starts from the same corpus. IKEv1:
 * main mode, quick mode, informational (DPD, deletes), rekeys, NAT-T encapsulation, and an
 * aggressive mode first message (the engine refuses aggressive mode; its parser must not break).
 * IKEv2: IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA (child and IKE rekeys), INFORMATIONAL, fragments.
 */

const cache = new Map<1 | 2, Uint8Array[]>();

export function ikeSeeds(version: 1 | 2): readonly Uint8Array[] {
  const known = cache.get(version);
  if (known) return known;
  const seeds: Uint8Array[] = [];
  const rng = new Random(0x5eed + version);
  const kinds = new Map<string, number>();
  for (let i = 0; i < 12; i++) {
    const r = recipes(version, rng);
    const quiet = (side: typeof r.a) => ({ ...side, seal: { seed: 0, probability: 0 } });
    const { pair, a } = watchedPair(
      version,
      { a: quiet(r.a), b: quiet(r.b) },
      { hangMs: Infinity },
      () => {},
    );
    pair.initiate(a.side);
    pair.advance(15);
    pair.advance(400);
    pair.run(a.side, a.side.engine.terminate('test', pair.now));
    for (const p of pair.sent) {
      if (p.keepalive) continue;
      // At most a few of each kind (exchange type and first payload): DPD would fill the corpus.
      const kind = `${p.data[18]}/${p.data[16]}/${p.data[19]! & 0x20}`;
      const n = kinds.get(kind) ?? 0;
      if (n >= 24) continue;
      kinds.set(kind, n + 1);
      seeds.push(p.data);
    }
  }
  if (version === 1) seeds.push(aggressiveModeMessage1());
  cache.set(version, seeds);
  return seeds;
}

function aggressiveModeMessage1(): Uint8Array {
  return encodeMessage(
    {
      CKY_I: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
      CKY_R: new Uint8Array(8),
      exchangeType: ExchangeType.AGGRESSIVE,
      flags: 0,
      messageId: 0,
    },
    [
      mainModeSa,
      { kind: 'ke', data: new Uint8Array(128).fill(7) },
      { kind: 'nonce', data: new Uint8Array(16).fill(9) },
      { kind: 'id', idType: 1, protocolId: 17, port: 500, data: Uint8Array.of(192, 0, 2, 9) },
    ],
  );
}
