import { EventEmitter } from 'node:events';
import { createSocket } from 'node:dgram';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parseConfig } from '../../src/config/index.js';
import type { ChildSa } from '../../src/core/sa.js';
import type { ConnectionStatus, TrafficCounters } from '../../src/core/status.js';
import { Daemon } from '../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../src/daemon/events.js';
import { Logger } from '../../src/daemon/logger.js';
import { FAILURE_CAUSES, type FailureCause } from '../../src/core/failure.js';
import {
  escapeLabel,
  FAILURE_REASONS,
  failureReason,
  Metrics,
  type MetricsSource,
  snakeCase,
} from '../../src/daemon/metrics.js';
import { MemoryBackend } from '../../src/kernel/memory.js';
import { createNode } from '../../src/index.js';
import { VERSION } from '../../src/version.js';
import { freeTcpPort } from '../../src/net/free-ports.js';
import { listenPorts } from '../helpers/daemon-pair.js';

/**
 * The Prometheus endpoint: its text checked by a strict parser of the exposition format 0.0.4
 * (written here: promtool is not available), counters moving through real negotiations between
 * loopback daemons, and the HTTP surface.
 */

interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
}
interface Family {
  help?: string;
  type?: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Parses exposition text and throws on anything the format does not allow: unknown comment
 * forms, HELP or TYPE twice or after samples, samples of a family without TYPE, bad names, bad
 * escapes, duplicate labels or series, counters not ending in _total, a missing final newline.
 */
function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('no final newline');
  const families = new Map<string, Family>();
  const series = new Set<string>();
  const family = (name: string) => {
    if (!NAME.test(name)) throw new Error(`bad metric name '${name}'`);
    const f = families.get(name) ?? { samples: [] };
    families.set(name, f);
    return f;
  };
  for (const [index, line] of text.slice(0, -1).split('\n').entries()) {
    const where = `line ${index + 1}: ${line}`;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) throw new Error(`${where}: not HELP or TYPE`);
      const f = family(m[2]!);
      if (f.samples.length) throw new Error(`${where}: after samples`);
      if (m[1] === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: HELP twice`);
        if (/\\[^\\n]/.test(m[3]!.replace(/\\\\/g, ''))) throw new Error(`${where}: bad escape in HELP`);
        f.help = m[3]!;
      } else {
        if (f.type !== undefined) throw new Error(`${where}: TYPE twice`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]!))
          throw new Error(`${where}: type ${m[3]}`);
        if (m[3] === 'counter' && !m[2]!.endsWith('_total'))
          throw new Error(`${where}: counter without _total`);
        f.type = m[3]!;
      }
      continue;
    }
    const m = /^([^{\s]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample`);
    const f = families.get(m[1]!);
    if (!f?.type) throw new Error(`${where}: sample before its TYPE`);
    const labels = parseLabels(m[2] ?? '', where);
    const value = Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`${where}: value ${m[3]}`);
    const key = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`${where}: duplicate series`);
    series.add(key);
    f.samples.push({ labels, value });
  }
  return families;
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest) {
    const m = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
    if (!m) throw new Error(`${where}: bad labels at '${rest}'`);
    if (!LABEL_NAME.test(m[1]!)) throw new Error(`${where}: bad label name '${m[1]}'`);
    if (m[1]! in labels) throw new Error(`${where}: label ${m[1]} twice`);
    labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    rest = rest.slice(m[0].length);
  }
  return labels;
}

/** The value of the one sample of `name` with (at least) `labels`; undefined when there is none. */
function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}) {
  const matching = (families.get(name)?.samples ?? []).filter((s) =>
    Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (matching.length > 1) throw new Error(`${name}: ${matching.length} samples match`);
  return matching[0]?.value;
}

t.test('the test parser rejects what the format forbids', async (t) => {
  t.throws(() => parseExposition('a 1'), /final newline/);
  t.throws(() => parseExposition('a 1\n'), /before its TYPE/);
  t.throws(() => parseExposition('# TYPE a_total counter\na_total{x="\\q"} 1\n'), /bad labels/);
  t.throws(() => parseExposition('# TYPE a counter\n'), /without _total/);
  t.throws(() => parseExposition('# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n'), /duplicate/);
  t.throws(() => parseExposition('# TYPE a gauge\na 1\n# HELP a late\n'), /after samples/);
  t.same(parseExposition('# TYPE a gauge\na{x="q\\"\\\\\\n"} 1\n').get('a')!.samples, [
    { labels: { x: 'q"\\\n' }, value: 1 },
  ]);
});

t.test('failure reasons: a fixed set of label values from the typed causes, in snake_case', async (t) => {
  const cases: [FailureCause, string][] = [
    ['no-proposal', 'no_proposal_chosen'],
    ['authentication', 'authentication_failed'],
    ['identity', 'invalid_id'],
    ['timeout', 'timeout'],
    ['selectors', 'selectors'],
    ['peer-notify', 'peer_notify'],
    ['dead-peer', 'dead_peer'],
  ];
  for (const [cause, reason] of cases) t.equal(failureReason(cause), reason, cause);
  t.equal(new Set(FAILURE_REASONS).size, FAILURE_CAUSES.length, 'one label value per cause');
  for (const reason of FAILURE_REASONS) t.match(reason, /^[a-z][a-z0-9_]*$/);
  t.same(['MM_SA_I', 'Active', 'unknown-spi', 'IKE_SA_INIT_R', 'install-refused'].map(snakeCase), [
    'mm_sa_i',
    'active',
    'unknown_spi',
    'ike_sa_init_r',
    'install_refused',
  ]);
});

/** A daemon stand-in: events, a status and a kernel that counts. */
class FakeSource extends EventEmitter implements MetricsSource {
  statuses: ConnectionStatus[] = [];
  readonly engine = {
    stats: { refusedHalfOpen: 9000, evictedHalfOpen: 1000, refusedNegotiations: 4, internalErrors: 0 },
  };
  readonly firstMessages = { dropped: 250 };
  readonly kernel = new (class extends MemoryBackend {
    traffic = new Map<number, TrafficCounters>();
    async counters(child: ChildSa): Promise<TrafficCounters | undefined> {
      return this.traffic.get(child.id);
    }
    problems(): Record<string, number> {
      return { 'unknown-spi': 3, replay: 0 };
    }
  })();
  status(): ConnectionStatus[] {
    return this.statuses;
  }
  send(event: DaemonEvent): void {
    this.emit('event', event);
  }
}

t.test('counters from events, gauges from status, traffic from the kernel, labels escaped', async (t) => {
  const source = new FakeSource();
  const metrics = new Metrics(source);
  const time = 0;
  source.send({ type: 'negotiation-started', kind: 'ike', ikeSa: 1, time });
  source.send({ type: 'negotiation-started', kind: 'child', ikeSa: 1, time });
  source.send({ type: 'retransmit', ikeSa: 1, time });
  source.send({
    type: 'negotiation-failed',
    kind: 'ike',
    cause: 'authentication',
    reason: 'peer sent AUTHENTICATION_FAILED',
    time,
  });
  source.send({
    type: 'negotiation-failed',
    kind: 'child',
    cause: 'malformed',
    reason: 'free "text"\nhere',
    time,
  });
  source.send({ type: 'reload', added: [], changed: [], removed: [], time });
  // A name the configuration would refuse, to see escaping work where a name does appear.
  const odd = 'odd "name" \\ with\nnewline';
  const child = { id: 7, connection: odd } as ChildSa;
  await source.kernel.install(child);
  source.kernel.traffic.set(7, { bytesIn: 1500, packetsIn: 3, bytesOut: 800, packetsOut: 2 });
  source.statuses = [
    {
      name: 'a',
      peer: '192.0.2.1',
      status: 'Active',
      ikeSas: [{ state: 'ESTABLISHED', version: 1 }],
      childSas: [{ mode: 'tunnel' }],
    },
    { name: 'b', peer: 'any', status: 'Error', ikeSas: [{ state: 'MM_SA_SENT', version: 1 }], childSas: [] },
  ] as unknown as ConnectionStatus[];
  const text = await metrics.render();
  const f = parseExposition(text);
  t.equal(value(f, 'ike_node_up'), 1);
  t.same(
    ['active', 'pending', 'down', 'error'].map((status) => value(f, 'ike_node_connections', { status })),
    [1, 0, 0, 1],
  );
  t.same(
    [
      value(f, 'ike_node_connection_up', { connection: 'a' }),
      value(f, 'ike_node_connection_up', { connection: 'b' }),
    ],
    [1, 0],
    'per connection: up or not, for an alert on one tunnel',
  );
  t.equal(value(f, 'ike_node_ike_sas', { state: 'established', version: '1' }), 1);
  t.equal(value(f, 'ike_node_ike_sas', { state: 'mm_sa_sent', version: '1' }), 1);
  t.same(
    [
      value(f, 'ike_node_child_sas', { mode: 'tunnel' }),
      value(f, 'ike_node_child_sas', { mode: 'transport' }),
    ],
    [1, 0],
  );
  t.equal(value(f, 'ike_node_negotiations_started_total', { kind: 'ike' }), 1);
  t.equal(
    value(f, 'ike_node_negotiations_succeeded_total', { kind: 'ike' }),
    0,
    'zero series exist from the start',
  );
  t.equal(
    value(f, 'ike_node_negotiations_failed_total', { kind: 'ike', reason: 'authentication_failed' }),
    1,
  );
  t.equal(
    value(f, 'ike_node_negotiations_failed_total', { kind: 'child', reason: 'malformed' }),
    1,
    'by the typed cause, whatever the free text',
  );
  t.equal(
    f.get('ike_node_negotiations_failed_total')!.samples.length,
    2 * FAILURE_CAUSES.length,
    'and only kind x cause series exist',
  );
  t.equal(value(f, 'ike_node_negotiations_started_total', { kind: 'child' }), 1);
  source.send({
    type: 'negotiation-failed',
    kind: 'child',
    cause: 'no-proposal',
    reason: 'quick mode: no proposal chosen',
    refused: true,
    time,
  });
  const refused = parseExposition(await metrics.render());
  t.equal(
    value(refused, 'ike_node_negotiations_started_total', { kind: 'child' }),
    2,
    'a negotiation refused at its first message counts as started too',
  );
  t.equal(
    value(refused, 'ike_node_negotiations_failed_total', { kind: 'child', reason: 'no_proposal_chosen' }),
    1,
  );
  t.equal(value(f, 'ike_node_retransmissions_total'), 1);
  t.equal(value(f, 'ike_node_child_sa_bytes_total', { connection: odd, child: '7', direction: 'in' }), 1500);
  t.equal(value(f, 'ike_node_child_sa_packets_total', { connection: odd, child: '7', direction: 'out' }), 2);
  t.equal(
    value(f, 'ike_node_kernel_problems_total', { cause: 'unknown_spi' }),
    3,
    'kernel problems by cause',
  );
  t.equal(value(f, 'ike_node_kernel_problems_total', { cause: 'replay' }), 0);
  t.same(
    [
      value(f, 'ike_node_half_open_refused_total'),
      value(f, 'ike_node_half_open_evicted_total'),
      value(f, 'ike_node_first_messages_dropped_total'),
      value(f, 'ike_node_internal_errors_total'),
    ],
    [9000, 1000, 250, 0],
    "the engine's counters: first messages refused and half-open SAs evicted (a flood), first messages the daemon's queue dropped, internal errors",
  );
  source.engine.stats.internalErrors = 2;
  t.equal(
    value(parseExposition(await metrics.render()), 'ike_node_internal_errors_total'),
    2,
    'read at each scrape',
  );
  t.ok(text.includes(`connection="${escapeLabel(odd)}"`), 'the raw text carries the escaped value');
  t.match(text, /connection="odd \\"name\\" \\\\ with\\nnewline"/);
  for (const [name, family] of f) t.ok(family.help && family.type, `${name}: HELP and TYPE`);

  // Events after close are not counted: the listener is gone.
  await metrics.close();
  source.send({ type: 'retransmit', ikeSa: 1, time });
  t.equal(value(parseExposition(await metrics.render()), 'ike_node_retransmissions_total'), 1);
});

function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('HTTP: GET and HEAD /metrics, 404 elsewhere, 405 for other methods', async (t) => {
  const source = new FakeSource();
  const metrics = new Metrics(source);
  const { port, address } = await metrics.listen('127.0.0.1', 0);
  t.teardown(() => metrics.close());
  t.equal(address, '127.0.0.1', 'bound to the address asked for');
  const base = `http://127.0.0.1:${port}`;
  const ok = await get(`${base}/metrics`);
  t.equal(ok.status, 200);
  t.equal(ok.type, 'text/plain; version=0.0.4; charset=utf-8');
  t.equal(value(parseExposition(ok.body), 'ike_node_up'), 1);
  t.equal(
    parseExposition(ok.body).get('ike_node_child_sa_bytes_total')!.samples.length,
    0,
    'nothing installed',
  );
  const head = await get(`${base}/metrics`, 'HEAD');
  t.same([head.status, head.body], [200, '']);
  t.equal((await get(`${base}/`)).status, 404);
  t.equal((await get(`${base}/metrics/x`)).status, 404);
  t.equal((await get(`${base}/metrics`, 'POST')).status, 405);
});

const PSK = 'metrics-test-psk-8c41a0';
const DAEMONS = Array.from({ length: 12 }, (_, i) => `127.0.0.${31 + i}`);
const portsOf = await listenPorts([...DAEMONS, '127.0.0.51', '127.0.0.52']);
/** Each daemon's metrics endpoint: a TCP port the kernel handed out on its own address. */
const metricsPorts = new Map<string, number>();
for (const address of DAEMONS) metricsPorts.set(address, await freeTcpPort(address));
const metricsUrl = (address: string) => `http://${address}:${metricsPorts.get(address)}/metrics`;

/** Pairs on 127.0.0.3x; `metrics` gives a daemon its endpoint on its own address. */
function config(
  dir: string,
  self: string,
  peer: string,
  start: 'initiate' | 'respond',
  options: { psk?: string; ike?: string; metrics?: boolean; retransmit?: object } = {},
) {
  return parseConfig(
    JSON.stringify({
      listen: { addresses: [self], ...portsOf(self) },
      ...(options.retransmit && { retransmit: options.retransmit }),
      control: { socket: join(dir, `${self}.sock`) },
      ...(options.metrics && { metrics: { listen: `${self}:${metricsPorts.get(self)}` } }),
      ikePolicies: { ike: { proposals: [options.ike ?? 'aes128-sha256-modp2048'] } },
      ipsecPolicies: { esp: { proposals: ['aes128-sha256'] } },
      connections: {
        site: {
          ikePolicy: 'ike',
          ipsecPolicy: 'esp',
          local: { address: self, subnets: [start === 'initiate' ? '198.51.100.0/24' : '203.0.113.0/24'] },
          peer: {
            address: peer,
            port: portsOf(peer).port,
            subnets: [start === 'initiate' ? '203.0.113.0/24' : '198.51.100.0/24'],
          },
          psk: options.psk ?? PSK,
          start,
        },
      },
    }),
    join(dir, `${self}.json`),
  );
}

async function until(predicate: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test('real negotiations between loopback daemons move the counters', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-metrics-'));
  const logger = () => new Logger({ level: 'error', write: () => {} });
  const daemons = [
    // A tunnel that comes up; the initiator serves metrics from its config.
    new Daemon(config(dir, '127.0.0.32', '127.0.0.31', 'respond'), { logger: logger() }),
    new Daemon(config(dir, '127.0.0.31', '127.0.0.32', 'initiate', { metrics: true }), { logger: logger() }),
    // A wrong pre-shared key: the responder, serving metrics, fails to authenticate. It drops the
    // messages 5 it cannot verify and fails when its retransmissions run out (shortened here).
    new Daemon(
      config(dir, '127.0.0.34', '127.0.0.33', 'respond', {
        metrics: true,
        retransmit: { timeout: 0.2, backoff: 1, tries: 2 },
      }),
      { logger: logger() },
    ),
    new Daemon(config(dir, '127.0.0.33', '127.0.0.34', 'initiate', { psk: 'not-the-same-psk' }), {
      logger: logger(),
    }),
    // Proposals that do not meet, and (further down) a peer that never answers.
    new Daemon(config(dir, '127.0.0.36', '127.0.0.35', 'respond'), { logger: logger() }),
    new Daemon(
      config(dir, '127.0.0.35', '127.0.0.36', 'initiate', { ike: '3des-sha1-modp1024', metrics: true }),
      {
        logger: logger(),
      },
    ),
    new Daemon(config(dir, '127.0.0.37', '127.0.0.38', 'initiate', { metrics: true }), { logger: logger() }),
  ];
  t.teardown(async () => {
    for (const daemon of daemons) await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const daemon of daemons) await daemon.start();
  const scrape = async (address: string) => {
    const response = await get(metricsUrl(address));
    t.equal(response.status, 200);
    return parseExposition(response.body);
  };

  await until(() => daemons[1]!.status()[0]?.status === 'Active');
  const up = await scrape('127.0.0.31');
  t.equal(value(up, 'ike_node_connections', { status: 'active' }), 1);
  t.equal(value(up, 'ike_node_connection_up', { connection: 'site' }), 1);
  t.equal(value(up, 'ike_node_negotiations_started_total', { kind: 'ike' }), 1);
  t.equal(value(up, 'ike_node_negotiations_started_total', { kind: 'child' }), 1);
  t.equal(value(up, 'ike_node_negotiations_succeeded_total', { kind: 'ike' }), 1);
  t.equal(value(up, 'ike_node_negotiations_succeeded_total', { kind: 'child' }), 1);
  t.equal(value(up, 'ike_node_ike_sas', { version: '1' }), 1, 'one IKE SA');
  t.equal(value(up, 'ike_node_child_sas', { mode: 'tunnel' }), 1);
  t.equal(up.get('ike_node_child_sa_bytes_total')!.samples.length, 0, 'the memory backend counts nothing');

  await until(() => daemons[2]!.status()[0]?.status === 'Error');
  const badPsk = await scrape('127.0.0.34');
  t.equal(
    value(badPsk, 'ike_node_negotiations_failed_total', { kind: 'ike', reason: 'authentication_failed' }),
    1,
  );
  t.equal(value(badPsk, 'ike_node_connections', { status: 'error' }), 1);
  t.equal(value(badPsk, 'ike_node_connection_up', { connection: 'site' }), 0, 'tunnel site is down');

  await until(() => daemons[5]!.status()[0]?.status === 'Error');
  const noProposal = await scrape('127.0.0.35');
  t.equal(
    value(noProposal, 'ike_node_negotiations_failed_total', { kind: 'ike', reason: 'no_proposal_chosen' }),
    1,
  );
  t.equal(value(noProposal, 'ike_node_negotiations_succeeded_total', { kind: 'ike' }), 0);

  // Nobody at 127.0.0.38: the first resend comes after the engine's initial timeout (2 s).
  await until(
    async () => (value(await scrape('127.0.0.37'), 'ike_node_retransmissions_total') ?? 0) >= 1,
    6000,
  );
  t.pass('an unanswered main mode counts as retransmissions');

  // Stopping closes the endpoint.
  await daemons[6]!.stop();
  await t.rejects(get(metricsUrl('127.0.0.37')), { code: 'ECONNREFUSED' });
});

t.test('a metrics port in use fails the start; a changed metrics setting needs a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-metrics-'));
  const holder = new Metrics(new FakeSource());
  await holder.listen('127.0.0.39', metricsPorts.get('127.0.0.39')!);
  const daemon = new Daemon(config(dir, '127.0.0.39', '127.0.0.40', 'respond', { metrics: true }), {
    logger: new Logger({ level: 'error', write: () => {} }),
  });
  t.teardown(async () => {
    await daemon.stop();
    await holder.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await t.rejects(daemon.start(), { code: 'EADDRINUSE' });
  const result = daemon.reload(config(dir, '127.0.0.39', '127.0.0.40', 'respond'));
  t.same(result.needsRestart, ['metrics']);
});

t.test('a start that fails at the IKE port closes what it had opened (the metrics endpoint)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-metrics-'));
  const squatter = createSocket('udp4');
  await new Promise<void>((resolve) => squatter.bind(portsOf('127.0.0.41').port, '127.0.0.41', resolve));
  const daemon = new Daemon(config(dir, '127.0.0.41', '127.0.0.42', 'respond', { metrics: true }), {
    logger: new Logger({ level: 'error', write: () => {} }),
  });
  t.teardown(() => {
    squatter.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await t.rejects(
    daemon.start(),
    new RegExp(`cannot listen on 127\\.0\\.0\\.41 port ${portsOf('127.0.0.41').port}: the port is in use`),
  );
  await t.rejects(
    get(metricsUrl('127.0.0.41')),
    { code: 'ECONNREFUSED' },
    'the metrics endpoint it had opened is closed again',
  );
});

/** The label values of enumerations (not names): snake_case, one style. */
const ENUMERATED = ['status', 'state', 'kind', 'reason', 'cause', 'mode', 'direction'];

function checkStyle(t: Test, families: Map<string, Family>): void {
  for (const [name, family] of families)
    for (const sample of family.samples)
      for (const label of ENUMERATED)
        if (label in sample.labels) t.match(sample.labels[label], /^[a-z][a-z0-9_]*$/, `${name} ${label}`);
}

for (const version of [1, 2] as const) {
  t.test(
    `IKEv${version}: a refused child SA is counted on both sides; refusals count as started`,
    async (t) => {
      const node = (self: string, peer: string, esp: string) =>
        createNode({
          listen: { addresses: [self], ...portsOf(self) },
          workers: 0,
          connections: {
            lab: {
              ikePolicy: { proposals: ['aes128-sha256-modp2048'], ikeVersion: version },
              ipsecPolicy: { proposals: [esp] },
              local: { address: self, subnets: [self.endsWith('51') ? '198.51.100.0/24' : '203.0.113.0/24'] },
              peer: {
                address: peer,
                port: portsOf(peer).port,
                subnets: [self.endsWith('51') ? '203.0.113.0/24' : '198.51.100.0/24'],
              },
              psk: 'metrics-refusal-key',
            },
          },
        });
      const a = node('127.0.0.51', '127.0.0.52', 'aes128-sha256');
      const b = node('127.0.0.52', '127.0.0.51', 'aes256-sha256');
      const metricsA = new Metrics(a);
      const metricsB = new Metrics(b);
      t.teardown(async () => {
        await metricsA.close();
        await metricsB.close();
        await a.stop();
        await b.stop();
      });
      await b.start();
      await a.start();
      t.match(await a.initiate('lab'), { state: 'failed', failure: { cause: 'no-proposal' } });
      await until(async () => {
        const f = parseExposition(await metricsB.render());
        return (
          value(f, 'ike_node_negotiations_failed_total', { kind: 'child', reason: 'no_proposal_chosen' }) ===
          1
        );
      });
      const initiator = parseExposition(await metricsA.render());
      const responder = parseExposition(await metricsB.render());
      t.equal(
        value(initiator, 'ike_node_negotiations_failed_total', {
          kind: 'child',
          reason: 'no_proposal_chosen',
        }),
        1,
        "the initiator counts the peer's refusal",
      );
      t.equal(value(initiator, 'ike_node_negotiations_started_total', { kind: 'child' }), 1);
      t.equal(value(initiator, 'ike_node_connection_up', { connection: 'lab' }), 0);
      t.equal(value(initiator, 'ike_node_connections', { status: 'error' }), 1);
      t.ok(
        (value(responder, 'ike_node_negotiations_started_total', { kind: 'child' }) ?? 0) >=
          (value(responder, 'ike_node_negotiations_failed_total', {
            kind: 'child',
            reason: 'no_proposal_chosen',
          }) ?? 0),
        'the responder counts what it refused as started too: never more failed than started',
      );
      t.equal(value(responder, 'ike_node_negotiations_started_total', { kind: 'child' }), 1);
      checkStyle(t, initiator);
      checkStyle(t, responder);
    },
  );
}

t.test('build info and the process metrics of the Prometheus client libraries', async (t) => {
  const source = new FakeSource();
  const metrics = new Metrics(source);
  t.teardown(() => metrics.close());
  const before = Date.now() / 1000;
  const f = parseExposition(await metrics.render());
  t.equal(value(f, 'ike_node_build_info', { version: VERSION, nodejs: process.version }), 1);
  t.equal(f.get('ike_node_build_info')!.type, 'gauge');
  t.equal(f.get('process_cpu_seconds_total')!.type, 'counter');
  t.ok(value(f, 'process_cpu_seconds_total')! > 0, 'CPU seconds');
  t.ok(value(f, 'process_resident_memory_bytes')! > 10 * 1024 * 1024, 'resident memory, in bytes');
  const used = value(f, 'nodejs_heap_size_used_bytes')!;
  const reserved = value(f, 'nodejs_heap_size_total_bytes')!;
  t.ok(used > 1024 * 1024 && used <= reserved, `heap used ${used} of ${reserved} bytes`);
  t.ok(reserved < value(f, 'process_resident_memory_bytes')! * 2, 'the heap is part of the process');
  t.ok(value(f, 'nodejs_external_memory_bytes')! > 0, 'memory outside the heap, in bytes');
  // Per space: the old space holds most of what is live, and the spaces add up to the heap.
  const spaces = f.get('nodejs_heap_space_size_used_bytes')!.samples;
  t.ok(
    spaces.some((sample) => sample.labels.space === 'old'),
    'the old space is named without its suffix',
  );
  t.ok(value(f, 'nodejs_heap_space_size_used_bytes', { space: 'old' })! > 0, 'old space used, in bytes');
  const sum = (name: string) => f.get(name)!.samples.reduce((total, sample) => total + sample.value, 0);
  t.ok(sum('nodejs_heap_space_size_total_bytes') <= reserved * 1.05, 'spaces within the reserved heap');
  t.ok(sum('nodejs_heap_space_size_used_bytes') >= used * 0.9, 'spaces hold the used heap');
  t.ok(value(f, 'nodejs_heap_space_size_available_bytes', { space: 'new' })! >= 0, 'young generation room');
  const fds = value(f, 'process_open_fds')!;
  t.ok(fds >= 3 && fds < (value(f, 'process_max_fds') ?? Infinity), `open descriptors: ${fds}`);
  const started = value(f, 'process_start_time_seconds')!;
  t.ok(started <= before && started > before - process.uptime() - 5, 'start time, Unix seconds');
  for (const name of [
    'process_resident_memory_bytes',
    'nodejs_heap_size_used_bytes',
    'nodejs_heap_size_total_bytes',
    'nodejs_external_memory_bytes',
    'process_open_fds',
    'process_start_time_seconds',
  ])
    t.equal(f.get(name)!.type, 'gauge', name);
});
