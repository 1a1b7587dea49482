import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { delay, processEnd, readOr, run, type ExecResult, type Ns } from './netns.js';

/**
 * strongSwan (charon + swanctl, Debian's 5.9.x packages) as an interop peer inside a network
 * namespace. Each instance has its own directory holding strongswan.conf, swanctl.conf, the log and
 * a `run/` directory that is bind-mounted over /run in charon's private mount namespace (charon's pid
 * file path is compiled in), so instances never share state with each other or with a system charon.
 * ESP is handled by kernel-libipsec (userspace, TUN) by default, because the host kernel has no
 * ESP; `kernel: 'netlink'` leaves it out so charon installs SAs into the kernel over XFRM netlink
 * (the qemu kernel lab, whose kernel has ESP: the only way to get transport-mode SAs).
 */

export const CHARON = '/usr/lib/ipsec/charon';

/** Plugins charon loads; kernel-libipsec must come before kernel-netlink, kdf is needed for IKEv2. */
export const CHARON_PLUGINS = [
  'random',
  'nonce',
  'aes',
  'sha1',
  'sha2',
  'md5',
  'hmac',
  'gmp',
  'openssl',
  'curve25519',
  'kdf',
  'pem',
  'pkcs1',
  'x509',
  'pubkey',
  'kernel-libipsec',
  'kernel-netlink',
  'socket-default',
  'vici',
  'updown',
];

/**
 * How charon logs (at ike level 2) a liveness check it receives and its answer: IKEv1 R-U-THERE
 * (RFC 3706) and DPD ack, IKEv2 an empty INFORMATIONAL (RFC 7296 2.4).
 */
export const CHARON_LIVENESS = {
  1: {
    request: /parsed INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD\) \]/g,
    answer: /generating INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD_ACK\) \]/g,
  },
  2: {
    request: /parsed INFORMATIONAL request \d+ \[ \]/g,
    answer: /generating INFORMATIONAL response \d+ \[ \]/g,
  },
} as const;

export const DEFAULT_LOG_LEVELS: Readonly<Record<string, number>> = { default: 1, ike: 2, cfg: 2, knl: 2 };
/** Levels for debugging a failing exchange: message contents and raw packets. */
export const VERBOSE_LOG_LEVELS: Readonly<Record<string, number>> = {
  default: 1,
  ike: 4,
  cfg: 2,
  knl: 2,
  enc: 3,
  net: 2,
  chd: 2,
};

export interface CharonOptions {
  /** Instance name, used in the log and the temporary directory name. */
  name: string;
  /** Directory for configuration, log and run/ (created if missing; a fresh temporary one if absent). */
  dir?: string;
  /** filelog levels per subsystem, merged over DEFAULT_LOG_LEVELS (see VERBOSE_LOG_LEVELS). */
  logLevels?: Record<string, number>;
  /** Shorthand for logLevels = VERBOSE_LOG_LEVELS. */
  verbose?: boolean;
  /** Extra text inside the `charon { }` section of strongswan.conf. */
  extraCharonConf?: string;
  /** Extra top-level text of strongswan.conf (`libstrongswan { ... }`, say). */
  extraConf?: string;
  /** Log times with milliseconds (filelog time_add_ms), for measuring. */
  logMilliseconds?: boolean;
  /** Milliseconds to wait for the vici socket (default 5000). */
  readyTimeoutMs?: number;
  /**
   * charon's retransmission (strongswan.conf retransmit_timeout, _base, _tries); the default, 1 s
   * and 3 tries at charon's base 1.8, keeps failures fast. The n-th resend waits timeout * base^n.
   */
  retransmit?: Retransmit;
  /**
   * Where charon installs SAs and policies. 'libipsec' (default): kernel-libipsec, userspace ESP
   * over TUN, tunnel mode only, and it fakes a NAT so IKE floats to 4500 and ESP goes in UDP.
   * 'netlink': kernel-libipsec is not loaded, kernel-netlink installs real XFRM states and
   * policies (needs a kernel with ESP, i.e. the kernel lab; transport mode works; NAT only when
   * there is one).
   */
  kernel?: 'libipsec' | 'netlink';
}

export interface Retransmit {
  timeout: number;
  base?: number;
  tries: number;
}

export interface ParsedChildSa {
  /** The child config name (the section key is name-uniqueid). */
  name: string;
  uniqueid?: string;
  reqid?: string;
  state: string;
  mode?: string;
  protocol?: string;
  encap: boolean;
  spiIn?: string;
  spiOut?: string;
  encrAlg?: string;
  encrKeysize?: number;
  integAlg?: string;
  dhGroup?: string;
  localTs: string[];
  remoteTs: string[];
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  /** Every key/value as printed. */
  raw: Record<string, unknown>;
}

export interface ParsedSa {
  name: string;
  uniqueid?: string;
  state: string;
  version: number;
  localHost?: string;
  localPort?: number;
  localId?: string;
  remoteHost?: string;
  remotePort?: number;
  remoteId?: string;
  initiator: boolean;
  encrAlg?: string;
  encrKeysize?: number;
  integAlg?: string;
  prfAlg?: string;
  dhGroup?: string;
  /** NAT flags: present (true) only when charon reports them. */
  natLocal: boolean;
  natRemote: boolean;
  natFake: boolean;
  natAny: boolean;
  children: ParsedChildSa[];
  raw: Record<string, unknown>;
}

export interface InitiateResult extends ExecResult {
  ok: boolean;
}

export interface Charon {
  readonly name: string;
  readonly dir: string;
  readonly pid: number;
  /** unix://… URI of the vici socket. */
  readonly uri: string;
  /** Writes swanctl.conf and loads it (`swanctl --load-all`); rejects on failure. */
  load(swanctlConf: string): Promise<ExecResult>;
  /** `swanctl --initiate`; never rejects, `ok` tells whether it succeeded. */
  initiate(child: string, ike?: string, timeoutSec?: number): Promise<InitiateResult>;
  terminate(ike: string): Promise<ExecResult>;
  listSas(): Promise<ParsedSa[]>;
  /** Runs swanctl with this instance's URI; never rejects. */
  swanctl(args: readonly string[], timeoutSec?: number): Promise<ExecResult>;
  /** The filelog text (empty when nothing was logged yet). */
  log(): string;
  /** SIGTERM, SIGKILL after 3 s; resolves with the exit code (or 128 + signal). Idempotent. */
  stop(): Promise<number>;
}

const CRED_DIRS = [
  'x509',
  'x509ca',
  'x509ocsp',
  'x509aa',
  'x509ac',
  'x509crl',
  'pubkey',
  'private',
  'rsa',
  'ecdsa',
  'bliss',
  'pkcs8',
  'pkcs12',
];

export function strongswanConf(
  dir: string,
  name: string,
  levels: Record<string, number>,
  extra = '',
  kernel: CharonOptions['kernel'] = 'libipsec',
  options: { extraConf?: string; logMilliseconds?: boolean; retransmit?: Retransmit } = {},
): string {
  const retransmit = options.retransmit ?? { timeout: 1.0, tries: 3 };
  const plugins =
    kernel === 'netlink' ? CHARON_PLUGINS.filter((p) => p !== 'kernel-libipsec') : CHARON_PLUGINS;
  const levelLines = Object.entries(levels)
    .map(([k, v]) => `        ${k} = ${v}`)
    .join('\n');
  return `# written by ike-node conformance/lib/strongswan.ts
charon {
  load_modular = no
  load = ${plugins.join(' ')}
  retransmit_timeout = ${retransmit.timeout}
  retransmit_tries = ${retransmit.tries}${retransmit.base !== undefined ? `\n  retransmit_base = ${retransmit.base}` : ''}
  plugins {
    vici {
      socket = unix://${dir}/run/charon.vici
    }
  }
  filelog {
    ${name.replace(/[^A-Za-z0-9_]/g, '_')} {
      path = ${dir}/charon.log
      time_format = %T
      time_add_ms = ${options.logMilliseconds ? 'yes' : 'no'}
      ike_name = yes
      flush_line = yes
${levelLines}
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
${extra}
}
swanctl {
  load = pem pkcs1 x509 pubkey
}
${options.extraConf ?? ''}
`;
}

/** Starts charon in `ns` and waits until its vici socket answers. */
export async function startCharon(ns: Ns, options: CharonOptions): Promise<Charon> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), `ike-node-sw-${options.name}-`));
  const ownDir = options.dir === undefined;
  mkdirSync(join(dir, 'run'), { recursive: true });
  for (const sub of CRED_DIRS) mkdirSync(join(dir, sub), { recursive: true });
  const levels = {
    ...DEFAULT_LOG_LEVELS,
    ...(options.verbose ? VERBOSE_LOG_LEVELS : {}),
    ...options.logLevels,
  };
  const confPath = join(dir, 'strongswan.conf');
  writeFileSync(
    confPath,
    strongswanConf(dir, options.name, levels, options.extraCharonConf, options.kernel, {
      ...(options.extraConf !== undefined && { extraConf: options.extraConf }),
      ...(options.logMilliseconds !== undefined && { logMilliseconds: options.logMilliseconds }),
      ...(options.retransmit !== undefined && { retransmit: options.retransmit }),
    }),
  );
  writeFileSync(join(dir, 'charon.log'), '');

  const env = { ...process.env, STRONGSWAN_CONF: confPath };
  const out = openSync(join(dir, 'charon.out'), 'w');
  let child: ChildProcess;
  try {
    // `ip netns exec` gives the command a private mount namespace: /run is ours there only.
    child = ns.spawn('sh', ['-c', `mount --bind "$1/run" /run && exec ${CHARON}`, 'sh', dir], {
      env,
      stdio: ['ignore', out, out],
    });
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`charon ${options.name}: spawn failed`);
  const { exitCode, stop } = processEnd(child, 3000);
  const uri = `unix://${dir}/run/charon.vici`;
  const tail = () =>
    [readOr(join(dir, 'charon.out')), readOr(join(dir, 'charon.log'))]
      .join('\n')
      .split('\n')
      .slice(-30)
      .join('\n');

  const swanctl = (args: readonly string[], timeoutSec = 10): Promise<ExecResult> =>
    run('timeout', ['-k', '1', String(timeoutSec), 'swanctl', ...args, '--uri', uri], {
      allowFail: true,
      env,
      timeoutMs: (timeoutSec + 3) * 1000,
    });

  ns.onDestroy(async () => {
    await stop();
    if (ownDir && !process.env.IKE_NODE_KEEP_DIRS) rmSync(dir, { recursive: true, force: true });
  });

  const deadline = Date.now() + (options.readyTimeoutMs ?? 5000);
  for (;;) {
    if (exitCode() !== null) throw new Error(`charon ${options.name} exited with ${exitCode()}:\n${tail()}`);
    const probe = await swanctl(['--stats'], 2);
    if (probe.code === 0) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `charon ${options.name}: vici not ready after ${options.readyTimeoutMs ?? 5000} ms:\n${tail()}`,
      );
    }
    await delay(20);
  }

  return {
    name: options.name,
    dir,
    pid,
    uri,
    swanctl,
    async load(conf: string) {
      const file = join(dir, 'swanctl.conf');
      writeFileSync(file, conf);
      const result = await swanctl(['--load-all', '--noprompt', '--file', file]);
      if (result.code !== 0 || /\bfailed\b/i.test(result.stdout + result.stderr)) {
        throw new Error(`swanctl --load-all (${options.name}) failed:\n${result.stdout}${result.stderr}`);
      }
      return result;
    },
    async initiate(childName: string, ike?: string, timeoutSec = 10) {
      const args = ['--initiate', '--child', childName, '--timeout', String(timeoutSec)];
      if (ike !== undefined) args.push('--ike', ike);
      const result = await swanctl(args, timeoutSec + 2);
      return { ...result, ok: result.code === 0 };
    },
    terminate(ike: string) {
      return swanctl(['--terminate', '--ike', ike, '--timeout', '5'], 7);
    },
    async listSas() {
      const result = await swanctl(['--list-sas', '--raw']);
      if (result.code !== 0) throw new Error(`swanctl --list-sas (${options.name}) failed: ${result.stderr}`);
      return parseListSas(result.stdout);
    },
    log: () => readOr(join(dir, 'charon.log')),
    stop,
  };
}

// ---------------------------------------------------------------------------------------------------
// `swanctl --list-sas --raw` parsing

export type ViciValue = string | string[] | ViciSection;
export interface ViciSection {
  [key: string]: ViciValue;
}

/**
 * Parses swanctl's raw rendering of vici messages: `key=value`, `key=[item item]` and
 * `key {…}`, separated by spaces. A value runs to the next space that starts another element and
 * does not follow a comma, so identities like `C=CH, O=x, CN=y` stay whole.
 */
export function parseViciRaw(text: string): ViciSection {
  let pos = 0;
  const keyChar = /[A-Za-z0-9_.\-:/@]/;

  const skipSpaces = () => {
    while (pos < text.length && /\s/.test(text[pos]!)) pos++;
  };
  // true when the text at `at` begins a new element: `key=`, `key {`, or `}`.
  const startsElement = (at: number): boolean => {
    if (text[at] === '}' || at >= text.length) return true;
    const match = /^[^\s={}[\]]+(=|\s*\{)/.exec(text.slice(at, at + 200));
    return match !== null;
  };

  const parseSection = (): ViciSection => {
    const section: ViciSection = {};
    for (;;) {
      skipSpaces();
      if (pos >= text.length) return section;
      if (text[pos] === '}') {
        pos++;
        return section;
      }
      const keyStart = pos;
      while (pos < text.length && text[pos] !== '=' && text[pos] !== '{' && !/\s/.test(text[pos]!)) pos++;
      const key = text.slice(keyStart, pos);
      if (key === '' || !keyChar.test(key[0]!)) {
        pos++; // garbage: skip
        continue;
      }
      skipSpaces();
      if (text[pos] === '{') {
        pos++;
        section[key] = parseSection();
      } else if (text[pos] === '=') {
        pos++;
        if (text[pos] === '[') {
          // Items may hold brackets themselves (`local-ts=[192.0.2.1/32[udp/l2f]]`): find the match.
          let end = pos + 1;
          for (let depth = 1; end < text.length; end++) {
            if (text[end] === '[') depth++;
            else if (text[end] === ']' && --depth === 0) break;
          }
          if (end >= text.length) end = -1;
          const inner = text.slice(pos + 1, end < 0 ? text.length : end);
          section[key] = inner.split(/\s+/).filter(Boolean);
          pos = end < 0 ? text.length : end + 1;
        } else {
          const valueStart = pos;
          for (;;) {
            while (pos < text.length && text[pos] !== ' ' && text[pos] !== '}' && text[pos] !== '\n') pos++;
            if (pos >= text.length || text[pos] === '}' || text[pos] === '\n') break;
            // A space after a comma belongs to the value (DNs: `C=CH, O=x, CN=y`).
            if (text[pos - 1] !== ',' && startsElement(pos + 1)) break;
            pos++;
          }
          section[key] = text.slice(valueStart, pos);
        }
      } else {
        section[key] = '';
      }
    }
  };
  return parseSection();
}

const str = (section: ViciSection, key: string): string | undefined => {
  const value = section[key];
  return typeof value === 'string' ? value : undefined;
};
const num = (section: ViciSection, key: string): number | undefined => {
  const value = str(section, key);
  return value === undefined || value === '' ? undefined : Number(value);
};
const list = (section: ViciSection, key: string): string[] => {
  const value = section[key];
  return Array.isArray(value) ? value : typeof value === 'string' && value !== '' ? [value] : [];
};
const flag = (section: ViciSection, key: string): boolean => str(section, key) === 'yes';

export function parseChildSa(key: string, section: ViciSection): ParsedChildSa {
  return {
    name: str(section, 'name') ?? key,
    uniqueid: str(section, 'uniqueid'),
    reqid: str(section, 'reqid'),
    state: str(section, 'state') ?? '',
    mode: str(section, 'mode'),
    protocol: str(section, 'protocol'),
    encap: flag(section, 'encap'),
    spiIn: str(section, 'spi-in'),
    spiOut: str(section, 'spi-out'),
    encrAlg: str(section, 'encr-alg'),
    encrKeysize: num(section, 'encr-keysize'),
    integAlg: str(section, 'integ-alg'),
    dhGroup: str(section, 'dh-group'),
    localTs: list(section, 'local-ts'),
    remoteTs: list(section, 'remote-ts'),
    bytesIn: num(section, 'bytes-in') ?? 0,
    bytesOut: num(section, 'bytes-out') ?? 0,
    packetsIn: num(section, 'packets-in') ?? 0,
    packetsOut: num(section, 'packets-out') ?? 0,
    raw: section,
  };
}

export function parseIkeSa(name: string, section: ViciSection): ParsedSa {
  const children = section['child-sas'];
  return {
    name,
    uniqueid: str(section, 'uniqueid'),
    state: str(section, 'state') ?? '',
    version: num(section, 'version') ?? 0,
    localHost: str(section, 'local-host'),
    localPort: num(section, 'local-port'),
    localId: str(section, 'local-id'),
    remoteHost: str(section, 'remote-host'),
    remotePort: num(section, 'remote-port'),
    remoteId: str(section, 'remote-id'),
    initiator: flag(section, 'initiator'),
    encrAlg: str(section, 'encr-alg'),
    encrKeysize: num(section, 'encr-keysize'),
    integAlg: str(section, 'integ-alg'),
    prfAlg: str(section, 'prf-alg'),
    dhGroup: str(section, 'dh-group'),
    natLocal: flag(section, 'nat-local'),
    natRemote: flag(section, 'nat-remote'),
    natFake: flag(section, 'nat-fake'),
    natAny: flag(section, 'nat-any'),
    children:
      children && typeof children === 'object' && !Array.isArray(children)
        ? Object.entries(children)
            .filter(
              (entry): entry is [string, ViciSection] =>
                typeof entry[1] === 'object' && !Array.isArray(entry[1]),
            )
            .map(([key, child]) => parseChildSa(key, child))
        : [],
    raw: section,
  };
}

/** Parses the output of `swanctl --list-sas --raw` (one `list-sa event {…}` line per IKE SA). */
export function parseListSas(output: string): ParsedSa[] {
  const sas: ParsedSa[] = [];
  for (const line of output.split('\n')) {
    const match = /^list-sa event\s*\{(.*)\}\s*$/.exec(line.trim());
    if (!match) continue;
    const event = parseViciRaw(match[1]!);
    for (const [name, section] of Object.entries(event)) {
      if (typeof section === 'object' && !Array.isArray(section)) sas.push(parseIkeSa(name, section));
    }
  }
  return sas;
}

// ---------------------------------------------------------------------------------------------------
// swanctl.conf rendering

export interface SwanctlChild {
  name: string;
  mode?: 'tunnel' | 'transport' | 'pass' | 'drop';
  local_ts?: string | string[];
  remote_ts?: string | string[];
  esp_proposals?: string | string[];
  ah_proposals?: string | string[];
  start_action?: 'none' | 'trap' | 'start';
  dpd_action?: 'clear' | 'trap' | 'restart' | 'none';
  close_action?: 'none' | 'trap' | 'start';
  rekey_time?: string | number;
  life_time?: string | number;
  rand_time?: string | number;
  rekey_bytes?: string | number;
  rekey_packets?: string | number;
  ipcomp?: boolean;
  /** Any further child options, rendered verbatim as key = value. */
  extra?: Record<string, string | number | boolean>;
}

export interface SwanctlConnectionSpec {
  name: string;
  version: 0 | 1 | 2;
  local_addrs?: string | string[];
  remote_addrs?: string | string[];
  local_port?: number;
  remote_port?: number;
  proposals?: string | string[];
  local_id?: string;
  remote_id?: string;
  /** Pre-shared key; renders a `secrets.ike-NAME` block for local_id/remote_id. */
  psk?: string;
  aggressive?: boolean;
  encap?: boolean;
  mobike?: boolean;
  fragmentation?: 'yes' | 'no' | 'accept' | 'force';
  dpd_delay?: string | number;
  dpd_timeout?: string | number;
  rekey_time?: string | number;
  reauth_time?: string | number;
  over_time?: string | number;
  rand_time?: string | number;
  unique?: 'no' | 'never' | 'keep' | 'replace';
  keyingtries?: number;
  children: SwanctlChild[];
  /** Any further connection options, rendered verbatim as key = value. */
  extra?: Record<string, string | number | boolean>;
}

const render = (value: string | number | boolean | string[]): string =>
  Array.isArray(value)
    ? value.join(',')
    : typeof value === 'boolean'
      ? value
        ? 'yes'
        : 'no'
      : String(value);

function block(
  indent: string,
  entries: [string, string | number | boolean | string[] | undefined][],
): string {
  return entries
    .filter((entry): entry is [string, string | number | boolean | string[]] => entry[1] !== undefined)
    .map(([key, value]) => `${indent}${key} = ${render(value)}\n`)
    .join('');
}

function renderConnection(spec: SwanctlConnectionSpec): string {
  const pad = '    ';
  let out = `  ${spec.name} {\n`;
  out += block(pad, [
    ['version', spec.version],
    ['local_addrs', spec.local_addrs],
    ['remote_addrs', spec.remote_addrs],
    ['local_port', spec.local_port],
    ['remote_port', spec.remote_port],
    ['proposals', spec.proposals],
    ['aggressive', spec.aggressive],
    ['encap', spec.encap],
    ['mobike', spec.mobike],
    ['fragmentation', spec.fragmentation],
    ['dpd_delay', spec.dpd_delay],
    ['dpd_timeout', spec.dpd_timeout],
    ['rekey_time', spec.rekey_time],
    ['reauth_time', spec.reauth_time],
    ['over_time', spec.over_time],
    ['rand_time', spec.rand_time],
    ['unique', spec.unique],
    ['keyingtries', spec.keyingtries],
    ...Object.entries(spec.extra ?? {}),
  ]);
  const auth = spec.psk !== undefined ? 'psk' : undefined;
  out += `${pad}local {\n${block(pad + '  ', [
    ['auth', auth],
    ['id', spec.local_id],
  ])}${pad}}\n`;
  out += `${pad}remote {\n${block(pad + '  ', [
    ['auth', auth],
    ['id', spec.remote_id],
  ])}${pad}}\n`;
  out += `${pad}children {\n`;
  for (const child of spec.children) {
    out += `${pad}  ${child.name} {\n`;
    out += block(pad + '    ', [
      ['mode', child.mode],
      ['local_ts', child.local_ts],
      ['remote_ts', child.remote_ts],
      ['esp_proposals', child.esp_proposals],
      ['ah_proposals', child.ah_proposals],
      ['start_action', child.start_action],
      ['dpd_action', child.dpd_action],
      ['close_action', child.close_action],
      ['rekey_time', child.rekey_time],
      ['life_time', child.life_time],
      ['rand_time', child.rand_time],
      ['rekey_bytes', child.rekey_bytes],
      ['rekey_packets', child.rekey_packets],
      ['ipcomp', child.ipcomp],
      ...Object.entries(child.extra ?? {}),
    ]);
    out += `${pad}  }\n`;
  }
  return `${out}${pad}}\n  }\n`;
}

function renderSecret(spec: SwanctlConnectionSpec): string {
  if (spec.psk === undefined) return '';
  if (!/^[\x20-\x7e]*$/.test(spec.psk)) throw new Error('swanctlConnection: PSK must be printable ASCII');
  return `  ike-${spec.name} {\n${block('    ', [
    ['id-local', spec.local_id],
    ['id-remote', spec.remote_id],
    ['secret', `"${spec.psk.replace(/["\\]/g, (c) => `\\${c}`)}"`],
  ])}  }\n`;
}

/**
 * Renders a swanctl.conf for one or more connections: `connections { NAME {…} }` and, for those
 * with a PSK, `secrets { ike-NAME {…} }` (the key bound to local_id and remote_id).
 */
export function swanctlConnection(...specs: SwanctlConnectionSpec[]): string {
  let out = `connections {\n${specs.map(renderConnection).join('')}}\n`;
  const secrets = specs.map(renderSecret).join('');
  if (secrets !== '') out += `secrets {\n${secrets}}\n`;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Setup times from the log

/**
 * Per connection, seconds from charon's first `initiating` line to its first `CHILD_SA ...
 * established` line, read from a log written with `logMilliseconds` (and ike_name, which the
 * harness always sets). Connections with no child up yet are absent. Times are of the day: a
 * setup across midnight is counted right, one over 12 hours would not be.
 */
export function charonSetupTimes(log: string): Map<string, number> {
  const started = new Map<string, number>();
  const setups = new Map<string, number>();
  const line =
    /^(\d\d):(\d\d):(\d\d)\.(\d{3}) \d+\[\w+\] <([^|>]+)\|\d+> (initiating|CHILD_SA \S+ established)/;
  for (const text of log.split('\n')) {
    const match = line.exec(text);
    if (!match) continue;
    const [, h, m, sec, ms, name, what] = match as unknown as string[];
    const at = Number(h) * 3600 + Number(m) * 60 + Number(sec) + Number(ms) / 1000;
    if (what === 'initiating') {
      if (!started.has(name!)) started.set(name!, at);
    } else if (started.has(name!) && !setups.has(name!)) {
      const seconds = at - started.get(name!)!;
      setups.set(name!, seconds < -43_200 ? seconds + 86_400 : seconds);
    }
  }
  return setups;
}
