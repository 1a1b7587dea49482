import { ImportError, lineOf } from './shared.js';

/**
 * strongSwan's settings syntax, which swanctl.conf uses (libstrongswan/settings/settings_lexer.l
 * and settings_parser.y): `name { ... }` sections, `key = value` settings whose value runs to
 * the end of the line, a '#' or a '}', double-quoted strings with backslash escapes, and '#'
 * comments. Sections of the same name merge and a later value replaces an earlier one, as
 * strongSwan does. `include` is refused: the importer reads one file.
 */

export interface Setting {
  readonly value: string;
  readonly line: number;
}

export class Section {
  readonly sections = new Map<string, Section>();
  readonly settings = new Map<string, Setting>();
  constructor(
    readonly name: string,
    readonly path: string,
    readonly line: number,
  ) {}

  section(name: string): Section | undefined {
    return this.sections.get(name);
  }

  value(key: string): Setting | undefined {
    return this.settings.get(key);
  }
}

type Token =
  | { kind: 'name' | 'string'; text: string; line: number }
  | { kind: '{' | '}' | '=' | 'newline' | 'eof'; text: string; line: number };

class Lexer {
  private pos = 0;
  private line = 1;
  /** After '=': words, quoted strings, up to a newline, '#' or '}'. */
  private inValue = false;

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  next(): Token {
    const text = this.text;
    for (;;) {
      const c = text[this.pos];
      const line = this.line;
      if (c === undefined) {
        this.inValue = false;
        return { kind: 'eof', text: '', line };
      }
      if (c === ' ' || c === '\t' || c === '\r') {
        this.pos++;
        continue;
      }
      if (c === '#') {
        while (this.pos < text.length && text[this.pos] !== '\n') this.pos++;
        continue;
      }
      if (c === '\n') {
        this.pos++;
        this.line++;
        this.inValue = false;
        return { kind: 'newline', text: '\n', line };
      }
      if (c === '}') {
        this.pos++;
        this.inValue = false;
        return { kind: '}', text: c, line };
      }
      if (c === '"') {
        if (!this.inValue) throw new ImportError(lineOf(this.file, line), 'a name', 'a quoted string');
        return this.quoted(line);
      }
      if (!this.inValue && (c === '{' || c === '=')) {
        this.pos++;
        if (c === '=') this.inValue = true;
        return { kind: c, text: c, line };
      }
      const stop = this.inValue ? /[#}"\r\n\t ]/ : /[#{}="\r\n\t ]/;
      let word = '';
      while (this.pos < text.length && !stop.test(text[this.pos]!)) word += text[this.pos++];
      return { kind: 'name', text: word, line };
    }
  }

  private quoted(line: number): Token {
    let value = '';
    this.pos++;
    for (;;) {
      const c = this.text[this.pos++];
      if (c === undefined)
        throw new ImportError(lineOf(this.file, line), 'a closing "', 'the end of the file');
      if (c === '"') return { kind: 'string', text: value, line };
      if (c === '\r') continue;
      if (c === '\n') this.line++;
      if (c !== '\\') {
        value += c;
        continue;
      }
      const next = this.text[this.pos++];
      if (next === 'n') value += '\n';
      else if (next === 't') value += '\t';
      else if (next === 'r') value += '\r';
      else if (next === '\n') this.line++;
      else if (next !== undefined) value += next;
    }
  }
}

/** Levels of nested sections (swanctl.conf uses four or so). */
const MAX_DEPTH = 32;

class Parser {
  private token: Token;
  private readonly lexer: Lexer;

  constructor(
    text: string,
    private readonly file: string,
  ) {
    this.lexer = new Lexer(text, file);
    this.token = this.lexer.next();
  }

  private fail(expected: string): never {
    const got =
      this.token.kind === 'eof'
        ? 'the end of the file'
        : this.token.kind === 'newline'
          ? 'the end of the line'
          : JSON.stringify(this.token.text);
    throw new ImportError(lineOf(this.file, this.token.line), expected, got);
  }

  /** The current token, read afresh (advance() changes it behind TypeScript's narrowing). */
  private peek(): Token {
    return this.token;
  }

  private advance(): Token {
    const token = this.token;
    this.token = this.lexer.next();
    return token;
  }

  /** Statements until '}' (nested) or the end of the file (top level). */
  body(into: Section, nested: boolean, depth = 0): void {
    for (;;) {
      const token = this.token;
      if (token.kind === 'newline') {
        this.advance();
        continue;
      }
      if (token.kind === 'eof') {
        if (nested) this.fail(`'}' closing ${into.path} (opened on line ${into.line})`);
        return;
      }
      if (token.kind === '}') {
        if (!nested) this.fail('a setting or a section');
        this.advance();
        return;
      }
      if (token.kind !== 'name') this.fail('a setting (key = value) or a section (name { ... })');
      this.advance();
      if (token.text === 'include' && this.token.kind === 'name') {
        throw new ImportError(
          lineOf(this.file, token.line),
          'no include (import one file; merge the included ones into it)',
          `include ${this.token.text}`,
        );
      }
      if (token.text.includes(':') || (this.token.kind === 'name' && this.token.text === ':')) {
        this.fail('a section without references (name : template { } is not supported)');
      }
      if (this.token.kind === '{') {
        this.advance();
        const path = into.path ? `${into.path}.${token.text}` : token.text;
        let section = into.sections.get(token.text);
        if (!section) {
          section = new Section(token.text, path, token.line);
          into.sections.set(token.text, section);
        }
        // The parser recurses per section: a bound keeps deep nesting an error, not a stack overflow.
        if (depth >= MAX_DEPTH) this.fail(`sections nested at most ${MAX_DEPTH} deep`);
        this.body(section, true, depth + 1);
      } else if (this.token.kind === '=') {
        this.advance();
        const words: string[] = [];
        for (let t = this.peek(); t.kind === 'name' || t.kind === 'string'; t = this.peek()) {
          words.push(this.advance().text);
        }
        into.settings.set(token.text, { value: words.join(' '), line: token.line });
      } else {
        this.fail(`'=' or '{' after ${JSON.stringify(token.text)}`);
      }
    }
  }
}

/** The file's top level, as a section without a name. */
export function parseSettings(text: string, file: string): Section {
  const root = new Section('', '', 1);
  new Parser(text, file).body(root, false);
  return root;
}
