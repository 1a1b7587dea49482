import { createHmac, randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { inspect } from 'node:util';
import { describeSecret } from '../crypto/secret.js';
import type { Cursor } from './cursor.js';
import type { PrivacyCheck } from './permissions.js';

/** Reads a file's bytes, like fs.readFileSync(path). Tests pass a fake. */
export type ReadFile = (path: string) => Uint8Array | string;
export type Environment = Readonly<Record<string, string | undefined>>;

export interface PskSources {
  /** The configuration file, against whose directory relative key files resolve. */
  readonly file: string;
  readonly env: Environment;
  readonly readFile: ReadFile;
  /** Checks that files holding keys are private; absent when the text did not come from a file. */
  readonly privacy?: PrivacyCheck;
}

/**
 * A pre-shared key from `"psk": "text"`, `{ "file": path }` or `{ "env": NAME }`. Text starting
 * with 0x is hex (as in strongSwan's ipsec.secrets), from any of the three sources. A key file
 * loses one trailing newline. Messages never quote the key, only its source and length. A key
 * written in peers.json, or in a key file, needs that file to be private (see permissions.ts).
 */
export function readPsk(at: Cursor, sources: PskSources): Uint8Array | undefined {
  if (!at.valid) return undefined;
  if (typeof at.value === 'string') {
    sources.privacy?.check(at, sources.file);
    return decodePsk(at, at.value, 'the string');
  }
  const fileAt = at.key('file');
  const name = fileAt.string();
  if (name !== undefined) {
    const path = resolve(dirname(sources.file), name);
    let content: Uint8Array;
    try {
      const read = sources.readFile(path);
      content = typeof read === 'string' ? new TextEncoder().encode(read) : read;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
      return fileAt.fail('a readable file holding the key', `${code} reading ${path}`);
    }
    sources.privacy?.check(fileAt, path);
    let end = content.length;
    if (content[end - 1] === 0x0a) end -= content[end - 2] === 0x0d ? 2 : 1;
    const bytes = Uint8Array.from(content.subarray(0, end));
    const text = Buffer.from(bytes).toString('latin1');
    return /^0x/i.test(text) ? decodePsk(fileAt, text, `the file ${path}`) : checkLength(fileAt, bytes);
  }
  const envAt = at.key('env');
  const variable = envAt.string();
  if (variable === undefined) return undefined;
  const value = sources.env[variable];
  if (value === undefined) {
    return envAt.fail(
      'the name of a set environment variable',
      `${JSON.stringify(variable)}, which is not set`,
    );
  }
  return decodePsk(envAt, value, `the variable ${variable}`);
}

function decodePsk(at: Cursor, text: string, source: string): Uint8Array | undefined {
  if (/^0x/i.test(text)) {
    const hex = text.slice(2);
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) {
      return at.fail(
        'a key as text, or 0x followed by an even number of hex digits',
        /^[0-9a-fA-F]+$/.test(hex)
          ? `${source}, which starts with 0x but has an odd number of hex digits`
          : `${source}, which starts with 0x but is not hex digits`,
      );
    }
    return checkLength(at, Uint8Array.from(Buffer.from(hex, 'hex')));
  }
  return checkLength(at, new TextEncoder().encode(text));
}

function checkLength(at: Cursor, bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.length === 0) return at.fail('a pre-shared key of at least 1 byte', 'an empty key');
  return sealPsk(bytes);
}

/** A key that renders as `<secret N bytes>` in String(), JSON.stringify and util.inspect. */
class SealedKey extends Uint8Array {
  override toString(): string {
    return describeSecret(this);
  }

  override toLocaleString(): string {
    return describeSecret(this);
  }

  toJSON(): string {
    return describeSecret(this);
  }

  [inspect.custom](): string {
    return describeSecret(this);
  }
}

/**
 * Equal keys are one object: a gateway with a hundred thousand connections sharing a key holds it
 * once. The table is keyed by an HMAC under a secret of this process, as the engine's share-group
 * tags are: a plain digest of every key would sit in the heap for whoever reads a core dump to
 * test guesses against. An entry goes when its key does (a daemon reloaded with new keys for
 * years would otherwise keep one for every key it ever had).
 */
const keys = new Map<string, WeakRef<SealedKey>>();
let tagSecret: Buffer | undefined;
const forgotten = new FinalizationRegistry<string>((tag) => {
  // A newer key with the same tag may have taken the entry since.
  if (keys.get(tag)?.deref() === undefined) keys.delete(tag);
});

/**
 * Makes a key render as `<secret N bytes>` in String(), JSON.stringify and util.inspect, even when
 * it is copied out of its connection. The bytes themselves are untouched.
 */
export function sealPsk(bytes: Uint8Array): Uint8Array {
  if (bytes instanceof SealedKey) return bytes;
  tagSecret ??= randomBytes(32);
  const tag = createHmac('sha256', tagSecret).update(bytes).digest('base64');
  const known = keys.get(tag)?.deref();
  if (known) return known;
  const sealed = new SealedKey(bytes);
  keys.set(tag, new WeakRef(sealed));
  forgotten.register(sealed, tag);
  return sealed;
}
