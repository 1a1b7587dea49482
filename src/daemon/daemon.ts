import type { Server } from 'node:net';
import type { Action } from '../core/actions.js';
import { CommandError } from '../core/command-error.js';
import type { ConnectionStatus } from '../core/status.js';
import type { DaemonConfig } from '../config/index.js';
import { createCryptoProvider } from '../crypto/providers/index.js';
import { Ikev1Engine } from '../ikev1/engine.js';
import type { KernelBackend } from '../kernel/backend.js';
import { MemoryBackend } from '../kernel/memory.js';
import { type Received, UdpEndpoints } from '../net/udp.js';
import { type ControlRequest, listenControl } from './control.js';
import { Logger } from './logger.js';

/**
 * The runtime: feeds datagrams, timer ticks and commands to the engine and carries out the
 * actions it returns through the sockets and the kernel backend. The only place with a clock.
 */

export interface DaemonOptions {
  readonly logger?: Logger;
  /** Seconds; wall-clock by default, so status times read as Unix times. */
  readonly clock?: () => number;
}

export class Daemon {
  readonly engine: Ikev1Engine;
  readonly kernel: KernelBackend;
  readonly logger: Logger;
  readonly #config: DaemonConfig;
  readonly #clock: () => number;
  #udp: UdpEndpoints | undefined;
  #control: Server | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopping = false;

  constructor(config: DaemonConfig, options: DaemonOptions = {}) {
    this.#config = config;
    this.#clock = options.clock ?? (() => Date.now() / 1000);
    this.logger = options.logger ?? new Logger(config.log.level);
    if (config.kernel !== 'memory')
      throw new Error(
        `${config.file}: kernel: backend '${config.kernel}' is not available yet (use "memory")`,
      );
    this.kernel = new MemoryBackend();
    const explicit = config.listen.addresses.find((address) => address !== '0.0.0.0' && address !== '::');
    this.engine = new Ikev1Engine({
      crypto: createCryptoProvider(config.crypto),
      connections: config.connections,
      port: config.listen.port,
      natPort: config.listen.natPort,
      ...(explicit && { defaultLocalAddress: explicit }),
    });
  }

  async start(): Promise<void> {
    const { listen } = this.#config;
    this.#udp = await UdpEndpoints.open({
      addresses: listen.addresses,
      port: listen.port,
      natPort: listen.natPort,
      onReceive: (received) => this.#receive(received),
      onError: (message) => this.logger.log({ level: 'warn', subsystem: 'net', message }),
    });
    this.logger.log({
      level: 'info',
      subsystem: 'net',
      message: `listening on ${listen.addresses.join(', ')} ports ${listen.port} and ${listen.natPort}`,
    });
    this.#control = await listenControl(this.#config.control.socket, (request) => this.#command(request));
    this.logger.log({
      level: 'info',
      subsystem: 'ctl',
      message: `control socket ${this.#config.control.socket}`,
    });
    for (const connection of this.#config.connections) {
      if (connection.start === 'initiate') this.#initiateAtStart(connection.name);
    }
    this.#arm();
  }

  #initiateAtStart(name: string): void {
    try {
      this.#apply(this.engine.initiate(name, this.#clock()));
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      this.logger.log({ level: 'error', subsystem: 'cfg', connection: name, message: error.message });
    }
  }

  status(): ConnectionStatus[] {
    return this.engine.status();
  }

  /** Sends Deletes for everything, removes what was installed, closes the sockets. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearTimeout(this.#timer);
    this.#apply(this.engine.shutdown(this.#clock()));
    await this.#udp?.close(); // after the Deletes have left
    await new Promise<void>((resolve) => (this.#control ? this.#control.close(() => resolve()) : resolve()));
    await this.kernel.close();
    this.logger.log({ level: 'info', subsystem: 'ike', message: 'stopped' });
  }

  #receive(received: Received): void {
    if (this.#stopping) return;
    if (received.kind === 'esp') {
      this.logger.log({
        level: 'debug',
        subsystem: 'net',
        message: `ESP in UDP from ${received.remote.address}:${received.remote.port} dropped: the memory backend does not process ESP`,
      });
      return;
    }
    if (received.kind === 'keepalive') return;
    this.#apply(this.engine.receive(received.data, received.local, received.remote, this.#clock()));
    this.#arm();
  }

  async #command(request: ControlRequest): Promise<unknown> {
    const name = typeof request['name'] === 'string' ? request['name'] : undefined;
    switch (request.command) {
      case 'status':
        return this.status();
      case 'initiate':
      case 'terminate': {
        if (!name) throw new Error(`${request.command} needs a connection name`);
        const now = this.#clock();
        this.#apply(
          request.command === 'initiate' ? this.engine.initiate(name, now) : this.engine.terminate(name, now),
        );
        this.#arm();
        return { done: true };
      }
      default:
        throw new Error(`unknown command '${request.command}'`);
    }
  }

  #apply(actions: readonly Action[]): void {
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          this.#udp?.send(action.from, action.to, action.data, action.nonEspMarker);
          break;
        case 'keepalive':
          this.#udp?.send(action.from, action.to, Uint8Array.of(0xff), false);
          break;
        case 'install-child':
          void this.kernel.install(action.child).catch((error: Error) => this.#kernelError(error));
          break;
        case 'delete-child':
          void this.kernel.remove(action.child).catch((error: Error) => this.#kernelError(error));
          break;
        case 'event':
          this.logger.event(action.event);
          break;
      }
    }
  }

  #kernelError(error: Error): void {
    this.logger.log({ level: 'error', subsystem: 'knl', message: error.message });
  }

  /** One timer for the engine's next deadline. */
  #arm(): void {
    clearTimeout(this.#timer);
    if (this.#stopping) return;
    const next = this.engine.nextTimeout();
    if (next === undefined) return;
    const delay = Math.max(0, Math.min((next - this.#clock()) * 1000, 2 ** 31 - 1));
    this.#timer = setTimeout(() => {
      this.#apply(this.engine.tick(this.#clock()));
      this.#arm();
    }, delay);
  }
}
