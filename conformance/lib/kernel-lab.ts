import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './netns.js';

/**
 * The qemu kernel lab: Debian's distribution kernel (which has ESP, AH, IPComp and PF_KEY, unlike
 * the host's) booted under qemu with the host's root file system shared read-only (plus a RAM
 * overlay), running one script as root. The lab tool is conformance/lab/ (`klab-run`, `setup.sh`,
 * see its README), or the directory $IKE_NODE_KERNEL_LAB names; its artifacts (kernel, initramfs)
 * live in $KLAB_DIR, else $TMPDIR/kernel-lab, and are built by its setup.sh (conformance/setup.sh
 * runs it when they are missing).
 *
 * Inside the guest: no network card, only what the script creates; `$KLAB_OUT` is a directory shared
 * with the host. Everything runs about five times slower than on the host (TCG), so batch checks
 * into few boots.
 */

export const DEFAULT_KERNEL_LAB_TOOL = join(import.meta.dirname, '..', 'lab');

export class KernelLabUnavailable extends Error {
  override readonly name = 'KernelLabUnavailable';
}

export interface KernelLabLocation {
  /** Directory holding klab-run and setup.sh. */
  tool: string;
  /** Artifact directory (KLAB_DIR). */
  klabDir: string;
}

export function kernelLabLocation(): KernelLabLocation {
  return {
    tool: process.env.IKE_NODE_KERNEL_LAB ?? DEFAULT_KERNEL_LAB_TOOL,
    klabDir: process.env.KLAB_DIR ?? join(process.env.TMPDIR ?? tmpdir(), 'kernel-lab'),
  };
}

/** Throws KernelLabUnavailable, saying what is missing and how to get it, unless the lab can boot. */
export function checkKernelLab(location = kernelLabLocation()): KernelLabLocation {
  const klabRun = join(location.tool, 'klab-run');
  if (!existsSync(klabRun)) {
    throw new KernelLabUnavailable(
      `kernel lab tool not found: ${klabRun} is missing (set IKE_NODE_KERNEL_LAB to the directory holding klab-run and setup.sh)`,
    );
  }
  for (const artifact of ['kernel.img', 'initramfs.img']) {
    if (!existsSync(join(location.klabDir, artifact))) {
      throw new KernelLabUnavailable(
        `kernel lab not prepared: ${join(location.klabDir, artifact)} is missing; run ` +
          `KLAB_DIR=${location.klabDir} ${join(location.tool, 'setup.sh')} (or bash conformance/setup.sh)`,
      );
    }
  }
  return location;
}

/** For `missing(t, ...)`: false when the lab can boot, else why not. */
export function kernelLabMissing(): string | false {
  try {
    checkKernelLab();
    return false;
  } catch (error) {
    if (!(error instanceof KernelLabUnavailable)) throw error;
    return error.message;
  }
}

export interface KernelLabOptions {
  args?: readonly string[];
  /** Hard limit for the whole VM in seconds (default 120). */
  timeoutSec?: number;
  /** Guest memory, e.g. "1G" (default: the tool's). */
  memory?: string;
  /** Guest vCPUs (default: the tool's, 1); TCG runs each on a host thread. */
  cpus?: number;
  /** Modules to load at boot, e.g. ['esp4', 'xfrm_user'] (default: the tool's esp4,esp6,af_key,xfrm_user). */
  modules?: readonly string[];
  /** Environment for the script inside the guest. */
  env?: Record<string, string>;
  /** Working directory, as seen in the guest (the host path: the guest shares the host's root). */
  cwd?: string;
}

export interface KernelLabResult {
  /** The script's exit status; 255 means no result (boot failure, panic, timeout). */
  code: number;
  /** The guest's console: the script's stdout and stderr. */
  output: string;
  /** klab-run's own messages (timings, errors). */
  stderr: string;
  /** Wall-clock milliseconds for the whole run, boot included. */
  ms: number;
}

/** Boots the lab and runs `script` (a host path) as root inside it. Never rejects on script failure. */
export async function runInKernelLab(
  script: string,
  options: KernelLabOptions = {},
): Promise<KernelLabResult> {
  const location = checkKernelLab();
  const timeoutSec = options.timeoutSec ?? 120;
  const args = ['-t', String(timeoutSec)];
  if (options.memory) args.push('-m', options.memory);
  if (options.cpus) args.push('-s', String(options.cpus));
  if (options.modules) args.push('-M', options.modules.join(','));
  for (const [key, value] of Object.entries(options.env ?? {})) args.push('-e', `${key}=${value}`);
  args.push(script, ...(options.args ?? []));
  const started = performance.now();
  const result = await run(join(location.tool, 'klab-run'), args, {
    allowFail: true,
    timeoutMs: (timeoutSec + 30) * 1000,
    env: { ...process.env, KLAB_DIR: location.klabDir },
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  return { code: result.code, output: result.stdout, stderr: result.stderr, ms: performance.now() - started };
}
