import type { Cursor } from './cursor.js';

/** A file's mode bits, like fs.statSync(path).mode. Tests pass a fake. */
export type FileMode = (path: string) => number;

/** Group-read and other-read: who else could learn a key kept in the file. */
const READABLE_BY_OTHERS = 0o044;

/**
 * A file holding a pre-shared key (peers.json with a key written in it, or a key file) must be
 * readable by its owner only, as ssh insists for private keys. Each file is checked once, and
 * reported at the first key found in it.
 */
export class PrivacyCheck {
  readonly #checked = new Set<string>();
  constructor(private readonly fileMode: FileMode) {}

  check(at: Cursor, path: string): void {
    if (this.#checked.has(path)) return;
    this.#checked.add(path);
    let mode: number;
    try {
      mode = this.fileMode(path);
    } catch {
      return; // it was just read; a file that vanished since has nothing left to protect
    }
    if ((mode & READABLE_BY_OTHERS) === 0) return;
    at.fail(
      `${path} to be readable by its owner only (chmod 600 ${path}) because it holds a pre-shared key`,
      `mode ${(mode & 0o7777).toString(8).padStart(4, '0')}`,
    );
  }
}
