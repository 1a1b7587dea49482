import { parseArgs } from 'node:util';
import { createCryptoProvider, PROVIDER_NAMES } from '../crypto/index.js';
import { DEFAULT_OUTCOME_TIMEOUT } from '../daemon/outcome.js';
import { VERSION } from '../version.js';
import { algorithmTable } from './algorithms.js';
import { demoCommand } from './demo.js';
import { IMPORT_HELP, importCommand } from './import-command.js';
import {
  checkCommand,
  controlCommand,
  eventsCommand,
  listConnsCommand,
  reloadCommand,
  runDaemon,
  statusCommand,
  terminateSaCommand,
} from './daemon-commands.js';

const USAGE = `ike-node ${VERSION}: an IKEv1/IKEv2 daemon and library for Node.js

Usage:
  ike-node --config FILE       run the daemon in the foreground (also: ike-node run --config FILE)
  ike-node check --config FILE validate a configuration and print it normalised
  ike-node status [NAME]       show connections and SAs of the running daemon (--json)
  ike-node initiate NAME       start a connection and wait until it is up or failed
  ike-node terminate NAME      delete a connection's SAs and wait until it is down
  ike-node terminate --ike-sa ID | --child-sa ID
                               delete one IKE SA (with its child SAs) or one child SA
  ike-node reload              re-read the configuration (as SIGHUP does)
  ike-node list-conns          print the running daemon's connections (what a reload applied)
  ike-node events [--json]     print the daemon's events as they happen
  ike-node import FORMAT FILE  print FILE (isakmpd, swanctl or neutron) as peers.json
  ike-node demo [--ikev1]      two daemons on loopback negotiate IKEv2 (no root, no config)
  ike-node algorithms          list the supported transforms, their IKEv1/IKEv2 ids
                               and which crypto provider implements them
  ike-node --version           print the version
  ike-node --help              print this help

status, initiate, terminate, reload, list-conns and events find the daemon through --socket PATH,
or the control socket named in --config FILE (default /run/ike-node/ike-node.sock); they read
nothing else of that file, so its keys need not be readable to them.
Each command also accepts --help.
`;

const COMMAND_HELP: Record<string, string> = {
  run: `Usage: ike-node [run] --config FILE [--log-level LEVELS] [--log-format text|json]

Runs the daemon in the foreground: binds the configured UDP ports, initiates the
connections whose start is "initiate", answers the others, logs one line per event
to stderr and serves the control socket.

  --log-level LEVELS   error, warn, info or debug, for all subsystems or per subsystem:
                       "debug", "ike=debug,net=warn", "info,knl=debug" (subsystems:
                       ike, cfg, net, knl, crypto, ctl). Overrides the config's log.
  --log-format FORMAT  text (default) or json: one JSON object per line.

Signals: SIGHUP re-reads the configuration (connections added, changed or removed;
unchanged ones keep their SAs; an invalid file is logged and ignored). SIGTERM or
SIGINT sends Deletes, removes what was installed, disconnects control clients and
exits 0 (within 5 seconds).

One daemon per control socket: a second one given the same socket refuses to start.
The socket's lock, <socket>.lock, holds the daemon's pid; one left by a daemon that was
killed (SIGKILL) is stale and taken over.
`,
  check: `Usage: ike-node check --config FILE

Validates FILE. Prints every setting in effect, defaults filled in (keys never shown),
and exits 0; warns on stderr about what will not work as meant (a wildcard listen
address, a kernel backend whose native shim is missing). Or prints every problem
with its JSON path and exits 1.
`,
  status: `Usage: ike-node status [NAME] [--json] [--config FILE | --socket PATH]

Per connection (or connection NAME alone): its status (Active, Pending, Down or Error), its
ISAKMP/IKE SAs and its child SAs with SPIs, traffic selectors, algorithms and lifetimes.
`,
  initiate: `Usage: ike-node initiate NAME [--timeout SECONDS] [--no-wait] [--json] [--config FILE | --socket PATH]

Starts connection NAME (IKE SA, then a child SA for each pair of subnets) and waits
for the outcome, printing the connection's log lines meanwhile: "up", or "failed"
with its cause (no-proposal, authentication, identity, selectors, timeout, ...) and
the reason. Exit status: 0 up, 1 failed (or down), 3 no outcome within --timeout
seconds (default ${DEFAULT_OUTCOME_TIMEOUT}). --no-wait returns once the daemon took the command.
With --json, the log lines and the final {"outcome": ...} are JSON objects.
`,
  terminate: `Usage: ike-node terminate NAME [--timeout SECONDS] [--no-wait] [--json] [--config FILE | --socket PATH]
       ike-node terminate --ike-sa ID | --child-sa ID [--config FILE | --socket PATH]

Deletes connection NAME's SAs, telling the peer, and waits until it is down.
Exit status: 0 down, 3 not down within --timeout seconds. --no-wait returns at once.
With --ike-sa, one IKE SA and its child SAs; with --child-sa, one child SA (the
numbers 'ike-node status' shows after 'SA #'): one client of a gateway whose
connection serves many.
`,
  'list-conns': `Usage: ike-node list-conns [--config FILE | --socket PATH]

Prints the connections the running daemon has, as 'ike-node check' prints them (keys
never shown): what a reload really applied.
`,
  reload: `Usage: ike-node reload [--config FILE | --socket PATH]

Makes the running daemon re-read its configuration file, as SIGHUP does, and prints
which connections were added, changed, removed or left unchanged. SAs of unchanged
connections are not touched; those of changed and removed ones are deleted, and
changed or added connections with start "initiate" are initiated. An invalid file
is refused with every problem listed, and the running configuration stays.
`,
  events: `Usage: ike-node events [--json] [--config FILE | --socket PATH]

Prints the daemon's events as they happen, one per line, until interrupted:
connection status changes (Down, Pending, Active, Error), IKE and child SAs added,
rekeyed and deleted, negotiations started and failed, retransmissions, reloads.
With --json each line is the event object the control socket sends.
`,
  import: IMPORT_HELP,
  demo: `Usage: ike-node demo [--ikev1]

Starts two daemons in this process on 127.0.0.1 with free unprivileged UDP ports and
the memory kernel backend: a gateway that answers and a branch office that initiates
an IKEv2 site-to-site connection (IKEv1 with --ikev1; aes256-sha256-modp2048, child
SAs with PFS). Prints their log
lines and both sides' status, stops them (Deletes included) and exits 0 once both
sides were Active, 1 if they did not get there within 10 seconds.
`,
  algorithms: `Usage: ike-node algorithms

Prints the transform registry: encryption, integrity, PRF and Diffie-Hellman
algorithms by their proposal keyword (as in "aes256-sha256-modp2048"), their
aliases, their IKEv1 and IKEv2 identifiers, and whether each crypto provider
(${PROVIDER_NAMES.join(', ')}) implements them.
`,
};

/** Where a command writes; the real process streams, or buffers in tests. */
export interface CliIo {
  stdout(text: string): unknown;
  stderr(text: string): unknown;
}

export const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** Runs one command line and resolves with the exit status. */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (error) {
    if (!(error instanceof UsageError)) {
      io.stderr(`ike-node: ${(error as Error).message}\n`);
      return 1;
    }
    const about = typeof error.cause === 'string' ? ` ${error.cause}` : '';
    io.stderr(`ike-node: ${error.message}\nTry 'ike-node${about} --help'.\n`);
    return 2;
  }
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  config: { type: 'string', short: 'c' },
  socket: { type: 'string' },
  json: { type: 'boolean' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  ikev1: { type: 'boolean' },
  'ike-sa': { type: 'string' },
  'child-sa': { type: 'string' },
  listen: { type: 'string', multiple: true },
  'no-wait': { type: 'boolean' },
  timeout: { type: 'string' },
} as const;

const TALKS_TO_DAEMON = ['status', 'initiate', 'terminate', 'reload', 'events', 'list-conns'];

/** The commands an option means something to (an option not listed here: every command). */
const OPTION_COMMANDS: Partial<Record<keyof typeof OPTIONS, readonly string[]>> = {
  config: ['run', 'check', ...TALKS_TO_DAEMON],
  socket: TALKS_TO_DAEMON,
  json: ['status', 'events', 'initiate', 'terminate'],
  'log-level': ['run'],
  'log-format': ['run'],
  ikev1: ['demo'],
  'ike-sa': ['terminate'],
  'child-sa': ['terminate'],
  listen: ['import'],
  'no-wait': ['initiate', 'terminate'],
  timeout: ['initiate', 'terminate'],
};

/** An unusable command line, said in ike-node's words (not node:util's). */
class UsageError extends Error {}

/** parseArgs, its errors said as ike-node says them: the option named, without Node's advice. */
function parseCommandLine(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    const option = /'(?:-\w, )?(--?[^' ]+)/.exec(message)?.[1] ?? '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option '${option}'`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE')
      throw new UsageError(
        /does not take an argument/.test(message) ? `${option} takes no value` : `${option} needs a value`,
      );
    throw error;
  }
}

async function dispatch(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine(argv);
  const command = positionals[0] ?? (values.config !== undefined && !values.help ? 'run' : undefined);
  for (const [option, commands] of Object.entries(OPTION_COMMANDS)) {
    if (command && values[option as keyof typeof values] !== undefined && !commands.includes(command))
      throw new UsageError(`${command} does not take --${option}`, { cause: command });
  }
  if (values.version) {
    io.stdout(`ike-node ${VERSION}\n`);
    return 0;
  }
  if (command === undefined) {
    io.stdout(USAGE);
    return values.help ? 0 : 1;
  }
  if (values.help) {
    const help = COMMAND_HELP[command];
    if (help) {
      io.stdout(help);
      return 0;
    }
  }
  switch (command) {
    case 'algorithms':
      io.stdout(`${algorithmTable(PROVIDER_NAMES.map((name) => createCryptoProvider(name)))}\n`);
      return 0;
    case 'demo':
      return demoCommand(io, values.ikev1 ? 1 : 2);
    case 'run':
      return runDaemon(values, io);
    case 'check':
      return checkCommand(values, io);
    case 'status':
      return statusCommand(positionals[1], values, io);
    case 'terminate':
      if (values['ike-sa'] !== undefined || values['child-sa'] !== undefined) {
        if (positionals[1] !== undefined)
          throw new UsageError('terminate takes a connection NAME or an SA number, not both', {
            cause: command,
          });
        return terminateSaCommand(values, io);
      }
      return controlCommand(command, positionals[1], values, io);
    case 'initiate':
      return controlCommand(command, positionals[1], values, io);
    case 'list-conns':
      return listConnsCommand(values, io);
    case 'reload':
      return reloadCommand(values, io);
    case 'import':
      return importCommand(positionals[1], positionals[2], io, values);
    case 'events':
      return eventsCommand(values, io);
    default:
      io.stderr(`ike-node: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}
