import t from 'tap';
import { CONFIG_DEFAULTS, parseConfig } from '../../src/config/index.js';
import { errorsOf, FILE, hasError, hasUnknownKey } from './fixtures/helpers.js';

/** The daemon's own keys: log, metrics, debug, retransmit and ike (listen, kernel... are in errors.test.ts). */

t.test('defaults when absent', async (t) => {
  const config = parseConfig('{}', FILE);
  t.same(config.log, { level: 'info', format: 'text', subsystems: {} });
  t.equal(config.metrics, undefined, 'no metrics key: no metrics endpoint');
  t.notOk('metrics' in config, 'not even as an undefined key');
  t.same(config.debug, {});
  t.same(config.retransmit, { timeout: 2, backoff: 1.8, tries: 5 });
  t.same(config.retransmit, CONFIG_DEFAULTS.retransmit);
  t.same(config.ike, {
    fragmentSize: 1280,
    cookieThreshold: 100,
    maxHalfOpen: 1024,
    maxHalfOpenPerAddress: 128,
  });
});

t.test('log: level, format and per-subsystem levels', async (t) => {
  const config = parseConfig(
    JSON.stringify({ log: { level: 'warn', format: 'json', subsystems: { ike: 'debug', knl: 'error' } } }),
    FILE,
  );
  t.same(config.log, { level: 'warn', format: 'json', subsystems: { ike: 'debug', knl: 'error' } });
  const errors = errorsOf(t, {
    log: { level: 'trace', format: 'xml', subsystems: { ike: 'verbose', kernel: 'debug', cfg: 1 } },
  });
  hasError(t, errors, 'log.level', '"error", "warn", "info" or "debug"');
  hasError(t, errors, 'log.format', '"text" (one line per event) or "json"');
  hasError(t, errors, 'log.subsystems.ike', '"error", "warn", "info" or "debug"');
  hasError(t, errors, 'log.subsystems.cfg', '"error", "warn", "info" or "debug"');
  const unknown = errors.find((e) => e.path === 'log.subsystems.kernel');
  t.equal(
    unknown?.message,
    `${FILE}: log.subsystems.kernel: unknown key; expected one of the keys ike, cfg, net, knl, crypto, ctl`,
  );
  t.equal(errors.length, 5);
});

t.test('metrics: an IPv4 address and port, or an IPv6 address in brackets and port', async (t) => {
  const metrics = (listen: unknown) => parseConfig(JSON.stringify({ metrics: { listen } }), FILE).metrics;
  t.same(metrics('127.0.0.1:9469'), { host: '127.0.0.1', port: 9469 });
  t.same(metrics('[::1]:9469'), { host: '::1', port: 9469 });
  t.same(metrics('[2001:DB8:0::5]:1'), { host: '2001:db8::5', port: 1 }, 'addresses in canonical form');
  t.same(metrics('0.0.0.0:65535'), { host: '0.0.0.0', port: 65535 });
  for (const bad of [
    '127.0.0.1',
    '::1:9469',
    '[127.0.0.1]:9469',
    '127.0.0.1:0',
    '127.0.0.1:65536',
    'localhost:9469',
    '[::1]',
    9469,
  ]) {
    hasError(
      t,
      errorsOf(t, { metrics: { listen: bad } }),
      'metrics.listen',
      'an IP address and port to serve metrics on, such as "127.0.0.1:9469" or "[::1]:9469"',
    );
  }
  hasError(t, errorsOf(t, { metrics: {} }), 'metrics.listen', 'an IP address and port');
  hasError(
    t,
    errorsOf(t, { metrics: '127.0.0.1:9469' }),
    'metrics',
    'an object { "listen": "127.0.0.1:9469" }',
  );
});

t.test('debug.keyLog resolves against the configuration file directory', async (t) => {
  const keyLog = (path: string) =>
    parseConfig(JSON.stringify({ debug: { keyLog: path } }), FILE).debug.keyLog;
  t.equal(keyLog('ike-keys'), '/etc/ike-node/ike-keys');
  t.equal(keyLog('../var/ike-keys'), '/etc/var/ike-keys');
  t.equal(keyLog('/var/tmp/ike-keys'), '/var/tmp/ike-keys');
  hasError(t, errorsOf(t, { debug: { keyLog: '' } }), 'debug.keyLog', 'the path of a directory');
  hasUnknownKey(t, errorsOf(t, { debug: { keylog: 'x' } }), 'debug.keylog', { suggestion: 'keyLog' });
  t.same(parseConfig(JSON.stringify({ debug: { coreDumps: true } }), FILE).debug, { coreDumps: true });
  t.same(parseConfig(JSON.stringify({ debug: { coreDumps: false } }), FILE).debug, {}, 'false: the default');
  hasError(t, errorsOf(t, { debug: { coreDumps: 'yes' } }), 'debug.coreDumps', 'true or false');
});

t.test('retransmit: timeout, backoff and tries within sane ranges', async (t) => {
  const config = parseConfig(JSON.stringify({ retransmit: { timeout: 0.5, backoff: 2 } }), FILE);
  t.same(config.retransmit, { timeout: 0.5, backoff: 2, tries: 5 }, 'missing fields take their defaults');
  t.same(
    parseConfig(JSON.stringify({ retransmit: { tries: 0 } }), FILE).retransmit.tries,
    0,
    'no resends at all',
  );
  const errors = errorsOf(t, { retransmit: { timeout: 0, backoff: 0.9, tries: 21 } });
  hasError(t, errors, 'retransmit.timeout', 'a number from 0.1 to 60');
  hasError(t, errors, 'retransmit.backoff', 'a number from 1 to 4');
  hasError(t, errors, 'retransmit.tries', 'a whole number from 0 to 20');
  hasError(t, errorsOf(t, { retransmit: { timeout: 61 } }), 'retransmit.timeout', 'from 0.1 to 60');
  hasError(t, errorsOf(t, { retransmit: { tries: 2.5 } }), 'retransmit.tries', 'a whole number');
  hasError(t, errorsOf(t, { retransmit: { timeout: '2' } }), 'retransmit.timeout', 'a number');
});

t.test('ike: fragment size and cookie threshold within sane ranges', async (t) => {
  const config = parseConfig(JSON.stringify({ ike: { cookieThreshold: 0 } }), FILE);
  t.same(
    config.ike,
    { fragmentSize: 1280, cookieThreshold: 0, maxHalfOpen: 1024, maxHalfOpenPerAddress: 128 },
    'cookies always; the rest by default',
  );
  t.equal(parseConfig(JSON.stringify({ ike: { fragmentSize: 576 } }), FILE).ike.fragmentSize, 576);
  const errors = errorsOf(t, { ike: { fragmentSize: 500, cookieThreshold: -1 } });
  hasError(t, errors, 'ike.fragmentSize', 'a whole number from 576 to 9000');
  hasError(t, errors, 'ike.cookieThreshold', 'a whole number from 0 to 100000');
  hasError(t, errorsOf(t, { ike: { fragmentSize: 1280.5 } }), 'ike.fragmentSize', 'a whole number');
  const limits = { maxHalfOpen: 200, maxHalfOpenPerAddress: 10 };
  t.match(parseConfig(JSON.stringify({ ike: limits }), FILE).ike, limits, 'half-open limits as given');
  const bad = errorsOf(t, { ike: { maxHalfOpen: 0, maxHalfOpenPerAddress: 2.5 } });
  hasError(t, bad, 'ike.maxHalfOpen', 'a whole number from 1 to 1000000');
  hasError(t, bad, 'ike.maxHalfOpenPerAddress', 'a whole number');
  hasUnknownKey(t, errorsOf(t, { ike: { fragment_size: 1000 } }), 'ike.fragment_size', {
    suggestion: 'fragmentSize',
  });
});
