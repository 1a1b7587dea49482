import t from 'tap';
import { runCli } from '../../src/cli/cli.js';

/**
 * `ike-node demo`: two daemons on loopback negotiate over real UDP sockets, each side prints
 * Active with its SAs, and both stop cleanly (the command resolves, so nothing keeps running).
 */

t.test('ike-node demo negotiates on loopback and prints both sides Active', async (t) => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['demo'], { stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
  const text = out.join('');
  t.equal(code, 0, `exit 0 (${err.join('')})`);
  t.match(
    text,
    /gateway status:\nsite-to-site: Active, peer 127\.0\.0\.1\n {2}IKEv1 SA #\d+ ESTABLISHED \(responder\) /,
    'gateway Active',
  );
  t.match(
    text,
    /branch status:\nsite-to-site: Active, peer 127\.0\.0\.1\n {2}IKEv1 SA #\d+ ESTABLISHED \(initiator\) /,
    'branch Active',
  );
  const spis = [
    ...text.matchAll(/child SA #\d+ \(IKE SA #\d+\) tunnel, SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o/g),
  ];
  t.equal(spis.length, 2, 'a child SA on each side');
  t.same([spis[0]?.[1], spis[0]?.[2]], [spis[1]?.[2], spis[1]?.[1]], 'their SPIs mirror each other');
  t.equal(text.match(/ike stopped/g)?.length, 2, 'both daemons stopped');
  t.match(
    text,
    /branch +\S+ info +ike \[site-to-site #\d+\] ISAKMP SA deleted: shutting down/,
    'with Deletes',
  );
});
