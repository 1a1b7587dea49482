import type { Endpoint } from './endpoint.js';

/** What the kernel tells an engine: fed to it as an input by the runtime. */
export type KernelEvent =
  /** Traffic hit a trap policy: negotiate `connection` now. */
  | { readonly type: 'acquire'; readonly connection: string }
  /** A child SA's lifetime ran out in the kernel: soft, rekey; hard, the SA is gone. */
  | { readonly type: 'expire'; readonly child: number; readonly hard: boolean }
  /** The peer's NAT mapping moved: ESP in UDP now comes from (and goes to) `remote`. */
  | { readonly type: 'mapping'; readonly child: number; readonly remote: Endpoint }
  /**
   * The kernel refused a child SA the engine asked for (an algorithm it lacks, a full table...).
   * It carries nothing, so the engine deletes it, tells the peer, and shows the connection in Error.
   */
  | { readonly type: 'install-failed'; readonly child: number; readonly reason: string };
