import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { Logger } from '../../src/daemon/logger.js';
import { loadNative, nativeAvailability } from '../../src/native/index.js';

/**
 * Key material out of core dumps: the daemon makes itself non-dumpable (prctl PR_SET_DUMPABLE 0)
 * unless debug.coreDumps says otherwise, and the shipped systemd unit sets LimitCORE=0.
 */

/** Two UDP ports the kernel hands out on 127.0.0.9, free again for the daemon (the schema wants 1-65535). */
async function freePorts(): Promise<[number, number]> {
  const sockets = [createSocket('udp4'), createSocket('udp4')];
  for (const socket of sockets) await new Promise<void>((resolve) => socket.bind(0, '127.0.0.9', resolve));
  const ports = sockets.map((socket) => socket.address().port);
  for (const socket of sockets) await new Promise<void>((resolve) => socket.close(resolve));
  return [ports[0]!, ports[1]!];
}

async function started(t: Test, extra: object): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-dumps-'));
  const said: string[] = [];
  const [port, natPort] = await freePorts();
  const daemon = new Daemon(
    parseConfig(
      JSON.stringify({
        listen: { addresses: ['127.0.0.9'], port, natPort },
        control: { socket: join(dir, 'control.sock') },
        ...extra,
      }),
      join(dir, 'peers.json'),
    ),
    { logger: new Logger({ level: 'debug', write: (line) => said.push(line) }) },
  );
  t.teardown(async () => {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await daemon.start();
  return said;
}

t.test('the daemon makes itself non-dumpable, unless debug.coreDumps', async (t) => {
  const availability = nativeAvailability();
  t.ok(availability.available, 'the native shim is built (npm ci builds it)');
  const native = loadNative();
  t.teardown(() => native.setDumpable!(true)); // this test process, as it was
  t.equal(native.dumpable!(), 1, 'a test process starts dumpable');
  await started(t, { debug: { coreDumps: true } });
  t.equal(native.dumpable!(), 1, 'debug.coreDumps: true leaves it so');
  const said = await started(t, {});
  t.equal(native.dumpable!(), 0, 'started: not dumpable (PR_GET_DUMPABLE 0)');
  t.match(said.join('\n'), /non-dumpable: no core dump will hold keys/);
});

t.test('the shipped systemd unit is the README one and sets LimitCORE=0', async (t) => {
  const unit = readFileSync(new URL('../../scripts/ike-node.service', import.meta.url), 'utf8');
  t.match(unit, /^LimitCORE=0$/m);
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  t.ok(readme.includes('```ini\n' + unit + '```'), 'the README shows the shipped unit as it is');
});
