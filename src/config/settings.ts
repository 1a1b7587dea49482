import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { formatAddress, parseAddress } from '../core/address.js';
import { PROVIDER_NAMES } from '../crypto/providers/index.js';
import type { Cursor } from './cursor.js';
import {
  CONFIG_DEFAULTS,
  type DaemonConfig,
  KERNELS,
  LOG_FORMATS,
  LOG_LEVELS,
  LOG_SUBSYSTEMS,
  type LogLevel,
  type LogSubsystem,
} from './daemon-config.js';

/**
 * The daemon's own settings: listen, kernel, crypto, workers, control, log, metrics, debug,
 * dataPlane, retransmit, ike.
 * Types and ranges are the schema's; what is left here is what a schema cannot say (addresses,
 * two ports that must differ) and the defaults.
 */

export type Settings = Omit<DaemonConfig, 'file' | 'connections'>;

/** As read: `listen` is undefined when it is broken (connections are checked against it). */
export type ReadSettings = Omit<Settings, 'listen'> & { readonly listen: Settings['listen'] | undefined };

export function readSettings(root: Cursor, file: string): ReadSettings {
  const socket = root.key('control').key('socket');
  return {
    listen: readListen(root.key('listen')),
    kernel: withDefault(root.key('kernel'), (at) => at.choice(KERNELS), CONFIG_DEFAULTS.kernel),
    crypto: readCryptoName(root),
    workers: readWorkers(root.key('workers')),
    control: { socket: withDefault(socket, (at) => at.string(), CONFIG_DEFAULTS.control.socket) },
    log: readLog(root.key('log')),
    ...withMetrics(root.key('metrics')),
    debug: readDebug(root.key('debug'), file),
    dataPlane: readDataPlane(root.key('dataPlane')),
    retransmit: readRetransmit(root.key('retransmit')),
    ike: readIke(root.key('ike')),
  };
}

export function readCryptoName(root: Cursor): Settings['crypto'] {
  return withDefault(root.key('crypto'), (at) => at.choice(PROVIDER_NAMES), CONFIG_DEFAULTS.crypto);
}

function readWorkers(at: Cursor): Settings['workers'] {
  if (!at.present || !at.valid) return CONFIG_DEFAULTS.workers;
  return at.value === 'auto' ? 'auto' : (at.number() ?? CONFIG_DEFAULTS.workers);
}

/** The value at `at` read by `read`, or `fallback` when absent (or rejected: that is reported). */
function withDefault<T>(at: Cursor, read: (at: Cursor) => T | undefined, fallback: T): T {
  return (at.present ? read(at) : undefined) ?? fallback;
}

function readListen(at: Cursor): Settings['listen'] | undefined {
  const defaults = CONFIG_DEFAULTS.listen;
  const addressesAt = at.key('addresses');
  let addresses: string[] | undefined = [...defaults.addresses];
  if (addressesAt.present) {
    addresses = addressesAt.valid ? [] : undefined;
    for (const item of addressesAt.items()) {
      const text = item.string();
      if (text === undefined || !isIP(text)) {
        item.fail();
        addresses = undefined;
        continue;
      }
      const address = formatAddress(parseAddress(text));
      if (addresses?.includes(address)) item.fail('each address once', JSON.stringify(text));
      addresses?.push(address);
    }
  }
  const portAt = at.key('port');
  const natPortAt = at.key('natPort');
  // Undefined when rejected, so that a broken port is not compared in its default's place.
  const port = portAt.present ? portAt.number() : defaults.port;
  const natPort = natPortAt.present ? natPortAt.number() : defaults.natPort;
  if (port !== undefined && port === natPort) {
    (natPortAt.present ? natPortAt : portAt).fail('different ports for port and natPort', String(port));
  }
  if (!addresses || port === undefined || natPort === undefined) return undefined;
  return { addresses, port, natPort };
}

function readLog(at: Cursor): Settings['log'] {
  const defaults = CONFIG_DEFAULTS.log;
  const level = (c: Cursor) => c.choice(LOG_LEVELS);
  const subsystems: Partial<Record<LogSubsystem, LogLevel>> = {};
  const subsystemsAt = at.key('subsystems');
  for (const name of LOG_SUBSYSTEMS) {
    const value = level(subsystemsAt.key(name));
    if (value !== undefined) subsystems[name] = value;
  }
  return {
    level: withDefault(at.key('level'), level, defaults.level),
    format: withDefault(at.key('format'), (c) => c.choice(LOG_FORMATS), defaults.format),
    subsystems,
  };
}

/** `{ metrics }` when configured, `{}` when not (no metrics endpoint). */
function withMetrics(at: Cursor): { metrics?: NonNullable<Settings['metrics']> } {
  const listenAt = at.key('listen');
  const text = listenAt.string();
  if (text === undefined) return {};
  const match = /^\[(.+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const host = match?.[1] ?? '';
  const port = Number(match?.[2]);
  // Brackets go with IPv6 and only with IPv6, as in URLs.
  const family = text.startsWith('[') ? 6 : 4;
  if (isIP(host) !== family || !(port >= 1 && port <= 65535)) return listenAt.fail() ?? {};
  return { metrics: { host: formatAddress(parseAddress(host)), port } };
}

function readDebug(at: Cursor, file: string): Settings['debug'] {
  const keyLog = at.key('keyLog').string();
  const coreDumps = at.key('coreDumps').choice([true, false]);
  return {
    ...(keyLog !== undefined && { keyLog: resolve(dirname(file), keyLog) }),
    ...(coreDumps && { coreDumps }),
  };
}

function readDataPlane(at: Cursor): Settings['dataPlane'] {
  const defaults = CONFIG_DEFAULTS.dataPlane;
  return {
    replayWindow: withDefault(at.key('replayWindow'), (c) => c.number(), defaults.replayWindow),
    tun: withDefault(at.key('tun'), (c) => c.string(), defaults.tun),
    mtu: withDefault(at.key('mtu'), (c) => c.number(), defaults.mtu),
  };
}

function readRetransmit(at: Cursor): Settings['retransmit'] {
  const defaults = CONFIG_DEFAULTS.retransmit;
  const read = (key: keyof Settings['retransmit']) =>
    withDefault(at.key(key), (c) => c.number(), defaults[key]);
  return { timeout: read('timeout'), backoff: read('backoff'), tries: read('tries') };
}

function readIke(at: Cursor): Settings['ike'] {
  const defaults = CONFIG_DEFAULTS.ike;
  const read = (key: keyof Settings['ike']) => withDefault(at.key(key), (c) => c.number(), defaults[key]);
  return {
    fragmentSize: read('fragmentSize'),
    cookieThreshold: read('cookieThreshold'),
    maxHalfOpen: read('maxHalfOpen'),
    maxHalfOpenPerAddress: read('maxHalfOpenPerAddress'),
  };
}
