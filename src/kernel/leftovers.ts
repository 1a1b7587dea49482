import { formatSpi } from '../core/sa.js';

/**
 * The line a kernel backend logs at start once it has removed what an earlier run (killed,
 * crashed) left in the kernel: how many SAs and policies, and which SAs by SPI, so that an operator
 * can match them with the dead run's log ("child SA installed: ... SPIs c6b22367/c1712f91"). Only
 * the first LISTED_SPIS are named: a run killed with thousands of SAs still makes one short line.
 */

export const LISTED_SPIS = 8;

export function leftoversRemoved(spis: readonly number[], policies: number): string {
  const named = spis.slice(0, LISTED_SPIS).map(formatSpi).join(', ');
  const more = spis.length > LISTED_SPIS ? ` and ${spis.length - LISTED_SPIS} more` : '';
  const which = spis.length > 0 ? ` (SPIs ${named}${more})` : '';
  return `removed ${spis.length} SA(s)${which} and ${policies} policy(ies) left behind by an earlier run`;
}
