import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import type { Action } from '../../src/core/actions.js';
import type { Connection } from '../../src/core/connection.js';
import { expandSuites, parseProposal } from '../../src/core/proposal.js';
import { parseTrafficSelector } from '../../src/core/traffic-selector.js';
import type { IkeEngine } from '../../src/core/engine.js';
import { parseConfig } from '../../src/config/index.js';
import { type DhJob, type DhJobResult, runDhJob } from '../../src/crypto/dh-job.js';
import type { CryptoProvider } from '../../src/crypto/provider.js';
import { createCryptoProvider } from '../../src/crypto/providers/index.js';
import { randomExponent } from '../../src/crypto/modp.js';
import { algorithm, type DhGroupName } from '../../src/crypto/registry.js';
import { DeadlineTimer } from '../../src/daemon/deadline-timer.js';
import { createEngine } from '../../src/engine.js';
import { loadNative, type Native } from '../../src/native/index.js';
import { UdpEndpoints } from '../../src/net/udp.js';

/**
 * The handshake benchmark's own load generator, a process of its own: one sans-I/O engine with a
 * connection per simulated client (each its own identity and IKE SA, IKEv1 or IKEv2), over real UDP sockets on
 * many source addresses, initiated with a bound on those in flight and on the rate. It prints one
 * JSON line with what it saw (SAs up, failures, setup latencies, retransmissions), and with
 * `hold` keeps the SAs until its standard input closes (the scale sweep measures the responder
 * meanwhile).
 */

export interface GeneratorSpec {
  readonly responder: { readonly address: string; readonly port: number; readonly natPort: number };
  /** Our source addresses; connection i uses addresses[i % length]. */
  readonly addresses: readonly string[];
  readonly port: number;
  readonly natPort: number;
  /** Connections c<first>..c<first + count - 1> (their identities: c<i>@bench.example). */
  readonly first: number;
  readonly count: number;
  readonly concurrency: number;
  /** IKE version of every connection. */
  readonly version: 1 | 2;
  /** Initiations per second at most (0: no limit). */
  readonly rate: number;
  readonly ike: readonly string[];
  readonly esp: readonly string[];
  readonly pfs?: string;
  readonly psk: string;
  readonly hold: boolean;
  /** Seconds before giving up on what is not up. */
  readonly timeout: number;
}

export interface GeneratorResult {
  readonly established: number;
  readonly failed: number;
  readonly retransmits: number;
  /** Seconds from the first initiation to the last child SA up. */
  readonly elapsed: number;
  /** Setup latency in seconds (initiate to child SA up), sorted. */
  readonly latencies: readonly number[];
  readonly failures: readonly string[];
  /** CPU milliseconds this generator used (every thread) from the first initiation to its result. */
  readonly cpuMs: number;
}

export function clientName(index: number): string {
  return `c${index}`;
}

export function clientId(index: number): string {
  return `c${index}@bench.example`;
}

/** A client's selectors: its source address and a UDP port of its own, so every pair is distinct. */
export function clientSelector(
  index: number,
  addresses: readonly string[],
): { address: string; port: number } {
  return { address: addresses[index % addresses.length]!, port: 1024 + Math.floor(index / addresses.length) };
}

export const PROTECTED_SUBNET = '203.0.113.0/24';

/** The generator's MODP private exponent (see the compute action below). */
const GENERATOR_EXPONENT_BITS = 64;

/** In-process handshakes that warm the generator's code up before the run (see warmUp). */
const WARM_UP = 400;

function connections(spec: GeneratorSpec): Connection[] {
  const lifetime = (seconds: number) => ({ seconds, rekeyMargin: 540, rekeyFuzz: 180 });
  const ike = spec.ike.flatMap((p) => expandSuites(parseProposal(p, 'ike'), 'ike'));
  const esp = spec.esp.flatMap((p) => expandSuites(parseProposal(p, 'esp'), 'esp'));
  const psk = new TextEncoder().encode(spec.psk);
  const list: Connection[] = [];
  for (let i = spec.first; i < spec.first + spec.count; i++) {
    const { address, port } = clientSelector(i, spec.addresses);
    list.push({
      name: clientName(i),
      ike: { name: 'ike', version: spec.version, mode: 'main', proposals: ike, lifetime: lifetime(10800) },
      ipsec: {
        name: 'esp',
        protocol: 'esp',
        mode: 'tunnel',
        proposals: esp,
        ...(spec.pfs && { pfs: algorithm('dh', spec.pfs) }),
        lifetime: lifetime(3600),
      },
      local: {
        address,
        id: { type: 'user-fqdn', value: clientId(i) },
        trafficSelectors: [parseTrafficSelector(`${address}/32`, 17, port)],
      },
      peer: {
        address: spec.responder.address,
        port: spec.responder.port,
        natPort: spec.responder.natPort,
        trafficSelectors: [parseTrafficSelector(PROTECTED_SUBNET, 17, port)],
      },
      psk,
      start: 'respond',
    });
  }
  return list;
}

/**
 * The generator's Diffie-Hellman. A load generator protects nothing, so it spends as little of
 * the shared cores as it can on its own: one key pair serves every client, its MODP private
 * exponent is 64 bits (one machine word; ECP groups keep theirs), and the shared secret is
 * computed at once, cheaper than a round trip to a worker thread. What the responder pays for
 * its shared secret is set by its own exponent, never by the peer's value, so this takes
 * nothing from the work measured.
 */
function generatorDh(provider: CryptoProvider): (job: DhJob) => DhJobResult | Error {
  const pairs = new Map<DhGroupName, DhJobResult>();
  return (job) => {
    try {
      let pair = pairs.get(job.group);
      if (!pair) {
        const bits = algorithm('dh', job.group).exponentBits && GENERATOR_EXPONENT_BITS;
        pair = runDhJob(provider, {
          group: job.group,
          ...(bits && { privateKey: randomExponent(bits, randomBytes) }),
        });
        pairs.set(job.group, pair);
      }
      return job.peerPublic ? runDhJob(provider, job) : pair;
    } catch (error) {
      return error as Error;
    }
  };
}

/**
 * Brings V8's optimizing compiler up to speed before the clock starts: `count` handshakes between
 * an initiator engine made as the measured one (clients numbered past the run's) and a responder
 * engine in this process, the datagrams handed across in memory. Without it the generator
 * compiles its hot code during the run, on the cores the responder is measured on (at N = 3000
 * against ike-node, 3 runs each: 0.92-0.93 ms of CPU per SA with it, 0.95-1.11 without).
 * Returns how many came up.
 */
function warmUp(
  spec: GeneratorSpec,
  provider: CryptoProvider,
  dh: (job: DhJob) => DhJobResult | Error,
  count: number,
): number {
  const responderConfig = parseConfig(
    JSON.stringify({
      ikePolicies: { ike: { version: spec.version, proposals: spec.ike } },
      ipsecPolicies: { esp: { proposals: spec.esp, ...(spec.pfs && { pfs: spec.pfs }) } },
      connections: {
        clients: {
          ikePolicy: 'ike',
          ipsecPolicy: 'esp',
          local: { address: spec.responder.address, subnets: [PROTECTED_SUBNET] },
          peer: { address: 'any' },
          psk: spec.psk,
        },
      },
    }),
    'warm-up responder',
  );
  const common = { crypto: provider, logLevel: 'warn' as const };
  const initiator = createEngine({
    ...common,
    connections: connections({ ...spec, first: spec.first + spec.count, count }),
    port: spec.port,
    natPort: spec.natPort,
    compute: 'deferred',
  });
  const responder = createEngine({
    ...common,
    connections: responderConfig.connections,
    port: spec.responder.port,
    natPort: spec.responder.natPort,
  });
  let up = 0;
  const now = performance.now() / 1000;
  const queue: [IkeEngine, Action[]][] = [];
  for (const connection of initiator.connections)
    queue.push([initiator, initiator.initiate(connection.name, now)]);
  for (let next = queue.shift(); next; next = queue.shift()) {
    const [from, actions] = next;
    const to = from === initiator ? responder : initiator;
    for (const action of actions) {
      if (action.type === 'send') queue.push([to, to.receive(action.data, action.to, action.from, now)]);
      else if (action.type === 'compute') queue.push([from, from.computed(action.id, dh(action.job), now)]);
      else if (action.type === 'event' && action.event.type === 'child-up' && from === initiator) up++;
    }
  }
  return up;
}

async function main(): Promise<void> {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as GeneratorSpec;
  const list = connections(spec);
  const provider = createCryptoProvider('node');
  const dh = generatorDh(provider);
  const warmed = warmUp(spec, provider, dh, WARM_UP);
  if (warmed < WARM_UP)
    process.stderr.write(`warm-up: ${warmed} of ${WARM_UP} in-process handshakes came up\n`);
  const engine = createEngine({
    crypto: provider,
    connections: list,
    port: spec.port,
    natPort: spec.natPort,
    compute: 'deferred',
    retransmit: { timeout: 2, backoff: 1.8, tries: 5 },
    // Nobody reads its log: lines below a warning would only be formatted and dropped.
    logLevel: 'warn',
  });
  const clock = () => performance.now() / 1000;
  const startedAt = new Map<string, number>();
  const latencies: number[] = [];
  const failures: string[] = [];
  let retransmits = 0;
  let finished = 0;
  let firstStart: number | undefined;
  let lastUp = 0;
  let native: Native | undefined;
  try {
    native = loadNative();
  } catch {
    native = undefined;
  }
  // After every input, as in the daemon: the timer is set again only when the deadline moved up.
  const deadlines = new DeadlineTimer(engine, clock, (actions) => apply(actions));
  const arm = () => deadlines.arm();
  const done = (name: string) => {
    if (!startedAt.has(name)) return;
    startedAt.delete(name);
    finished++;
    launch();
  };
  const apply = (actions: readonly Action[]) => {
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          udp.send(action.from, action.to, action.data, action.nonEspMarker);
          break;
        case 'keepalive':
          udp.send(action.from, action.to, Uint8Array.of(0xff), false);
          break;
        case 'compute': {
          const { id, job } = action;
          queueMicrotask(() => {
            apply(engine.computed(id, dh(job), clock()));
            arm();
          });
          break;
        }
        case 'event': {
          const { event } = action;
          if (event.type === 'child-up') {
            const start = startedAt.get(event.child.connection);
            if (start !== undefined) {
              lastUp = clock();
              latencies.push(lastUp - start);
              done(event.child.connection);
            }
          } else if (event.type === 'failed' && event.connection) {
            if (startedAt.has(event.connection)) failures.push(`${event.connection}: ${event.reason}`);
            done(event.connection);
          } else if (event.type === 'retransmit') {
            retransmits++;
          }
          break;
        }
        default:
          break;
      }
    }
  };
  const udp = await UdpEndpoints.open({
    addresses: spec.addresses,
    port: spec.port,
    natPort: spec.natPort,
    onReceive: (received) => {
      if (received.kind !== 'ike') return;
      apply(engine.receive(received.data, received.local, received.remote, clock()));
      arm();
    },
    onError: (message) => process.stderr.write(`${message}\n`),
    ...(native && { native }),
  });

  // Initiation: at most `concurrency` under way, at most `rate` per second.
  let next = 0;
  let tokens = spec.rate > 0 ? Math.max(1, spec.rate / 20) : Infinity;
  function launch(): void {
    while (next < list.length && startedAt.size < spec.concurrency && tokens >= 1) {
      const name = list[next++]!.name;
      tokens--;
      const now = clock();
      firstStart ??= now;
      startedAt.set(name, now);
      apply(engine.initiate(name, now));
    }
    arm();
  }
  const refill =
    spec.rate > 0
      ? setInterval(() => {
          tokens = Math.min(spec.rate / 20, tokens + spec.rate / 20);
          launch();
        }, 50)
      : undefined;
  const cpu0 = process.cpuUsage();
  launch();
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      const overdue = firstStart !== undefined && clock() - firstStart > spec.timeout;
      if (finished >= list.length || overdue) {
        clearInterval(check);
        resolve();
      }
    }, 50);
  });
  clearInterval(refill);
  const result: GeneratorResult = {
    established: latencies.length,
    failed: list.length - latencies.length,
    retransmits,
    elapsed: lastUp - (firstStart ?? lastUp),
    latencies: latencies.sort((a, b) => a - b),
    failures: failures.slice(0, 20),
    cpuMs: (({ user, system }) => (user + system) / 1000)(process.cpuUsage(cpu0)),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (spec.hold) {
    // Keep the SAs (and answer the responder's DPD, if any) until told to go.
    for await (const line of createInterface({ input: process.stdin })) if (line.trim() === 'exit') break;
  }
  deadlines.stop();
  process.exit(0);
}

// Run as a program (the benchmark spawns it), not when imported for its helpers.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
