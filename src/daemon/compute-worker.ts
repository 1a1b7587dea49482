import { parentPort, workerData } from 'node:worker_threads';
import { type DhJob, runDhJob } from '../crypto/dh-job.js';
import { InvalidPublicValueError } from '../crypto/errors.js';
import type { ProviderName } from '../crypto/provider.js';
import { createCryptoProvider } from '../crypto/providers/index.js';
import type { WorkerAnswer } from './compute-pool.js';

/** A thread of the ComputePool: runs Diffie-Hellman jobs with its own crypto provider. */

const provider = createCryptoProvider((workerData as { provider: ProviderName }).provider);

parentPort!.on('message', ({ id, job }: { id: number; job: DhJob }) => {
  let answer: WorkerAnswer;
  try {
    const { publicKey, privateKey, sharedSecret } = runDhJob(provider, job);
    answer = { id, result: { publicKey, privateKey, ...(sharedSecret && { sharedSecret }) } };
  } catch (error) {
    answer =
      error instanceof InvalidPublicValueError
        ? { id, invalidPublic: { group: error.group, reason: error.reason } }
        : { id, error: (error as Error).message };
  }
  parentPort!.postMessage(answer);
});
