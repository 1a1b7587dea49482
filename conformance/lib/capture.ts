import type { ChildProcess } from 'node:child_process';
import { run, signal, type Ns } from './netns.js';

/**
 * Packet captures of IKE traffic inside a namespace (tcpdump), and their dissection by tshark: an
 * independent implementation's opinion of what went over the wire.
 */

export interface Capture {
  readonly file: string;
  readonly pid: number;
  /**
   * Stops tcpdump (SIGTERM) and waits until the file is complete. Idempotent. Resolves to
   * tcpdump's closing counters ("N packets captured, N received by filter, N dropped by kernel"),
   * so that a capture missing frames says whether the kernel dropped them.
   */
  stop(): Promise<string>;
}

export const IKE_FILTER = 'udp port 500 or udp port 4500';

export interface CaptureOptions {
  /**
   * Only packets sent (`out`) or received (`in`) on the interface (`tcpdump -Q`). In the kernel
   * lab, tunnel-mode ESP that arrives is re-injected decrypted on the same device: a capture of
   * outgoing packets on each side shows what crossed the wire, and nothing else.
   */
  direction?: 'in' | 'out' | 'inout';
}

/**
 * Starts `tcpdump --immediate-mode -U -i IFACE -w FILE udp port 500 or udp port 4500` in `ns`
 * (another filter, or none with '').
 */
export async function startCapture(
  ns: Ns,
  iface: string,
  file: string,
  filter = IKE_FILTER,
  options: CaptureOptions = {},
): Promise<Capture> {
  // -Z root: Debian's tcpdump otherwise drops to the tcpdump user and cannot write into our
  // root-owned temporary directories. --immediate-mode -U: nothing is lost when we stop it.
  const child: ChildProcess = ns.spawn(
    'tcpdump',
    [
      '--immediate-mode',
      '-U',
      '-n',
      '-Z',
      'root',
      ...(options.direction ? ['-Q', options.direction] : []),
      '-i',
      iface,
      '-w',
      file,
      ...filter.split(' ').filter(Boolean),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('tcpdump: spawn failed');
  let stderr = '';
  let done = false;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      done = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`tcpdump on ${iface} not ready after 5 s: ${stderr}`)),
      5000,
    );
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (/listening on/.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`tcpdump on ${iface} exited: ${stderr}`));
    });
  });
  let stopping: Promise<string> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (!done) signal(pid, 'SIGTERM');
      await exited;
      return stderr
        .split('\n')
        .filter((line) => /^\d+ packets? /.test(line))
        .join(', ');
    })();
    return stopping;
  };
  ns.onDestroy(async () => void (await stop()));
  return { file, pid, stop };
}

/**
 * `-d` options that make tshark dissect IKE through a NAT as IKE. A masquerading router maps port
 * 500 to a random port of 1-511 (4500 to one of 1024-65535), and tshark picks a UDP datagram's
 * dissector by the lower of its two ports first: a mapping to 53 or 123 made main mode DNS or
 * NTP, and the capture seemed to miss it (main mode messages 1-4 of the NAT scenarios, now and
 * then). The ports seen opposite 500 and 4500, where lower, are decoded as ISAKMP and as UDP
 * encapsulation (RFC 3948), what their other end says they are.
 */
export async function natDecodeAs(file: string): Promise<string[]> {
  const rows = await readFields(file, 'udp.port == 500 || udp.port == 4500', ['udp.srcport', 'udp.dstport'], {
    natDecodeAs: false,
  });
  const decodes = new Map<number, string>();
  for (const row of rows) {
    const [src, dst] = row.map(Number);
    if (src === undefined || dst === undefined) continue;
    for (const [ike, other] of [
      [src, dst],
      [dst, src],
    ] as const) {
      if ((ike === 500 || ike === 4500) && other !== 500 && other !== 4500 && other > 0 && other < ike)
        decodes.set(other, ike === 500 ? 'isakmp' : 'udpencap');
    }
  }
  return [...decodes].flatMap(([port, protocol]) => ['-d', `udp.port==${port},${protocol}`]);
}

/**
 * tshark's reading of a capture: `-n`, the NAT-mapped IKE ports decoded as IKE (natDecodeAs,
 * unless `natDecodeAs: false`), then `args`. Its standard output.
 */
export async function readCapture(
  file: string,
  args: readonly string[],
  options: { natDecodeAs?: boolean } = {},
): Promise<string> {
  const decodes = options.natDecodeAs === false ? [] : await natDecodeAs(file);
  const { stdout } = await run('tshark', ['-n', ...decodes, '-r', file, ...args]);
  return stdout;
}

/**
 * A row per frame that matches `filter`: each field's first value, or with `aggregator` all its
 * values joined by it.
 */
export async function readFields(
  file: string,
  filter: string,
  fields: readonly string[],
  options: { natDecodeAs?: boolean; aggregator?: string } = {},
): Promise<string[][]> {
  const stdout = await readCapture(
    file,
    [
      '-Y',
      filter,
      '-T',
      'fields',
      '-E',
      'separator=\t',
      '-E',
      options.aggregator === undefined ? 'occurrence=f' : `aggregator=${options.aggregator}`,
      ...fields.flatMap((f) => ['-e', f]),
    ],
    options,
  );
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.split('\t'));
}

export interface TsharkProblem {
  frame: number;
  protocols: string;
  messages: string[];
}

/**
 * Frames that tshark finds malformed or flags with an expert warning or error. By default only
 * frames with an ISAKMP layer count (ESP-in-UDP and NAT keepalives on 4500 are not ours to judge).
 */
export async function tsharkProblems(
  file: string,
  opts: { isakmpOnly?: boolean } = {},
): Promise<TsharkProblem[]> {
  const problem = '(_ws.malformed || _ws.expert.severity >= "Warning")';
  const filter = opts.isakmpOnly === false ? problem : `isakmp && ${problem}`;
  const rows = await readFields(file, filter, ['frame.number', 'frame.protocols', '_ws.expert.message'], {
    aggregator: '\x1f',
  });
  return rows.map((row) => {
    const [frame, protocols, messages] = row;
    return {
      frame: Number(frame),
      protocols: protocols ?? '',
      messages: (messages ?? '').split('\x1f').filter(Boolean),
    };
  });
}

export const EXCHANGE_NAMES: Readonly<Record<number, string>> = {
  1: 'BASE',
  2: 'ID_PROT',
  3: 'AUTH_ONLY',
  4: 'AGGRESSIVE',
  5: 'INFORMATIONAL_V1',
  6: 'TRANSACTION',
  32: 'QUICK_MODE',
  33: 'NEW_GROUP_MODE',
  34: 'IKE_SA_INIT',
  35: 'IKE_AUTH',
  36: 'CREATE_CHILD_SA',
  37: 'INFORMATIONAL',
  38: 'IKE_SESSION_RESUME',
  43: 'IKE_INTERMEDIATE',
};

export interface IsakmpFrame {
  frame: number;
  time: number;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  /** Major version: 1 or 2. */
  version: number;
  exchangeType: number;
  exchange: string;
  flags: number;
  /** Decoded flags: v1 E/C/A (encrypted, commit, auth-only), v2 I/V/R (initiator, version, response). */
  flagNames: string[];
  messageId: number;
  ispi: string;
  rspi: string;
  length: number;
  /** True when the message came UDP-encapsulated (port 4500, non-ESP marker). */
  natT: boolean;
}

function flagNames(version: number, flags: number): string[] {
  const names: [number, string][] =
    version === 2
      ? [
          [0x08, 'I'],
          [0x10, 'V'],
          [0x20, 'R'],
        ]
      : [
          [0x01, 'E'],
          [0x02, 'C'],
          [0x04, 'A'],
        ];
  return names.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
}

/** One entry per ISAKMP message in the capture. */
/** `natDecodeAs: false` shows what tshark makes of the file by its default port choices. */
export async function isakmpSummary(
  file: string,
  options: { natDecodeAs?: boolean } = {},
): Promise<IsakmpFrame[]> {
  const fields = [
    'frame.number',
    'frame.time_relative',
    'ip.src',
    'udp.srcport',
    'ip.dst',
    'udp.dstport',
    'isakmp.version',
    'isakmp.exchangetype',
    'isakmp.flags',
    'isakmp.messageid',
    'isakmp.ispi',
    'isakmp.rspi',
    'isakmp.length',
    'frame.protocols',
  ];
  const rows = await readFields(file, 'isakmp', fields, options);
  return rows.map((v) => {
    const at = (i: number) => v[i] ?? '';
    const version = Number(at(6)) >> 4;
    const exchangeType = Number(at(7));
    const flags = Number(at(8));
    return {
      frame: Number(at(0)),
      time: Number(at(1)),
      src: at(2),
      srcPort: Number(at(3)),
      dst: at(4),
      dstPort: Number(at(5)),
      version,
      exchangeType,
      exchange: EXCHANGE_NAMES[exchangeType] ?? `#${exchangeType}`,
      flags,
      flagNames: flagNames(version, flags),
      messageId: Number(at(9)),
      ispi: at(10),
      rspi: at(11),
      length: Number(at(12)),
      natT: at(13).split(':').includes('udpencap'),
    };
  });
}
