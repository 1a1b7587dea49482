import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { FirstMessageQueue, isUnprovenFirstMessage } from '../../src/daemon/first-messages.js';
import { Logger } from '../../src/daemon/logger.js';
import { freeUdpPorts } from '../../src/net/free-ports.js';
import { until } from '../helpers/daemon-pair.js';

/**
 * Legitimate peers first (issue 15): first messages wait in a bounded queue of their own while
 * the messages of exchanges under way go to the engine as soon as they are read.
 */

/** A bare 28-byte header: initiator SPI, responder SPI, next payload, version, exchange type. */
function header(
  spiR: Uint8Array,
  version: 1 | 2,
  nextPayload = 1,
  exchangeType = version === 1 ? 2 : 34,
): Buffer {
  const h = Buffer.alloc(28);
  randomBytes(8).copy(h, 0);
  Buffer.from(spiR).copy(h, 8);
  h[16] = nextPayload;
  h[17] = version << 4;
  h[18] = exchangeType;
  h[19] = version === 2 ? 0x08 : 0;
  h.writeUInt32BE(28, 24);
  return h;
}

const ZERO = new Uint8Array(8);

t.test('first messages are told from the rest by the header alone', async (t) => {
  t.equal(isUnprovenFirstMessage(header(ZERO, 1)), true, 'main mode 1');
  t.equal(isUnprovenFirstMessage(header(ZERO, 2, 33)), true, 'IKE_SA_INIT opening with SA');
  t.equal(
    isUnprovenFirstMessage(header(ZERO, 2, 41)),
    false,
    'IKE_SA_INIT opening with a Notify (COOKIE retry)',
  );
  t.equal(isUnprovenFirstMessage(header(randomBytes(8), 1)), false, 'main mode 3 (responder cookie set)');
  t.equal(isUnprovenFirstMessage(header(randomBytes(8), 2, 46, 35)), false, 'IKE_AUTH');
  t.equal(isUnprovenFirstMessage(new Uint8Array(20)), false, 'shorter than a header');
});

t.test('the queue serves a few per turn, in order, and drops the oldest when full', async (t) => {
  const served: number[] = [];
  const queue = new FirstMessageQueue<number>({ capacity: 4, perTurn: 2, deliver: (n) => served.push(n) });
  for (let n = 1; n <= 6; n++) queue.push(n);
  t.equal(queue.length, 4);
  t.equal(queue.dropped, 2, 'the two oldest went');
  t.same(served, [], 'nothing is served inside the pushing turn');
  await new Promise((resolve) => setImmediate(resolve));
  t.same(served, [3, 4], 'one turn serves perTurn entries, oldest first');
  await until(() => queue.length === 0, 1000);
  t.same(served, [3, 4, 5, 6]);
  queue.push(7);
  queue.clear();
  await new Promise((resolve) => setImmediate(resolve));
  t.same(served, [3, 4, 5, 6], 'clear() forgets what waits');
  t.throws(() => new FirstMessageQueue({ capacity: 0, perTurn: 1, deliver: () => {} }), RangeError);
});

t.test(
  'in the daemon, a message of an exchange under way overtakes first messages read before it',
  async (t) => {
    const [port, natPort] = await freeUdpPorts('127.0.0.1', 2);
    const config = parseConfig(
      JSON.stringify({
        listen: { addresses: ['127.0.0.1'], port, natPort },
        kernel: 'memory',
        ikePolicies: { ike: { proposals: ['aes128-sha256-modp2048'] } },
        ipsecPolicies: { esp: { proposals: ['aes128-sha256'] } },
        connections: {
          gw: {
            ikePolicy: 'ike',
            ipsecPolicy: 'esp',
            local: { address: '127.0.0.1', subnets: ['198.51.100.0/24'] },
            peer: { address: 'any', subnets: ['203.0.113.0/24'] },
            psk: 'first-messages-test-4c1f',
            start: 'respond',
          },
        },
      }),
      'peers.json',
    );
    const daemon = new Daemon(config, {
      logger: new Logger({ level: 'error', write: () => {} }),
      control: false,
    });
    t.teardown(() => daemon.stop());
    await daemon.start();
    const seen: boolean[] = []; // per datagram the engine received: was it a first message?
    const receive = daemon.engine.receive.bind(daemon.engine);
    daemon.engine.receive = (datagram, local, remote, now) => {
      seen.push(isUnprovenFirstMessage(datagram));
      return receive(datagram, local, remote, now);
    };
    const sender = createSocket('udp4');
    t.teardown(() => sender.close());
    await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve));
    // 600 first messages, then one for an SA (unknown here, so the engine drops it: the order is
    // what counts). All are in the daemon's receive buffer before its loop reads any: the sends
    // below complete inside this turn.
    const FIRST = 600;
    for (let i = 0; i < FIRST; i++) sender.send(header(ZERO, 1), port, '127.0.0.1');
    sender.send(header(randomBytes(8), 1, 8, 5), port, '127.0.0.1');
    await until(() => seen.length === FIRST + 1, 10_000);
    const at = seen.indexOf(false);
    t.ok(
      at >= 0 && at < FIRST,
      `the message for an SA reached the engine as number ${at + 1} of ${FIRST + 1}, not last`,
    );
    t.equal(daemon.firstMessages.dropped, 0, 'no first message dropped below the queue bound');
  },
);
