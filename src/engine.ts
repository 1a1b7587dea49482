import { IkeEngine, type IkeEngineOptions } from './core/engine.js';
import type { IkeProtocol } from './core/protocol.js';
import { Ikev1Protocol } from './ikev1/protocol.js';
import { type CookiePolicy, Ikev2Protocol } from './ikev2/protocol.js';

/**
 * The engine with every protocol module ike-node has: what the daemon runs, and what a program
 * that brings its own I/O uses. The core (src/core/engine.ts) imports no protocol module; this is
 * where they meet.
 */
export function protocolModules(options: ProtocolOptions = {}): IkeProtocol[] {
  return [new Ikev1Protocol(), new Ikev2Protocol(options.ikev2)];
}

/** What the protocol modules can be told. */
export interface ProtocolOptions {
  readonly ikev2?: { readonly cookies?: CookiePolicy };
}

export type EngineOptions = Omit<IkeEngineOptions, 'protocols'> &
  ProtocolOptions & {
    readonly protocols?: readonly IkeProtocol[];
  };

export function createEngine(options: EngineOptions): IkeEngine {
  return new IkeEngine({ ...options, protocols: options.protocols ?? protocolModules(options) });
}
