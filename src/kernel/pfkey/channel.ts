import type { Native, NativeError } from '../../native/types.js';
import { type CodecOptions, decodeMessage, encodeMessage, type SadbMessage } from './codec.js';
import { messageName, type PfkeyFlavour } from './constants.js';
import { errnoName, PfkeyClosedError, PfkeyError, PfkeyTimeoutError } from './errors.js';
import type { SadbRequest } from './messages.js';

/**
 * Request and answer over one PF_KEY socket of the native shim.
 *
 * The kernel numbers nothing for us: we put a sequence number and our pid in each request and it
 * echoes both in the answer (RFC 2367 section 2.1). Many answers go to every PF_KEY socket (Linux
 * af_key.c broadcasts ADD/UPDATE/DELETE/SPDADD to all, REGISTER to all registered; OpenBSD
 * broadcasts by default), so an answer is ours only when type, seq and pid all match; everything
 * else goes to `onMessage` (ACQUIRE, EXPIRE, other daemons' traffic) for the caller to filter.
 * Dumps answer with many messages whose seq is not ours (Linux dump_sa numbers them count + 1 and
 * pfkey_do_dump sets the last one's to 0; OpenBSD pfkeyv2_dump_walker sets the last one's to 0):
 * they are matched by type and pid, and the one with seq 0 ends the dump.
 */

export interface PfkeyChannelOptions {
  readonly flavour: PfkeyFlavour;
  /** sadb_msg_pid of our requests (default: this process's pid). */
  readonly pid?: number;
  /** How long a request waits for its answer (default 2000 ms). */
  readonly timeoutMs?: number;
  readonly littleEndian?: boolean;
  /** Every message that is not an answer we wait for. */
  readonly onMessage: (message: SadbMessage) => void;
  /** A datagram we could not parse, or a socket error: the channel goes on. */
  readonly onError: (error: Error) => void;
}

interface Pending {
  readonly type: number;
  readonly seq: number;
  readonly what: string;
  /** Dumps collect many answers. */
  readonly dump: boolean;
  readonly collected: SadbMessage[];
  readonly resolve: (answers: SadbMessage[]) => void;
  readonly reject: (error: Error) => void;
  timer?: ReturnType<typeof setTimeout>;
}

/** errno ENOENT (2, the same on Linux and OpenBSD): an empty dump. */
const ENOENT = 2;

export class PfkeyChannel {
  readonly pid: number;
  readonly flavour: PfkeyFlavour;
  readonly #native: Native;
  readonly #fd: number;
  readonly #codec: CodecOptions;
  readonly #timeoutMs: number;
  readonly #onMessage: (message: SadbMessage) => void;
  readonly #onError: (error: Error) => void;
  readonly #pending: Pending[] = [];
  #seq = 0;
  #watching = false;
  #closed = false;

  constructor(native: Native, fd: number, options: PfkeyChannelOptions) {
    this.#native = native;
    this.#fd = fd;
    this.flavour = options.flavour;
    this.pid = options.pid ?? process.pid;
    this.#timeoutMs = options.timeoutMs ?? 2000;
    this.#codec = {
      flavour: options.flavour,
      ...(options.littleEndian !== undefined && { littleEndian: options.littleEndian }),
    };
    this.#onMessage = options.onMessage;
    this.#onError = options.onError;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Starts reading the socket on the event loop; answers and kernel messages flow from here. */
  start(): void {
    if (this.#watching || this.#closed) return;
    this.#watching = true;
    this.#native.watch(
      this.#fd,
      (datagrams) => {
        for (const datagram of datagrams) this.#receive(datagram);
      },
      (error: NativeError) => this.#report(error),
    );
  }

  /** A request's name for errors and logs: "SADB_ADD seq 7". */
  describe(request: Pick<SadbRequest, 'type'>, seq: number): string {
    return `${messageName(this.flavour, request.type)} seq ${seq}`;
  }

  #nextSeq(): number {
    this.#seq = this.#seq >= 0xffffffff ? 1 : this.#seq + 1;
    return this.#seq;
  }

  #write(request: SadbRequest, seq: number): void {
    if (this.#closed)
      throw new PfkeyClosedError(`${this.describe(request, seq)}: the PF_KEY channel is closed`);
    const bytes = encodeMessage({ ...request, seq, pid: this.pid }, this.#codec);
    this.#native.write(this.#fd, bytes);
  }

  /** Sends a request without waiting for anything; returns its sequence number. */
  send(request: SadbRequest): number {
    const seq = this.#nextSeq();
    this.#write(request, seq);
    return seq;
  }

  /** Sends a request and waits for its answer on the event loop. Rejects with PfkeyError on errno. */
  request(request: SadbRequest, what?: string, timeoutMs = this.#timeoutMs): Promise<SadbMessage> {
    return this.#enqueue(request, what, timeoutMs, false).then((answers) => answers[0]!);
  }

  /** Sends a dump request and collects every answer until the last (seq 0). Empty: []. */
  dump(request: SadbRequest, what?: string, timeoutMs = this.#timeoutMs): Promise<SadbMessage[]> {
    return this.#enqueue(request, what, timeoutMs, true);
  }

  #enqueue(
    request: SadbRequest,
    what: string | undefined,
    timeoutMs: number,
    dump: boolean,
  ): Promise<SadbMessage[]> {
    return new Promise((resolve, reject) => {
      const seq = this.#nextSeq();
      const name = what ? `${what} (${this.describe(request, seq)})` : this.describe(request, seq);
      const pending: Pending = { type: request.type, seq, what: name, dump, collected: [], resolve, reject };
      try {
        this.#write(request, seq);
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      pending.timer = setTimeout(() => {
        this.#remove(pending);
        if (dump && pending.collected.length > 0) resolve(pending.collected);
        else reject(new PfkeyTimeoutError(name, timeoutMs));
      }, timeoutMs);
      this.#pending.push(pending);
      this.start();
    });
  }

  /**
   * Sends a request and blocks (poll + read in the shim) until its answer: for SADB_GETSPI, which
   * the engine needs while it builds a message. Other messages read meanwhile are delivered as
   * usual, after this returns.
   */
  requestSync(request: SadbRequest, what?: string, timeoutMs = this.#timeoutMs): SadbMessage {
    const seq = this.#nextSeq();
    const name = what ? `${what} (${this.describe(request, seq)})` : this.describe(request, seq);
    this.#write(request, seq);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new PfkeyTimeoutError(name, timeoutMs);
      const datagram = this.#native.readSync(this.#fd, left);
      if (datagram === null) throw new PfkeyTimeoutError(name, timeoutMs);
      const message = this.#parse(datagram);
      if (!message) continue;
      if (message.type === request.type && message.seq === seq && message.pid === this.pid) {
        if (message.errno) throw new PfkeyError(message.errno, errnoName(this.flavour, message.errno), name);
        return message;
      }
      // Not ours: hand it on once the caller has its answer.
      queueMicrotask(() => this.#dispatch(message));
    }
  }

  #parse(datagram: Uint8Array): SadbMessage | undefined {
    try {
      return decodeMessage(datagram, this.#codec);
    } catch (error) {
      this.#report(error);
      return undefined;
    }
  }

  #receive(datagram: Uint8Array): void {
    const message = this.#parse(datagram);
    if (message) this.#dispatch(message);
  }

  #dispatch(message: SadbMessage): void {
    if (message.pid === this.pid) {
      const pending = this.#pending.find(
        (entry) => entry.type === message.type && (entry.dump || entry.seq === message.seq),
      );
      if (pending) {
        this.#answer(pending, message);
        return;
      }
    }
    try {
      this.#onMessage(message);
    } catch (error) {
      this.#report(error);
    }
  }

  #answer(pending: Pending, message: SadbMessage): void {
    if (message.errno) {
      this.#remove(pending);
      if (pending.dump && message.errno === ENOENT) pending.resolve(pending.collected);
      else
        pending.reject(new PfkeyError(message.errno, errnoName(this.flavour, message.errno), pending.what));
      return;
    }
    if (!pending.dump) {
      this.#remove(pending);
      pending.resolve([message]);
      return;
    }
    // A dump's answers carry our request's seq only in an error or a header-only end marker;
    // the entries are numbered by the kernel, the last one 0.
    if (message.extensions.length > 0) pending.collected.push(message);
    if (message.seq === 0 || (message.seq === pending.seq && message.extensions.length === 0)) {
      this.#remove(pending);
      pending.resolve(pending.collected);
    }
  }

  #remove(pending: Pending): void {
    const index = this.#pending.indexOf(pending);
    if (index >= 0) this.#pending.splice(index, 1);
    if (pending.timer) clearTimeout(pending.timer);
  }

  #report(error: unknown): void {
    try {
      this.#onError(error instanceof Error ? error : new Error(String(error)));
    } catch {
      // The error handler failed too: nothing left to tell.
    }
  }

  /** Stops reading, fails what still waits, and closes the socket. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of [...this.#pending]) {
      this.#remove(pending);
      pending.reject(new PfkeyClosedError(`${pending.what}: the PF_KEY channel closed before the answer`));
    }
    try {
      if (this.#watching) this.#native.unwatch(this.#fd);
    } catch (error) {
      this.#report(error);
    }
    try {
      this.#native.close(this.#fd);
    } catch (error) {
      this.#report(error);
    }
  }
}
