import type { Lifetime } from './connection.js';

export interface Schedule {
  /** When to start replacing the SA (soft lifetime). */
  readonly rekeyAt: number;
  /** When the SA must be gone (hard lifetime). */
  readonly expiresAt: number;
}

/**
 * Soft and hard expiry of an SA established at `now` (seconds) for `seconds` (the negotiated
 * lifetime; the configured one by default). The soft time is pulled forward by the margin and a
 * random part of the fuzz, so two peers with the same lifetime do not both start a rekey at the
 * same moment. `random` returns a number in [0, 1).
 */
export function schedule(
  now: number,
  lifetime: Lifetime,
  random: () => number,
  seconds = lifetime.seconds,
): Schedule {
  // A peer may impose a lifetime shorter than ours (RESPONDER-LIFETIME, or its own offer): the
  // margin and fuzz shrink in proportion, so that the SA is replaced at the same point of its life
  // as a configured one (a fixed margin would rekey an 8 s SA after 0.8 s, again and again).
  const scale = seconds < lifetime.seconds ? seconds / lifetime.seconds : 1;
  // Still at most 90% of the lifetime, whatever the configuration says: the SA must live a while.
  const margin = Math.min(lifetime.rekeyMargin * scale, seconds * 0.9);
  const fuzz = Math.max(0, Math.min(lifetime.rekeyFuzz * scale, seconds - margin - 1));
  return { rekeyAt: now + seconds - margin - random() * fuzz, expiresAt: now + seconds };
}
