import { constants } from 'node:os';
import type { Native, NativeError } from '../../native/types.js';
import {
  LITTLE_ENDIAN,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  NLM_F_ACK,
  NLM_F_REQUEST,
  NetlinkError,
  align4,
  decodeAttributes,
  decodeError,
  decodeMessages,
  encodeMessage,
  view,
  type NetlinkChannel,
  type NetlinkMessage,
  type NetlinkSubscription,
} from './message.js';

/** Netlink families (linux/netlink.h). */
export const NETLINK_ROUTE = 0;
export const NETLINK_XFRM = 6;

/** Socket options (linux/socket.h, asm-generic/socket.h, linux/netlink.h). */
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;

/** Flags of answers (linux/netlink.h): a dump was changed while it ran; an ack carries TLVs. */
const NLM_F_DUMP_INTR = 0x10;
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
/** Extended ack attribute with the kernel's message text (enum nlmsgerr_attrs). */
const NLMSGERR_ATTR_MSG = 1;

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_SUBSCRIPTION_BUFFER = 4 << 20;

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name] as const),
);

/** The errno name of a positive errno value ("ESRCH"), or "E<number>" for one Node does not know. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

/** No answer arrived in time: the kernel is stuck, or the answer was lost (ENOBUFS). */
export class NetlinkTimeoutError extends Error {
  override readonly name = 'NetlinkTimeoutError';
  readonly code = 'ETIMEDOUT';
  constructor(
    readonly seq: number,
    what: string,
    timeoutMs: number,
  ) {
    super(`${what}: no answer from the kernel within ${timeoutMs} ms`);
  }
}

export interface NetlinkSocketOptions {
  /** How long a request waits for its answer (request and requestSync); 5000 ms by default. */
  readonly timeoutMs?: number;
}

interface Pending {
  readonly what: string;
  readonly answers: NetlinkMessage[];
  interrupted: boolean;
  /** Called once, with the answers or the error. */
  settle(error: Error | undefined): void;
}

/** 4-byte host-order int: the value of most socket options. */
function int32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  view(bytes).setInt32(0, value, LITTLE_ENDIAN);
  return bytes;
}

/** The kernel's text in an extended acknowledgement (NETLINK_EXT_ACK), if it sent one. */
function extendedAckMessage(message: NetlinkMessage): string | undefined {
  if (!(message.flags & NLM_F_ACK_TLVS) || message.payload.length < 4 + NLMSG_HDRLEN) return undefined;
  const requestLength = view(message.payload).getUint32(4, LITTLE_ENDIAN);
  const offset = 4 + (message.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(requestLength));
  try {
    const text = decodeAttributes(message.payload, offset).find((a) => a.type === NLMSGERR_ATTR_MSG);
    if (!text) return undefined;
    const end = text.value.indexOf(0);
    return (
      Buffer.from(text.value.subarray(0, end < 0 ? text.value.length : end)).toString('utf8') || undefined
    );
  } catch {
    return undefined;
  }
}

/** Adds what the request was to a system call's error, keeping its code. */
function inContext(what: string, error: unknown): Error {
  const cause = error as Partial<NativeError>;
  const wrapped = new Error(`${what}: ${cause.message ?? String(error)}`, { cause: error }) as Error & {
    code?: string;
    errno?: number;
  };
  if (cause.code !== undefined) wrapped.code = cause.code;
  if (cause.errno !== undefined) wrapped.errno = cause.errno;
  return wrapped;
}

/**
 * Request/answer over one netlink socket of the native shim. Requests carry NLM_F_REQUEST |
 * NLM_F_ACK and a sequence number; the answers with that number are collected until the
 * acknowledgement (or NLMSG_DONE for a dump). The socket is watched only while async requests are
 * pending, so an idle socket does not keep the event loop alive.
 */
export class NetlinkSocket implements NetlinkChannel {
  private readonly pending = new Map<number, Pending>();
  private asyncPending = 0;
  private watching = false;
  private closed = false;
  private seq = 0;
  private readonly timeoutMs: number;

  /** Opens a netlink socket of `protocol` (NETLINK_ROUTE, NETLINK_XFRM) with extended acks. */
  static open(native: Native, protocol: number, options: NetlinkSocketOptions = {}): NetlinkSocket {
    const fd = native.openNetlink(protocol, []);
    // The kernel's error text in negative acks ("Invalid prefix for given prefix length"), and
    // only the header of our request echoed back in them. Kernels without either just ignore it.
    for (const option of [NETLINK_EXT_ACK, NETLINK_CAP_ACK]) {
      try {
        native.setsockopt(fd, SOL_NETLINK, option, int32(1));
      } catch {
        // an old kernel: plain errno acks
      }
    }
    return new NetlinkSocket(native, fd, options);
  }

  /** Wraps a descriptor from native.openNetlink (tests pass a fake native and any number). */
  constructor(
    private readonly native: Native,
    readonly fd: number,
    options: NetlinkSocketOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  request(type: number, flags: number, payload: Uint8Array, what: string): Promise<NetlinkMessage[]> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error(`${what}: the netlink socket is closed`));
        return;
      }
      const seq = this.nextSeq();
      let timer: NodeJS.Timeout | undefined = undefined;
      const pending: Pending = {
        what,
        answers: [],
        interrupted: false,
        settle: (error) => {
          if (!this.pending.delete(seq)) return;
          clearTimeout(timer);
          this.asyncPending--;
          this.updateWatch();
          if (error) reject(error);
          else resolve(pending.answers);
        },
      };
      this.pending.set(seq, pending);
      this.asyncPending++;
      try {
        this.updateWatch();
        this.native.write(this.fd, this.frame(type, flags, seq, payload));
      } catch (error) {
        pending.settle(inContext(what, error));
        return;
      }
      // The kernel handles a request inside the write (sendmsg), which can take seconds (an SA's
      // first use of an algorithm loads its module and runs its self-tests): the answer is queued
      // by then, so the time allowed for it counts from here, or an expired timer would beat it.
      if (this.pending.get(seq) !== pending) return; // answered (or closed) during the write
      timer = setTimeout(
        () => pending.settle(new NetlinkTimeoutError(seq, what, this.timeoutMs)),
        this.timeoutMs,
      );
    });
  }

  requestSync(type: number, flags: number, payload: Uint8Array, what: string): NetlinkMessage[] {
    if (this.closed) throw new Error(`${what}: the netlink socket is closed`);
    const seq = this.nextSeq();
    let outcome: { error: Error | undefined } | undefined;
    const pending: Pending = {
      what,
      answers: [],
      interrupted: false,
      settle: (error) => {
        if (this.pending.delete(seq)) outcome = { error };
      },
    };
    this.pending.set(seq, pending);
    try {
      this.native.write(this.fd, this.frame(type, flags, seq, payload));
    } catch (error) {
      this.pending.delete(seq);
      throw inContext(what, error);
    }
    const deadline = performance.now() + this.timeoutMs;
    while (outcome === undefined) {
      const left = Math.ceil(deadline - performance.now());
      if (left <= 0) {
        this.pending.delete(seq);
        throw new NetlinkTimeoutError(seq, what, this.timeoutMs);
      }
      let datagram: Uint8Array | null;
      try {
        datagram = this.native.readSync(this.fd, left);
      } catch (error) {
        // An answer may be lost (ENOBUFS, EMSGSIZE): nobody waiting can count on theirs.
        this.failAll(error);
        continue;
      }
      if (datagram !== null) this.dispatch(datagram);
    }
    if (outcome.error) throw outcome.error;
    return pending.answers;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watching = false;
    this.native.close(this.fd);
    for (const pending of [...this.pending.values()])
      pending.settle(new Error(`${pending.what}: the netlink socket was closed before the answer came`));
  }

  private nextSeq(): number {
    do this.seq = (this.seq + 1) >>> 0;
    while (this.seq === 0 || this.pending.has(this.seq));
    return this.seq;
  }

  private frame(type: number, flags: number, seq: number, payload: Uint8Array): Uint8Array {
    return encodeMessage({ type, flags: flags | NLM_F_REQUEST | NLM_F_ACK, seq, pid: 0, payload });
  }

  private updateWatch(): void {
    if (this.closed) return;
    if (this.asyncPending > 0 && !this.watching) {
      this.native.watch(
        this.fd,
        (datagrams) => datagrams.forEach((datagram) => this.dispatch(datagram)),
        (error) => this.failAll(error),
      );
      this.watching = true;
    } else if (this.asyncPending === 0 && this.watching) {
      this.watching = false;
      this.native.unwatch(this.fd);
    }
  }

  private failAll(error: unknown): void {
    for (const pending of [...this.pending.values()])
      pending.settle(inContext(`${pending.what}: the answer may be lost`, error));
  }

  private dispatch(datagram: Uint8Array): void {
    let messages: NetlinkMessage[];
    try {
      messages = decodeMessages(datagram);
    } catch (error) {
      // Its sequence number cannot be trusted: whoever it was for would wait for ever.
      this.failAll(new Error(`garbled answer from the kernel (${(error as Error).message})`));
      return;
    }
    for (const message of messages) this.handle(message);
  }

  private handle(message: NetlinkMessage): void {
    const pending = this.pending.get(message.seq);
    if (!pending) return; // an answer to a request that timed out, or a notification
    if (message.flags & NLM_F_DUMP_INTR) pending.interrupted = true;
    switch (message.type) {
      case NLMSG_NOOP:
        return;
      case NLMSG_ERROR: {
        let errno: number;
        try {
          errno = decodeError(message).errno;
        } catch (error) {
          pending.settle(inContext(`${pending.what}: truncated acknowledgement`, error));
          return;
        }
        if (errno === 0) this.finish(pending, message.seq);
        else {
          const text = extendedAckMessage(message);
          const what = text ? `${pending.what} (${text})` : pending.what;
          pending.settle(new NetlinkError(errno, errnoName(errno), message.seq, what));
        }
        return;
      }
      case NLMSG_DONE: {
        // Since Linux 4.x NLMSG_DONE carries the dump's status: a negative errno on failure.
        const status = message.payload.length >= 4 ? view(message.payload).getInt32(0, LITTLE_ENDIAN) : 0;
        if (status < 0)
          pending.settle(new NetlinkError(-status, errnoName(-status), message.seq, pending.what));
        else this.finish(pending, message.seq);
        return;
      }
      case NLMSG_OVERRUN:
        pending.settle(new Error(`${pending.what}: the kernel reported a data overrun`));
        return;
      default:
        pending.answers.push(message);
    }
  }

  private finish(pending: Pending, seq: number): void {
    if (pending.interrupted)
      pending.settle(
        new NetlinkError(4, 'EINTR', seq, `${pending.what} (the dump changed while it ran; retry)`),
      );
    else pending.settle(undefined);
  }
}

export interface NetlinkSubscriptionOptions {
  /** Receive buffer for bursts of events (SO_RCVBUFFORCE as root, else SO_RCVBUF); 4 MiB by default. */
  readonly receiveBufferBytes?: number;
}

/**
 * Multicast `groups` of a netlink family on a socket of their own, watched until close(). An
 * error (ENOBUFS when events were dropped, a garbled datagram) goes to the onError listeners,
 * and without one is dropped; the subscription goes on.
 */
export function openNetlinkSubscription(
  native: Native,
  protocol: number,
  groups: readonly number[],
  options: NetlinkSubscriptionOptions = {},
): NetlinkSubscription {
  const fd = native.openNetlink(protocol, groups);
  const messageListeners: ((messages: NetlinkMessage[]) => void)[] = [];
  const errorListeners: ((error: Error & { code?: string }) => void)[] = [];
  const emitError = (error: Error & { code?: string }) =>
    errorListeners.forEach((listener) => listener(error));
  let closed = false;
  try {
    const size = int32(options.receiveBufferBytes ?? DEFAULT_SUBSCRIPTION_BUFFER);
    try {
      native.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size);
    } catch {
      native.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size); // without CAP_NET_ADMIN: up to rmem_max
    }
    native.watch(
      fd,
      (datagrams) => {
        const messages: NetlinkMessage[] = [];
        for (const datagram of datagrams) {
          try {
            for (const message of decodeMessages(datagram))
              if (message.type !== NLMSG_NOOP) messages.push(message);
          } catch (error) {
            emitError(error as Error);
          }
        }
        if (messages.length > 0 && !closed) messageListeners.forEach((listener) => listener(messages));
      },
      emitError,
    );
  } catch (error) {
    native.close(fd);
    throw error;
  }
  return {
    onMessages: (listener) => void messageListeners.push(listener),
    onError: (listener) => void errorListeners.push(listener),
    close: () => {
      if (closed) return;
      closed = true;
      native.close(fd);
    },
  };
}
