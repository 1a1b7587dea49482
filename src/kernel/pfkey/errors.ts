import type { PfkeyFlavour } from './constants.js';

/**
 * errno names for sadb_msg_errno, which carries the kernel's own numbers. The low ones agree
 * (EPERM 1 ... ERANGE 34, from V7 Unix); above that Linux (include/uapi/asm-generic/errno.h)
 * and OpenBSD (sys/sys/errno.h) number differently.
 */
const COMMON: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  3: 'ESRCH',
  4: 'EINTR',
  5: 'EIO',
  9: 'EBADF',
  12: 'ENOMEM',
  13: 'EACCES',
  14: 'EFAULT',
  16: 'EBUSY',
  17: 'EEXIST',
  19: 'ENODEV',
  22: 'EINVAL',
  28: 'ENOSPC',
};

const ERRNO_NAMES: Record<PfkeyFlavour, Record<number, string>> = {
  linux: {
    ...COMMON,
    11: 'EAGAIN',
    38: 'ENOSYS',
    40: 'ELOOP',
    90: 'EMSGSIZE',
    93: 'EPROTONOSUPPORT',
    94: 'ESOCKTNOSUPPORT',
    95: 'EOPNOTSUPP',
    97: 'EAFNOSUPPORT',
    105: 'ENOBUFS',
  },
  openbsd: {
    ...COMMON,
    11: 'EDEADLK',
    35: 'EAGAIN',
    40: 'EMSGSIZE',
    43: 'EPROTONOSUPPORT',
    44: 'ESOCKTNOSUPPORT',
    45: 'EOPNOTSUPP',
    47: 'EAFNOSUPPORT',
    55: 'ENOBUFS',
    62: 'ELOOP',
    78: 'ENOSYS',
  },
};

export function errnoName(flavour: PfkeyFlavour, errno: number): string {
  return ERRNO_NAMES[flavour][errno] ?? `errno ${errno}`;
}

/** The kernel refused a request: sadb_msg_errno of the answer, named, with what was asked. */
export class PfkeyError extends Error {
  override readonly name = 'PfkeyError';
  constructor(
    readonly errno: number,
    readonly code: string,
    readonly request: string,
  ) {
    super(`${request}: ${code} (errno ${errno})`);
  }
}

/** No answer to a request within the time allowed (PF_KEY is unreliable: RFC 2367 section 1.2). */
export class PfkeyTimeoutError extends Error {
  override readonly name = 'PfkeyTimeoutError';
  constructor(
    readonly request: string,
    readonly timeoutMs: number,
  ) {
    super(`${request}: no answer from the kernel within ${timeoutMs} ms`);
  }
}

/** What the backend cannot do with this kernel (an algorithm, a selector), said before asking it. */
export class PfkeyUnsupportedError extends Error {
  override readonly name = 'PfkeyUnsupportedError';
}

/** The channel was closed while a request waited. */
export class PfkeyClosedError extends Error {
  override readonly name = 'PfkeyClosedError';
}
