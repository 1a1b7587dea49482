import t from 'tap';
import { Logger, parseLogLevels } from '../../src/daemon/logger.js';

t.test('text lines carry level, subsystem, connection and SA id', async (t) => {
  const lines: string[] = [];
  const logger = new Logger({ write: (line) => lines.push(line) });
  logger.log({
    level: 'info',
    subsystem: 'ike',
    connection: 'office',
    sa: 7,
    message: 'ISAKMP SA established',
  });
  logger.log({ level: 'debug', subsystem: 'ike', message: 'hidden at info' });
  t.equal(lines.length, 1);
  t.match(lines[0], /^\d{4}-\d\d-\d\dT[\d:.]+Z info {2}ike \[office #7\] ISAKMP SA established\n$/);
});

t.test('json lines are one object each', async (t) => {
  const lines: string[] = [];
  const logger = new Logger({ format: 'json', write: (line) => lines.push(line) });
  logger.log({ level: 'warn', subsystem: 'net', message: 'a "quoted"\nmessage' });
  t.equal(lines.length, 1);
  t.ok(lines[0]!.endsWith('\n'));
  t.equal(lines[0]!.trimEnd().includes('\n'), false, 'newlines in messages stay escaped');
  const record = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.same(
    { ...record, time: 'x' },
    { time: 'x', level: 'warn', subsystem: 'net', message: 'a "quoted"\nmessage' },
  );
});

t.test('levels per subsystem', async (t) => {
  const lines: string[] = [];
  const logger = new Logger({
    level: 'warn',
    subsystems: { ike: 'debug' },
    write: (line) => lines.push(line),
  });
  logger.log({ level: 'debug', subsystem: 'ike', message: 'ike debug' });
  logger.log({ level: 'info', subsystem: 'net', message: 'net info' });
  logger.log({ level: 'warn', subsystem: 'net', message: 'net warn' });
  t.same(
    lines.map((line) => line.replace(/^\S+ /, '').trim()),
    ['debug ike ike debug', 'warn  net net warn'],
  );
  t.same(parseLogLevels('debug'), { level: 'debug', subsystems: {} });
  t.same(parseLogLevels('info,knl=debug,net=error'), {
    level: 'info',
    subsystems: { knl: 'debug', net: 'error' },
  });
  t.throws(() => parseLogLevels('ike=loud'), /expected a level \(error, warn, info, debug\), got 'loud'/);
  t.throws(
    () => parseLogLevels('kernel=debug'),
    /expected a subsystem \(ike, cfg, net, knl, crypto, ctl\), got 'kernel'/,
  );
});
