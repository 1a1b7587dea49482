import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runCli } from '../../src/cli/cli.js';
import { createNode, type PeersConfig } from '../../src/index.js';
import { freeUdpPorts } from '../../src/net/free-ports.js';

/**
 * `ike-node initiate NAME` and `terminate NAME` wait for the outcome and print the connection's
 * log lines meanwhile; the exit status says which outcome: 0 reached, 1 failed, 3 timed out.
 */

const [PORT, NAT_PORT] = await freeUdpPorts('127.0.0.1', 2);

function peers(dir: string, self: string, peer: string, esp = 'aes128-sha256'): PeersConfig {
  return {
    listen: { addresses: [self], port: PORT!, natPort: NAT_PORT! },
    control: { socket: join(dir, `${self}.sock`) },
    retransmit: { timeout: 5 },
    connections: {
      lab: {
        ikePolicy: { proposals: ['aes128-sha256-modp2048'] },
        ipsecPolicy: { proposals: [esp] },
        local: { address: self, subnets: [self === '127.0.0.11' ? '198.51.100.0/24' : '203.0.113.0/24'] },
        peer: {
          address: peer,
          port: PORT!,
          subnets: [self === '127.0.0.11' ? '203.0.113.0/24' : '198.51.100.0/24'],
        },
        psk: 'cli-initiate-test-key',
      },
    },
  };
}

/** Node a (127.0.0.11, its socket returned) and, unless `answer` is false, node b answering it. */
async function nodes(t: Test, options: { esp?: string; answer?: boolean } = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-initiate-'));
  const a = createNode(peers(dir, '127.0.0.11', '127.0.0.12'));
  const b = createNode(peers(dir, '127.0.0.12', '127.0.0.11', options.esp));
  t.teardown(async () => {
    await a.stop();
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  if (options.answer !== false) await b.start();
  await a.start();
  return join(dir, '127.0.0.11.sock');
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
  return { code, out: out.join(''), err: err.join('') };
}

t.test('initiate waits until up, printing the log meanwhile; terminate until down', async (t) => {
  const socket = await nodes(t);
  const up = await cli(['initiate', 'lab', '--socket', socket]);
  t.equal(up.code, 0, 'exit 0: up');
  t.match(up.out, /info {2}ike \[lab #\d+\] initiating main mode/, 'the log lines of the connection');
  t.match(up.out, /\[lab\] Pending -> Active/);
  t.match(up.out, /initiate lab: up\n$/, 'the outcome last');
  const down = await cli(['terminate', 'lab', '--socket', socket]);
  t.equal(down.code, 0, 'exit 0: down');
  t.match(down.out, /terminate lab: down\n$/);
  const json = await cli(['initiate', 'lab', '--json', '--socket', socket]);
  t.equal(json.code, 0);
  const lines = json.out
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  t.same(lines.at(-1), { outcome: { connection: 'lab', state: 'up' } }, '--json: the outcome object');
  t.ok(
    lines.slice(0, -1).every((line) => line['connection'] === 'lab' && typeof line['message'] === 'string'),
  );
});

t.test('a refusal by the peer: exit 1 with its cause and reason', async (t) => {
  const socket = await nodes(t, { esp: 'aes256-sha256' });
  const refused = await cli(['initiate', 'lab', '--socket', socket]);
  t.equal(refused.code, 1, 'exit 1: failed');
  t.match(
    refused.out,
    /initiate lab: failed \(no-proposal\): the peer refused quick mode [0-9a-f]+: NO_PROPOSAL_CHOSEN\n$/,
  );
});

t.test('no answer within --timeout: exit 3; --no-wait returns at once', async (t) => {
  const socket = await nodes(t, { answer: false });
  const silent = await cli(['initiate', 'lab', '--timeout', '1', '--socket', socket]);
  t.equal(silent.code, 3, 'exit 3: timed out');
  t.match(silent.out, /initiate lab: timed out: no outcome within 1 s\n$/);
  const quick = await cli(['initiate', 'lab', '--no-wait', '--socket', socket]);
  t.equal(quick.code, 0);
  t.equal(quick.out, 'initiate: lab\n', "--no-wait: today's answer");
  const bad = await cli(['initiate', 'lab', '--timeout', 'soon', '--socket', socket]);
  t.equal(bad.code, 2);
  t.match(bad.err, /--timeout: expected seconds from 1 to 3600, got 'soon'/);
  const unknown = await cli(['initiate', 'nope', '--socket', socket]);
  t.not(unknown.code, 0);
  t.match(unknown.err, /no connection named 'nope'/);
});
