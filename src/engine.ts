import { IkeEngine, type IkeEngineOptions } from './core/engine.js';
import type { IkeProtocol } from './core/protocol.js';
import { Ikev1Protocol } from './ikev1/protocol.js';
import { Ikev2Protocol } from './ikev2/protocol.js';

/**
 * The engine with every protocol module ike-node has: what the daemon runs, and what a program
 * that brings its own I/O uses. The core (src/core/engine.ts) imports no protocol module; this is
 * where they meet.
 */
export function protocolModules(): IkeProtocol[] {
  return [new Ikev1Protocol(), new Ikev2Protocol()];
}

export type EngineOptions = Omit<IkeEngineOptions, 'protocols'> & {
  readonly protocols?: readonly IkeProtocol[];
};

export function createEngine(options: EngineOptions): IkeEngine {
  return new IkeEngine({ ...options, protocols: options.protocols ?? protocolModules() });
}
