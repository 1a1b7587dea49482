/**
 * ike-node as a library. The usual way in is createNode(config): the same engine, sockets and
 * kernel backends as the daemon, with typed events. Below it, everything a program that brings
 * its own I/O needs: the sans-I/O engine, configuration checking, kernel backends, the
 * status model and the crypto layer.
 */

// A node: configuration object (PeersConfig, the type of peers.json) in, events, outcomes and status out.
export { createNode, IkeNode, type NodeOptions } from './daemon/node.js';
export {
  DEFAULT_OUTCOME_TIMEOUT,
  type Outcome,
  type OutcomeOptions,
  type OutcomeState,
} from './daemon/outcome.js';
export type * from './config/peers-config.js';
export { Daemon, type DaemonOptions, type ReloadResult } from './daemon/daemon.js';
export type { DaemonEvent, DaemonEventMap, DaemonEventType, SaChange } from './daemon/events.js';
export { Logger, type LoggerOptions, type LogLine, type LogFormat, type Subsystem } from './daemon/logger.js';

// Configuration.
export {
  CONFIG_DEFAULTS,
  ConfigError,
  ConfigErrors,
  connectionSummary,
  type DaemonConfig,
  loadConfig,
  parseConfig,
} from './config/index.js';

// The status model: Active, Pending, Down, Error.
export type {
  ChildSaStatus,
  ConnectionState,
  ConnectionStatus,
  IkeSaStatus,
  TrafficCounters,
} from './core/status.js';

// Sans-I/O: bring your own sockets and timers.
export { createEngine, type EngineOptions, protocolModules } from './engine.js';
export { IkeEngine, type IkeEngineOptions } from './core/engine.js';
export type { IkeProtocol, ProtocolContext } from './core/protocol.js';
export type { Failure, FailureCause } from './core/failure.js';
export type { Action, EngineEvent } from './core/actions.js';
export type { Connection, IkePolicy, IpsecPolicy, Identity } from './core/connection.js';
export type { ChildSa, ChildSaKeys, IkeSaInfo } from './core/sa.js';
export type { Endpoint } from './core/endpoint.js';
export { CommandError } from './core/command-error.js';

// Kernel backends.
export type { KernelBackend } from './kernel/backend.js';
export { MemoryBackend } from './kernel/memory.js';

// The crypto layer: providers, registry, Diffie-Hellman, key derivation.
export * from './crypto/index.js';
export { VERSION } from './version.js';
