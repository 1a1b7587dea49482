import { loadNative } from '../native/index.js';

/**
 * Keeps the daemon's memory (pre-shared keys, the keys of live SAs and of SAs long rekeyed away)
 * out of core dumps, and out of reach of other processes of its user (ptrace, /proc/PID/mem):
 * prctl(PR_SET_DUMPABLE, 0) through the native shim. Node.js itself has no way to do it. Returns
 * why it could not, for the daemon's log (the shim missing or too old: the memory backend runs
 * without it); the systemd unit's LimitCORE=0 still stops the dump then.
 */
export function refuseCoreDumps(): { done: true } | { done: false; reason: string } {
  let setDumpable: ((on: boolean) => void) | undefined;
  try {
    const native = loadNative();
    setDumpable = native.setDumpable?.bind(native);
  } catch (error) {
    return { done: false, reason: (error as Error).message };
  }
  if (!setDumpable) return { done: false, reason: 'the native shim predates setDumpable (rebuild it)' };
  try {
    setDumpable(false);
  } catch (error) {
    return { done: false, reason: (error as Error).message };
  }
  return { done: true };
}
