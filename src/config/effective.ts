import { isIP } from 'node:net';
import { type DaemonConfig, type KernelBackendName, LOG_SUBSYSTEMS } from './daemon-config.js';
import { type ConnectionSummary, connectionSummary } from './summary.js';

/**
 * What `ike-node check` shows of a checked configuration: every setting in effect, defaults
 * filled in (what an absent key means is written out, not left for the reader to know), in the
 * shape of peers.json where it has one; and what is valid but probably not meant.
 */

export interface EffectiveConfig extends Omit<DaemonConfig, 'metrics' | 'debug' | 'connections'> {
  /** `{ listen: "HOST:PORT" }` as peers.json writes it, or false: no metrics endpoint. */
  readonly metrics: { readonly listen: string } | false;
  /** keyLog false: no key log; coreDumps false: the daemon makes itself non-dumpable. */
  readonly debug: { readonly keyLog: string | false; readonly coreDumps: boolean };
  readonly connections: ConnectionSummary[];
}

export function effectiveConfig(config: DaemonConfig): EffectiveConfig {
  const { metrics, debug, connections, ...rest } = config;
  const { level, subsystems } = config.log;
  return {
    ...rest,
    // A subsystem without its own level logs at the global one.
    log: {
      ...config.log,
      subsystems: Object.fromEntries(LOG_SUBSYSTEMS.map((name) => [name, subsystems[name] ?? level])),
    },
    metrics: metrics ? { listen: `${hostPort(metrics.host)}:${metrics.port}` } : false,
    debug: { keyLog: debug.keyLog ?? false, coreDumps: debug.coreDumps ?? false },
    connections: connections.map(connectionSummary),
  };
}

const hostPort = (host: string) => (isIP(host) === 6 ? `[${host}]` : host);

/** The backends that open netlink, PF_KEY or TUN descriptors through the native shim. */
const NEEDS_SHIM: ReadonlySet<KernelBackendName> = new Set(['xfrm', 'pfkey', 'userspace']);

/** Whether the native shim loads (src/native nativeAvailability), as the caller found out. */
export type ShimAvailability = { available: true } | { available: false; reason: string };

/**
 * Warnings about a valid configuration, each naming the file and key: settings the daemon runs
 * with, but not as the README advises, or that will fail at start on this machine.
 */
export function configWarnings(config: DaemonConfig, shim: ShimAvailability): string[] {
  const warnings: string[] = [];
  const wildcard = wildcardListenWarning(config);
  if (wildcard) warnings.push(wildcard);
  if (NEEDS_SHIM.has(config.kernel) && !shim.available) {
    warnings.push(`${config.file}: kernel: "${config.kernel}" will not start here: ${shim.reason}`);
  }
  return warnings;
}

/** A listen address that is a wildcard (0.0.0.0, ::), which the README advises against, and why. */
export function wildcardListenWarning(config: DaemonConfig): string | undefined {
  const wildcards = config.listen.addresses.filter((address) => address === '0.0.0.0' || address === '::');
  if (!wildcards.length) return undefined;
  return (
    `${config.file}: listen.addresses: ${wildcards.join(' and ')} ${wildcards.length > 1 ? 'are wildcards' : 'is a wildcard'}: ` +
    'Node cannot report which address a datagram arrived on, which NAT detection hashes (a peer then sees a NAT ' +
    "that is not there), and connections without local.address cannot initiate; list this host's own addresses"
  );
}
