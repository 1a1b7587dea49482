import { writeFileSync } from 'node:fs';
import type { Action } from '../src/core/actions.js';
import type { IkeEngine } from '../src/core/engine.js';
import type { Endpoint } from '../src/core/endpoint.js';
import { createEngine } from '../src/engine.js';
import { connection, type ConnectionSpec, EnginePair, type Side } from '../test/helpers/engine-pair.js';
import { deterministicCrypto, type SealMutation } from './crypto.js';
import { IKE_HEADER, mutateSealedChain } from './mutate.js';
import { Random } from './random.js';
import { cpuMs, describeError, type Finding, type FindingKind, type RunOptions } from './target.js';

/**
 * Two engines in a real exchange (test/helpers/engine-pair.ts), each built from a recipe that
 * makes it deterministic, and each input it gets written down: a side's recipe and its history
 * are what it takes to bring that engine back to any state it reached (fresh responder,
 * mid-exchange, established, rekeying) and give it the input that found something.
 */

export interface SideRecipe {
  readonly address: string;
  readonly spec: ConnectionSpec;
  readonly engine: {
    readonly fragmentSize?: number;
    readonly forceEncapsulation?: boolean;
    readonly maxHalfOpen?: number;
    /** Diffie-Hellman as `compute` actions, never answered here: no input costs a DH. */
    readonly compute?: 'deferred';
  };
  readonly cryptoSeed: number;
  readonly randomSeed: number;
  readonly seal?: SealMutation;
}

export type Op =
  | { readonly op: 'initiate' | 'terminate'; readonly name: string; readonly now: number }
  | { readonly op: 'tick'; readonly now: number }
  | {
      readonly op: 'receive';
      readonly now: number;
      readonly data: string;
      readonly local: Endpoint;
      readonly remote: Endpoint;
      /**
       * A copy, changed in flight, of an encrypted message the engine has already received: its
       * integrity cannot verify, so it must change nothing.
       */
      readonly forged?: boolean;
    };

/** A reproducer: one engine's recipe and its inputs up to the one that found something. */
export interface SessionReproducer {
  readonly version: 1 | 2;
  readonly side: SideRecipe;
  readonly history: readonly Op[];
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const unhex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'));

/** Plaintext mutations below the encryption keep the size the header already announced. */
const sealMutator = (rng: Random, plaintext: Uint8Array) => mutateSealedChain(rng, plaintext, 1);

export function buildEngine(side: SideRecipe): { engine: IkeEngine; takeMutated: () => number } {
  const crypto = deterministicCrypto(side.cryptoSeed, side.seal, sealMutator);
  const random = new Random(side.randomSeed);
  const engine = createEngine({
    crypto: crypto.provider,
    connections: [connection(side.spec)],
    port: 500,
    natPort: 4500,
    defaultLocalAddress: side.address,
    random: () => random.float(),
    ...side.engine,
  });
  return { engine, takeMutated: crypto.takeMutated };
}

function perform(engine: IkeEngine, op: Op): Action[] {
  switch (op.op) {
    case 'initiate':
      return engine.initiate(op.name, op.now);
    case 'terminate':
      return engine.terminate(op.name, op.now);
    case 'tick':
      return engine.tick(op.now);
    case 'receive':
      return engine.receive(unhex(op.data), op.local, op.remote, op.now);
  }
}

/** What status says of each SA the engine has: what a forged input must leave as it is. */
function snapshot(engine: IkeEngine): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of engine.status()) {
    for (const sa of c.ikeSas) out.set(`IKE SA ${sa.id}`, JSON.stringify(sa));
    for (const child of c.childSas) out.set(`child SA ${child.id}`, JSON.stringify(child));
  }
  return out;
}

/** IKE SAs and child SAs an engine may hold in these tests: the half-open limit and a few established. */
export const MAX_SAS = 64;
const MAX_LOG_EVENTS_PER_INPUT = 20;

/** An input given to an engine, with every check: the finding it makes, if any. */
export function checkedPerform(
  engine: IkeEngine,
  op: Op,
  options: RunOptions,
  clock: () => number = () => performance.now(),
): { actions: Action[]; finding?: { kind: FindingKind; message: string } } {
  const before = op.op === 'receive' && op.forged ? snapshot(engine) : undefined;
  const errors = engine.stats.internalErrors;
  const started = clock();
  let actions: Action[];
  try {
    actions = perform(engine, op);
  } catch (error) {
    if (op.op === 'receive' || op.op === 'tick' || (error as Error).name !== 'CommandError')
      return { actions: [], finding: { kind: 'exception', message: describeError(error) } };
    return { actions: [] };
  }
  const took = clock() - started;
  if (engine.stats.internalErrors > errors) {
    const log = actions.find(
      (a) => a.type === 'event' && a.event.type === 'log' && a.event.message.startsWith('internal error'),
    );
    const message = log?.type === 'event' && log.event.type === 'log' ? log.event.message : 'internal error';
    return { actions, finding: { kind: 'exception', message: message.split('\n').slice(0, 5).join('\n') } };
  }
  if (took > options.hangMs)
    return {
      actions,
      finding: {
        kind: 'hang',
        message: `${op.op} took ${took.toFixed(0)} ms${clock === cpuMs ? ' of CPU' : ''}`,
      },
    };
  // Log lines for a datagram: a few, plus a few per SA it touches (a Delete of many children).
  const logs = actions.filter((a) => a.type === 'event' && a.event.type === 'log').length;
  if (op.op === 'receive' && logs > MAX_LOG_EVENTS_PER_INPUT) {
    const touched =
      actions.filter((a) => a.type !== 'event' && a.type !== 'send').length +
      engine.status().reduce((n, c) => n + c.ikeSas.length + c.childSas.length, 0);
    if (logs > MAX_LOG_EVENTS_PER_INPUT + 4 * touched)
      return { actions, finding: { kind: 'growth', message: `${logs} log lines for one datagram` } };
  }
  if (before) {
    const changed = actions.find((a) => a.type.startsWith('install') || a.type === 'delete-child');
    if (changed)
      return {
        actions,
        finding: { kind: 'unverified-state', message: `a forged message made it ${changed.type}` },
      };
    const after = snapshot(engine);
    for (const [key, value] of before) {
      if (after.get(key) !== value)
        return {
          actions,
          finding: {
            kind: 'unverified-state',
            message: `a forged message changed ${key}: ${value} -> ${after.get(key) ?? 'gone'}`,
          },
        };
    }
  }
  return { actions };
}

/** Bounded state: what an engine holds after any inputs. */
export function growthFinding(engine: IkeEngine): { kind: FindingKind; message: string } | undefined {
  const sas = engine.status().reduce((n, c) => n + c.ikeSas.length + c.childSas.length, 0);
  return sas > MAX_SAS ? { kind: 'growth', message: `${sas} SAs held` } : undefined;
}

/** Replays a reproducer; a hang is then measured in CPU time (cpuMs), not by the wall clock. */
export function replaySession(reproducer: SessionReproducer, options: RunOptions): Finding[] {
  const { engine } = buildEngine(reproducer.side);
  const bytes = new TextEncoder().encode(JSON.stringify(reproducer));
  const findings: Finding[] = [];
  for (const op of reproducer.history) {
    const { finding } = checkedPerform(engine, op, options, cpuMs);
    if (finding) findings.push({ ...finding, reproducer: bytes });
  }
  const growth = growthFinding(engine);
  if (growth) findings.push({ ...growth, reproducer: bytes });
  return findings;
}

// ---------------------------------------------------------------------------------------------
// Live sessions

/** FUZZ_TRACE=<file>: each input's reproducer is written there before the input runs. */
const TRACE = process.env.FUZZ_TRACE;

/** One side of a live session: its engine wrapped so that every input is recorded and checked. */
export interface Watched {
  readonly recipe: SideRecipe;
  readonly history: Op[];
  readonly side: Side;
  takeMutated(): number;
}

export function watchedPair(
  version: 1 | 2,
  recipes: { a: SideRecipe; b: SideRecipe },
  options: RunOptions,
  report: (finding: Finding) => void,
): { pair: EnginePair; a: Watched; b: Watched } {
  const pair = new EnginePair();
  const watch = (name: string, recipe: SideRecipe): Watched => {
    const { engine, takeMutated } = buildEngine(recipe);
    const history: Op[] = [];
    const side = pair.add(name, recipe.address, []);
    const record = (op: Op): Action[] => {
      history.push(op);
      // An input that never returns (an endless loop) leaves its reproducer here.
      if (TRACE) writeFileSync(TRACE, JSON.stringify({ version, side: recipe, history }));
      const { actions, finding } = checkedPerform(engine, op, options);
      if (finding) {
        const reproducer: SessionReproducer = { version, side: recipe, history: [...history] };
        // A slow input is a hang only if it is slow again (not a pause for a GC).
        const again =
          finding.kind !== 'hang' || replaySession(reproducer, options).some((f) => f.kind === 'hang');
        if (again) report({ ...finding, reproducer: new TextEncoder().encode(JSON.stringify(reproducer)) });
      }
      return actions;
    };
    // The pair drives this proxy; every input goes through `record`.
    const proxy = {
      receive: (data: Uint8Array, local: Endpoint, remote: Endpoint, now: number) =>
        record({
          op: 'receive',
          now,
          data: hex(data),
          local,
          remote,
          ...(forgedCopies.has(data) && { forged: true }),
        }),
      tick: (now: number) => record({ op: 'tick', now }),
      initiate: (connectionName: string, now: number) =>
        record({ op: 'initiate', name: connectionName, now }),
      terminate: (connectionName: string, now: number) =>
        record({ op: 'terminate', name: connectionName, now }),
      nextTimeout: () => engine.nextTimeout(),
      status: () => engine.status(),
    };
    Object.defineProperty(proxy, 'stats', { get: () => ({ ...engine.stats, internalErrors: 0 }) });
    (side as { engine: unknown }).engine = proxy;
    return { recipe, history, side, takeMutated };
  };
  return { pair, a: watch('a', recipes.a), b: watch('b', recipes.b) };
}

/** Datagrams changed in flight after their sender sealed them (their integrity cannot verify). */
export const forgedCopies = new WeakSet<Uint8Array>();

/** Whether a datagram's payloads are encrypted: IKEv1's E flag, IKEv2's SK or SKF payload first. */
export function isEncrypted(data: Uint8Array): boolean {
  if (data.length < IKE_HEADER) return false;
  return data[17]! >> 4 === 1 ? (data[19]! & 1) === 1 : data[16] === 46 || data[16] === 53;
}
