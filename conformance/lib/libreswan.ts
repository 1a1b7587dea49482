import { accessSync, closeSync, constants, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { delay, processEnd, readOr, run, type ExecResult, type Ns } from './netns.js';
import type { TunnelSpec } from './scenario.js';

/**
 * libreswan (Debian bookworm's pluto 4.10) as an IKEv2 interop peer inside a network namespace.
 *
 * Debian's libreswan package conflicts with strongSwan, so conformance/setup.sh installs only its
 * libraries and unpacks the .deb into LIBRESWAN_DIR; pluto and whack run from there. Each instance
 * has its own directory: ipsec.conf, ipsec.secrets, an NSS database (nss/), the control socket and
 * pid file (run/) and pluto.log. pluto runs addconn from the compiled-in /usr/libexec/ipsec, so the
 * unpacked usr/libexec is bind-mounted over /usr/libexec in pluto's private mount namespace (the one
 * `ip netns exec` gives it); nothing on the host changes.
 *
 * pluto has only one kernel backend in this build (XFRM netlink) and no option to skip installing
 * SAs. On a kernel without ESP (the lab host) it negotiates IKE and the child SA, then fails to add
 * the ESP state ("netlink response for Add SA ...: Protocol not supported"): tests check IKE-level
 * interop there, and the child only where kernelHasEsp() says the kernel can hold it. The qemu
 * kernel lab's `libreswan` scenario (conformance/kernel-lab/kernel-esp.ts) runs the same pluto with
 * ESP: SAs in the guest kernel, traffic through them.
 */

export const LIBRESWAN_DIR = process.env['IKE_NODE_LIBRESWAN_DIR'] ?? '/var/cache/ike-node/libreswan';
export const PLUTO = join(LIBRESWAN_DIR, 'usr', 'libexec', 'ipsec', 'pluto');
export const WHACK = join(LIBRESWAN_DIR, 'usr', 'libexec', 'ipsec', 'whack');

/** Why libreswan cannot run here (undefined when it can): the reason for skipping its tests. */
export function libreswanMissing(): string | undefined {
  try {
    accessSync(PLUTO, constants.X_OK);
  } catch {
    return `libreswan is not unpacked at ${LIBRESWAN_DIR} (run conformance/setup.sh as root)`;
  }
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    try {
      accessSync(join(dir, 'certutil'), constants.X_OK);
      return undefined;
    } catch {
      // next directory
    }
  }
  return 'certutil (libnss3-tools) is missing (run conformance/setup.sh as root)';
}

/**
 * Whether the kernel can hold an ESP SA, probed with a throw-away `ip xfrm state add` in `ns`. The
 * lab host cannot ("Requested type not found"), a stock distribution kernel can.
 */
export async function kernelHasEsp(ns: Ns): Promise<boolean> {
  const id = ['src', '192.0.2.254', 'dst', '192.0.2.253', 'proto', 'esp', 'spi', '0x0000fffe'];
  const keys = [
    'enc',
    'cbc(aes)',
    `0x${'00'.repeat(16)}`,
    'auth-trunc',
    'hmac(sha256)',
    `0x${'00'.repeat(32)}`,
    '128',
  ];
  const added = await ns.exec('ip', ['xfrm', 'state', 'add', ...id, 'mode', 'tunnel', ...keys], {
    allowFail: true,
  });
  if (added.code !== 0) return false;
  await ns.exec('ip', ['xfrm', 'state', 'delete', ...id], { allowFail: true });
  return true;
}

// ---------------------------------------------------------------------------------------------------
// ipsec.conf and ipsec.secrets

/** One IKEv2 PSK connection, pluto's end being `left`. */
export interface LibreswanConnSpec {
  name: string;
  left: string;
  leftid: string;
  leftsubnet: string;
  right: string;
  rightid: string;
  rightsubnet: string;
  /** libreswan's own syntax: `aes256-sha2_256-modp2048`, `aes_gcm128-sha2_256-dh19`. */
  ike: string;
  esp: string;
  psk: string;
  /** PFS on CREATE_CHILD_SA (the first child has none in IKEv2); default no. */
  pfs?: boolean;
  /** add: wait (initiate with whack); start: initiate at startup. Default add. */
  auto?: 'add' | 'start';
  /** Any further conn options, rendered verbatim as key=value. */
  extra?: Record<string, string>;
}

export function ipsecConf(conns: readonly LibreswanConnSpec[], options: { debug?: boolean } = {}): string {
  const setup = [
    // No DNSSEC: no root key file needed (dns-root-data is not installed) and no lookups.
    'dnssec-enable=no',
    'uniqueids=yes',
    ...(options.debug ? ['plutodebug=base'] : []),
  ];
  const conn = (c: LibreswanConnSpec) => {
    const lines: Record<string, string> = {
      ikev2: 'insist',
      authby: 'secret',
      left: c.left,
      leftid: c.leftid,
      leftsubnet: c.leftsubnet,
      right: c.right,
      rightid: c.rightid,
      rightsubnet: c.rightsubnet,
      ike: c.ike,
      esp: c.esp,
      pfs: c.pfs ? 'yes' : 'no',
      auto: c.auto ?? 'add',
      // Fail in seconds rather than a minute when something is wrong.
      'retransmit-timeout': '10s',
      ...c.extra,
    };
    const body = Object.entries(lines).map(([k, v]) => `    ${k}=${v}\n`);
    return `conn ${c.name}\n${body.join('')}`;
  };
  return `# written by ike-node conformance/lib/libreswan.ts\nconfig setup\n${setup
    .map((line) => `    ${line}\n`)
    .join('')}\n${conns.map(conn).join('\n')}`;
}

export function ipsecSecrets(conns: readonly LibreswanConnSpec[]): string {
  return conns.map((c) => `${c.leftid} ${c.rightid} : PSK "${c.psk}"\n`).join('');
}

/**
 * libreswan's side of a conformance tunnel (see scenario.ts): pluto is `theirs`, ike-node `ours`.
 * `ike` and `esp` are in libreswan's syntax, which differs from ike-node's for AEAD and groups.
 */
export function libreswanTunnel(s: TunnelSpec, algorithms: { ike: string; esp: string }): LibreswanConnSpec {
  return {
    name: 'net',
    left: s.theirs.address,
    leftid: s.theirs.address,
    leftsubnet: s.theirs.subnet,
    right: s.ours.seenAs,
    rightid: s.ours.address,
    rightsubnet: s.ours.subnet,
    ike: algorithms.ike,
    esp: algorithms.esp,
    psk: s.psk,
    // pluto initiates with `whack --initiate` when ike-node responds: nothing at startup.
    auto: 'add',
    // The topology routes the subnets already; the default updown (`ipsec _updown`) would run
    // /usr/sbin/ipsec, which is not installed (only unpacked into LIBRESWAN_DIR).
    extra: { leftupdown: '%disabled' },
  };
}

// ---------------------------------------------------------------------------------------------------
// pluto

export interface PlutoOptions {
  /** Instance name, for error messages. */
  name: string;
  /** Directory for configuration, NSS database, run/ and the log (created if missing). */
  dir: string;
  conns: LibreswanConnSpec[];
  /** plutodebug=base: needed for the IKE SPIs in the log (parsePlutoLog). Default true. */
  debug?: boolean;
  /** `--impair` options (pluto's test hooks), e.g. 'revival'. */
  impair?: string[];
  /** Milliseconds to wait for the control socket and the connections (default 5000). */
  readyTimeoutMs?: number;
}

export interface PlutoState {
  serial: number;
  conn: string;
  /** STATE_V2_ESTABLISHED_IKE_SA, STATE_V2_ESTABLISHED_CHILD_SA, ... */
  state: string;
}

export interface Pluto {
  readonly name: string;
  readonly dir: string;
  readonly pid: number;
  readonly ctlSocket: string;
  /** Runs whack against this instance's control socket; never rejects. */
  whack(args: readonly string[], timeoutSec?: number): Promise<ExecResult>;
  /** `whack --initiate --name conn`: waits for the outcome; its output is pluto's log lines. */
  initiate(conn: string, timeoutSec?: number): Promise<ExecResult>;
  /** `whack --showstates`, parsed. */
  states(): Promise<PlutoState[]>;
  /** pluto.log so far. */
  log(): string;
  /** SIGTERM, SIGKILL after 3 s; resolves with the exit code (or 128 + signal). Idempotent. */
  stop(): Promise<number>;
}

/** Starts pluto in `ns` with its connections loaded; resolves when whack lists them all. */
export async function startPluto(ns: Ns, options: PlutoOptions): Promise<Pluto> {
  const { dir } = options;
  for (const sub of ['run', 'nss', 'ipsec.d']) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, 'ipsec.conf'), ipsecConf(options.conns, { debug: options.debug ?? true }));
  writeFileSync(join(dir, 'ipsec.secrets'), ipsecSecrets(options.conns), { mode: 0o600 });
  writeFileSync(join(dir, 'pluto.log'), '');
  // pluto keeps its keys and certificates in NSS even with PSKs only: an empty database will do.
  await run('certutil', ['-N', '--empty-password', '-d', `sql:${join(dir, 'nss')}`]);

  const ctlSocket = join(dir, 'run', 'pluto.ctl');
  const args = [
    '--nofork',
    '--config',
    join(dir, 'ipsec.conf'),
    '--secretsfile',
    join(dir, 'ipsec.secrets'),
    '--nssdir',
    join(dir, 'nss'),
    '--ipsecdir',
    join(dir, 'ipsec.d'),
    '--rundir',
    join(dir, 'run'),
    '--dumpdir',
    join(dir, 'run'),
    '--logfile',
    join(dir, 'pluto.log'),
    ...(options.impair ?? []).flatMap((impair) => ['--impair', impair]),
  ];
  const out = openSync(join(dir, 'pluto.out'), 'w');
  let child: ChildProcess;
  try {
    // `ip netns exec` gives the command a private mount namespace: the bind mount is seen by pluto
    // (and the addconn it runs) only. exec keeps pluto's PID the one we signal.
    const script =
      'mount --bind "$1/usr/libexec" /usr/libexec && shift && exec /usr/libexec/ipsec/pluto "$@"';
    child = ns.spawn('sh', ['-c', script, 'sh', LIBRESWAN_DIR, ...args], { stdio: ['ignore', out, out] });
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`pluto ${options.name}: spawn failed`);
  const { exitCode, stop } = processEnd(child, 3000);
  ns.onDestroy(async () => {
    await stop();
  });

  const log = () => readOr(join(dir, 'pluto.log'));
  const tail = () =>
    [readOr(join(dir, 'pluto.out')), withoutDebug(log())].join('\n').split('\n').slice(-30).join('\n');
  const whack = (whackArgs: readonly string[], timeoutSec = 10): Promise<ExecResult> =>
    run('timeout', ['-k', '1', String(timeoutSec), WHACK, '--ctlsocket', ctlSocket, ...whackArgs], {
      allowFail: true,
      timeoutMs: (timeoutSec + 3) * 1000,
    });

  const timeout = options.readyTimeoutMs ?? 5000;
  const deadline = Date.now() + timeout;
  for (;;) {
    if (exitCode() !== null) throw new Error(`pluto ${options.name} exited with ${exitCode()}:\n${tail()}`);
    const status = await whack(['--status'], 2);
    if (status.code === 0 && options.conns.every((c) => status.stdout.includes(`"${c.name}":`))) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`pluto ${options.name}: not ready after ${timeout} ms:\n${tail()}`);
    }
    await delay(20);
  }

  return {
    name: options.name,
    dir,
    pid,
    ctlSocket,
    whack,
    initiate: (conn, timeoutSec = 15) => whack(['--name', conn, '--initiate'], timeoutSec),
    async states() {
      const result = await whack(['--showstates']);
      if (result.code !== 0) throw new Error(`whack --showstates (${options.name}) failed: ${result.stderr}`);
      return parseShowStates(result.stdout);
    },
    log,
    stop,
  };
}

/** The log without plutodebug's lines (`| ` or, for what whack printed, `|] ` after the time). */
export function withoutDebug(log: string): string {
  return log
    .split('\n')
    .filter((line) => !/^\S+ +\d+ [\d:.]+: \|/.test(line))
    .join('\n');
}

/** `000 #1: "net":500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); ...` lines. */
export function parseShowStates(output: string): PlutoState[] {
  const states: PlutoState[] = [];
  for (const line of output.split('\n')) {
    const match = /^(?:\d{3} )?#(\d+): "([^"]+)"\S* (STATE_\w+)/.exec(line.trim());
    if (match) states.push({ serial: Number(match[1]), conn: match[2]!, state: match[3]! });
  }
  return states;
}

// ---------------------------------------------------------------------------------------------------
// pluto.log: what pluto did, state by state (#serial). These are pluto 4.10's log lines.

export interface PlutoIkeSa {
  serial: number;
  conn: string;
  role?: 'initiator' | 'responder';
  established: boolean;
  /** The peer's identity as pluto authenticated it: `ID_IPV4_ADDR '192.0.2.1'`. */
  peerId?: string;
  /** From `sent IKE_SA_INIT reply {...}` / `sent IKE_AUTH request {...}`: cipher, integ, prf, group. */
  algorithms?: Record<string, string>;
  /** IKE SPIs in hex, from plutodebug's state table lines (needs debug). */
  spiI?: string;
  spiR?: string;
  deleted: boolean;
}

export interface PlutoChildSa {
  serial: number;
  conn: string;
  /** From the responder's `proposal 1:ESP=... SPI=... chosen`: ESP=AES_CBC_256-HMAC_SHA2_256_128-DISABLED. */
  proposal?: string;
  /**
   * When adding failed: the first SA pluto tried to add (`esp.SPI@DESTINATION`), its outbound one,
   * so the peer's inbound SPI, and the kernel's error (`Protocol not supported (errno 93)`).
   */
  addSpi?: string;
  addDestination?: string;
  installError?: string;
  /** From `established Child SA ... {ESP=>0xOUT <0xIN xfrm=ALGORITHMS ...}`. */
  established: boolean;
  spiOut?: string;
  spiIn?: string;
  /** The algorithms pluto gave the kernel: `AES_CBC_256-HMAC_SHA2_256_128`, `AES_GCM_16_128-NONE`. */
  xfrm?: string;
  deleted: boolean;
}

export interface PlutoLog {
  ikeSas: PlutoIkeSa[];
  childSas: PlutoChildSa[];
}

const hexBytes = (text: string) => text.replace(/\s+/g, '');

export function parsePlutoLog(log: string): PlutoLog {
  const ikeSas = new Map<number, PlutoIkeSa>();
  const childSas = new Map<number, PlutoChildSa>();
  const ike = (serial: number, conn: string) => {
    let sa = ikeSas.get(serial);
    if (!sa) ikeSas.set(serial, (sa = { serial, conn, established: false, deleted: false }));
    return sa;
  };
  const child = (serial: number, conn: string) => {
    let sa = childSas.get(serial);
    if (!sa) childSas.set(serial, (sa = { serial, conn, established: false, deleted: false }));
    return sa;
  };
  for (const line of log.split('\n')) {
    // Every state's line carries `"conn" #serial: `; debug lines name it after an object address.
    const at = /"([^"]+)"(?:\[\d+\])? #(\d+): (.*)$/.exec(line);
    if (!at) continue;
    const conn = at[1]!;
    const serial = Number(at[2]);
    const text = at[3]!;
    let m: RegExpExecArray | null;
    if (
      (m = /^(initiator|responder) established IKE SA; authenticated peer using \S+ and (.+)$/.exec(text))
    ) {
      Object.assign(ike(serial, conn), {
        role: m[1] as 'initiator' | 'responder',
        established: true,
        peerId: m[2],
      });
    } else if ((m = /^sent (?:IKE_SA_INIT reply|IKE_AUTH request) \{([^}]*)\}/.exec(text))) {
      ike(serial, conn).algorithms = Object.fromEntries(
        m[1]!.split(' ').map((kv) => kv.split('=') as [string, string]),
      );
    } else if (
      (m = /^((?:[0-9a-f]{2}\s+){16})added to hash table/.exec(text)) &&
      line.includes('ike_spis@')
    ) {
      // `entry state hash_table_entries.ike_spis@0x... "net" #1: 87 df ... 17 ab added to ...`:
      // the state's SPIi and SPIr, re-added whenever they change; the last one is the final pair.
      const spis = hexBytes(m[1]!);
      if (!/^0+$/.test(spis.slice(16)))
        Object.assign(ike(serial, conn), { spiI: spis.slice(0, 16), spiR: spis.slice(16) });
    } else if (/^deleting state \(STATE_\w+\)/.test(text)) {
      const sa = ikeSas.get(serial) ?? childSas.get(serial);
      if (sa) sa.deleted = true;
    } else if ((m = /^proposal \d+:(ESP=\S+) SPI=[0-9a-f]+ chosen/.exec(text))) {
      child(serial, conn).proposal = m[1];
    } else if ((m = /^netlink response for Add SA esp\.([0-9a-f]+)@(\S+): (.+)$/.exec(text))) {
      const sa = child(serial, conn);
      // `esp.c0a0194@...`: this line drops leading zeros (the established line keeps them).
      if (sa.addSpi === undefined)
        Object.assign(sa, { addSpi: m[1]!.padStart(8, '0'), addDestination: m[2], installError: m[3] });
    } else if (
      (m = /established Child SA.*\{ESP\S*=>0x([0-9a-f]+) <0x([0-9a-f]+)(?: xfrm=(\S+))?/.exec(text))
    ) {
      Object.assign(child(serial, conn), {
        established: true,
        spiOut: m[1],
        spiIn: m[2],
        ...(m[3] !== undefined && { xfrm: m[3] }),
      });
    }
  }
  return { ikeSas: [...ikeSas.values()], childSas: [...childSas.values()] };
}
