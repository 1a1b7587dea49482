import type { ChildSa } from '../core/sa.js';
import type { TrafficCounters } from '../core/status.js';

/**
 * Where negotiated SAs go. The `memory` backend records them; the kernel issue adds xfrm, pfkey
 * and userspace ESP behind the same interface.
 */
export interface KernelBackend {
  readonly name: string;
  /** Installs both directions of a child SA and its policies. */
  install(child: ChildSa): Promise<void>;
  remove(child: ChildSa): Promise<void>;
  /** Bytes and packets through a child SA, for backends that count them. */
  counters?(child: ChildSa): Promise<TrafficCounters | undefined>;
  /** What is installed now. */
  installed(): readonly ChildSa[];
  close(): Promise<void>;
}
