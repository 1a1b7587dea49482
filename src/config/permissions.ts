import { dirname } from 'node:path';
import type { Cursor } from './cursor.js';

/** A file's mode bits, like fs.statSync(path).mode. Tests pass a fake. */
export type FileMode = (path: string) => number;

/** Group-read and other-read: who else could learn a key kept in the file. */
const READABLE_BY_OTHERS = 0o044;
/** Other-write: anyone could put their own key in the file (or, on a directory, replace it). */
const WRITABLE_BY_ALL = 0o002;
/** The sticky bit: in such a directory only a file's owner may rename or remove it (/tmp). */
const STICKY = 0o1000;

/**
 * A file holding a pre-shared key (peers.json with a key written in it, or a key file) must be
 * readable by its owner only, as ssh insists for private keys, writable by no one else, and in a
 * directory where no one else may replace it (world-writable without the sticky bit). Each file
 * is checked once, and reported at the first key found in it.
 */
export class PrivacyCheck {
  readonly #checked = new Set<string>();
  constructor(private readonly fileMode: FileMode) {}

  check(at: Cursor, path: string): void {
    if (this.#checked.has(path)) return;
    this.#checked.add(path);
    const mode = this.#mode(path);
    if (mode === undefined) return; // it was just read; a file that vanished since has nothing left to protect
    if (mode & READABLE_BY_OTHERS) {
      at.fail(
        `${path} to be readable by its owner only (chmod 600 ${path}) because it holds a pre-shared key`,
        `mode ${octal(mode)}`,
      );
      return;
    }
    if (mode & WRITABLE_BY_ALL) {
      at.fail(
        `${path} to be writable by its owner only (chmod 600 ${path}) because it holds a pre-shared key`,
        `mode ${octal(mode)}`,
      );
      return;
    }
    // Whoever may write the directory may swap the file for their own (with their own key).
    const directory = dirname(path);
    const directoryMode = this.#mode(directory);
    if (directoryMode !== undefined && directoryMode & WRITABLE_BY_ALL && !(directoryMode & STICKY))
      at.fail(
        `${directory}, which holds ${path} with a pre-shared key, to be writable by its owner only ` +
          `(chmod o-w ${directory}) because anyone may replace the file in it`,
        `mode ${octal(directoryMode)}`,
      );
  }

  #mode(path: string): number | undefined {
    try {
      return this.fileMode(path);
    } catch {
      return undefined;
    }
  }
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}
