import { parseArgs } from 'node:util';
import { createCryptoProvider, PROVIDER_NAMES } from '../crypto/index.js';
import { VERSION } from '../version.js';
import { algorithmTable } from './algorithms.js';

const USAGE = `ike-node ${VERSION}: an IKEv1/IKEv2 daemon and library for Node.js

Usage:
  ike-node algorithms          list the supported transforms, their IKEv1/IKEv2 ids
                               and which crypto provider implements them
  ike-node --version           print the version
  ike-node --help              print this help

Each command also accepts --help.
The daemon (ike-node --config peers.json) arrives with IKEv1; see the README's status table.
`;

const COMMAND_HELP: Record<string, string> = {
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

/** Runs one command line and returns the exit status. */
export function runCli(argv: readonly string[], io: CliIo = processIo): number {
  try {
    return dispatch(argv, io);
  } catch (error) {
    io.stderr(`ike-node: ${(error as Error).message}\nTry 'ike-node --help'.\n`);
    return 2;
  }
}

function dispatch(argv: readonly string[], io: CliIo): number {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'V' } },
    allowPositionals: true,
    strict: true,
  });
  const [command] = positionals;
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
    default:
      io.stderr(`ike-node: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}
