import { parseArgs } from 'node:util';
import { parseConfig } from '../src/config/index.js';
import { createCryptoProvider } from '../src/crypto/providers/index.js';
import { createEngine } from '../src/engine.js';
import { connection, EnginePair, type Side } from '../test/helpers/engine-pair.js';

/**
 * What a responder engine holds per IKE SA with one child SA, without the daemon around it: N
 * clients (each its own address and identity) negotiate with one engine whose connection serves
 * "any" peer, over the in-process wire of the tests; the clock moves past the 30 s for which
 * finished exchanges are kept for repeats; then the clients are dropped and the responder's heap
 * is measured after a full collection, against the heap once the responder is dropped too.
 * Then what the configuration costs: a gateway with one connection per client (its own identity
 * and key), as peers.json, checked and indexed by an engine, per connection.
 * Run with --expose-gc (`npm run bench:memory`). Prints figures; asserts nothing.
 */

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    version: { type: 'string', default: '1,2' },
    connections: { type: 'string', default: '20000' },
  },
});

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('bench:memory needs node --expose-gc (npm run bench:memory does that)');
  process.exit(2);
}

/**
 * Bytes held after a full collection: V8's heap, and the backing stores of ArrayBuffers, which
 * live outside it (malloc) and which heapUsed does not count (typed arrays of up to 64 bytes stay
 * in the heap until their buffer is asked for).
 */
function collect(): { heap: number; buffers: number } {
  gc!();
  gc!();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return { heap: heapUsed, buffers: arrayBuffers };
}

const RESPONDER = '192.0.2.2';
const IKE = ['aes128-sha1-modp2048'];
const ESP = ['aes128-sha1'];

/** Heap bytes the responder holds per IKE SA with its child, and how many came up. */
function measure(version: 1 | 2, n: number): { perSa: number; buffersPerSa: number; up: number } {
  let pair: EnginePair | undefined = new EnginePair();
  let responder: Side | undefined = pair.add('responder', RESPONDER, [
    connection({
      name: 'clients',
      version,
      localAddress: RESPONDER,
      peerAddress: 'any',
      ike: IKE,
      esp: ESP,
      localSubnets: ['10.0.0.0/8'],
    }),
  ]);
  for (let i = 0; i < n; i++) {
    const address = `198.51.${(i >> 8) & 255}.${i & 255}`;
    const client = pair.add(`c${i}`, address, [
      connection({
        version,
        localAddress: address,
        peerAddress: RESPONDER,
        start: 'initiate',
        ike: IKE,
        esp: ESP,
        localSubnets: [`${address}/32`],
        peerSubnets: ['10.0.0.0/8'],
      }),
    ]);
    pair.initiate(client);
  }
  pair.advance(61);
  const up = responder.engine.status()[0]!.childSas.length;
  // The clients, the wire's record and what the test side kept go; the responder's engine stays.
  pair.sides.length = 0;
  pair.sent.length = 0;
  responder.events.length = 0;
  responder.logs.length = 0;
  responder.installed.clear();
  responder.inbound.clear();
  const held = collect();
  pair = undefined;
  responder = undefined;
  const without = collect();
  return {
    perSa: (held.heap - without.heap) / Math.max(1, up),
    buffersPerSa: (held.buffers - without.buffers) / Math.max(1, up),
    up,
  };
}

const n = Number(values.n);
for (const version of values.version!.split(',').map(Number) as (1 | 2)[]) {
  const { perSa, buffersPerSa, up } = measure(version, n);
  console.log(
    `IKEv${version} responder engine: ${(perSa / 1024).toFixed(2)} kB of heap ` +
      `and ${(buffersPerSa / 1024).toFixed(2)} kB of ArrayBuffer backing stores per IKE SA with one child ` +
      `(${up}/${n} up, ${IKE[0]} / ESP ${ESP[0]})`,
  );
}

/** Heap bytes per configured connection: the checked configuration and the engine's indexes. */
function measureConfig(count: number): number {
  const connections: Record<string, object> = {};
  for (let i = 0; i < count; i++) {
    connections[`client-${i}`] = {
      ikePolicy: 'ike',
      ipsecPolicy: 'esp',
      local: { address: RESPONDER, subnets: ['10.0.0.0/8'] },
      peer: { address: 'any', id: `client-${i}.example` },
      psk: `bench-memory-psk-${i}`,
    };
  }
  const text = JSON.stringify({
    listen: { addresses: [RESPONDER] },
    ikePolicies: { ike: { version: 1, proposals: IKE } },
    ipsecPolicies: { esp: { proposals: ESP } },
    connections,
  });
  const before = collect().heap;
  let config: ReturnType<typeof parseConfig> | undefined = parseConfig(text, 'bench.json');
  let engine: ReturnType<typeof createEngine> | undefined = createEngine({
    compute: 'inline',
    crypto: createCryptoProvider(config.crypto),
    connections: config.connections,
  });
  const held = collect().heap;
  if (engine.status(`client-${count - 1}`).length !== 1) throw new Error('the last connection is missing');
  config = engine = undefined;
  return (held - before) / count;
}

const count = Number(values.connections);
console.log(
  `configuration: ${(measureConfig(count) / 1024).toFixed(2)} kB of heap per connection ` +
    `(${count} connections, one identity and key each, checked and indexed by an engine)`,
);
