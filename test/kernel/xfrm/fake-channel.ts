import type { KernelBackendHost, KernelEvent } from '../../../src/kernel/backend.js';
import {
  NetlinkError,
  type NetlinkChannel,
  type NetlinkMessage,
  type NetlinkSubscription,
} from '../../../src/kernel/netlink/message.js';

export interface SentRequest {
  readonly type: number;
  readonly flags: number;
  readonly payload: Uint8Array;
  readonly what: string;
  readonly sync: boolean;
}

/** What the fake kernel answers: messages, or an errno name for a negative acknowledgement. */
export type FakeAnswer = NetlinkMessage[] | { errno: number; code: string };

/** A NetlinkChannel that records requests and answers them from `answer` (default: a plain ack). */
export class FakeChannel implements NetlinkChannel {
  readonly sent: SentRequest[] = [];
  closed = false;
  answer: (request: SentRequest) => FakeAnswer = () => [];

  #reply(request: SentRequest): NetlinkMessage[] {
    this.sent.push(request);
    const answer = this.answer(request);
    if (Array.isArray(answer)) return answer;
    throw new NetlinkError(answer.errno, answer.code, this.sent.length, request.what);
  }

  async request(type: number, flags: number, payload: Uint8Array, what: string): Promise<NetlinkMessage[]> {
    return this.#reply({ type, flags, payload: payload.slice(), what, sync: false });
  }

  requestSync(type: number, flags: number, payload: Uint8Array, what: string): NetlinkMessage[] {
    return this.#reply({ type, flags, payload: payload.slice(), what, sync: true });
  }

  close(): void {
    this.closed = true;
  }

  /** Sent requests as "type" numbers, for quick sequence checks. */
  types(): number[] {
    return this.sent.map((r) => r.type);
  }

  clear(): void {
    this.sent.length = 0;
  }
}

export class FakeSubscription implements NetlinkSubscription {
  #messages: ((messages: NetlinkMessage[]) => void)[] = [];
  #errors: ((error: Error & { code?: string }) => void)[] = [];
  closed = false;
  onMessages(listener: (messages: NetlinkMessage[]) => void): void {
    this.#messages.push(listener);
  }
  onError(listener: (error: Error & { code?: string }) => void): void {
    this.#errors.push(listener);
  }
  emit(...messages: NetlinkMessage[]): void {
    for (const listener of this.#messages) listener(messages);
  }
  fail(error: Error & { code?: string }): void {
    for (const listener of this.#errors) listener(error);
  }
  close(): void {
    this.closed = true;
  }
}

export class RecordingHost implements KernelBackendHost {
  readonly events: KernelEvent[] = [];
  readonly logs: { level: string; message: string }[] = [];
  onEvent(event: KernelEvent): void {
    this.events.push(event);
  }
  log(level: 'error' | 'warn' | 'info' | 'debug', message: string): void {
    this.logs.push({ level, message });
  }
  messages(level?: string): string[] {
    return this.logs.filter((l) => level === undefined || l.level === level).map((l) => l.message);
  }
}

export function nlmsg(type: number, payload: Uint8Array): NetlinkMessage {
  return { type, flags: 0, seq: 0, pid: 0, payload };
}
