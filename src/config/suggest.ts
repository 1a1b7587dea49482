/**
 * "Did you mean": the allowed name closest to a misspelt one, or undefined when none is close
 * enough to be a likely typo. Case, '-' and '_' are ignored first (ike_version is ikeVersion);
 * otherwise an edit distance of 1 (2 for names of 6 characters or more) counts as close.
 */
export function closestName(name: string, allowed: readonly string[]): string | undefined {
  const fold = (text: string) => text.toLowerCase().replace(/[-_]/g, '');
  const folded = fold(name);
  const same = allowed.find((candidate) => fold(candidate) === folded);
  if (same !== undefined) return same;
  const limit = folded.length >= 6 ? 2 : 1;
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of allowed) {
    const other = fold(candidate);
    // The distance is at least the difference in length: a long unknown key costs no table.
    if (Math.abs(other.length - folded.length) > limit) continue;
    const distance = editDistance(folded, other);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
 * neighbouring characters ("pks" for "psk") each cost 1.
 */
export function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      }
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}
