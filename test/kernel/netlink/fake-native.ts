import type { Native, NativeError } from '../../../src/native/types.js';
import { decodeMessages, encodeMessage, type NetlinkMessage } from '../../../src/kernel/netlink/message.js';

/** A system call's error as the shim throws it. */
export function nativeError(code: string, errno: number, syscall: string): NativeError {
  return Object.assign(new Error(`${syscall} failed (${code})`), { code, errno, syscall });
}

interface Watch {
  onData: (datagrams: Uint8Array[]) => void;
  onError: (error: NativeError) => void;
}

/**
 * A Native that records what is written and lets a test play the kernel: `onRequest` sees each
 * request written and returns the datagrams to answer with (through the watch, or readSync).
 */
export class FakeNative implements Native {
  readonly written: NetlinkMessage[] = [];
  readonly options: { fd: number; level: number; name: number; value: number[] }[] = [];
  readonly watches = new Map<number, Watch>();
  readonly closed: number[] = [];
  readonly opened: { protocol: number; groups: readonly number[] }[] = [];
  /** What readSync returns next (an Error is thrown); when empty, readSync waits its timeout out. */
  readonly syncQueue: (Uint8Array | Error)[] = [];
  watchCalls = 0;
  writeError: NativeError | undefined;
  setsockoptError: ((level: number, name: number) => NativeError | undefined) | undefined;
  onRequest: ((request: NetlinkMessage) => Uint8Array[]) | undefined;
  /** Answers produced by onRequest go to readSync instead of the watch. */
  answerSync = false;
  private nextFd = 40;

  openNetlink(protocol: number, groups: readonly number[]): number {
    this.opened.push({ protocol, groups });
    return this.nextFd++;
  }
  openPfkey(): number {
    throw nativeError('EAFNOSUPPORT', 97, 'socket(AF_KEY)');
  }
  openTun(name: string): { fd: number; name: string } {
    return { fd: this.nextFd++, name };
  }
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): void {
    const error = this.setsockoptError?.(level, name);
    if (error) throw error;
    this.options.push({ fd, level, name, value: [...value] });
  }
  write(_fd: number, data: Uint8Array): void {
    if (this.writeError) throw this.writeError;
    for (const request of decodeMessages(data.slice())) {
      this.written.push(request);
      const answers = this.onRequest?.(request) ?? [];
      if (this.answerSync) this.syncQueue.push(...answers);
      else if (answers.length > 0) queueMicrotask(() => this.deliver(_fd, answers));
    }
  }
  sendTo(): number {
    return 0;
  }
  readSync(_fd: number, timeoutMs: number): Uint8Array | null {
    const next = this.syncQueue.shift();
    if (next instanceof Error) throw next;
    if (next) return next;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, timeoutMs);
    return null;
  }
  watch(fd: number, onData: Watch['onData'], onError: Watch['onError']): void {
    if (this.watches.has(fd)) throw nativeError('EEXIST', 17, 'watch');
    this.watchCalls++;
    this.watches.set(fd, { onData, onError });
  }
  unwatch(fd: number): void {
    this.watches.delete(fd);
  }
  close(fd: number): void {
    this.watches.delete(fd);
    this.closed.push(fd);
  }

  /** Datagrams arriving on a watched descriptor. */
  deliver(fd: number, datagrams: Uint8Array[]): void {
    this.watches.get(fd)?.onData(datagrams);
  }
  fail(fd: number, error: NativeError): void {
    this.watches.get(fd)?.onError(error);
  }
}

/** Kernel answers (linux/netlink.h). */
export function answer(type: number, seq: number, payload: Uint8Array, flags = 0): Uint8Array {
  return encodeMessage({ type, flags, seq, pid: 0, payload });
}

/** NLMSG_ERROR: errno 0 is an ack; `tlvs` are extended-ack attributes (flags NLM_F_ACK_TLVS, capped). */
export function ack(request: NetlinkMessage, errno = 0, tlvs?: Uint8Array): Uint8Array {
  const header = encodeMessage({ ...request, payload: new Uint8Array(0) });
  const payload = new Uint8Array(4 + header.length + (tlvs?.length ?? 0));
  const dv = new DataView(payload.buffer);
  dv.setInt32(0, -errno, true);
  payload.set(header, 4);
  dv.setUint32(4, 16 + request.payload.length, true); // the request's real length, as the kernel echoes it
  if (tlvs) payload.set(tlvs, 4 + header.length);
  return encodeMessage({ type: 2, flags: tlvs ? 0x300 : 0x100, seq: request.seq, pid: 0, payload });
}

/** NLMSG_DONE with its status (0, or a negative errno). */
export function done(seq: number, status = 0): Uint8Array {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setInt32(0, status, true);
  return encodeMessage({ type: 3, flags: 2, seq, pid: 0, payload });
}
