import type { Lifetime } from './connection.js';

export interface Schedule {
  /** When to start replacing the SA (soft lifetime). */
  readonly rekeyAt: number;
  /** When the SA must be gone (hard lifetime). */
  readonly expiresAt: number;
}

/**
 * Soft and hard expiry of an SA established at `now` (seconds). The soft time is pulled forward
 * by the margin and a random part of the fuzz, so two peers with the same lifetime do not both
 * start a rekey at the same moment. `random` returns a number in [0, 1).
 */
export function schedule(
  now: number,
  lifetime: Lifetime,
  random: () => number,
  seconds = lifetime.seconds,
): Schedule {
  // The configured margin is honoured up to 90% of the lifetime: a peer may impose a lifetime
  // shorter than our margin (RESPONDER-LIFETIME), and the SA must still live a while.
  const margin = Math.min(lifetime.rekeyMargin, seconds * 0.9);
  const fuzz = Math.max(0, Math.min(lifetime.rekeyFuzz, seconds - margin - 1));
  return { rekeyAt: now + seconds - margin - random() * Math.max(0, fuzz), expiresAt: now + seconds };
}
