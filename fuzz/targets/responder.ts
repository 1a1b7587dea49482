import { SITE_B } from '../../test/helpers/engine-pair.js';
import { mutateIkeMessage } from '../mutate.js';
import { ikeSeeds } from '../seeds.js';
import {
  buildEngine,
  checkedPerform,
  growthFinding,
  type Op,
  replaySession,
  type SessionReproducer,
  type SideRecipe,
} from '../session.js';
import type { Finding, Target } from '../target.js';

/**
 * A fresh responder (peer "any", so that every source may start an exchange) fed mutated
 * datagrams of every kind, one engine for many inputs so that what they leave behind adds up:
 * half-open SAs stay within the limit and nothing else grows. Diffie-Hellman is deferred and never
 * answered, so no input costs a DH (the engine's own flood defence is not what is measured here).
 * A reproducer is the responder's recipe and the datagrams it got (the one, when that is enough).
 */

const ENGINE_INPUTS = 2000;

function responderRecipe(version: 1 | 2): SideRecipe {
  return {
    address: SITE_B,
    spec: {
      version,
      ike:
        version === 1
          ? ['aes128-sha256-ecp256', 'aes256-sha1-modp1024']
          : ['aes128-sha256-ecp256', 'aes256gcm16-prfsha256-curve25519'],
      esp: ['aes128-sha256', 'aes256gcm16'],
      localAddress: SITE_B,
      peerAddress: 'any',
      localSubnets: ['203.0.113.0/24'],
      peerSubnets: [],
      mode: 'transport',
    },
    engine: { maxHalfOpen: 32, compute: 'deferred' },
    cryptoSeed: 1,
    randomSeed: 2,
  };
}

function responderTarget(version: 1 | 2): Target {
  const recipe = responderRecipe(version);
  const encode = (history: Op[]): Uint8Array =>
    new TextEncoder().encode(JSON.stringify({ version, side: recipe, history } satisfies SessionReproducer));
  return {
    name: `ikev${version}-responder`,
    description: `a fresh IKEv${version} responder's receive(): every kind of datagram, mutated`,
    fuzz(rng, count, report, options) {
      const seeds = ikeSeeds(version);
      let engine = buildEngine(recipe).engine;
      let history: Op[] = [];
      for (let i = 0; i < count; i++) {
        if (i % ENGINE_INPUTS === ENGINE_INPUTS - 1) {
          const growth = growthFinding(engine);
          if (growth) report({ ...growth, reproducer: encode(history) });
          engine = buildEngine(recipe).engine;
          history = [];
        }
        let data = rng.pick(seeds);
        const steps = rng.chance(0.6) ? 1 : 2 + rng.below(4);
        for (let s = 0; s < steps; s++) data = mutateIkeMessage(rng, data, seeds);
        const port = rng.pick([500, 4500, 1024 + rng.below(60000)]);
        const op: Op = {
          op: 'receive',
          now: 1000 + Math.floor(i / 100),
          data: Buffer.from(data).toString('hex'),
          local: { address: SITE_B, port: port === 500 ? 500 : 4500 },
          remote: { address: `198.51.100.${1 + rng.below(8)}`, port },
        };
        history.push(op);
        const { finding } = checkedPerform(engine, op, options);
        // A slow input is a hang only if it is slow again, in CPU time (not a pause of the machine).
        const confirmed =
          finding?.kind !== 'hang' ||
          replaySession({ version, side: recipe, history }, options).some((f) => f.kind === 'hang');
        // The one datagram reproduces it from a fresh responder in most cases; the history always.
        if (finding && confirmed)
          report({
            ...finding,
            reproducer: encode(
              replaySession({ version, side: recipe, history: [op] }, options).length ? [op] : history,
            ),
          });
      }
      return count;
    },
    replay(reproducer, options): Finding[] {
      return replaySession(JSON.parse(new TextDecoder().decode(reproducer)) as SessionReproducer, options);
    },
  };
}

export const ikev1Responder = responderTarget(1);
export const ikev2Responder = responderTarget(2);
