import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Native } from './types.js';

export type { Native, NativeError } from './types.js';

/**
 * The native socket shim, built at install by scripts/build-native.mjs (node-gyp, binding.gyp).
 * This file is src/native/index.ts under tsx and dist/native/index.js when built: both two levels
 * below the package root, where build/Release/ike_native.node lives.
 */
const ADDON_URL = new URL('../../build/Release/ike_native.node', import.meta.url);
const BUILD_ERROR_URL = new URL('../../build/native-build-error.txt', import.meta.url);

const FUNCTIONS = [
  'openNetlink',
  'openPfkey',
  'openTun',
  'setsockopt',
  'write',
  'sendTo',
  'readSync',
  'watch',
  'unwatch',
  'close',
] as const satisfies readonly (keyof Native)[];

/** The shim could not be loaded: `reason` says what is missing, the message how to fix it. */
export class NativeUnavailableError extends Error {
  override readonly name = 'NativeUnavailableError';
  readonly code = 'ERR_IKE_NATIVE_UNAVAILABLE';
  constructor(readonly reason: string) {
    super(
      `the native socket shim is not available: ${reason}. The xfrm, pfkey and userspace kernel backends ` +
        'need it; build it with a C compiler, make, python3 and the Node.js headers installed, then ' +
        '`npm rebuild ike-node` (in a checkout: `node scripts/build-native.mjs`). The memory backend works without it.',
    );
  }
}

let cached: Native | NativeUnavailableError | undefined;

function load(): Native | NativeUnavailableError {
  const path = fileURLToPath(ADDON_URL);
  if (!existsSync(path)) {
    let why = '';
    try {
      const firstLine = readFileSync(BUILD_ERROR_URL, 'utf8').split('\n')[0];
      if (firstLine) why = ` (the build at install failed: ${firstLine})`;
    } catch {
      // no record of a failed build: it never ran (IKE_NODE_SKIP_NATIVE, --ignore-scripts)
    }
    return new NativeUnavailableError(`${path} is missing${why}`);
  }
  let addon: Partial<Record<keyof Native, unknown>>;
  try {
    addon = createRequire(import.meta.url)(path) as typeof addon;
  } catch (error) {
    return new NativeUnavailableError(`${path} does not load (${(error as Error).message.split('\n')[0]})`);
  }
  const missing = FUNCTIONS.filter((name) => typeof addon[name] !== 'function');
  if (missing.length > 0)
    return new NativeUnavailableError(`${path} lacks ${missing.join(', ')} (an old build? rebuild it)`);
  return addon as Native;
}

/** The shim, loaded once. Throws NativeUnavailableError when it is missing or does not load. */
export function loadNative(): Native {
  cached ??= load();
  if (cached instanceof NativeUnavailableError) throw cached;
  return cached;
}

/** Whether loadNative() would succeed, and if not why (for `ike-node check`, status and tests). */
export function nativeAvailability(): { available: true } | { available: false; reason: string } {
  try {
    loadNative();
    return { available: true };
  } catch (error) {
    if (error instanceof NativeUnavailableError) return { available: false, reason: error.message };
    throw error;
  }
}
