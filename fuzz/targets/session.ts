import { SITE_A, SITE_B, type ConnectionSpec, type Packet } from '../../test/helpers/engine-pair.js';
import { mutateIkeMessage } from '../mutate.js';
import type { Random } from '../random.js';
import {
  forgedCopies,
  growthFinding,
  isEncrypted,
  replaySession,
  type SessionReproducer,
  type SideRecipe,
  watchedPair,
} from '../session.js';
import type { Finding, RunOptions, Target } from '../target.js';

/**
 * Each engine's receive() in every state: two engines negotiate for real (main mode, quick mode,
 * informational; IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL; rekeys, DPD, deletes,
 * fragments, NAT-T encapsulation) while the network between them changes datagrams in flight
 * (forged copies, which must change nothing once their original is in), and each engine, with
 * some probability, mutates what it encrypts before encrypting it (its peer then verifies the
 * message and decodes the mutation). An input is one changed datagram an engine receives.
 */

const V1_IKE = ['aes128-sha256-ecp256', 'aes256-sha1-modp1024', '3des-sha1-modp1024'];
const V2_IKE = ['aes128-sha256-ecp256', 'aes256gcm16-prfsha256-curve25519', 'aes128-sha256-curve25519'];
const ESP = ['aes128-sha256', 'aes256gcm16', 'aes128-sha1'];

export function recipes(version: 1 | 2, rng: Random): { a: SideRecipe; b: SideRecipe } {
  const many = rng.chance(0.3);
  const aNets = many ? Array.from({ length: 8 }, (_, i) => `198.51.100.${i * 32}/27`) : ['198.51.100.0/24'];
  const bNets = ['203.0.113.0/24'];
  const both: Partial<ConnectionSpec> = {
    version,
    ike: [rng.pick(version === 1 ? V1_IKE : V2_IKE)],
    esp: [rng.pick(ESP)],
    ikeLifetime: rng.pick([120, 600, 10800]),
    childLifetime: rng.pick([60, 300, 3600]),
    ...(rng.chance(0.3) && { pfs: version === 1 ? 'ecp256' : 'curve25519' }),
    ...(rng.chance(0.4) && {
      dpd: { delay: 10, timeout: 30, action: rng.pick(['clear', 'restart'] as const) },
    }),
  };
  // IKEv2 fragments (RFC 7383): small datagrams, and a PFS KE payload that does not fit one.
  const fragments = version === 2 && rng.chance(0.4);
  if (fragments) both.pfs = 'modp2048';
  const engine = {
    maxHalfOpen: 32,
    ...(rng.chance(0.25) && { forceEncapsulation: true }),
    ...(fragments && { fragmentSize: rng.pick([300, 400]) }),
  };
  const seal = () => ({ seed: rng.u32(), probability: rng.pick([0, 0.2, 0.5]) });
  return {
    a: {
      address: SITE_A,
      spec: {
        ...both,
        localAddress: SITE_A,
        peerAddress: SITE_B,
        localSubnets: aNets,
        peerSubnets: bNets,
        start: 'initiate',
      },
      engine,
      cryptoSeed: rng.u32(),
      randomSeed: rng.u32(),
      seal: seal(),
    },
    b: {
      address: SITE_B,
      spec: {
        ...both,
        localAddress: SITE_B,
        peerAddress: rng.chance(0.3) ? 'any' : SITE_A,
        localSubnets: bNets,
        peerSubnets: aNets,
      },
      engine,
      cryptoSeed: rng.u32(),
      randomSeed: rng.u32(),
      seal: seal(),
    },
  };
}

function sessionTarget(version: 1 | 2): Target {
  return {
    name: `ikev${version}-engine`,
    description:
      version === 1
        ? 'IKEv1 engine receive(): main, quick and informational exchanges, fresh, mid-exchange and established'
        : 'IKEv2 engine receive(): IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL, SK and fragments, in every state',
    fuzz(rng: Random, count: number, report: (finding: Finding) => void, options: RunOptions): number {
      let inputs = 0;
      while (inputs < count) {
        const { pair, a, b } = watchedPair(version, recipes(version, rng), options, report);
        const outer = rng.pick([0.1, 0.3, 0.6]);
        // Datagrams whose sender mutated the plaintext before sealing it (and their retransmissions):
        // the receiver may reject them, and then a changed copy may verify where they did not (a
        // header field no integrity check covers, such as the first payload type, put right), so
        // their copies are not forged.
        const sealedMutated = new Set<string>();
        pair.wire = (packet: Packet) => {
          const sender = packet.from.address === a.recipe.address ? a : b;
          const mutated = sender.takeMutated();
          inputs += mutated;
          if (mutated) sealedMutated.add(Buffer.from(packet.data).toString('hex'));
          if (packet.keepalive || !rng.chance(outer)) return packet;
          inputs++;
          let data = packet.data;
          const steps = rng.chance(0.7) ? 1 : 2 + rng.below(4);
          for (let i = 0; i < steps; i++)
            data = mutateIkeMessage(
              rng,
              data,
              pair.sent.map((p) => p.data),
            );
          const moved = rng.chance(0.15);
          const copy: Packet = {
            ...packet,
            data,
            ...(moved && { from: { address: packet.from.address, port: 1024 + rng.below(60000) } }),
          };
          const originalFirst = rng.chance(0.6);
          const alone = rng.below(4) === 0;
          // A changed copy of an encrypted message after its original: its integrity cannot verify.
          // (Alone, the copy may still verify: a change to what no integrity check covers.)
          if (
            originalFirst &&
            !alone &&
            isEncrypted(packet.data) &&
            !equal(data, packet.data) &&
            sameKind(data, packet.data) &&
            !sealedMutated.has(Buffer.from(packet.data).toString('hex'))
          )
            forgedCopies.add(data);
          if (alone) return copy;
          return originalFirst ? [packet, copy] : [copy, packet];
        };
        const run = (step: () => void) => {
          try {
            step();
          } catch {
            // A message loop or a refused command ends the session; the engines' findings are reported already.
          }
        };
        run(() => pair.initiate(a.side));
        for (let step = 0; step < 8 && inputs < count; step++) {
          switch (rng.below(5)) {
            case 0:
              run(() => pair.run(a.side, a.side.engine.terminate('test', pair.now)));
              run(() => pair.initiate(a.side));
              break;
            default:
              run(() => pair.advance(rng.pick([1, 5, 15, 45, 130, 400])));
          }
        }
        for (const side of [a, b]) {
          const growth = growthFinding(side.side.engine);
          if (growth) {
            const reproducer: SessionReproducer = { version, side: side.recipe, history: side.history };
            report({ ...growth, reproducer: new TextEncoder().encode(JSON.stringify(reproducer)) });
          }
        }
      }
      return inputs;
    },
    replay(reproducer: Uint8Array, options: RunOptions): Finding[] {
      return replaySession(JSON.parse(new TextDecoder().decode(reproducer)) as SessionReproducer, options);
    },
  };
}

function equal(x: Uint8Array, y: Uint8Array): boolean {
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Same version, exchange type and flags: IKEv1 checks no header field but the SPIs and message ID. */
function sameKind(x: Uint8Array, y: Uint8Array): boolean {
  return x.length >= 20 && x[17] === y[17] && x[18] === y[18] && x[19] === y[19];
}

export const ikev1Engine = sessionTarget(1);
export const ikev2Engine = sessionTarget(2);
