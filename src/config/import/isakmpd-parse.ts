import { isIP } from 'node:net';
import { ImportError, lineOf, portNumber, protocolNumber } from './shared.js';

/**
 * The syntax of OpenBSD's ipsec.conf(5), as ipsecctl(8) reads it (sbin/ipsecctl/parse.y): macros,
 * comments, line continuation, quoting, and the `ike` rule with its fixed order of parts:
 *
 *   ike [active|passive|dynamic] [esp] [tunnel|transport] [proto P]
 *       from SRC [port P] to DST [port P] [peer H] [local H]
 *       [main auth A enc E group G [lifetime T]] [quick auth A enc E group G [lifetime T]]
 *       [srcid ID] [dstid ID] [psk STRING] [tag STRING]
 *
 * The result is the rules as written; isakmpd.ts gives them their meaning.
 */

export interface Host {
  /** 'any' expands to 0.0.0.0/0 and ::/0, as ipsecctl's expand_any does. */
  readonly any?: true;
  readonly address?: string;
  readonly family?: 4 | 6;
  /** Written with a prefix ("/24", even "/32"): isakmpd then uses subnet IDs and no default peer. */
  readonly prefix?: number;
}

export interface Transforms {
  auth?: { value: string; line: number };
  enc?: { value: string; line: number };
  group?: { value: string; line: number };
  comp?: { value: string; line: number };
}

export interface PhaseMode {
  readonly line: number;
  readonly transforms: Transforms;
  readonly lifetime?: { seconds: number; line: number };
}

export interface IkeRule {
  readonly line: number;
  readonly ikemode: 'active' | 'passive' | 'dynamic';
  readonly tmode: 'tunnel' | 'transport';
  readonly proto?: number;
  readonly src: readonly Host[];
  readonly dst: readonly Host[];
  readonly sport?: number;
  readonly dport?: number;
  readonly peer?: Host;
  readonly local?: Host;
  readonly main?: PhaseMode;
  readonly quick?: PhaseMode;
  readonly srcid?: string;
  readonly dstid?: string;
  readonly psk?: string;
  readonly tag?: string;
}

export interface ParsedFile {
  readonly rules: IkeRule[];
  /** Other statements (flows, manual SAs, tcpmd5): kernel state isakmpd does not negotiate. */
  readonly skipped: { line: number; kind: string }[];
}

const KEYWORDS = new Set([
  'acquire',
  'active',
  'aggressive',
  'ah',
  'any',
  'auth',
  'authkey',
  'bundle',
  'bypass',
  'comp',
  'deny',
  'dontacq',
  'dstid',
  'dynamic',
  'enc',
  'enckey',
  'esp',
  'file',
  'flow',
  'from',
  'group',
  'ike',
  'in',
  'include',
  'interface',
  'ipcomp',
  'ipip',
  'lifetime',
  'local',
  'main',
  'out',
  'passive',
  'peer',
  'port',
  'proto',
  'psk',
  'quick',
  'require',
  'rsa',
  'spi',
  'srcid',
  'tag',
  'tcpmd5',
  'to',
  'transport',
  'tunnel',
  'type',
  'udpencap',
  'use',
]);

type Token =
  | { kind: 'keyword' | 'string' | 'number' | 'char'; text: string; line: number }
  | { kind: 'newline' | 'eof'; text: string; line: number };

/** parse.y's yylex: quoted strings are never keywords and never expand macros. */
class Lexer {
  private pos = 0;
  line = 1;
  /** Text of a macro being expanded (parse.y's parsebuf): no further expansion inside. */
  private expansion: { text: string; pos: number } | undefined;

  constructor(
    private readonly text: string,
    private readonly file: string,
    private readonly macros: Map<string, string>,
  ) {}

  private getc(quoted = false): string | undefined {
    if (this.expansion) {
      if (this.expansion.pos < this.expansion.text.length) return this.expansion.text[this.expansion.pos++];
      this.expansion = undefined;
    }
    if (quoted) return this.text[this.pos++];
    for (;;) {
      const c = this.text[this.pos++];
      if (c !== '\\') return c;
      const next = this.text[this.pos++];
      // A backslash before a newline continues the line; before anything else it is dropped.
      if (next !== '\n') return next;
      this.line++;
    }
  }

  private ungetc(c: string | undefined): void {
    if (c === undefined) return;
    if (this.expansion && this.expansion.pos > 0) this.expansion.pos--;
    else this.pos--;
  }

  next(): Token {
    for (;;) {
      let c = this.getc();
      while (c === ' ' || c === '\t') c = this.getc();
      const line = this.line;
      if (c === '#') {
        while (c !== '\n' && c !== undefined) c = this.getc();
      }
      if (c === '$' && !this.expansion) {
        let name = '';
        for (c = this.getc(); c !== undefined && /[A-Za-z0-9_]/.test(c); c = this.getc()) name += c;
        this.ungetc(c);
        const value = this.macros.get(name);
        if (value === undefined) {
          throw new ImportError(
            lineOf(this.file, line),
            'a defined macro',
            `'$${name}', which is not defined`,
          );
        }
        this.expansion = { text: value, pos: 0 };
        continue;
      }
      if (c === undefined) return { kind: 'eof', text: '', line };
      if (c === '\n') {
        this.line++;
        return { kind: 'newline', text: '\n', line };
      }
      if (c === '"' || c === "'") return this.quoted(c, line);
      if (/[0-9-]/.test(c)) {
        const number = this.number(c, line);
        if (number) return number;
        c = this.getc();
      }
      if (/[A-Za-z0-9:_*]/.test(c!)) {
        let word = c!;
        for (c = this.getc(); c !== undefined && inString(c); c = this.getc()) word += c;
        this.ungetc(c);
        return { kind: KEYWORDS.has(word) ? 'keyword' : 'string', text: word, line };
      }
      return { kind: 'char', text: c!, line };
    }
  }

  private quoted(quote: string, line: number): Token {
    let value = '';
    for (;;) {
      let c = this.getc(true);
      if (c === undefined)
        throw new ImportError(lineOf(this.file, line), `a closing ${quote}`, 'the end of the file');
      if (c === '\n') {
        // parse.y drops newlines inside quotes (and counts them).
        this.line++;
        continue;
      }
      if (c === '\\') {
        const next = this.getc(true);
        if (next === '\n') {
          this.line++;
          continue;
        }
        if (next === quote || next === ' ' || next === '\t') c = next;
        else this.ungetc(next);
      } else if (c === quote) {
        return { kind: 'string', text: value, line };
      }
      value += c;
    }
  }

  /** Digits followed by a separator are a NUMBER; anything else is pushed back for a word. */
  private number(first: string, line: number): Token | undefined {
    let digits = first;
    let c = this.getc();
    while (c !== undefined && /[0-9]/.test(c)) {
      digits += c;
      c = this.getc();
    }
    const ends = c === undefined || /[\s),/}=]/.test(c);
    if (digits !== '-' && ends) {
      this.ungetc(c);
      return { kind: 'number', text: digits, line };
    }
    // Not a number: rewind to just after the first character, which the caller re-reads.
    this.ungetc(c);
    for (let i = digits.length - 1; i > 0; i--) this.ungetc(digits[i]);
    this.ungetc(digits[0]);
    if (digits[0] === '-') {
      this.getc();
      return { kind: 'char', text: '-', line };
    }
    return undefined;
  }
}

/** parse.y's allowed_in_string: letters, digits and punctuation except ( ) { } < > ! = / # , */
function inString(c: string): boolean {
  return /[A-Za-z0-9]/.test(c) || (/[!-/:-@[-`{-~]/.test(c) && !'(){}<>!=/#,'.includes(c));
}

function describe(token: Token): string {
  if (token.kind === 'eof') return 'the end of the file';
  if (token.kind === 'newline') return 'the end of the line';
  return token.kind === 'string' ? JSON.stringify(token.text) : `'${token.text}'`;
}

/** Reads one statement at a time, so that a macro defined on one line is known on the next. */
class Parser {
  private token: Token;
  private readonly macros = new Map<string, string>();
  private readonly lexer: Lexer;

  constructor(
    text: string,
    private readonly file: string,
  ) {
    this.lexer = new Lexer(text, file, this.macros);
    this.token = this.lexer.next();
  }

  private advance(): Token {
    const token = this.token;
    this.token = this.lexer.next();
    return token;
  }

  fail(expected: string, token: Token = this.token): never {
    throw new ImportError(lineOf(this.file, token.line), expected, describe(token));
  }

  private is(kind: Token['kind'], text?: string): boolean {
    return this.token.kind === kind && (text === undefined || this.token.text === text);
  }

  private accept(keyword: string): Token | undefined {
    return this.is('keyword', keyword) ? this.advance() : undefined;
  }

  private string(expected: string): Token {
    if (!this.is('string')) this.fail(expected);
    return this.advance();
  }

  parseFile(): ParsedFile {
    const rules: IkeRule[] = [];
    const skipped: ParsedFile['skipped'] = [];
    while (!this.is('eof')) {
      if (this.is('newline')) {
        this.advance();
        continue;
      }
      const first = this.token;
      if (first.kind === 'keyword' && first.text === 'ike') rules.push(this.ikeRule());
      else if (first.kind === 'keyword' && first.text === 'include') {
        this.fail('no include (import the included file on its own)');
      } else if (
        first.kind === 'keyword' &&
        ['flow', 'tcpmd5', 'esp', 'ah', 'ipcomp', 'ipip'].includes(first.text)
      ) {
        const kind =
          first.text === 'flow' ? 'flow' : first.text === 'tcpmd5' ? 'tcpmd5 SA' : 'manually keyed SA';
        skipped.push({ line: first.line, kind });
        while (!this.is('newline') && !this.is('eof')) this.advance();
      } else if (first.kind === 'string') {
        this.macro();
      } else {
        this.fail('a rule (ike, flow, esp, ...) or a macro definition (name = "value")');
      }
      if (!this.is('newline') && !this.is('eof')) this.fail('the end of the line');
    }
    return { rules, skipped };
  }

  /** `name = "value"`: the value is one or more strings, joined by spaces. */
  private macro(): void {
    const name = this.advance();
    if (!this.is('char', '=')) this.fail(`'=' after the macro name ${JSON.stringify(name.text)}`);
    this.advance();
    const words: string[] = [];
    while (this.is('string')) words.push(this.advance().text);
    if (!words.length) this.fail('a macro value (a string)');
    if (/\s/.test(name.text)) this.fail('a macro name without whitespace', name);
    this.macros.set(name.text, words.join(' '));
  }

  private ikeRule(): IkeRule {
    const line = this.advance().line;
    const ikemode = (this.accept('passive') ?? this.accept('active') ?? this.accept('dynamic'))?.text as
      IkeRule['ikemode'] | undefined;
    if (this.is('keyword', 'interface')) {
      this.fail('a flow rule (ike ... from ... to ...): sec(4) interface rules are not supported');
    }
    if (this.is('keyword', 'ah')) this.fail('esp (AH is not supported)');
    if (this.is('keyword', 'ipcomp') || this.is('keyword', 'ipip'))
      this.fail('esp (isakmpd negotiates only esp and ah)');
    this.accept('esp');
    const tmode = (this.accept('tunnel') ?? this.accept('transport'))?.text as IkeRule['tmode'] | undefined;
    let proto: number | undefined;
    if (this.accept('proto')) {
      const token = this.advance();
      proto =
        token.kind === 'keyword' && (token.text === 'esp' || token.text === 'ah')
          ? protocolNumber(token.text)
          : token.kind === 'string' || token.kind === 'number'
            ? protocolNumber(token.text)
            : undefined;
      if (proto === undefined) this.fail('a protocol name (udp, tcp, icmp...) or number 0-255', token);
    }
    const hosts = this.hosts();
    if ((hosts.sport || hosts.dport) && proto !== 6 && proto !== 17) {
      this.fail(
        'proto tcp or proto udp before ports ("no protocol supplied with source/destination ports")',
        {
          kind: 'string',
          text: `port ${hosts.sport || hosts.dport}`,
          line,
        },
      );
    }
    const { peer, local } = this.peers();
    if (this.is('keyword', 'aggressive')) {
      this.fail('main (aggressive mode is not supported: it exposes a hash of the pre-shared key)');
    }
    const main = this.accept('main') ? this.phase(this.token.line) : undefined;
    const quick = this.accept('quick') ? this.phase(this.token.line) : undefined;
    let srcid: string | undefined;
    let dstid: string | undefined;
    if (this.accept('srcid')) srcid = this.string('an identity after srcid').text;
    if (this.accept('dstid')) dstid = this.string('an identity after dstid').text;
    let psk: string | undefined;
    if (this.is('keyword', 'rsa')) this.fail('psk "..." (RSA signature authentication is not supported)');
    if (this.accept('psk')) psk = this.string('the pre-shared key after psk').text;
    let tag: string | undefined;
    if (this.accept('tag')) tag = this.string('a tag name after tag').text;
    if (!this.is('newline') && !this.is('eof')) {
      this.fail(
        'the next part of an ike rule, in ipsec.conf order: mode, esp, tunnel|transport, proto, from/to, peer/local, main, quick, srcid, dstid, psk, tag',
      );
    }
    return {
      line,
      ikemode: ikemode ?? 'active',
      tmode: tmode ?? 'tunnel',
      ...(proto !== undefined && { proto }),
      ...hosts,
      ...(peer && { peer }),
      ...(local && { local }),
      ...(main && { main }),
      ...(quick && { quick }),
      ...(srcid !== undefined && { srcid }),
      ...(dstid !== undefined && { dstid }),
      ...(psk !== undefined && { psk }),
      ...(tag !== undefined && { tag }),
    };
  }

  /** `from SRC [port P] to DST [port P]`, or the same the other way round. */
  private hosts(): { src: Host[]; dst: Host[]; sport?: number; dport?: number } {
    const first = this.accept('from') ?? this.accept('to');
    if (!first) this.fail('from ... to ...');
    const a = this.hostList();
    const aPort = this.port();
    const second = this.accept(first.text === 'from' ? 'to' : 'from');
    if (!second) this.fail(first.text === 'from' ? "'to' and the destination" : "'from' and the source");
    const b = this.hostList();
    const bPort = this.port();
    const [src, sport, dst, dport] = first.text === 'from' ? [a, aPort, b, bPort] : [b, bPort, a, aPort];
    return { src, dst, ...(sport !== undefined && { sport }), ...(dport !== undefined && { dport }) };
  }

  private port(): number | undefined {
    if (!this.accept('port')) return undefined;
    const token = this.advance();
    const port = token.kind === 'string' || token.kind === 'number' ? portNumber(token.text) : undefined;
    if (port === undefined)
      this.fail('a port number 0-65535 or a service name (l2tp, isakmp, https...)', token);
    return port;
  }

  /** host, `any`, or `{ host, host ... }` (commas optional); `host (nat)` is flow NAT. */
  private hostList(): Host[] {
    if (this.accept('any')) return [{ any: true }];
    if (this.is('char', '{')) {
      this.advance();
      const hosts: Host[] = [];
      while (!this.is('char', '}')) {
        if (this.is('newline') || this.is('eof')) this.fail("'}' closing the address list");
        hosts.push(...this.hostList());
        if (this.is('char', ',')) this.advance();
      }
      this.advance();
      return hosts;
    }
    const host = this.hostSpec();
    if (this.is('char', '(')) this.fail('no flow NAT "(address)": isakmpd NAT-IDs are not supported');
    return [host];
  }

  private hostSpec(): Host {
    const token = this.token;
    if (token.kind !== 'string' && token.kind !== 'number') this.fail('an address, a CIDR subnet or any');
    this.advance();
    let text = token.text;
    if (this.is('char', '/')) {
      this.advance();
      if (!this.is('number')) this.fail('a prefix length after /');
      text += `/${this.advance().text}`;
    }
    return parseHost(text, this.file, token.line);
  }

  private peers(): { peer?: Host; local?: Host } {
    let peer: Host | undefined;
    let local: Host | undefined;
    for (let i = 0; i < 2; i++) {
      if (!peer && this.accept('peer')) peer = this.accept('any') ? { any: true } : this.single('peer');
      else if (!local && this.accept('local')) local = this.single('local');
    }
    return { ...(peer && { peer }), ...(local && { local }) };
  }

  private single(what: string): Host {
    const host = this.hostSpec();
    if (host.prefix !== undefined && host.prefix !== (host.family === 4 ? 32 : 128)) {
      this.fail(`a single address after ${what}`, {
        kind: 'string',
        text: `${host.address}/${host.prefix}`,
        line: this.token.line,
      });
    }
    return host;
  }

  private phase(line: number): PhaseMode {
    const transforms: Transforms = {};
    for (;;) {
      const keyword =
        this.accept('auth') ?? this.accept('enc') ?? this.accept('group') ?? this.accept('comp');
      if (!keyword) break;
      const key = keyword.text as keyof Transforms;
      const value = this.string(`a transform name after ${key}`);
      if (transforms[key]) this.fail(`${key} only once ("${key} already set")`, value);
      transforms[key] = { value: value.text, line: value.line };
    }
    let lifetime: PhaseMode['lifetime'];
    if (this.accept('lifetime')) {
      const token = this.advance();
      const seconds = token.kind === 'number' || token.kind === 'string' ? parseLife(token.text) : undefined;
      if (seconds === undefined) this.fail('a lifetime: seconds, or a number with m or h', token);
      lifetime = { seconds, line: token.line };
    }
    return { line, transforms, ...(lifetime && { lifetime }) };
  }
}

/** parse.y's parse_life: "3600", "30m" or "8h" (no other unit). */
function parseLife(text: string): number | undefined {
  const match = /^(\d+)([mhMH])?$/.exec(text);
  if (!match) return undefined;
  const unit = match[2]?.toLowerCase();
  return Number(match[1]) * (unit === 'h' ? 3600 : unit === 'm' ? 60 : 1);
}

/**
 * parse.y's host(): an IPv4 or IPv6 address with an optional prefix. Interface names, interface
 * groups and DNS names need the machine ipsecctl runs on, so they cannot be imported.
 */
function parseHost(text: string, file: string, line: number): Host {
  const [address, prefixText, extra] = text.split('/');
  const family = isIP(address ?? '');
  const prefix = prefixText === undefined ? undefined : Number(prefixText);
  if (
    !family ||
    extra !== undefined ||
    (prefixText !== undefined && (!/^\d+$/.test(prefixText) || prefix! > (family === 4 ? 32 : 128)))
  ) {
    throw new ImportError(
      lineOf(file, line),
      'an IPv4 or IPv6 address or CIDR subnet (host, interface and group names cannot be resolved here)',
      JSON.stringify(text),
    );
  }
  return { address: address!, family: family as 4 | 6, ...(prefix !== undefined && { prefix }) };
}

export function parseIpsecConf(text: string, file: string): ParsedFile {
  return new Parser(text, file).parseFile();
}
