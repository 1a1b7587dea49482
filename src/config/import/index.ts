import { importIsakmpd } from './isakmpd.js';
import { importNeutron } from './neutron.js';
import type { ImportResult } from './shared.js';
import { importSwanctl } from './swanctl.js';

/** peers.json from other daemons' configurations: `ike-node import FORMAT FILE`. */

export { importIsakmpd } from './isakmpd.js';
export { importNeutron } from './neutron.js';
export { ImportError, type ImportResult, type JsonObject } from './shared.js';
export { importSwanctl } from './swanctl.js';

export const IMPORTERS: Readonly<Record<string, (text: string, file: string) => ImportResult>> = {
  isakmpd: importIsakmpd,
  swanctl: importSwanctl,
  neutron: importNeutron,
};
