import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type IkeNode, REPO_ROOT } from './ike-node.js';
import { delay, processEnd, type Ns, type Topology } from './netns.js';
import type { RelayOptions, RelayStats } from './impair-relay.js';
import { type IkeNodeStatus, until } from './scenario.js';
import type { Charon, ParsedSa } from './strongswan.js';

/**
 * What the impairment scenarios (conformance/impair/) do to the path between the peers, and how
 * they read the outcome: random loss with nftables (the host has no netem), duplication and
 * reordering through the project's UDP relay, NAT mappings forgotten by flushing conntrack.
 */

const RELAY = join(dirname(fileURLToPath(import.meta.url)), 'impair-relay.ts');

export interface LossCounters {
  /** UDP datagrams that arrived at the rules, and how many of them they dropped. */
  seen: number;
  dropped: number;
}

/**
 * Drops `percent`% of the UDP datagrams arriving on `iface` of `ns`, at random (`numgen random mod
 * 100 < percent`), counting what reaches the rules and what they drop. Arriving only: a datagram
 * dropped in the sender's own output hook fails its send with EPERM, which tells the sender what
 * real loss on the path never would. Loss both ways is this rule on both peers.
 */
export async function addLoss(ns: Ns, iface: string, percent: number): Promise<void> {
  const ruleset = [
    'table inet impair {',
    '  counter seen { }',
    '  counter dropped { }',
    '  chain incoming {',
    '    type filter hook input priority filter; policy accept;',
    `    iifname "${iface}" meta l4proto udp counter name "seen"`,
    `    iifname "${iface}" meta l4proto udp numgen random mod 100 < ${percent} counter name "dropped" drop`,
    '  }',
    '}',
    '',
  ].join('\n');
  await ns.exec('nft', ['-f', '-'], { input: ruleset });
}

export async function lossCounters(ns: Ns): Promise<LossCounters> {
  const { stdout } = await ns.exec('nft', ['-j', 'list', 'counters', 'table', 'inet', 'impair']);
  const packets = new Map<string, number>();
  for (const item of (JSON.parse(stdout) as { nftables: { counter?: { name: string; packets: number } }[] })
    .nftables) {
    if (item.counter) packets.set(item.counter.name, item.counter.packets);
  }
  return { seen: packets.get('seen') ?? 0, dropped: packets.get('dropped') ?? 0 };
}

export interface Relay {
  /** Stops the relay; resolves with what it did. */
  stop(): Promise<RelayStats>;
}

/** Starts the impairment relay in the router of a relay topology, between left and right. */
export async function startRelay(
  topology: Topology,
  impair: Pick<RelayOptions, 'seed' | 'duplicate' | 'delay' | 'delayMs'>,
): Promise<Relay> {
  if (topology.kind !== 'relay' || !topology.router) throw new Error('startRelay: needs a relay topology');
  const options: RelayOptions = {
    left: { face: topology.rightSeenAs, peer: topology.leftAddress },
    right: { face: topology.leftSeenAs, peer: topology.rightAddress },
    ports: [500, 4500],
    ...impair,
  };
  const child = topology.router.spawn(process.execPath, ['--import', 'tsx', RELAY, JSON.stringify(options)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let errors = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (errors += text));
  const end = processEnd(child, 3000);
  for (const deadline = Date.now() + 15_000; !output.includes('ready\n');) {
    if (end.exitCode() !== null || Date.now() > deadline) {
      await end.stop();
      throw new Error(`impair relay did not start (${end.exitCode()}): ${errors}`);
    }
    await delay(25);
  }
  return {
    async stop() {
      await end.stop();
      const line = output.split('\n').find((l) => l.startsWith('{'));
      if (!line) throw new Error(`impair relay reported nothing: ${output}${errors}`);
      return JSON.parse(line) as RelayStats;
    },
  };
}

/** Forgets every NAT mapping of the router: the next datagram from inside gets a new port. */
export async function flushConntrack(topology: Topology): Promise<void> {
  if (!topology.router) throw new Error('flushConntrack: the topology has no router');
  // conntrack -F exits 0 and reports the number of entries flushed on stderr.
  await topology.router.exec('conntrack', ['-F'], { allowFail: false });
}

/**
 * Resolves once `pattern` appears in (or `done` holds for) the text `read` returns (a log file: cheap to poll, where
 * asking `ike-node status` or swanctl every 100 ms would start a process each time and, four
 * scenarios at once on two cores, slow down what it measures).
 */
export async function logged(
  read: () => string,
  done: RegExp | ((text: string) => boolean),
  ms: number,
  what: string,
): Promise<void> {
  const end = Date.now() + ms;
  const test = done instanceof RegExp ? (text: string) => done.test(text) : done;
  while (!test(read())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(25);
  }
}

/** How many times `pattern` (with the g flag) appears in `text`. */
export function count(text: string, pattern: RegExp): number {
  return (text.match(pattern) ?? []).length;
}

/**
 * Milliseconds between the first ike-node log line matching `from` and the first after it matching
 * `to`, by the ISO times the lines start with; undefined when either is missing.
 */
export function logSpan(log: string, from: RegExp, to: RegExp): number | undefined {
  const lines = log.split('\n');
  const first = lines.findIndex((line) => from.test(line));
  const last = lines.findIndex((line, i) => i > first && to.test(line));
  if (first < 0 || last < 0) return undefined;
  const time = (line: string) => Date.parse(line.slice(0, line.indexOf(' ')));
  return time(lines[last]!) - time(lines[first]!);
}

/** How many child SAs ike-node's log shows installed. */
export function ikeNodeChildren(log: string): number {
  return count(log, /child SA installed/g);
}

/**
 * How many child SAs of connection net strongSwan's log shows established: distinct unique ids,
 * as an IKEv2 rekey logs its new child twice ("inbound CHILD_SA net{2} established", "outbound ...").
 */
export function charonChildren(log: string): number {
  return new Set([...log.matchAll(/CHILD_SA net\{(\d+)\} established/g)].map((m) => m[1])).size;
}

/**
 * Both sides have logged as many child SAs up as `installs` says (one each unless given); then ike-node's connection
 * `net` as `ike-node status` gives it and strongSwan's IKE SA `net` with its installed children,
 * and when (Date.now()) the second of the two log lines was seen.
 */
export async function tunnelUp(
  ikeNode: IkeNode,
  charon: Charon,
  ms: number,
  installs = { ikeNode: 1, charon: 1 },
): Promise<{ net: IkeNodeStatus[number]; sa: ParsedSa; at: number }> {
  await Promise.all([
    logged(
      () => ikeNode.log(),
      (log) => ikeNodeChildren(log) >= installs.ikeNode,
      ms,
      'ike-node: child up',
    ),
    logged(
      () => charon.log(),
      (log) => charonChildren(log) >= installs.charon,
      ms,
      'strongSwan: child up',
    ),
  ]);
  const at = Date.now();
  const net = await until(
    async () => {
      const [net] = (await ikeNode.status()) as IkeNodeStatus;
      return net?.status === 'Active' ? net : undefined;
    },
    5000,
    'ike-node status Active',
  );
  const sa = await until(
    async () =>
      (await charon.listSas()).find(
        (sa) =>
          sa.name === 'net' && sa.state === 'ESTABLISHED' && sa.children.some((c) => c.state === 'INSTALLED'),
      ),
    5000,
    'strongSwan: IKE SA net established',
  );
  return { net, sa, at };
}

/** Lines by which either side says it gave up on an exchange: none may appear. */
export function gaveUp(ikeNode: IkeNode, charon: Charon): string[] {
  return [
    ...(ikeNode.log().match(/^.*no answer from .*$/gm) ?? []),
    ...(charon.log().match(/^.*giving up after \d+ retransmits.*$/gm) ?? []),
  ];
}

/** How many times each side resent a message, from its log. */
export function retransmissions(ikeNode: IkeNode, charon: Charon): { ikeNode: number; strongSwan: number } {
  return {
    ikeNode: count(ikeNode.log(), /retransmitting (main mode message|quick mode message|request)/g),
    // IKEv1: "sending retransmit N of request message ID ..."; IKEv2: "retransmit N of request with ...".
    strongSwan: count(charon.log(), /retransmit \d+ of /g),
  };
}

/** A retransmission policy as both peers are given it, and the longest an exchange can wait. */
export interface RetransmitBudget {
  timeout: number;
  backoff: number;
  tries: number;
}

/** Seconds from the first send of a message until its sender gives up (the last wait included). */
export function budgetSeconds(r: RetransmitBudget): number {
  let total = 0;
  for (let n = 0; n <= r.tries; n++) total += r.timeout * r.backoff ** n;
  return total;
}
