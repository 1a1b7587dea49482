import { NetlinkError } from '../netlink/message.js';

/**
 * A request the kernel refused, said in an IPsec user's words: which SA or policy, and what the
 * errno means for XFRM (net/xfrm/xfrm_user.c, xfrm_state.c: ENOSYS is an unknown algorithm,
 * EPROTONOSUPPORT a kernel without the ESP type, ESRCH/ENOENT nothing to delete...).
 */
export class XfrmError extends Error {
  override readonly name = 'XfrmError';
  constructor(
    /** What was asked: "add inbound SA 198.51.100.2->192.0.2.1 spi c0000001 (child 3)". */
    readonly operation: string,
    /** The errno name, when the kernel answered with one. */
    readonly code: string | undefined,
    readonly errno: number | undefined,
    explanation: string,
    options?: { cause?: unknown },
  ) {
    super(`${operation}: ${explanation}${code ? ` (${code})` : ''}`, options);
  }
}

export interface ErrnoContext {
  /** The algorithms of the SA being added ("cbc(aes) 128-bit key + hmac(sha256) ..."). */
  readonly algorithms?: string;
  readonly object?: 'SA' | 'policy';
}

export function explainErrno(code: string, context: ErrnoContext = {}): string {
  switch (code) {
    case 'ENOSYS':
      return context.algorithms
        ? `the kernel does not offer the algorithm: ${context.algorithms}`
        : 'the kernel does not offer the algorithm';
    case 'EPROTONOSUPPORT':
      return 'the kernel has no ESP support (esp4/esp6 not built or not loadable)';
    case 'EEXIST':
      return `an identical ${context.object ?? 'entry'} is already installed`;
    case 'ESRCH':
    case 'ENOENT':
      return `no such ${context.object ?? 'entry'} in the kernel`;
    case 'EINVAL':
      return context.algorithms
        ? `the kernel rejected the request as invalid (algorithms: ${context.algorithms})`
        : 'the kernel rejected the request as invalid';
    case 'EPERM':
    case 'EACCES':
      return 'not permitted: XFRM needs CAP_NET_ADMIN';
    case 'EAFNOSUPPORT':
      return 'the kernel does not support this address family (IPv6 disabled?)';
    case 'ENOBUFS':
    case 'ENOMEM':
      return 'the kernel is out of memory';
    case 'ENOSPC':
      return 'no free SPI left in the requested range';
    case 'ENODEV':
      return 'no such device (offload or interface id)';
    default:
      return 'the kernel refused the request';
  }
}

/** Turns a NetlinkError into an XfrmError for `operation`; anything else passes through. */
export function xfrmError(error: unknown, operation: string, context: ErrnoContext = {}): unknown {
  if (!(error instanceof NetlinkError)) return error;
  // The channel puts the kernel's extended-ack text after the request's name: "<what> (<text>): CODE ...".
  let explanation = explainErrno(error.code, context);
  if (error.message.startsWith(`${operation} (`)) {
    const end = error.message.lastIndexOf('): ');
    if (end > operation.length)
      explanation += `; the kernel says: ${error.message.slice(operation.length + 2, end)}`;
  }
  return new XfrmError(operation, error.code, error.errno, explanation, { cause: error });
}

export function isGone(error: unknown): boolean {
  return error instanceof NetlinkError && (error.code === 'ESRCH' || error.code === 'ENOENT');
}

export function isExists(error: unknown): boolean {
  return error instanceof NetlinkError && error.code === 'EEXIST';
}
