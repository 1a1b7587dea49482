/**
 * A strict JSON parser (RFC 8259) for configuration files. Unlike JSON.parse it reports syntax
 * errors by line and column without quoting the surrounding text (which could hold a pre-shared
 * key), keeps object keys in file order (as Maps, so a key such as "__proto__" or "1" is just a
 * key), and reports duplicate keys instead of silently keeping the last value.
 */

export type Json = null | boolean | number | string | Json[] | JsonObject;
export type JsonObject = Map<string, Json>;
export type JsonPath = readonly (string | number)[];

export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
  constructor(
    readonly line: number,
    readonly column: number,
    readonly expected: string,
    readonly got: string,
  ) {
    super(`${line}:${column}: expected ${expected}, got ${got}`);
  }
}

/** Called for each repeated key of an object, with the path of the repeated entry. */
export type DuplicateKeyHandler = (path: JsonPath) => void;

export function parseJson(text: string, onDuplicateKey: DuplicateKeyHandler = () => {}): Json {
  const parser = new Parser(text, onDuplicateKey);
  return parser.document();
}

export function isJsonObject(value: Json | undefined): value is JsonObject {
  return value instanceof Map;
}

/** Levels of objects and lists (peers.json needs five or so). */
const MAX_DEPTH = 64;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

class Parser {
  private pos: number;

  constructor(
    private readonly text: string,
    private readonly onDuplicateKey: DuplicateKeyHandler,
  ) {
    this.pos = text.startsWith('\uFEFF') ? 1 : 0;
  }

  document(): Json {
    const value = this.value([]);
    this.skipSpace();
    if (this.pos < this.text.length) this.fail('the end of the file after the top-level value');
    return value;
  }

  private value(path: JsonPath): Json {
    this.skipSpace();
    const c = this.text[this.pos];
    // The parser recurses per level: a bound keeps a deeply nested file a syntax error, not a stack overflow.
    if ((c === '{' || c === '[') && path.length >= MAX_DEPTH)
      this.fail(`a value nested at most ${MAX_DEPTH} levels deep`);
    if (c === '{') return this.object(path);
    if (c === '[') return this.array(path);
    if (c === '"') return this.string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    for (const [word, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.fail('a value (an object, a list, a "string", a number, true, false or null)');
  }

  private object(path: JsonPath): JsonObject {
    const result: JsonObject = new Map();
    this.pos++; // {
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return result;
    }
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') this.fail('a "quoted" key');
      const key = this.string();
      this.skipSpace();
      if (this.text[this.pos] !== ':') this.fail(`':' after the key "${key}"`);
      this.pos++;
      const value = this.value([...path, key]);
      if (result.has(key)) this.onDuplicateKey([...path, key]);
      else result.set(key, value);
      this.skipSpace();
      const next = this.text[this.pos];
      this.pos++;
      if (next === '}') return result;
      if (next !== ',') {
        this.pos--;
        this.fail(`',' or '}' after the value of "${key}"`);
      }
    }
  }

  private array(path: JsonPath): Json[] {
    const result: Json[] = [];
    this.pos++; // [
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return result;
    }
    for (;;) {
      result.push(this.value([...path, result.length]));
      this.skipSpace();
      const next = this.text[this.pos];
      this.pos++;
      if (next === ']') return result;
      if (next !== ',') {
        this.pos--;
        this.fail(`',' or ']' after item ${result.length - 1} of the list`);
      }
    }
  }

  private string(): string {
    this.pos++; // opening quote
    let out = '';
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined) this.fail("a closing '\"'");
      if (c === '"') {
        this.pos++;
        return out;
      }
      if (c < ' ') this.fail('a string without raw control characters (write \\n, \\t...)');
      if (c === '\\') {
        const e = this.text[this.pos + 1];
        if (e === 'u') {
          const hex = this.text.slice(this.pos + 2, this.pos + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
            this.pos += 2;
            this.fail('four hex digits after \\u');
          }
          out += String.fromCharCode(Number.parseInt(hex, 16));
          this.pos += 6;
          continue;
        }
        const replacement = e === undefined ? undefined : ESCAPES[e];
        if (replacement === undefined) {
          this.pos++;
          this.fail('an escape such as \\" \\\\ \\n \\t or \\uXXXX');
        }
        out += replacement;
        this.pos += 2;
        continue;
      }
      out += c;
      this.pos++;
    }
  }

  private number(): number {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (!match) return this.fail('a number');
    this.pos += match[0].length;
    return Number(match[0]);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length) {
      const c = this.text[this.pos];
      if (c !== ' ' && c !== '\t' && c !== '\n' && c !== '\r') return;
      this.pos++;
    }
  }

  /** Never quotes the text itself: only structural characters are named, anything else by its kind. */
  private fail(expected: string): never {
    const before = this.text.slice(0, this.pos);
    const line = before.split('\n').length;
    const column = this.pos - before.lastIndexOf('\n');
    const comment = /^\/[/*]/.test(this.text.slice(this.pos, this.pos + 2));
    const got = comment ? 'a comment (JSON has none)' : describeCharacter(this.text[this.pos]);
    throw new JsonSyntaxError(line, column, expected, got);
  }
}

function describeCharacter(c: string | undefined): string {
  if (c === undefined) return 'the end of the file';
  if ('{}[]:,"'.includes(c)) return `'${c}'`;
  if (/[A-Za-z]/.test(c)) return 'a letter';
  if (/\d/.test(c)) return 'a digit';
  if (c === "'") return 'a single quote (JSON strings use "double quotes")';
  if (c < ' ') return 'a control character';
  return 'another character';
}
