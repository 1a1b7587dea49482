import { ALGORITHMS, type Algorithm, type CryptoProvider } from '../crypto/index.js';

/** `ike-node algorithms`: the transform registry as a table, like `swanctl --list-algs`. */
export function algorithmTable(providers: readonly CryptoProvider[]): string {
  const header = ['kind', 'name', 'aliases', 'IKEv1', 'IKEv2', ...providers.map((p) => p.name)];
  const rows = ALGORITHMS.map((row) => [
    row.kind,
    row.name,
    row.aliases.join(' '),
    ikev1Id(row),
    ikev2Id(row),
    ...providers.map((p) => (p.supports(primitiveOf(row)) ? 'yes' : 'no')),
  ]);
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => r[i]!.length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function primitiveOf(row: Algorithm): Parameters<CryptoProvider['supports']>[0] {
  switch (row.kind) {
    case 'encr':
      return row.primitive;
    case 'dh':
      return row.name;
    default:
      return row.hash;
  }
}

function ikev1Id(row: Algorithm): string {
  switch (row.kind) {
    case 'encr': {
      const v1 = row.ikev1;
      if (!v1) return '-';
      return [v1.phase1 === undefined ? '' : `p1:${v1.phase1}`, v1.esp === undefined ? '' : `esp:${v1.esp}`]
        .filter(Boolean)
        .join(' ');
    }
    case 'integ':
      return row.ikev1 ? `esp-auth:${row.ikev1.esp}` : '-';
    case 'prf':
      return row.ikev1 ? `hash:${row.ikev1.hash}` : '-';
    case 'dh':
      return row.ikev1 === undefined ? '-' : String(row.ikev1);
  }
}

function ikev2Id(row: Algorithm): string {
  if (row.kind === 'dh') return String(row.ikev2);
  if (row.kind === 'encr' && row.ikev2.keyLengthAttribute) return `${row.ikev2.id}/${row.keyLength * 8}`;
  return String(row.ikev2.id);
}
