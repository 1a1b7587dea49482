import { createSocket, type Socket } from 'node:dgram';
import { fileURLToPath } from 'node:url';

/**
 * A small UDP impairment relay: it sits between two peers (in the router namespace of the relay
 * topology), takes what one side sends to its face on port P and sends it on from its other face,
 * port P, to the other side; a fraction of the datagrams is sent twice and another fraction is
 * held back for a while so that later ones overtake it. Decisions come from a seeded generator:
 * the same seed and the same sequence of datagrams give the same impairments (the sequence itself
 * depends on the peers' timing).
 *
 * Each side is addressed as if the relay were the other peer, so the peers see it as a NAT that
 * keeps ports: an answer goes back to wherever that side last sent from on that port.
 *
 * Run as a process: `node --import tsx impair-relay.ts '<RelayOptions as JSON>'`. It prints
 * `ready` once bound and its RelayStats as one JSON line when it gets SIGTERM, then exits.
 */

export interface RelayFace {
  /** The relay's own address towards this side. */
  face: string;
  /** The peer on this side. */
  peer: string;
}

export interface RelayOptions {
  left: RelayFace;
  right: RelayFace;
  /** UDP ports relayed, each the same on both faces (IKE's 500 and 4500). */
  ports: number[];
  seed: number;
  /** The share of datagrams sent twice, 0..1. */
  duplicate: number;
  /** The share of datagrams held back, 0..1. */
  delay: number;
  /** How long a held datagram waits: uniformly from min to max milliseconds. */
  delayMs: [number, number];
}

export interface RelayStats {
  forwarded: number;
  duplicated: number;
  delayed: number;
  /** Held datagrams that a later one of the same direction overtook. */
  reordered: number;
}

/** mulberry32: a tiny seeded generator, good enough to pick impairments reproducibly. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

type Side = 'left' | 'right';

export class ImpairRelay {
  readonly stats: RelayStats = { forwarded: 0, duplicated: 0, delayed: 0, reordered: 0 };
  readonly #random: () => number;
  readonly #sockets = new Map<string, Socket>();
  /** Where each side last sent from, per port: answers go there. */
  readonly #lastSource = new Map<string, { address: string; port: number }>();
  /** Datagrams sent so far per direction, to tell when a held one was overtaken. */
  readonly #sent = new Map<string, number>();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(readonly options: RelayOptions) {
    this.#random = seededRandom(options.seed);
  }

  async start(): Promise<void> {
    for (const side of ['left', 'right'] as const) {
      for (const port of this.options.ports) {
        const socket = createSocket('udp4');
        socket.on('message', (data, from) => this.#receive(side, port, data, from));
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind(port, this.options[side].face, () => {
            socket.off('error', reject);
            resolve();
          });
        });
        // A send to a side that is gone fails asynchronously; that is the side's loss, not ours.
        socket.on('error', () => {});
        this.#sockets.set(`${side}:${port}`, socket);
      }
    }
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    for (const socket of this.#sockets.values()) socket.close();
  }

  #receive(from: Side, port: number, data: Buffer, source: { address: string; port: number }): void {
    if (source.address !== this.options[from].peer) return; // only the two peers are relayed
    this.#lastSource.set(`${from}:${port}`, { address: source.address, port: source.port });
    const to: Side = from === 'left' ? 'right' : 'left';
    const direction = `${from}>${port}`;
    const roll = this.#random();
    if (roll < this.options.delay) {
      this.stats.delayed++;
      const [min, max] = this.options.delayMs;
      const sentBefore = this.#sent.get(direction) ?? 0;
      const timer = setTimeout(
        () => {
          this.#timers.delete(timer);
          if ((this.#sent.get(direction) ?? 0) > sentBefore) this.stats.reordered++;
          this.#send(to, port, data, direction);
        },
        min + this.#random() * (max - min),
      );
      this.#timers.add(timer);
      return;
    }
    this.#send(to, port, data, direction);
    if (roll < this.options.delay + this.options.duplicate) {
      this.stats.duplicated++;
      this.#send(to, port, data, direction);
    }
  }

  #send(to: Side, port: number, data: Buffer, direction: string): void {
    const target = this.#lastSource.get(`${to}:${port}`) ?? { address: this.options[to].peer, port };
    this.#sockets.get(`${to}:${port}`)?.send(data, target.port, target.address);
    this.stats.forwarded++;
    this.#sent.set(direction, (this.#sent.get(direction) ?? 0) + 1);
  }
}

async function main(): Promise<void> {
  const relay = new ImpairRelay(JSON.parse(process.argv[2] ?? '') as RelayOptions);
  await relay.start();
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => {
    relay.close();
    process.stdout.write(`${JSON.stringify(relay.stats)}\n`, () => process.exit(0));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`impair-relay: ${String(error)}\n`);
    process.exit(1);
  });
}
