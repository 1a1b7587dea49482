import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getHeapSpaceStatistics } from 'node:v8';
import type { EngineStats } from '../core/engine.js';
import { FAILURE_CAUSES, type FailureCause } from '../core/failure.js';
import type { ChildSa } from '../core/sa.js';
import type { ConnectionState, ConnectionStatus, TrafficCounters } from '../core/status.js';
import type { KernelBackend } from '../kernel/backend.js';
import { bindHint } from '../net/udp.js';
import { VERSION } from '../version.js';
import type { DaemonEvent } from './events.js';
import type { FirstMessageStats } from './first-messages.js';

/**
 * Prometheus metrics (`metrics.listen` in peers.json): `GET /metrics` in the text exposition
 * format 0.0.4. Counters come from the daemon's events, gauges from its status at scrape time,
 * traffic from the kernel backend when it counts (the memory backend does not: no series then).
 * Label values are bounded and in snake_case: states, versions, kinds, a fixed set of failure
 * reasons; connection names on the per-connection state (as many as are configured) and, with
 * child SA ids, on per-SA traffic, whose series go with their SA. The process_* families are
 * those of the Prometheus client libraries.
 */

/** What metrics read: a Daemon, or anything with its events, status, engine counters and kernel. */
export interface MetricsSource {
  on(event: 'event', listener: (event: DaemonEvent) => void): unknown;
  off(event: 'event', listener: (event: DaemonEvent) => void): unknown;
  status(): ConnectionStatus[];
  readonly engine: { readonly stats: EngineStats };
  readonly kernel: KernelBackend;
  /** The daemon's queue of first messages (first-messages.ts); a source without one has none. */
  readonly firstMessages?: FirstMessageStats;
}

/** A failure's typed cause as a label value: one fixed, small set, in snake_case. */
export function failureReason(cause: FailureCause): string {
  switch (cause) {
    case 'no-proposal':
      return 'no_proposal_chosen';
    case 'authentication':
      return 'authentication_failed';
    case 'identity':
      return 'invalid_id';
    default:
      return snakeCase(cause);
  }
}

export const FAILURE_REASONS: readonly string[] = FAILURE_CAUSES.map(failureReason);

/** Label values in one style: `MM_SA_I`, `Active`, `unknown-spi` become mm_sa_i, active, unknown_spi. */
export function snakeCase(value: string): string {
  return value
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_|_$/g, '')
    .toLowerCase();
}

const KINDS = ['ike', 'child'] as const;
const CONNECTION_STATES: readonly ConnectionState[] = ['Active', 'Pending', 'Down', 'Error'];
const MODES = ['tunnel', 'transport'] as const;

type Labels = Readonly<Record<string, string>>;

/** One metric family: name, help, type and its samples. */
interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly samples: readonly (readonly [Labels, number])[];
}

export class Metrics {
  readonly #source: MetricsSource;
  readonly #started = new Map<string, number>(KINDS.map((kind) => [kind, 0]));
  readonly #succeeded = new Map<string, number>(KINDS.map((kind) => [kind, 0]));
  /** By kind and reason ("kind\0reason"): every pair exists from the start, at zero. */
  readonly #failed = new Map<string, number>(
    KINDS.flatMap((kind) => FAILURE_REASONS.map((reason) => [`${kind}\0${reason}`, 0] as const)),
  );
  #retransmissions = 0;
  #server: Server | undefined;
  readonly #listener = (event: DaemonEvent) => this.#count(event);

  constructor(source: MetricsSource) {
    this.#source = source;
    source.on('event', this.#listener);
  }

  #count(event: DaemonEvent): void {
    switch (event.type) {
      case 'negotiation-started':
        increment(this.#started, event.kind);
        break;
      case 'ike-sa':
      case 'child-sa':
        if (event.change !== 'deleted') increment(this.#succeeded, event.type === 'ike-sa' ? 'ike' : 'child');
        break;
      case 'negotiation-failed':
        increment(this.#failed, `${event.kind}\0${failureReason(event.cause)}`);
        // Refused at its first message: it started too, though no 'negotiation-started' said so.
        if (event.refused) increment(this.#started, event.kind);
        break;
      case 'retransmit':
        this.#retransmissions++;
        break;
      default:
        break;
    }
  }

  /** The exposition text: what a scrape returns. */
  async render(): Promise<string> {
    const statuses = this.#source.status();
    const connections = new Map<string, number>(CONNECTION_STATES.map((state) => [state, 0]));
    const ikeSas = new Map<string, { state: string; version: string; count: number }>();
    const childSas = new Map<string, number>(MODES.map((mode) => [mode, 0]));
    for (const connection of statuses) {
      increment(connections, connection.status);
      for (const sa of connection.ikeSas) {
        const state = snakeCase(sa.state);
        const key = `${state}\0${sa.version}`;
        const entry = ikeSas.get(key) ?? { state, version: String(sa.version), count: 0 };
        entry.count++;
        ikeSas.set(key, entry);
      }
      for (const child of connection.childSas) increment(childSas, child.mode);
    }
    const traffic = await this.#traffic();
    const families: Family[] = [
      { name: 'ike_node_up', help: 'Whether the daemon is running.', type: 'gauge', samples: [[{}, 1]] },
      {
        name: 'ike_node_build_info',
        help: 'The ike-node version and the Node.js it runs on (always 1).',
        type: 'gauge',
        samples: [[{ version: VERSION, nodejs: process.version }, 1]],
      },
      {
        name: 'ike_node_connections',
        help: 'Configured connections by status.',
        type: 'gauge',
        samples: [...connections].map(([status, n]) => [{ status: snakeCase(status) }, n]),
      },
      {
        name: 'ike_node_connection_up',
        help: 'Per configured connection: 1 when a child SA is up (status Active), else 0.',
        type: 'gauge',
        samples: statuses.map((connection) => [
          { connection: connection.name },
          connection.status === 'Active' ? 1 : 0,
        ]),
      },
      {
        name: 'ike_node_ike_sas',
        help: 'IKE (ISAKMP) SAs by state and IKE version.',
        type: 'gauge',
        samples: [...ikeSas.values()].map(({ state, version, count }) => [{ state, version }, count]),
      },
      {
        name: 'ike_node_child_sas',
        help: 'Child (IPsec) SAs by mode.',
        type: 'gauge',
        samples: [...childSas].map(([mode, n]) => [{ mode }, n]),
      },
      counter(
        'ike_node_negotiations_started',
        'IKE and child SA negotiations started, either role.',
        'kind',
        this.#started,
      ),
      counter(
        'ike_node_negotiations_succeeded',
        'IKE and child SA negotiations that established an SA (rekeys included).',
        'kind',
        this.#succeeded,
      ),
      {
        name: 'ike_node_negotiations_failed_total',
        help: 'IKE and child SA negotiations that failed, either role, refusals included, by reason.',
        type: 'counter',
        samples: [...this.#failed].map(([key, n]) => {
          const [kind, reason] = key.split('\0') as [string, string];
          return [{ kind, reason }, n];
        }),
      },
      ...engineFamilies(this.#source.engine.stats, this.#source.firstMessages?.dropped ?? 0),
      {
        name: 'ike_node_retransmissions_total',
        help: 'IKE messages sent again for lack of an answer.',
        type: 'counter',
        samples: [[{}, this.#retransmissions]],
      },
      {
        name: 'ike_node_child_sa_bytes_total',
        help: 'Bytes through a child SA, from the kernel backend (absent when it does not count).',
        type: 'counter',
        samples: traffic.flatMap(([labels, t]) => [
          [{ ...labels, direction: 'in' }, t.bytesIn],
          [{ ...labels, direction: 'out' }, t.bytesOut],
        ]),
      },
      {
        name: 'ike_node_child_sa_packets_total',
        help: 'Packets through a child SA, from the kernel backend (absent when it does not count).',
        type: 'counter',
        samples: traffic.flatMap(([labels, t]) => [
          [{ ...labels, direction: 'in' }, t.packetsIn],
          [{ ...labels, direction: 'out' }, t.packetsOut],
        ]),
      },
      {
        name: 'ike_node_kernel_problems_total',
        help: 'What the kernel backend counted as going wrong, by cause (dropped packets, garbled messages).',
        type: 'counter',
        samples: Object.entries(this.#source.kernel.problems?.() ?? {}).map(([cause, n]) => [
          { cause: snakeCase(cause) },
          n,
        ]),
      },
      ...processFamilies(),
    ];
    return families.map(formatFamily).join('');
  }

  /** Counters of every installed child SA whose backend counts; a failing read is left out. */
  async #traffic(): Promise<[Labels, TrafficCounters][]> {
    const { kernel } = this.#source;
    if (!kernel.counters) return [];
    const read = async (child: ChildSa): Promise<[Labels, TrafficCounters] | undefined> => {
      const counters = await kernel.counters!(child).catch(() => undefined);
      return counters && [{ connection: child.connection, child: String(child.id) }, counters];
    };
    const all = await Promise.all(kernel.installed().map(read));
    return all.filter((entry) => entry !== undefined);
  }

  /** Serves GET/HEAD /metrics on host:port; resolves with the bound address. */
  async listen(host: string, port: number): Promise<AddressInfo> {
    const server = createServer((request, response) => void this.#handle(request, response));
    await new Promise<void>((resolve, reject) => {
      const failed = (error: NodeJS.ErrnoException) => {
        const hint = bindHint(error, 'another ike-node or exporter? choose another port in metrics.listen');
        const message = `cannot serve metrics on ${host}:${port}: ${hint}`;
        // The errno code stays on the error (EADDRINUSE...), as the IKE ports' errors keep theirs.
        reject(Object.assign(new Error(message, { cause: error }), { code: error.code }));
      };
      server.once('error', failed);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', failed);
        resolve();
      });
    });
    this.#server = server;
    return server.address() as AddressInfo;
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      response
        .writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
        .end('not found: try /metrics\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end();
      return;
    }
    let body: string;
    try {
      body = await this.render();
    } catch (error) {
      response
        .writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
        .end(`${(error as Error).message}\n`);
      return;
    }
    response.writeHead(200, {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    response.end(request.method === 'HEAD' ? undefined : body);
  }

  /** Stops serving and counting. */
  async close(): Promise<void> {
    this.#source.off('event', this.#listener);
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * The engine's own counters: what a first-message flood shows as (first messages refused at the
 * half-open limits, half-open SAs dropped for a quieter source, and those the daemon's queue
 * dropped before the engine saw them) and internal errors, which should stay at zero whatever
 * arrives.
 */
function engineFamilies(stats: EngineStats, firstMessagesDropped: number): Family[] {
  const family = (name: string, help: string, value: number): Family => ({
    name,
    help,
    type: 'counter',
    samples: [[{}, value]],
  });
  return [
    family(
      'ike_node_half_open_refused_total',
      'First messages (main mode 1, IKE_SA_INIT) dropped at the half-open limits, in all or per address.',
      stats.refusedHalfOpen,
    ),
    family(
      'ike_node_first_messages_dropped_total',
      'First messages (main mode 1, IKE_SA_INIT) dropped unread by the engine: the queue they wait in while exchanges under way go first was full.',
      firstMessagesDropped,
    ),
    family(
      'ike_node_half_open_evicted_total',
      'Half-open IKE SAs dropped, the oldest of the busiest address, to admit a first message from a quieter one.',
      stats.evictedHalfOpen,
    ),
    family(
      'ike_node_internal_errors_total',
      'Errors inside the engine while it handled an input or a timer (a defect of ours: logged, and the engine goes on).',
      stats.internalErrors,
    ),
  ];
}

/** When this process started, Unix seconds (for process_start_time_seconds). */
const PROCESS_START = Date.now() / 1000 - process.uptime();

/**
 * The process metrics every Prometheus client library exports, under their usual names, so that
 * the usual dashboards and alerts (memory, descriptors, restarts) work unchanged. Descriptors
 * come from /proc: absent where there is none.
 */
function processFamilies(): Family[] {
  const { user, system } = process.cpuUsage();
  const heap = process.memoryUsage();
  const gauge = (name: string, help: string, value: number | undefined): Family[] =>
    value === undefined ? [] : [{ name, help, type: 'gauge', samples: [[{}, value]] }];
  return [
    {
      name: 'process_cpu_seconds_total',
      help: 'Total user and system CPU time spent in seconds.',
      type: 'counter',
      samples: [[{}, (user + system) / 1e6]],
    },
    ...gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', process.memoryUsage.rss()),
    // Node's own view (prom-client's names): how much of the resident memory is live JavaScript
    // heap, how much the heap has reserved, and what ArrayBuffers and native objects hold outside it.
    ...gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', heap.heapUsed),
    ...gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', heap.heapTotal),
    ...gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', heap.external),
    ...heapSpaceFamilies(),
    ...gauge('process_open_fds', 'Number of open file descriptors.', openFds()),
    ...gauge('process_max_fds', 'Maximum number of open file descriptors.', maxFds()),
    ...gauge(
      'process_start_time_seconds',
      'Start time of the process since unix epoch in seconds.',
      PROCESS_START,
    ),
  ];
}

/**
 * V8's heap per space (prom-client's names, `space` without its `_space` suffix). With many SAs
 * the reserved heap can exceed the live one by a fifth; these say which space holds the slack
 * (a young generation sized for bursts, or an old space not yet compacted).
 */
function heapSpaceFamilies(): Family[] {
  const spaces = getHeapSpaceStatistics();
  const family = (name: string, help: string, value: (s: (typeof spaces)[number]) => number): Family => ({
    name,
    help,
    type: 'gauge',
    samples: spaces.map((s) => [{ space: s.space_name.replace(/_space$/, '') }, value(s)] as const),
  });
  return [
    family(
      'nodejs_heap_space_size_total_bytes',
      'Process heap space size total from Node.js in bytes.',
      (s) => s.space_size,
    ),
    family(
      'nodejs_heap_space_size_used_bytes',
      'Process heap space size used from Node.js in bytes.',
      (s) => s.space_used_size,
    ),
    family(
      'nodejs_heap_space_size_available_bytes',
      'Process heap space size available from Node.js in bytes.',
      (s) => s.space_available_size,
    ),
  ];
}

function openFds(): number | undefined {
  try {
    // Reading the directory holds a descriptor of its own, listed too.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}

function maxFds(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return line ? Number(line[1]) : undefined;
  } catch {
    return undefined;
  }
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function counter(name: string, help: string, label: string, values: Map<string, number>): Family {
  return {
    name: `${name}_total`,
    help,
    type: 'counter',
    samples: [...values].map(([value, n]) => [{ [label]: value }, n]),
  };
}

function formatFamily(family: Family): string {
  const lines = [`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`];
  for (const [labels, value] of family.samples) lines.push(`${family.name}${formatLabels(labels)} ${value}`);
  return `${lines.join('\n')}\n`;
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([name, value]) => `${name}="${escapeLabel(value)}"`).join(',')}}`;
}

/** Exposition format 0.0.4: backslash, double quote and line feed are escaped in label values. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** In HELP text only backslash and line feed are. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
