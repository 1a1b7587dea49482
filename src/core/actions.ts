import type { Endpoint } from './endpoint.js';
import type { DhJob } from '../crypto/dh-job.js';
import type { EncryptionAlgorithm, IntegrityAlgorithm } from '../crypto/registry.js';
import type { FailureCause } from './failure.js';
import type { ChildSa, IkeSaInfo } from './sa.js';
import type { ConnectionState } from './status.js';

/**
 * What an engine asks the runtime to do. Engines return these from every input and never perform
 * I/O themselves (ARCHITECTURE.md, property 1).
 */
export type Action =
  /** An IKE message. `nonEspMarker`: prefix the four zero bytes (RFC 3948 section 2.2, port 4500). */
  | {
      readonly type: 'send';
      readonly from: Endpoint;
      readonly to: Endpoint;
      readonly data: Uint8Array;
      readonly nonEspMarker: boolean;
    }
  /** A NAT-T keepalive: the single byte 0xff (RFC 3948 section 2.3). */
  | { readonly type: 'keepalive'; readonly from: Endpoint; readonly to: Endpoint }
  | { readonly type: 'install-child'; readonly child: ChildSa }
  /**
   * The inbound SA of a child SA whose negotiation is not finished (KernelBackend.installInbound);
   * an `install-child` of the same child follows, or a `delete-child` if the negotiation fails.
   */
  | { readonly type: 'install-inbound'; readonly child: ChildSa }
  | { readonly type: 'delete-child'; readonly child: ChildSa }
  /**
   * A Diffie-Hellman computation to run off the event loop (IkeEngineOptions.compute 'deferred'):
   * its result goes back in through IkeEngine.computed(id, ...).
   */
  | { readonly type: 'compute'; readonly id: number; readonly job: DhJob }
  /**
   * Reserve an inbound SPI in the kernel for an SA between `remote` and `local` (IkeEngineOptions
   * reserveSpis): the SPI, or the error, goes back in through IkeEngine.spiReserved(id, ...).
   */
  | { readonly type: 'reserve-spi'; readonly id: number; readonly local: string; readonly remote: string }
  | { readonly type: 'event'; readonly event: EngineEvent };

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export type EngineEvent =
  /** An IKE/ISAKMP SA (kind 'ike') or a child SA (kind 'child') negotiation began, either role. */
  | {
      readonly type: 'negotiation-started';
      readonly kind: 'ike' | 'child';
      readonly ikeSa: number;
      readonly connection?: string;
    }
  /** A message was sent again for lack of an answer. */
  | { readonly type: 'retransmit'; readonly ikeSa: number; readonly connection?: string }
  /**
   * The keys that encrypt an IKE SA's messages, only when the runtime asked for them (a debug key
   * log for Wireshark). Never logged: the runtime hands them to the key log writer alone.
   */
  | {
      readonly type: 'ike-keys';
      readonly ikeSa: number;
      readonly version: 1;
      readonly spiI: Uint8Array;
      readonly spiR: Uint8Array;
      readonly encryption: EncryptionAlgorithm;
      readonly encryptionKey: Uint8Array;
    }
  /** IKEv2: SK_e and SK_a of both directions (RFC 7296 2.14); no integrity keys with an AEAD. */
  | {
      readonly type: 'ike-keys';
      readonly ikeSa: number;
      readonly version: 2;
      readonly spiI: Uint8Array;
      readonly spiR: Uint8Array;
      readonly encryption: EncryptionAlgorithm;
      readonly integrity: IntegrityAlgorithm | undefined;
      readonly SK_ei: Uint8Array;
      readonly SK_er: Uint8Array;
      readonly SK_ai: Uint8Array;
      readonly SK_ar: Uint8Array;
    }
  /** `rekeyed`: the id of the IKE SA this one replaces. */
  | { readonly type: 'ike-up'; readonly ikeSa: IkeSaInfo; readonly rekeyed?: number }
  | { readonly type: 'ike-down'; readonly ikeSa: IkeSaInfo; readonly reason: string }
  | { readonly type: 'child-up'; readonly child: ChildSa; readonly rekeyed?: number }
  | { readonly type: 'child-down'; readonly child: ChildSa; readonly reason: string }
  /**
   * A negotiation that failed for good; `connection` when we know which one it was for. `refused`:
   * its first message was refused, so no 'negotiation-started' came before (metrics count it as
   * started too).
   */
  | {
      readonly type: 'failed';
      readonly kind: 'ike' | 'child';
      readonly connection?: string;
      readonly cause: FailureCause;
      readonly reason: string;
      readonly refused?: true;
    }
  /**
   * A connection's status moved (at most once per input: what it was before the input and what it
   * is after). `error` is the reason of an Error status, `cause` its typed cause.
   */
  | {
      readonly type: 'connection';
      readonly connection: string;
      readonly status: ConnectionState;
      readonly previous: ConnectionState;
      readonly error?: string;
      readonly cause?: FailureCause;
    }
  | {
      readonly type: 'log';
      readonly level: LogLevel;
      readonly message: string;
      readonly connection?: string;
      readonly ikeSa?: number;
    };
