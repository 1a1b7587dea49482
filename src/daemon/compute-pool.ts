import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DhJob, DhJobResult } from '../crypto/dh-job.js';
import { InvalidPublicValueError } from '../crypto/errors.js';
import type { ProviderName } from '../crypto/provider.js';
import { sealKeys } from '../crypto/secret.js';

/**
 * Threads that run Diffie-Hellman jobs (src/crypto/dh-job.ts) for the daemon, so that key
 * exchange, the dominant cost of a handshake, runs beside the event loop on the other cores.
 * The engine asks with `compute` actions and gets each result back as an input; nothing else
 * (sockets, state, timers) leaves the main thread. Jobs go to the worker with the fewest pending.
 */

/** What a worker answers: the result, or why the job failed (rebuilt as the same error type here). */
export type WorkerAnswer =
  | {
      readonly id: number;
      readonly result: { publicKey: Uint8Array; privateKey: Uint8Array; sharedSecret?: Uint8Array };
    }
  | { readonly id: number; readonly invalidPublic: { group: string; reason: string } }
  | { readonly id: number; readonly error: string };

/**
 * The worker's module beside this one: compiled (dist/); or, when this runs from source through
 * tsx (the tests), the source, loaded after registering tsx's loader in the thread (Node 20 does
 * not pass the main thread's loader hooks on to workers).
 */
function spawn(provider: ProviderName): Worker {
  const options = { workerData: { provider } };
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL('./compute-worker.js', import.meta.url), options);
  const source = JSON.stringify(new URL('./compute-worker.ts', import.meta.url).href);
  const code = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${source}); });`;
  return new Worker(code, { ...options, eval: true });
}

interface PooledWorker {
  readonly worker: Worker;
  pending: number;
  /** Jobs of this turn of the event loop, posted together (one message per worker per turn). */
  batch: { id: number; job: DhJob }[];
}

/** How many threads 'auto' means: one per CPU we may use, none on a machine with a single one. */
export function autoWorkers(): number {
  const cpus = availableParallelism();
  return cpus >= 2 ? cpus : 0;
}

export class ComputePool {
  readonly #workers: PooledWorker[] = [];
  readonly #waiting = new Map<
    number,
    { resolve: (result: DhJobResult | Error) => void; from: PooledWorker }
  >();
  #nextId = 1;
  #closed = false;
  readonly #size: number;
  readonly #provider: ProviderName;

  /** Threads start as the load needs them, up to `size`: a quiet daemon keeps none busy starting. */
  constructor(size: number, provider: ProviderName) {
    this.#size = size;
    this.#provider = provider;
  }

  get size(): number {
    return this.#size;
  }

  #spawn(): PooledWorker {
    const worker = spawn(this.#provider);
    const pooled: PooledWorker = { worker, pending: 0, batch: [] };
    worker.on('message', (answers: WorkerAnswer[]) => {
      for (const answer of answers) this.#answer(answer);
    });
    worker.on('error', (error) => this.#lost(pooled, error));
    this.#workers.push(pooled);
    return pooled;
  }

  /** Runs a job; resolves with its result, or with the error (never rejects). */
  run(job: DhJob): Promise<DhJobResult | Error> {
    if (this.#closed) return Promise.resolve(new Error('the compute pool is closed'));
    let target = this.#workers[0];
    for (const candidate of this.#workers) if (candidate.pending < target!.pending) target = candidate;
    // Another thread only when every one has work already.
    if (!target || (target.pending > 0 && this.#workers.length < this.#size)) target = this.#spawn();
    const id = this.#nextId++;
    // A busy pool keeps the process alive; an idle one does not (its sockets and timers do).
    if (target.pending++ === 0) target.worker.ref();
    if (target.batch.push({ id, job }) === 1) queueMicrotask(() => this.#post(target));
    return new Promise((resolve) => this.#waiting.set(id, { resolve, from: target }));
  }

  #post(target: PooledWorker): void {
    const jobs = target.batch;
    target.batch = [];
    if (jobs.length && !this.#closed) target.worker.postMessage(jobs);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const [id, { resolve }] of this.#waiting) {
      this.#waiting.delete(id);
      resolve(new Error('the compute pool is closed'));
    }
    await Promise.all(this.#workers.map(({ worker }) => worker.terminate()));
  }

  #answer(answer: WorkerAnswer): void {
    const waiting = this.#waiting.get(answer.id);
    if (!waiting) return;
    this.#waiting.delete(answer.id);
    if (--waiting.from.pending === 0) waiting.from.worker.unref();
    if ('result' in answer) {
      const { publicKey, privateKey, sharedSecret } = answer.result;
      waiting.resolve(
        sealKeys('DhJobResult', { publicKey, privateKey, ...(sharedSecret && { sharedSecret }) }),
      );
    } else if ('invalidPublic' in answer) {
      waiting.resolve(new InvalidPublicValueError(answer.invalidPublic.group, answer.invalidPublic.reason));
    } else {
      waiting.resolve(new Error(answer.error));
    }
  }

  /** A worker that died fails its jobs (their negotiations fail, nothing hangs). */
  #lost(worker: PooledWorker, error: Error): void {
    for (const [id, waiting] of this.#waiting) {
      if (waiting.from !== worker) continue;
      this.#waiting.delete(id);
      waiting.resolve(new Error(`compute worker failed: ${error.message}`));
    }
    worker.pending = 0;
    worker.worker.unref();
  }
}
