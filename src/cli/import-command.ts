import { readFileSync } from 'node:fs';
import { wildcardListenWarning } from '../config/effective.js';
import { ConfigErrors, type DaemonConfig, parseConfig } from '../config/index.js';
import { ImportError, IMPORTERS, type JsonObject } from '../config/import/index.js';
import type { CliIo } from './cli.js';

export const IMPORT_HELP = `Usage: ike-node import isakmpd|swanctl|neutron FILE [--listen ADDRESS,...]

Translates another IKE daemon's configuration into peers.json, printed on stdout.
What peers.json expresses differently, or not at all, is reported on stderr.

  isakmpd   OpenBSD ipsec.conf(5): the ike rules (and macros) that ipsecctl(8)
            gives isakmpd(8), with isakmpd's defaults
  swanctl   strongSwan swanctl.conf: PSK connections, their children, and the
            ike secrets that match their identities
  neutron   OpenStack Neutron VPNaaS objects as JSON: ikepolicies, ipsecpolicies,
            endpoint_groups and ipsec_site_connections; vpnservices and subnets,
            when present, give the local address and resolve subnet ids

ike-node listens on the local addresses the connections name (isakmpd: \`local\`;
swanctl: local_addrs; neutron: the vpnservice's address). When some
connection names none, the result would listen on 0.0.0.0, which cannot serve NAT
detection: --listen ADDRESS,... sets the addresses to listen on (this host's
addresses its peers reach), and without it a warning says so.

The result passes 'ike-node check'. When FILE cannot be imported, the reason
(file, line or JSON path, and what was expected) goes to stderr and the exit
status is 1. The pre-shared keys are written into the output: a peers.json
holding an inline psk must be private (chmod 600 peers.json), or move the keys
to { "file": ... } or { "env": ... }.
`;

export interface ImportOptions {
  /** --listen: the addresses to listen on, replacing what the import found (comma-separated, or repeated). */
  readonly listen?: readonly string[] | undefined;
}

/** `ike-node import FORMAT FILE`: peers.json on stdout, warnings on stderr; 0, or 1 on any error. */
export function importCommand(
  format: string | undefined,
  file: string | undefined,
  io: CliIo,
  options: ImportOptions = {},
): number {
  if (format === undefined || file === undefined) {
    io.stderr(`ike-node import: a format and a file are needed\n\n${IMPORT_HELP}`);
    return 1;
  }
  const importer = IMPORTERS[format];
  if (!importer) {
    io.stderr(`ike-node import: unknown format '${format}'; expected ${Object.keys(IMPORTERS).join(', ')}\n`);
    return 1;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
    io.stderr(`ike-node import: ${file}: cannot read it (${code})\n`);
    return 1;
  }
  let result;
  try {
    result = importer(text, file);
  } catch (error) {
    if (!(error instanceof ImportError)) throw error;
    io.stderr(`ike-node import: ${error.message}\n`);
    return 1;
  }
  const listen = options.listen?.flatMap((list) => list.split(',')).map((address) => address.trim());
  let config = result.config;
  if (listen) {
    // The keys' order stays the importer's: listen first.
    const { listen: found, ...rest } = config;
    config = { listen: { ...(found as JsonObject | undefined), addresses: listen }, ...rest };
  }
  const output = JSON.stringify(config, null, 2);
  let imported: DaemonConfig;
  try {
    // The output holds its keys inline, so no environment and no key files are consulted.
    imported = parseConfig(output, `${file} (imported)`, {}, (path) => {
      throw new Error(`no key files in an import (${path})`);
    });
  } catch (error) {
    if (!(error instanceof ConfigErrors)) throw error;
    io.stderr(
      `ike-node import: the imported configuration does not pass ike-node check:\n${error.message}\n`,
    );
    return 1;
  }
  const wildcard = wildcardListenWarning(imported);
  if (wildcard) {
    result.warnings.push(
      `${wildcard}; ${file} does not name one for every connection: give them with ike-node import ${format} ${file} --listen ADDRESS`,
    );
  }
  for (const warning of result.warnings) io.stderr(`warning: ${warning}\n`);
  io.stdout(`${output}\n`);
  return 0;
}
