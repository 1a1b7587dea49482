import { readFileSync } from 'node:fs';
import { ConfigErrors, parseConfig } from '../config/index.js';
import { ImportError, IMPORTERS } from '../config/import/index.js';
import type { CliIo } from './cli.js';

export const IMPORT_HELP = `Usage: ike-node import isakmpd|swanctl|neutron FILE

Translates another IKE daemon's configuration into peers.json, printed on stdout.
What peers.json expresses differently, or not at all, is reported on stderr.

  isakmpd   OpenBSD ipsec.conf(5): the ike rules (and macros) that ipsecctl(8)
            gives isakmpd(8), with isakmpd's defaults
  swanctl   strongSwan swanctl.conf: PSK connections, their children, and the
            ike secrets that match their identities
  neutron   OpenStack Neutron VPNaaS objects as JSON: ikepolicies, ipsecpolicies,
            endpoint_groups and ipsec_site_connections; vpnservices and subnets,
            when present, give the local address and resolve subnet ids

The result passes 'ike-node check'. When FILE cannot be imported, the reason
(file, line or JSON path, and what was expected) goes to stderr and the exit
status is 1. The pre-shared keys are written into the output: a peers.json
holding an inline psk must be private (chmod 600 peers.json), or move the keys
to { "file": ... } or { "env": ... }.
`;

/** `ike-node import FORMAT FILE`: peers.json on stdout, warnings on stderr; 0, or 1 on any error. */
export function importCommand(format: string | undefined, file: string | undefined, io: CliIo): number {
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
  const output = JSON.stringify(result.config, null, 2);
  try {
    // The output holds its keys inline, so no environment and no key files are consulted.
    parseConfig(output, `${file} (imported)`, {}, (path) => {
      throw new Error(`no key files in an import (${path})`);
    });
  } catch (error) {
    if (!(error instanceof ConfigErrors)) throw error;
    io.stderr(
      `ike-node import: the imported configuration does not pass ike-node check:\n${error.message}\n`,
    );
    return 1;
  }
  for (const warning of result.warnings) io.stderr(`warning: ${warning}\n`);
  io.stdout(`${output}\n`);
  return 0;
}
