import type { ChildSa } from '../core/sa.js';
import type { KernelBackend } from './backend.js';

/** Records what would be installed: for tests, demos and embedders who want the keys. */
export class MemoryBackend implements KernelBackend {
  readonly name = 'memory';
  readonly #children = new Map<number, ChildSa>();

  async install(child: ChildSa): Promise<void> {
    this.#children.set(child.id, child);
  }

  async remove(child: ChildSa): Promise<void> {
    this.#children.delete(child.id);
  }

  installed(): readonly ChildSa[] {
    return [...this.#children.values()];
  }

  async close(): Promise<void> {
    this.#children.clear();
  }
}
