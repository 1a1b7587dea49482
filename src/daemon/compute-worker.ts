import { parentPort, workerData } from 'node:worker_threads';
import { type DhJob, runDhJob } from '../crypto/dh-job.js';
import { InvalidPublicValueError } from '../crypto/errors.js';
import type { ProviderName } from '../crypto/provider.js';
import { loadCryptoProvider } from '../crypto/providers/load.js';
import type { WorkerAnswer } from './compute-pool.js';

/** A thread of the ComputePool: runs Diffie-Hellman jobs with its own crypto provider. */

// Its own provider only: the jobs posted meanwhile wait in the port until the listener below is on.
const provider = await loadCryptoProvider((workerData as { provider: ProviderName }).provider);

/** A batch of jobs in, their answers out in one message. */
parentPort!.on('message', (jobs: { id: number; job: DhJob }[]) => {
  parentPort!.postMessage(jobs.map(({ id, job }) => answer(id, job)));
});

function answer(id: number, job: DhJob): WorkerAnswer {
  try {
    const { publicKey, privateKey, sharedSecret } = runDhJob(provider, job);
    return { id, result: { publicKey, privateKey, ...(sharedSecret && { sharedSecret }) } };
  } catch (error) {
    return error instanceof InvalidPublicValueError
      ? { id, invalidPublic: { group: error.group, reason: error.reason } }
      : { id, error: (error as Error).message };
  }
}
