import t from 'tap';
import { runCli } from '../../src/cli/cli.js';

/**
 * `ike-node demo`: two daemons on loopback negotiate over real UDP sockets, each side prints
 * Active with its SAs, and both stop cleanly (the command resolves, so nothing keeps running).
 */

for (const version of [2, 1] as const) {
  t.test(
    `ike-node demo${version === 1 ? ' --ikev1' : ''}: IKEv${version} on loopback, both sides Active`,
    async (t) => {
      const out: string[] = [];
      const err: string[] = [];
      const argv = version === 1 ? ['demo', '--ikev1'] : ['demo'];
      const code = await runCli(argv, { stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
      const text = out.join('');
      t.equal(code, 0, `exit 0 (${err.join('')})`);
      t.match(text, `initiates IKEv${version} with a pre-shared key`);
      for (const [side, role] of [
        ['gateway', 'responder'],
        ['branch', 'initiator'],
      ] as const) {
        t.match(
          text,
          new RegExp(
            `${side} status:\\nsite-to-site: Active, peer 127\\.0\\.0\\.1\\n {2}IKEv${version} SA #\\d+ ESTABLISHED \\(${role}\\) `,
          ),
          `${side} Active`,
        );
      }
      const spis = [...text.matchAll(/child SA #\d+ tunnel, SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o/g)];
      t.equal(spis.length, 2, 'a child SA on each side');
      t.same([spis[0]?.[1], spis[0]?.[2]], [spis[1]?.[2], spis[1]?.[1]], 'their SPIs mirror each other');
      t.equal(text.match(/ike stopped/g)?.length, 2, 'both daemons stopped');
      const kind = version === 1 ? 'ISAKMP SA' : 'IKE SA';
      t.match(
        text,
        new RegExp(`branch +\\S+ info +ike \\[site-to-site #\\d+\\] ${kind} deleted: shutting down`),
        'with Deletes',
      );
    },
  );
}
