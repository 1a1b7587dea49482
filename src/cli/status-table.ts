import type { ChildSaStatus, ConnectionStatus, IkeSaStatus, TrafficCounters } from '../core/status.js';

/**
 * `ike-node status` for people: one block per connection, its IKE SAs indented under it and each
 * child SA under the IKE SA that negotiated it (a child SA whose IKE SA is not the connection's
 * own, an IKEv1 sibling's or one already gone, under the connection with its IKE SA's number),
 * times relative to `now` (ages and time to rekey) instead of Unix times.
 */
export function statusTable(status: readonly ConnectionStatus[], now = Date.now() / 1000): string {
  if (!status.length) return 'no connections configured\n';
  const lines: string[] = [];
  for (const connection of status) {
    const error = connection.error ? `  ${connection.error}` : '';
    lines.push(`${connection.name}: ${connection.status}, peer ${connection.peer}${error}`);
    const own = new Set(connection.ikeSas.map((sa) => sa.id));
    for (const sa of connection.ikeSas) {
      lines.push(...ikeLines(sa, now));
      for (const child of connection.childSas)
        if (child.ikeSaId === sa.id) lines.push(...childLines(child, now, '    '));
    }
    for (const child of connection.childSas)
      if (!own.has(child.ikeSaId)) lines.push(...childLines(child, now, '  ', ` (IKE SA #${child.ikeSaId})`));
  }
  return `${lines.join('\n')}\n`;
}

function ikeLines(sa: IkeSaStatus, now: number): string[] {
  const nat =
    sa.nat.local && sa.nat.remote
      ? 'both behind NAT'
      : sa.nat.local
        ? 'we are behind NAT'
        : sa.nat.remote
          ? 'peer behind NAT'
          : '';
  const ids = sa.localId || sa.remoteId ? `${sa.localId ?? '?'} <-> ${sa.remoteId ?? '?'}` : '';
  const times = [
    sa.establishedAt !== undefined ? `age ${duration(now - sa.establishedAt)}` : '',
    sa.rekeyAt !== undefined ? `rekey in ${duration(sa.rekeyAt - now)}` : '',
    sa.expiresAt !== undefined ? `expires in ${duration(sa.expiresAt - now)}` : '',
  ];
  return [
    `  IKEv${sa.version} SA #${sa.id} ${sa.state} (${sa.role}) ${sa.local} <-> ${sa.remote}${nat ? `, ${nat}` : ''}`,
    `    SPIs ${sa.spiI}_i ${sa.spiR}_r${ids ? `, ${ids}` : ''}`,
    ...(sa.algorithms || times.some(Boolean) ? [`    ${join([sa.algorithms ?? '', ...times])}`] : []),
  ];
}

function childLines(child: ChildSaStatus, now: number, indent: string, parent = ''): string[] {
  return [
    `${indent}child SA #${child.id}${parent} ${child.mode}${child.encapsulation ? ', ESP in UDP' : ''}, ` +
      `SPIs ${child.spiIn}_i ${child.spiOut}_o, ${child.algorithms}`,
    `${indent}  ${child.localTs.join(', ')} === ${child.remoteTs.join(', ')}`,
    `${indent}  ${join([
      traffic(child.traffic),
      `age ${duration(now - child.installedAt)}`,
      `rekey in ${duration(child.rekeyAt - now)}`,
      `expires in ${duration(child.expiresAt - now)}`,
    ])}`,
  ];
}

function traffic(counters: TrafficCounters | undefined): string {
  if (!counters) return 'traffic not counted by this kernel backend';
  return (
    `${bytes(counters.bytesIn)} in (${counters.packetsIn} packets), ` +
    `${bytes(counters.bytesOut)} out (${counters.packetsOut} packets)`
  );
}

function join(parts: readonly string[]): string {
  return parts.filter(Boolean).join(', ');
}

/** `0s`, `59s`, `4m05s`, `2h59m`, `3d04h`; negative means already due. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

function bytes(count: number): string {
  if (count < 1024) return `${count} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = count / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
