import { EventEmitter } from 'node:events';
import type { Action } from '../core/actions.js';
import { CommandError } from '../core/command-error.js';
import { type Connection, type ConnectionDiff, diffConnections } from '../core/connection.js';
import { heldBack, RateLimitedLog } from '../core/rate-limited-log.js';
import { formatEndpoint } from '../core/endpoint.js';
import type { ConnectionStatus } from '../core/status.js';
import type { ChildSa } from '../core/sa.js';
import { connectionSummary, type ConnectionSummary, type DaemonConfig, loadConfig } from '../config/index.js';
import type { CryptoProvider } from '../crypto/provider.js';
import { createCryptoProvider } from '../crypto/providers/index.js';
import type { IkeEngine } from '../core/engine.js';
import { createEngine } from '../engine.js';
import type { KernelBackend, KernelBackendHost } from '../kernel/backend.js';
import { MemoryBackend } from '../kernel/memory.js';
import { openKernelBackend } from '../kernel/open.js';
import { trapPolicy } from '../kernel/trap.js';
import { socketFd } from '../native/dgram-fd.js';
import { loadNative, type Native, type NativeError } from '../native/index.js';
import { type Received, UdpEndpoints } from '../net/udp.js';
import {
  type ControlLimits,
  type ControlRequest,
  type ControlServer,
  type ControlSession,
  listenControl,
} from './control.js';
import { type ControlLock, lockControlSocket } from './control-lock.js';
import { type DaemonEvent, type DaemonEventBody, type DaemonEventMap, fromEngineEvent } from './events.js';
import { autoWorkers, ComputePool } from './compute-pool.js';
import { refuseCoreDumps } from './core-dumps.js';
import { DeadlineTimer } from './deadline-timer.js';
import {
  FIRST_MESSAGE_QUEUE,
  FIRST_MESSAGES_PER_TURN,
  FirstMessageQueue,
  type FirstMessageStats,
  isUnprovenFirstMessage,
} from './first-messages.js';
import { KeyLog } from './keylog.js';
import { Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { awaitOutcome, type Goal, type Outcome, type OutcomeOptions } from './outcome.js';

/**
 * The runtime: feeds datagrams, timer ticks and commands to the engine and carries out the
 * actions it returns through the sockets and the kernel backend. The only place with a clock.
 * It emits DaemonEvents (each under its type and under 'event').
 */

export interface DaemonOptions {
  readonly logger?: Logger;
  /** Seconds; wall-clock by default, so status times read as Unix times. */
  readonly clock?: () => number;
  /** A backend of the embedder's own (instead of the one the config names). */
  readonly kernel?: KernelBackend;
  /** A crypto provider of the embedder's own (instead of the one the config names). */
  readonly crypto?: CryptoProvider;
  /** Serve the control socket (default true; the library leaves it off unless configured). */
  readonly control?: boolean;
  /** Bounds of the control socket (CONTROL_LIMITS by default). */
  readonly controlLimits?: Partial<ControlLimits>;
  /** Told of every negotiation started (IKE or child SA, either role): the CLI's HeapMode. */
  readonly load?: { negotiationStarted(): void };
}

/** What a reload did, by connection name. */
export interface ReloadResult extends ConnectionDiff {
  /** Settings that only a restart applies (listen addresses, kernel backend...). */
  readonly needsRestart: string[];
}

export class Daemon extends EventEmitter<DaemonEventMap> {
  readonly engine: IkeEngine;
  /** Memory or the embedder's backend from the start; a kernel backend once start() opened it. */
  #kernel: KernelBackend | undefined;
  readonly logger: Logger;
  #config: DaemonConfig;
  readonly #clock: () => number;
  #udp: UdpEndpoints | undefined;
  #control: ControlServer | undefined;
  /** Held from the start to the stop: one daemon per control socket. */
  #controlLock: ControlLock | undefined;
  readonly #controlLimits: Partial<ControlLimits>;
  /** Armed after every input (deadline-timer.ts). */
  readonly #deadlines: DeadlineTimer;
  #stopping = false;
  /** Aborted at stop(): initiates and terminates still waiting settle as 'down'. */
  readonly #waits = new AbortController();
  /** `debug.keyLog`: the only place keys go. */
  readonly #keyLog: KeyLog | undefined;
  #metrics: Metrics | undefined;
  readonly #serveControl: boolean;
  readonly #load: DaemonOptions['load'];
  readonly #crypto: CryptoProvider;
  /** Threads for Diffie-Hellman; none (inline) with an embedder's own provider, which cannot move. */
  readonly #workers: number;
  #pool: ComputePool | undefined;
  /** The one listen address connections without local.address use (none with wildcards only). */
  readonly #localDefault: string | undefined;
  /** First messages wait here while the messages of exchanges under way go first (first-messages.ts). */
  readonly #firstMessages = new FirstMessageQueue<Received>({
    capacity: FIRST_MESSAGE_QUEUE,
    perTurn: FIRST_MESSAGES_PER_TURN,
    deliver: (received) => this.#toEngine(received),
  });

  constructor(config: DaemonConfig, options: DaemonOptions = {}) {
    super();
    this.#config = config;
    this.#clock = options.clock ?? (() => Date.now() / 1000);
    this.logger = options.logger ?? new Logger(config.log);
    this.#kernel = options.kernel ?? (config.kernel === 'memory' ? new MemoryBackend() : undefined);
    this.#serveControl = options.control ?? true;
    this.#controlLimits = options.controlLimits ?? {};
    this.#load = options.load;
    this.#localDefault = config.listen.addresses.find((address) => address !== '0.0.0.0' && address !== '::');
    this.#keyLog = config.debug.keyLog === undefined ? undefined : new KeyLog(config.debug.keyLog);
    this.#crypto = options.crypto ?? createCryptoProvider(config.crypto);
    this.#workers = options.crypto ? 0 : config.workers === 'auto' ? autoWorkers() : config.workers;
    this.engine = createEngine({
      compute: this.#workers > 0 ? 'deferred' : 'inline',
      logLevel: this.logger.levelOf('ike'),
      crypto: this.#crypto,
      connections: config.connections,
      retransmit: config.retransmit,
      port: config.listen.port,
      natPort: config.listen.natPort,
      ...(this.#localDefault && { defaultLocalAddress: this.#localDefault }),
      exportKeys: this.#keyLog !== undefined,
      fragmentSize: config.ike.fragmentSize,
      maxHalfOpen: config.ike.maxHalfOpen,
      maxHalfOpenPerAddress: config.ike.maxHalfOpenPerAddress,
      ikev2: { cookies: { threshold: config.ike.cookieThreshold } },
    });
    this.#deadlines = new DeadlineTimer(
      this.engine,
      () => this.#clock(),
      (actions) => this.#apply(actions),
    );
  }

  /** Keys stay out of core dumps unless debug.coreDumps says otherwise; a failure is only logged. */
  #refuseCoreDumps(): void {
    const outcome = refuseCoreDumps();
    this.logger.log(
      outcome.done
        ? { level: 'debug', subsystem: 'crypto', message: 'non-dumpable: no core dump will hold keys' }
        : {
            level: 'warn',
            subsystem: 'crypto',
            message: `could not make the daemon non-dumpable, a core dump would hold its keys (LimitCORE=0 prevents one): ${outcome.reason}`,
          },
    );
  }

  get kernel(): KernelBackend {
    if (!this.#kernel) throw new Error(`the ${this.#config.kernel} kernel backend opens at start()`);
    return this.#kernel;
  }

  /** Opens everything; on a failure what was already opened is closed again before the error. */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (error) {
      await this.stop().catch(() => {});
      throw error;
    }
  }

  async #start(): Promise<void> {
    const { listen, metrics } = this.#config;
    // First of all, before the kernel above all: a second daemon must not touch the first's SAs.
    if (this.#serveControl) this.#controlLock = lockControlSocket(this.#config.control.socket);
    if (!this.#config.debug.coreDumps) this.#refuseCoreDumps();
    if (this.#keyLog) {
      this.#keyLog.open(); // before any negotiation; a key log that cannot be written fails the start
      this.logger.log({
        level: 'warn',
        subsystem: 'crypto',
        message: `debug.keyLog is set: IKE and ESP keys are written to ${this.#keyLog.dir}`,
      });
    }
    // First of the listeners: a metrics port in use then fails the start with nothing else open.
    if (metrics) {
      this.#metrics = new Metrics(this);
      const bound = await this.#metrics.listen(metrics.host, metrics.port).catch((error: Error) => {
        // Metrics.listen says what and why (the errno code kept); this names the file and key.
        throw Object.assign(new Error(`${this.#config.file}: metrics.listen: ${error.message}`), {
          cause: error,
          code: (error as NodeJS.ErrnoException).code,
        });
      });
      this.logger.log({
        level: 'info',
        subsystem: 'ctl',
        message: `metrics on http://${formatEndpoint(bound)}/metrics`,
      });
    }
    if (this.#workers > 0) this.#pool = new ComputePool(this.#workers, this.#config.crypto);
    this.logger.log({
      level: 'info',
      subsystem: 'crypto',
      message: this.#pool
        ? `Diffie-Hellman on ${this.#pool.size} worker thread${this.#pool.size === 1 ? '' : 's'}`
        : 'Diffie-Hellman on the event loop (no worker threads)',
    });
    // The kernel before the sockets: the sockets need its bypass policies and UDP_ENCAP.
    this.#kernel ??= await openKernelBackend(this.#config.kernel, {
      dataPlane: this.#config.dataPlane,
      crypto: this.#crypto,
      host: this.#kernelHost(),
    });
    // What the backend is, not what its name suggests, decides whether ESP must go in UDP.
    this.engine.useKernel({
      forceEncapsulation: this.#kernel.forcesUdpEncapsulation === true,
      reservesSpis: this.#kernel.reserveSpi !== undefined,
    });
    const native = this.#batchReader();
    this.#udp = await UdpEndpoints.open({
      addresses: listen.addresses,
      port: listen.port,
      natPort: listen.natPort,
      onReceive: (received) => this.#receive(received),
      onError: (message) => this.logger.log({ level: 'warn', subsystem: 'net', message }),
      ...(native && { native }),
    });
    for (const socket of this.#udp.sockets())
      this.kernel.configureSocket?.(socketFd(socket.socket), socket.family, socket.natPort);
    this.logger.log({
      level: 'info',
      subsystem: 'net',
      message: `listening on ${listen.addresses.join(', ')} ports ${listen.port} and ${listen.natPort}`,
    });
    if (this.#serveControl) {
      this.#control = await listenControl(
        this.#config.control.socket,
        (request, session) => this.#command(request, session),
        this.#controlLimits,
      );
      this.logger.log({
        level: 'info',
        subsystem: 'ctl',
        message: `control socket ${this.#config.control.socket}`,
      });
    }
    for (const connection of this.#config.connections)
      if (connection.start === 'initiate') this.#initiateAtStart(connection.name);
    await this.#retrap([], this.#config.connections);
    this.#deadlines.arm();
  }

  /** A connection that starts on traffic: trap policies, or (a backend without them) initiate now. */
  async #trap(connection: Connection): Promise<void> {
    if (!this.kernel.trap) {
      this.logger.log({
        level: 'warn',
        subsystem: 'knl',
        connection: connection.name,
        message: `the ${this.kernel.name} backend has no trap policies: initiating at start instead of on traffic`,
      });
      this.#initiateAtStart(connection.name);
      return;
    }
    await this.kernel.trap(trapPolicy(connection, this.#localDefault ?? '0.0.0.0'));
  }

  /** What a kernel backend may ask of the runtime. */
  #kernelHost(): KernelBackendHost {
    return {
      onEvent: (event) => {
        if (this.#stopping) return;
        this.#apply(this.engine.kernelEvent(event, this.#clock()));
        this.#deadlines.arm();
      },
      log: (level, message) => this.logger.log({ level, subsystem: 'knl', message }),
      sendDatagram: (from, to, data) => this.#udp?.send(from, to, data, false),
      ...(this.#config.kernel === 'userspace' && { sendDatagrams: this.#sendDatagrams() }),
    };
  }

  /**
   * The shim, for the IKE sockets to be read in batches (UdpOptions.native): bursts of handshakes,
   * and the userspace data plane's ESP in UDP. Without it (no compiler at install), node:dgram
   * reads them, a datagram at a time.
   */
  #batchReader(): Native | undefined {
    try {
      return loadNative();
    } catch {
      return undefined;
    }
  }

  /**
   * ESP in UDP in batches, straight through the IKE socket's descriptor (sendmmsg): the userspace
   * data plane's hot path. A full socket buffer drops the rest, as a router would.
   */
  #sendDatagrams(): KernelBackendHost['sendDatagrams'] {
    const native = loadNative();
    const failures = new RateLimitedLog(10_000);
    // Looked up once per socket, not per batch: this is the hot path.
    const fds = new WeakMap<object, number>();
    return (from, to, datagrams) => {
      const socket = this.#udp?.socketFor(from);
      if (!socket) return;
      let fd = fds.get(socket);
      if (fd === undefined) fds.set(socket, (fd = socketFd(socket)));
      try {
        native.sendTo(fd, to.address, to.port, datagrams);
      } catch (error) {
        const { code, message } = error as NativeError;
        failures.log(code, (suppressed) =>
          this.logger.log({
            level: 'warn',
            subsystem: 'net',
            message: `ESP to ${formatEndpoint(to)}: ${message}${heldBack(suppressed)}`,
          }),
        );
      }
    };
  }

  #initiateAtStart(name: string): void {
    try {
      this.#apply(this.engine.initiate(name, this.#clock()));
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      this.logger.log({ level: 'error', subsystem: 'cfg', connection: name, message: error.message });
    }
  }

  /** Every connection's status, or connection `name`'s alone (throws CommandError for an unknown one). */
  status(name?: string): ConnectionStatus[] {
    return this.engine.status(name);
  }

  /** status() with each child SA's bytes and packets, from backends that count them. */
  async statusWithTraffic(name?: string): Promise<ConnectionStatus[]> {
    const statuses = this.engine.status(name);
    const counters = this.#kernel?.counters?.bind(this.#kernel);
    if (!counters) return statuses;
    return Promise.all(
      statuses.map(async (status) => ({
        ...status,
        childSas: await Promise.all(
          status.childSas.map(async (child) => {
            const sa = this.engine.child(child.id);
            const traffic = sa && (await counters(sa).catch(() => undefined));
            return traffic ? { ...child, traffic } : child;
          }),
        ),
      })),
    );
  }

  /**
   * Starts a connection at once and resolves with what became of it: up, failed (with the typed
   * cause and reason, a refusal by the peer or by our own configuration), down, or a timeout.
   * Rejects with CommandError for an unknown name, with the signal's reason when it aborts.
   */
  initiate(name: string, options: OutcomeOptions = {}): Promise<Outcome> {
    return this.#outcome(name, 'up', options);
  }

  /** Deletes a connection's SAs at once, telling the peer; resolves when it is down. */
  terminate(name: string, options: OutcomeOptions = {}): Promise<Outcome> {
    return this.#outcome(name, 'down', options);
  }

  #outcome(name: string, goal: Goal, options: OutcomeOptions): Promise<Outcome> {
    return awaitOutcome(this, name, goal, () => this.#give(name, goal), {
      ...options,
      stopped: this.#waits.signal,
    });
  }

  /** The command itself: an initiate (goal up) or a terminate (goal down). */
  #give(name: string, goal: Goal): void {
    const now = this.#clock();
    this.#apply(goal === 'up' ? this.engine.initiate(name, now) : this.engine.terminate(name, now));
    this.#deadlines.arm();
  }

  /** `await using node = createNode(...)`: stops the node when the scope ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Deletes one IKE SA (with its child SAs) or one child SA by id; CommandError for an unknown id. */
  terminateSa(kind: 'ike' | 'child', id: number): void {
    this.#apply(this.engine.terminateSa(kind, id, this.#clock()));
    this.#deadlines.arm();
  }

  get config(): DaemonConfig {
    return this.#config;
  }

  /** The running configuration's connections as `check` prints them (keys never shown). */
  connections(): ConnectionSummary[] {
    return this.#config.connections.map(connectionSummary);
  }

  /**
   * reload() from the configuration file on behalf of `trigger` (SIGHUP, the control socket), logged
   * alike whatever asked: a refused file is logged with every problem on a line, then thrown on.
   */
  reloadFile(trigger: string): ReloadResult {
    this.logger.log({
      level: 'info',
      subsystem: 'cfg',
      message: `${trigger}: reloading ${this.#config.file}`,
    });
    try {
      return this.reload();
    } catch (error) {
      for (const line of (error as Error).message.split('\n'))
        this.logger.log({ level: 'error', subsystem: 'cfg', message: `reload refused: ${line}` });
      throw error;
    }
  }

  /**
   * Applies a new configuration (read again from the same file when none is given): connections
   * are added, changed and removed; the SAs of unchanged connections are not touched. Throws
   * ConfigErrors, leaving everything as it was, when the new configuration is invalid.
   */
  reload(next: DaemonConfig = loadConfig(this.#config.file)): ReloadResult {
    const result: ReloadResult = {
      ...diffConnections(this.#config.connections, next.connections),
      needsRestart: [],
    };
    for (const key of [
      'listen',
      'kernel',
      'dataPlane',
      'crypto',
      'workers',
      'control',
      'metrics',
      'debug',
    ] as const) {
      if (JSON.stringify(next[key]) !== JSON.stringify(this.#config[key])) result.needsRestart.push(key);
    }
    const previous = this.#config;
    this.#config = next;
    this.#apply(this.engine.reconfigure(next.connections, this.#clock()));
    this.#deadlines.arm();
    void this.#retrap(previous.connections, next.connections).catch((error: Error) =>
      this.#kernelError(error),
    );
    this.logger.log({
      level: 'info',
      subsystem: 'cfg',
      message:
        `reloaded ${next.file}: ${result.added.length} added, ${result.changed.length} changed, ` +
        `${result.removed.length} removed, ${result.unchanged.length} unchanged`,
    });
    if (result.needsRestart.length) {
      this.logger.log({
        level: 'warn',
        subsystem: 'cfg',
        message: `${result.needsRestart.join(', ')} changed: restart ike-node to apply`,
      });
    }
    this.#emit({ type: 'reload', added: result.added, changed: result.changed, removed: result.removed });
    return result;
  }

  /**
   * The one place trap policies are decided, at start (from no connections) and on a reload: those
   * of removed and changed connections go, those of added and changed ones that start on traffic
   * come, unchanged ones are left alone.
   */
  async #retrap(previous: readonly Connection[], next: readonly Connection[]): Promise<void> {
    const diff = diffConnections(previous, next);
    const onTraffic = (list: readonly Connection[], names: readonly string[]) =>
      list.filter((c) => c.start === 'on-traffic' && names.includes(c.name));
    for (const connection of onTraffic(previous, [...diff.removed, ...diff.changed]))
      await this.kernel.untrap?.(connection.name);
    for (const connection of onTraffic(next, [...diff.added, ...diff.changed])) await this.#trap(connection);
  }

  /** Sends Deletes for everything, removes what was installed, closes the sockets. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#deadlines.stop();
    this.#firstMessages.clear();
    this.#apply(this.engine.shutdown(this.#clock()));
    this.#waits.abort();
    await this.#udp?.close(); // after the Deletes have left
    await this.#control?.close(); // clients are disconnected, not waited for
    this.#controlLock?.release();
    await this.#metrics?.close();
    await this.#pool?.close();
    await this.#kernel?.close();
    this.logger.log({ level: 'info', subsystem: 'ike', message: 'stopped' });
  }

  #receive(received: Received): void {
    if (this.#stopping) return;
    if (received.kind === 'esp') {
      if (this.kernel.receiveEsp) {
        this.kernel.receiveEsp(received.data, received.local, received.remote);
        return;
      }
      this.logger.log({
        level: 'debug',
        subsystem: 'net',
        message: `ESP in UDP from ${received.remote.address}:${received.remote.port} dropped: the ${this.kernel.name} backend does not take ESP from the socket`,
      });
      return;
    }
    if (received.kind === 'keepalive') return;
    if (isUnprovenFirstMessage(received.data)) this.#firstMessages.push(received);
    else this.#toEngine(received);
  }

  /** Directly from #receive, or from the first-message queue (cleared at stop). */
  #toEngine(received: Received): void {
    this.#apply(this.engine.receive(received.data, received.local, received.remote, this.#clock()));
    this.#deadlines.arm();
  }

  /** What the receive side has dropped before the engine saw it (metrics). */
  get firstMessages(): FirstMessageStats {
    return this.#firstMessages;
  }

  async #command(request: ControlRequest, session: ControlSession): Promise<unknown> {
    const name = typeof request['name'] === 'string' ? request['name'] : undefined;
    switch (request.command) {
      case 'status':
        return this.statusWithTraffic(name);
      case 'reload':
        return this.reloadFile('control socket');
      case 'connections':
        return this.connections();
      case 'terminate-sa': {
        const kind = request['ikeSa'] !== undefined ? 'ike' : 'child';
        const id = request[kind === 'ike' ? 'ikeSa' : 'childSa'];
        if (!Number.isSafeInteger(id)) throw new Error('terminate-sa needs {"ikeSa": ID} or {"childSa": ID}');
        this.terminateSa(kind, id as number);
        return { done: true };
      }
      case 'events': {
        // The connection stays open and receives {"event": ...} lines until the client leaves;
        // one stream per connection, or each event would be sent as many times as asked.
        if (!session.stream()) throw new Error('this connection already receives events');
        const forward = (event: DaemonEvent) => session.send({ event });
        this.on('event', forward);
        session.onClose(() => this.off('event', forward));
        return { subscribed: true };
      }
      case 'initiate':
      case 'terminate': {
        if (!name) throw new Error(`${request.command} needs a connection name`);
        const goal = request.command === 'initiate' ? 'up' : 'down';
        // Without "wait" (older clients, `--no-wait`): done once the command is given.
        if (request['wait'] !== true) {
          this.#give(name, goal);
          return { done: true };
        }
        return this.#outcomeForClient(name, goal, request['timeout'], session);
      }
      default:
        throw new Error(`unknown command '${request.command}'`);
    }
  }

  /**
   * `ike-node initiate|terminate NAME`: the connection's log lines stream to the client as
   * {"log": ...} while it waits (as swanctl --initiate does); the client leaving stops the wait.
   */
  async #outcomeForClient(
    name: string,
    goal: Goal,
    timeout: unknown,
    session: ControlSession,
  ): Promise<Outcome> {
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && timeout <= 3600))
      throw new Error('timeout: expected seconds from 1 to 3600');
    const left = new AbortController();
    session.onClose(() => left.abort(new Error('the client left')));
    const untap = this.logger.tap((line) => {
      if (line.connection === name) session.send({ log: line });
    });
    try {
      return await this.#outcome(name, goal, {
        signal: left.signal,
        ...(timeout !== undefined && { timeout: timeout as number }),
      });
    } finally {
      untap();
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
          this.#logKeys(() => this.#keyLog?.child(action.child));
          void this.kernel
            .install(action.child)
            .catch((error: Error) => this.#installFailed(action.child, error));
          break;
        case 'install-inbound':
          // Backends that read ESP and IKE in order need no head start: install-child does it all.
          void this.kernel
            .installInbound?.(action.child)
            .catch((error: Error) => this.#installFailed(action.child, error));
          break;
        case 'delete-child':
          void this.kernel.remove(action.child).catch((error: Error) => this.#kernelError(error));
          break;
        case 'reserve-spi': {
          // Asked of the kernel in the background: the engine goes on with other inputs meanwhile.
          const { id } = action;
          const answer = (result: number | Error) => {
            if (this.#stopping) return;
            this.#apply(this.engine.spiReserved(id, result, this.#clock()));
            this.#deadlines.arm();
          };
          this.kernel.reserveSpi!(action.local, action.remote).then(answer, answer);
          break;
        }
        case 'compute': {
          const { id } = action;
          void this.#pool!.run(action.job).then((result) => {
            if (this.#stopping) return;
            this.#apply(this.engine.computed(id, result, this.#clock()));
            this.#deadlines.arm();
          });
          break;
        }
        case 'event': {
          const { event: engineEvent } = action;
          if (engineEvent.type === 'ike-keys') {
            // Keys go to the key log alone: never to the logger or to subscribers.
            this.#logKeys(() => this.#keyLog?.ikeKeys(engineEvent));
            break;
          }
          if (engineEvent.type === 'negotiation-started') this.#load?.negotiationStarted();
          if (engineEvent.type === 'connection') {
            this.logger.log({
              level: engineEvent.status === 'Error' ? 'warn' : 'info',
              subsystem: 'ike',
              connection: engineEvent.connection,
              message: `${engineEvent.previous} -> ${engineEvent.status}${engineEvent.error ? `: ${engineEvent.error}` : ''}`,
            });
          } else {
            this.logger.event(engineEvent);
          }
          // Subscribers' views of SAs cost formatting: made only when someone listens.
          if (!this.#listened(engineEvent.type)) break;
          const event = fromEngineEvent(engineEvent);
          if (event) this.#emit(event);
          break;
        }
      }
    }
  }

  /** Whether anyone listens to what an engine event becomes (or to every event). */
  #listened(type: string): boolean {
    if (this.listenerCount('event') > 0) return true;
    const daemonType =
      type === 'ike-up' || type === 'ike-down'
        ? 'ike-sa'
        : type === 'child-up' || type === 'child-down'
          ? 'child-sa'
          : type === 'failed'
            ? 'negotiation-failed'
            : type;
    return this.listenerCount(daemonType as keyof DaemonEventMap) > 0;
  }

  #emit(body: DaemonEventBody): void {
    const event = { ...body, time: this.#clock() } as DaemonEvent;
    // Subscribers' exceptions are theirs: they must not break the runtime's loop.
    // Typed for listeners; the union of the map's tuples defeats emit's own inference here.
    const emit = this.emit.bind(this) as (name: string, event: DaemonEvent) => boolean;
    try {
      emit(event.type, event);
      emit('event', event);
    } catch (error) {
      this.logger.log({
        level: 'error',
        subsystem: 'ctl',
        message: `event listener threw: ${(error as Error).message}`,
      });
    }
  }

  /** A failed key log write is reported (the message names the file, never a key) and skipped. */
  #logKeys(write: () => void): void {
    try {
      write();
    } catch (error) {
      this.logger.log({
        level: 'error',
        subsystem: 'crypto',
        message: `key log: ${(error as Error).message}`,
      });
    }
  }

  #kernelError(error: Error): void {
    this.logger.log({ level: 'error', subsystem: 'knl', message: error.message });
  }

  /** A child SA the kernel refused carries nothing: the engine must not count it as up. */
  #installFailed(child: ChildSa, error: Error): void {
    this.#kernelError(error);
    if (this.#stopping) return;
    this.#apply(
      this.engine.kernelEvent(
        { type: 'install-failed', child: child.id, reason: error.message },
        this.#clock(),
      ),
    );
    this.#deadlines.arm();
  }
}
