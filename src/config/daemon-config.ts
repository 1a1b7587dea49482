import type { LogLevel } from '../core/actions.js';
import type { Connection } from '../core/connection.js';
import type { ProviderName } from '../crypto/provider.js';

/** The checked, normalised peers.json the daemon runs from. */

export type KernelBackendName = 'memory' | 'xfrm' | 'pfkey' | 'userspace';
export type { LogLevel };
export type LogFormat = 'text' | 'json';
export type LogSubsystem = 'ike' | 'cfg' | 'net' | 'knl' | 'crypto' | 'ctl';

export const KERNELS: readonly KernelBackendName[] = ['memory', 'xfrm', 'pfkey', 'userspace'];
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];
export const LOG_SUBSYSTEMS: readonly LogSubsystem[] = ['ike', 'cfg', 'net', 'knl', 'crypto', 'ctl'];

export interface DaemonConfig {
  readonly file: string;
  readonly listen: { readonly addresses: string[]; readonly port: number; readonly natPort: number };
  readonly kernel: KernelBackendName;
  readonly crypto: ProviderName;
  /** Threads for Diffie-Hellman off the event loop; 'auto': one per CPU when there are two or more. */
  readonly workers: number | 'auto';
  readonly control: { readonly socket: string };
  readonly log: {
    readonly level: LogLevel;
    readonly format: LogFormat;
    readonly subsystems: Partial<Record<LogSubsystem, LogLevel>>;
  };
  /** Where to serve metrics; absent: no metrics endpoint. */
  readonly metrics?: { readonly host: string; readonly port: number };
  /** keyLog: a directory for Wireshark's key tables, absolute (resolved against the configuration file's directory). */
  readonly debug: { readonly keyLog?: string; readonly coreDumps?: boolean };
  /** The ESP data plane: anti-replay window (packets), the userspace backend's TUN name and MTU. */
  readonly dataPlane: { readonly replayWindow: number; readonly tun: string; readonly mtu: number };
  /** Seconds before the first resend, the factor each resend multiplies it by, and resends before giving up. */
  readonly retransmit: { readonly timeout: number; readonly backoff: number; readonly tries: number };
  /**
   * IKE message handling: the largest IP datagram an IKE message may fill before it is sent in
   * fragments (RFC 7383, when the peer supports them), and the half-open IKEv2 SAs above which a
   * responder asks for cookies (RFC 7296 2.6; 0: always); the half-open IKE SAs (responders not
   * yet authenticated) kept at most, in all and per peer address.
   */
  readonly ike: {
    readonly fragmentSize: number;
    readonly cookieThreshold: number;
    readonly maxHalfOpen: number;
    readonly maxHalfOpenPerAddress: number;
  };
  readonly connections: Connection[];
}

/** What an absent key means (the schema's `default`s say the same, and a test holds them to it). */
export const CONFIG_DEFAULTS = {
  listen: { addresses: ['0.0.0.0'], port: 500, natPort: 4500 },
  kernel: 'memory',
  crypto: 'node',
  workers: 'auto',
  control: { socket: '/run/ike-node/ike-node.sock' },
  log: { level: 'info', format: 'text', subsystems: {} },
  debug: {},
  dataPlane: { replayWindow: 64, tun: 'ike-node0', mtu: 1400 },
  retransmit: { timeout: 2, backoff: 1.8, tries: 5 },
  ike: { fragmentSize: 1280, cookieThreshold: 100, maxHalfOpen: 1024, maxHalfOpenPerAddress: 128 },
} as const;
