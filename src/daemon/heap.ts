import { setFlagsFromString } from 'node:v8';

/**
 * Makes V8 compact its old generation at every full GC, for the daemon's process (not for a
 * library user's, whose process is theirs to tune).
 *
 * Why: each handshake allocates its short-lived state (messages, key material, exchanges) beside
 * the long-lived SA it creates, and under load much of it is promoted before it dies. A full GC
 * then frees about half of every old-generation page but, by V8's default heuristics, moves
 * almost nothing, so few pages become empty and none go back to the system. Measured with
 * `bench:handshake --parts sweep --sweep 100000` (IKEv1, one child each): 100,000 SAs used 595 MB
 * of heap in 836-862 MB reserved, 1,046-1,103 MiB RSS 40 s after the burst, until V8's memory
 * reducer happened to run (it waits for a low allocation rate, or 100 s without a full GC). With
 * compaction: 534 MB reserved for 524 MB used, 870 MiB RSS.
 *
 * The price is the pause of the full GCs, which now move what is live: up to about 1.2 s at
 * 100,000 SAs in the middle of a burst, against 20-70 ms; they come a minute or more apart under
 * the heaviest load, and IKE's retransmission timers (seconds) absorb them. A handshake's CPU is
 * unchanged (N = 3000 IKEv1, 1.72-1.76 ms per SA either way).
 */
export function compactHeapOnFullGc(): void {
  setFlagsFromString('--compact-on-every-full-gc');
}
