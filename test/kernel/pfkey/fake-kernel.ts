/**
 * A fake PF_KEY kernel for backend tests: decodes what the backend writes, keeps SAs, policies
 * and flows the way Linux af_key and OpenBSD pfkeyv2 would, and answers (header echoed with
 * sadb_msg_errno on failure, as both kernels do). Failures can be injected per message type.
 */
import {
  decodeMessage,
  encodeMessage,
  findExtension,
  type SadbExtension,
  type SadbMessage,
} from '../../../src/kernel/pfkey/codec.js';
import type { PfkeyFlavour } from '../../../src/kernel/pfkey/constants.js';
import { FakeNative } from './helpers.js';

export interface FakeSa {
  spi: number;
  src: string;
  dst: string;
  larval: boolean;
  reqid?: number;
  tag?: string;
  message?: SadbMessage;
}

export class FakeKernel {
  readonly native = new FakeNative();
  readonly sent: SadbMessage[] = [];
  readonly sas = new Map<string, FakeSa>();
  readonly policies = new Map<string, { id: number; message: SadbMessage }>();
  readonly flows = new Set<string>();
  /** Policies left by someone (SPDDUMP entries): id and reqids. */
  readonly leftoverPolicies: { id: number; reqid: number }[] = [];
  readonly failures: { type: number; errno: number }[] = [];
  /** The flow an OpenBSD ASKPOLICY answers with. */
  askPolicyAnswer?: SadbExtension[];
  nextSpi = 0xc0000100;
  nextPolicyId = 0x100;

  constructor(readonly flavour: PfkeyFlavour) {
    this.native.responder = (data) => this.#handle(data);
  }

  get esp(): number {
    return this.flavour === 'linux' ? 3 : 2;
  }

  decode(data: Uint8Array): SadbMessage {
    return decodeMessage(data, { flavour: this.flavour, littleEndian: true });
  }

  encode(message: SadbMessage): Uint8Array {
    return encodeMessage(message, { flavour: this.flavour, littleEndian: true });
  }

  /** Types of what the backend sent, in order (SADB numbers). */
  types(): number[] {
    return this.sent.map((message) => message.type);
  }

  fail(type: number, errno: number): void {
    this.failures.push({ type, errno });
  }

  /** A message from the kernel to the backend (ACQUIRE, EXPIRE...). */
  deliver(message: Omit<SadbMessage, 'pid'> & { pid?: number }): void {
    this.native.push(this.encode({ pid: 0, ...message }));
  }

  #reply(
    request: SadbMessage,
    extensions: readonly SadbExtension[] = request.extensions,
    errno = 0,
  ): Uint8Array[] {
    return [this.encode({ ...request, errno, extensions: errno ? [] : extensions })];
  }

  #handle(data: Uint8Array): Uint8Array[] {
    const request = this.decode(data);
    this.sent.push(request);
    const failure = this.failures.findIndex((entry) => entry.type === request.type);
    if (failure >= 0) {
      const [{ errno }] = this.failures.splice(failure, 1) as [{ type: number; errno: number }];
      return this.#reply(request, [], errno);
    }
    const sa = findExtension(request, 'sa');
    const src = findExtension(request, 'address', 'src');
    const dst = findExtension(request, 'address', 'dst');
    const key = (spi: number, to: string) => `${to}/${spi.toString(16)}`;
    const linux = this.flavour === 'linux';
    switch (request.type) {
      case 7: // REGISTER
        return this.#reply(request, [
          {
            kind: 'supported',
            which: 'auth',
            algorithms: [2, 3, 5, 6, 7].map((id) => ({ id, ivlen: 0, minbits: 0, maxbits: 0 })),
          },
          {
            kind: 'supported',
            which: 'encrypt',
            algorithms: (linux ? [3, 12, 13] : [3, 12, 13, 20, 22]).map((id) => ({
              id,
              ivlen: 8,
              minbits: 0,
              maxbits: 0,
            })),
          },
        ]);
      case 1: {
        // GETSPI
        const spi = this.nextSpi++;
        this.sas.set(key(spi, dst!.address), { spi, src: src!.address, dst: dst!.address, larval: true });
        return this.#reply(request, [
          { kind: 'sa', spi, replay: 0, state: 0, auth: 0, encrypt: 0, flags: 0 },
          src!,
          dst!,
        ]);
      }
      case 2: {
        // UPDATE
        const existing = this.sas.get(key(sa!.spi, dst!.address));
        if (!existing?.larval) return this.#reply(request, [], 3);
        this.sas.set(key(sa!.spi, dst!.address), this.#record(request));
        return this.#reply(
          request,
          request.extensions.filter((ext) => ext.kind !== 'key'),
        );
      }
      case 3: {
        // ADD
        if (this.sas.has(key(sa!.spi, dst!.address))) return this.#reply(request, [], 17);
        this.sas.set(key(sa!.spi, dst!.address), this.#record(request));
        return this.#reply(
          request,
          request.extensions.filter((ext) => ext.kind !== 'key'),
        );
      }
      case 4: {
        // DELETE
        if (!this.sas.delete(key(sa!.spi, dst!.address))) return this.#reply(request, [], 3);
        return this.#reply(request);
      }
      case 5: {
        // GET
        const existing = this.sas.get(key(sa!.spi, dst!.address));
        if (!existing) return this.#reply(request, [], 3);
        const counters: SadbExtension[] = linux
          ? [{ kind: 'lifetime', which: 'current', allocations: 5, bytes: 500n, addtime: 0n, usetime: 0n }]
          : [
              { kind: 'lifetime', which: 'current', allocations: 0, bytes: 0n, addtime: 0n, usetime: 0n },
              {
                kind: 'counter',
                ipackets: 7n,
                opackets: 8n,
                ibytes: 700n,
                obytes: 800n,
                idrops: 0n,
                odrops: 0n,
                idecompbytes: 0n,
                ouncompbytes: 0n,
              },
            ];
        return this.#reply(request, [sa!, ...counters, src!, dst!]);
      }
      case 10: {
        // DUMP: every SA, the last one with seq 0.
        const entries = [...this.sas.values()].filter((entry) => entry.message);
        if (entries.length === 0) return this.#reply(request, [], 2);
        return entries.map((entry, i) =>
          this.encode({
            ...entry.message!,
            type: 10,
            seq: i === entries.length - 1 ? 0 : i + 1,
            pid: request.pid,
            extensions: entry.message!.extensions.filter((ext) => ext.kind !== 'key'),
          }),
        );
      }
    }
    if (linux) return this.#linux(request);
    return this.#openbsd(request);
  }

  #record(request: SadbMessage): FakeSa {
    const sa = findExtension(request, 'sa')!;
    const sa2 = findExtension(request, 'sa2');
    const tag = findExtension(request, 'tag');
    return {
      spi: sa.spi,
      src: findExtension(request, 'address', 'src')!.address,
      dst: findExtension(request, 'address', 'dst')!.address,
      larval: false,
      ...(sa2 && { reqid: sa2.reqid }),
      ...(tag && { tag: tag.tag }),
      message: request,
    };
  }

  policyKey(message: SadbMessage): string {
    const src = findExtension(message, 'address', 'src')!;
    const dst = findExtension(message, 'address', 'dst')!;
    const policy = findExtension(message, 'policy')!;
    return `${policy.dir} ${src.address}/${src.prefixlen}:${src.port} ${dst.address}/${dst.prefixlen}:${dst.port} ${src.proto}`;
  }

  #linux(request: SadbMessage): Uint8Array[] {
    switch (request.type) {
      case 14: {
        // SPDADD
        const k = this.policyKey(request);
        if (this.policies.has(k)) return this.#reply(request, [], 17);
        const id = this.nextPolicyId++ * 8 + (findExtension(request, 'policy')!.dir - 1);
        this.policies.set(k, { id, message: request });
        return this.#reply(
          request,
          request.extensions.map((ext) => (ext.kind === 'policy' ? { ...ext, id } : ext)),
        );
      }
      case 15: {
        // SPDDELETE
        if (!this.policies.delete(this.policyKey(request))) return this.#reply(request, [], 2);
        return this.#reply(request);
      }
      case 22: {
        // SPDDELETE2
        const id = findExtension(request, 'policy')!.id;
        const index = this.leftoverPolicies.findIndex((entry) => entry.id === id);
        if (index < 0) return this.#reply(request, [], 2);
        this.leftoverPolicies.splice(index, 1);
        return this.#reply(request);
      }
      case 18: {
        // SPDDUMP
        if (this.leftoverPolicies.length === 0) return this.#reply(request, [], 2);
        return this.leftoverPolicies.map((entry, i) =>
          this.encode({
            ...request,
            seq: i === this.leftoverPolicies.length - 1 ? 0 : i + 1,
            extensions: [
              { kind: 'address', which: 'src', address: '10.9.0.0', port: 0, proto: 255, prefixlen: 16 },
              { kind: 'address', which: 'dst', address: '10.8.0.0', port: 0, proto: 255, prefixlen: 16 },
              {
                kind: 'policy',
                policyType: 2,
                dir: (entry.id & 7) + 1,
                id: entry.id,
                priority: 0,
                requests: [{ proto: 50, mode: 2, level: 3, reqid: entry.reqid }],
              },
            ],
          }),
        );
      }
    }
    return this.#reply(request, [], 95);
  }

  flowKey(message: SadbMessage): string {
    const get = (which: 'srcFlow' | 'srcMask' | 'dstFlow' | 'dstMask') => {
      const ext = findExtension(message, 'address', which)!;
      return `${ext.address}:${ext.port}`;
    };
    const type = findExtension(message, 'protocol', 'flowType')!;
    const proto = findExtension(message, 'protocol', 'protocol');
    return `${type.direction} ${get('srcFlow')}/${get('srcMask')} ${get('dstFlow')}/${get('dstMask')} ${proto?.proto ?? 0}`;
  }

  #openbsd(request: SadbMessage): Uint8Array[] {
    switch (request.type) {
      case 12: // ADDFLOW: OpenBSD replaces an existing flow
        this.flows.add(this.flowKey(request));
        return this.#reply(request);
      case 13:
        if (!this.flows.delete(this.flowKey(request))) return this.#reply(request, [], 3);
        return this.#reply(request);
      case 15:
        if (!this.askPolicyAnswer) return this.#reply(request, [], 2);
        return this.#reply(request, this.askPolicyAnswer);
    }
    return this.#reply(request, [], 45);
  }
}
