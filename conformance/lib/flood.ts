import type { ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/index.js';
import { createCryptoProvider } from '../../src/crypto/providers/index.js';
import { createEngine } from '../../src/engine.js';
import { REPO_ROOT } from './ike-node.js';
import { processEnd, type Ns } from './netns.js';

/**
 * A spoofed first-message flood: IKEv1 main mode message 1 and IKEv2 IKE_SA_INIT requests, each
 * from its own source address and port of a whole /24, paced at a given rate. Without raw
 * sockets: the flooder's namespace holds the /24 through an AnyIP route (`ip route add local
 * 198.51.100.0/24 dev lo`, see `prepareFloodNamespace`), so a plain UDP socket binds any of its
 * addresses; the responder's answers come back to that namespace, where a firewall rule counts
 * and drops them (nobody reads them, and no ICMP goes back).
 *
 * This file is both the test's side (`startFlood`) and the flooder itself, run as a script inside
 * the namespace (`node --import tsx flood.ts OPTIONS`). The messages are what ike-node's own
 * engine sends as an initiator, so they parse and offer what the responder accepts; each copy
 * gets a random initiator SPI, so each looks like a new initiator.
 */

export interface FloodOptions {
  /** The responder's address and IKE port. */
  target: string;
  port: number;
  /** The first three octets of the /24 the flood comes from, such as '198.51.100'. */
  prefix: string;
  /** Messages per second. */
  rate: number;
  /** It goes on until asked to stop, and then until it has sent at least this many. */
  minimum: number;
  /** It stops after this long whatever happens. */
  maxSeconds: number;
  /** The IKE proposals the messages offer, one per version (they alternate). */
  proposals: { 1: string; 2: string };
}

export interface FloodReport {
  sent: number;
  /** Sends that failed (a bind or send error): the flood is then not what it claims to be. */
  failed: number;
  byVersion: { 1: number; 2: number };
  /** Distinct source addresses and address:port pairs used. */
  addresses: number;
  sources: number;
  /** From the first send to the last. */
  seconds: number;
  rate: number;
  /** The flooder's own CPU time (user + system): what it took from the machine. */
  cpuSeconds: number;
}

/** The flood's namespace: the whole /24 local (AnyIP), answers from `responder` counted and dropped. */
export async function prepareFloodNamespace(ns: Ns, prefix: string, responder: string): Promise<void> {
  await ns.exec('ip', ['route', 'add', 'local', `${prefix}.0/24`, 'dev', 'lo']);
  const ruleset = [
    'table inet flood {',
    '  chain input {',
    '    type filter hook input priority 0; policy accept;',
    `    ip saddr ${responder} udp sport { 500, 4500 } counter drop`,
    '  }',
    '}',
    '',
  ].join('\n');
  await ns.exec('nft', ['-f', '-'], { input: ruleset });
}

/** What the responder sent back to the flood (the drop rule's counter). */
export async function floodAnswers(ns: Ns): Promise<{ packets: number; bytes: number }> {
  const { stdout } = await ns.exec('nft', ['list', 'chain', 'inet', 'flood', 'input']);
  const match = /counter packets (\d+) bytes (\d+)/.exec(stdout);
  if (!match) throw new Error(`no counter in the flood namespace's rule:\n${stdout}`);
  return { packets: Number(match[1]), bytes: Number(match[2]) };
}

export interface Flood {
  /** Messages sent so far (from the flooder's progress lines, every 250 ms). */
  sent(): number;
  /** Asks it to stop (once it has sent its minimum) and resolves with its report. */
  stop(): Promise<FloodReport>;
}

const SCRIPT = fileURLToPath(import.meta.url);

export function startFlood(ns: Ns, options: FloodOptions): Flood {
  const child: ChildProcess = ns.spawn(
    process.execPath,
    ['--import', 'tsx', SCRIPT, JSON.stringify(options)],
    { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const end = processEnd(child, 5000);
  let sent = 0;
  let report: FloodReport | undefined;
  let output = '';
  let errors = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    const lines = output.split('\n');
    output = lines.pop()!;
    for (const line of lines) {
      const message = JSON.parse(line) as { progress?: number; report?: FloodReport };
      if (message.progress !== undefined) sent = message.progress;
      if (message.report) report = message.report;
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (errors = (errors + chunk).slice(-4000)));
  return {
    sent: () => sent,
    async stop() {
      child.stdin!.end();
      const code = await end.exit;
      if (code !== 0 || !report) throw new Error(`the flooder exited with ${code}:\n${errors}`);
      return report;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The flooder

/** Main mode message 1 and IKE_SA_INIT request as ike-node's engine sends them to `target`. */
export function firstMessages(options: FloodOptions): { 1: Uint8Array; 2: Uint8Array } {
  const local = `${options.prefix}.1`;
  const connection = (version: 1 | 2) => ({
    ikePolicy: { version, proposals: [options.proposals[version]] },
    ipsecPolicy: { proposals: ['aes128-sha1'] },
    local: { address: local, subnets: [`${local}/32`] },
    peer: { address: options.target, subnets: [`${options.target}/32`] },
    psk: 'flood-psk-nobody-will-ever-check-this',
    start: 'respond',
  });
  const config = parseConfig(
    JSON.stringify({
      listen: { addresses: [local] },
      kernel: 'memory',
      connections: { v1: connection(1), v2: connection(2) },
    }),
    'flood.json',
  );
  const engine = createEngine({
    connections: config.connections,
    crypto: createCryptoProvider('node'),
    logLevel: 'error',
  });
  const first = (name: string): Uint8Array => {
    const send = engine.initiate(name, 0).find((action) => action.type === 'send');
    if (!send) throw new Error(`the engine sent nothing for ${name}`);
    return send.data;
  };
  return { 1: first('v1'), 2: first('v2') };
}

async function flood(
  options: FloodOptions,
  messages: { 1: Uint8Array; 2: Uint8Array },
): Promise<FloodReport> {
  let stopping = false;
  process.stdin.on('end', () => (stopping = true)).resume();
  const random = Buffer.alloc(8 * 4096);
  let sent = 0;
  let failed = 0;
  let issued = 0;
  const byVersion = { 1: 0, 2: 0 };
  const addresses = new Set<string>();
  const sources = new Set<string>();
  const started = performance.now();
  let last = started;
  const progress = setInterval(() => process.stdout.write(`${JSON.stringify({ progress: sent })}\n`), 250);
  const sendOne = (i: number) =>
    new Promise<void>((resolve) => {
      const version = i % 2 === 0 ? 1 : 2;
      if (i % 4096 === 0) randomFillSync(random);
      const message = Buffer.from(messages[version]);
      random.copy(message, 0, 8 * (i % 4096), 8 * (i % 4096) + 8);
      // Address i mod 254 of the /24, port from 1024 up: no pair is used twice.
      const address = `${options.prefix}.${1 + (i % 254)}`;
      const port = 1024 + Math.floor(i / 254);
      const socket = createSocket('udp4');
      let finished = false;
      const done = (ok: boolean) => {
        if (finished) return;
        finished = true;
        if (ok) {
          sent++;
          byVersion[version]++;
          addresses.add(address);
          sources.add(`${address}:${port}`);
          last = performance.now();
        } else failed++;
        socket.close();
        resolve();
      };
      socket.once('error', () => done(false));
      socket.bind({ address, port, exclusive: true }, () =>
        socket.send(message, options.port, options.target, (error) => done(!error)),
      );
    });
  const pending = new Set<Promise<void>>();
  for (;;) {
    const elapsed = (performance.now() - started) / 1000;
    if ((stopping && issued >= options.minimum) || elapsed > options.maxSeconds) break;
    const due = Math.floor(elapsed * options.rate);
    while (issued < due) {
      const sending = sendOne(issued++);
      pending.add(sending);
      void sending.then(() => pending.delete(sending));
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await Promise.all(pending);
  clearInterval(progress);
  const seconds = (last - started) / 1000;
  return {
    sent,
    failed,
    byVersion,
    addresses: addresses.size,
    sources: sources.size,
    seconds,
    rate: sent / seconds,
    cpuSeconds: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
  };
}

if (process.argv[1] === SCRIPT) {
  const options = JSON.parse(process.argv[2]!) as FloodOptions;
  void flood(options, firstMessages(options)).then((report) =>
    process.stdout.write(`${JSON.stringify({ progress: report.sent })}\n${JSON.stringify({ report })}\n`),
  );
}
