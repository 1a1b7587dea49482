import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

/**
 * The guest half of a kernel-lab scenario file: runs its scenarios one after another inside the
 * VM, then prints everything (results and captures, gzipped, base64) between two marks on the
 * console, which is all klab-run hands back; decodeGuestRun finds it again on the host.
 */

export interface GuestScenarioResult {
  readonly name: string;
  /** True when every step ran; assertions are the host's business. */
  readonly completed: boolean;
  readonly error?: string;
  /** Milliseconds per step. */
  readonly timings: Record<string, number>;
  /** Capture file names in $KLAB_OUT, shipped in `GuestRun.files`. */
  readonly pcaps: Readonly<Record<string, string | undefined>>;
  /** Capture file name -> tcpdump's closing counters (captured, received, dropped by kernel). */
  readonly captureCounters?: Readonly<Record<string, string>>;
}

export interface GuestRun<R> {
  kernel: string;
  /** Modules loaded in the guest at the end (/proc/modules), eagerly or on demand. */
  modules: string[];
  node: string;
  totalMs: number;
  scenarios: R[];
  /** File name -> base64 content (only in the console copy). */
  files?: Record<string, string>;
}

/**
 * A scenario's end: stops its captures, notes tcpdump's counters in `counters` (by file name), and
 * copies their files from its own directory to $KLAB_OUT (`out`), where runGuestScenarios picks
 * them up. Returns `error` with a line added for each file that could not be copied.
 */
export async function keepCaptures(
  captures: readonly { readonly file: string; stop(): Promise<string> }[],
  files: Readonly<Record<string, string | undefined>>,
  dir: string,
  out: string,
  error: string | undefined,
  counters: Record<string, string> = {},
): Promise<string | undefined> {
  for (const capture of captures) {
    counters[basename(capture.file)] = await capture
      .stop()
      .catch((e: unknown) => `stop failed: ${String(e)}`);
  }
  for (const file of Object.values(files)) {
    if (file === undefined) continue;
    try {
      writeFileSync(join(out, file), readFileSync(join(dir, file)));
    } catch (failure) {
      error = `${error ?? ''}\ncopying ${file}: ${String(failure)}`.trim();
    }
  }
  return error;
}

const MARK_BEGIN = 'RESULT_BEGIN';
const MARK_END = 'RESULT_END';

/** Runs `specs` (those named in `only`, when given) and prints the packed results. */
export async function runGuestScenarios<S extends { readonly name: string }, R extends GuestScenarioResult>(
  label: string,
  specs: readonly S[],
  scenario: (spec: S, out: string) => Promise<R>,
  only: readonly string[] = [],
): Promise<void> {
  const started = performance.now();
  const out = process.env.KLAB_OUT ?? mkdtempSync(join(tmpdir(), `ike-node-${label}-out-`));
  mkdirSync(out, { recursive: true });
  const scenarios: R[] = [];
  for (const spec of specs) {
    if (only.length && !only.includes(spec.name)) continue;
    console.log(`scenario ${spec.name}: start`);
    const result = await scenario(spec, out);
    console.log(
      `scenario ${spec.name}: ${result.completed ? 'completed' : 'FAILED'} ${JSON.stringify(result.timings)}`,
    );
    if (result.error) console.log(result.error);
    scenarios.push(result);
  }
  const run: GuestRun<R> = {
    kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(),
    modules: readFileSync('/proc/modules', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[0] ?? '')
      .filter(Boolean)
      .sort(),
    node: process.version,
    totalMs: Math.round(performance.now() - started),
    scenarios,
  };
  writeFileSync(join(out, 'result.json'), JSON.stringify(run, null, 2) + '\n');
  const files: Record<string, string> = {};
  for (const s of scenarios) {
    for (const file of Object.values(s.pcaps)) {
      if (file === undefined) continue;
      try {
        files[file] = readFileSync(join(out, file)).toString('base64');
      } catch {
        // reported in the scenario's error already
      }
    }
  }
  const packed = gzipSync(JSON.stringify({ ...run, files })).toString('base64');
  console.log(MARK_BEGIN);
  for (let i = 0; i < packed.length; i += 1000) console.log(packed.slice(i, i + 1000));
  console.log(MARK_END);
}

/** Finds the console copy in klab-run's output and decodes it. */
export function decodeGuestRun<R>(output: string): GuestRun<R> | undefined {
  const begin = output.indexOf(MARK_BEGIN);
  const end = output.indexOf(MARK_END, begin);
  if (begin < 0 || end < 0) return undefined;
  const base64 = output.slice(begin + MARK_BEGIN.length, end).replace(/\s+/g, '');
  return JSON.parse(gunzipSync(Buffer.from(base64, 'base64')).toString('utf8')) as GuestRun<R>;
}

/** Whether the module at `url` is the script node was started with (the guest's entry point). */
export function isMainModule(url: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(url);
}
