import t from 'tap';
import { ConfigErrors, parseConfig } from '../../src/config/index.js';
import { type Json, type JsonPath, JsonSyntaxError, parseJson } from '../../src/config/json.js';
import { FILE } from './fixtures/helpers.js';

/** Maps to plain objects, for comparison with what JSON.parse gives. */
function plain(value: Json): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([key, item]) => [key, plain(item)]));
  if (Array.isArray(value)) return value.map(plain);
  return value;
}

t.test('parses what JSON.parse parses', async (t) => {
  for (const text of [
    '{"a": [1, -2.5, 3e2, 0, -0.125E-2], "b": {"c": null, "d": true, "e": false}, "f": ""}',
    '"\\u00e9\\ud83d\\ude00 \\"quoted\\" \\\\ \\/ \\b\\f\\n\\r\\t"',
    '[]',
    '{}',
    ' \t\r\n 42 \n',
    '[[[{"deep": [{}]}]]]',
  ]) {
    t.same(plain(parseJson(text)), JSON.parse(text), text);
  }
  t.same(plain(parseJson('\uFEFF{"bom": 1}')), { bom: 1 }, 'a byte order mark is skipped');
});

t.test('objects keep file order and take any key', async (t) => {
  const value = parseJson('{"b": 1, "2": 2, "a": 3, "__proto__": 4, "constructor": 5}');
  t.ok(value instanceof Map);
  t.same([...(value as Map<string, Json>).keys()], ['b', '2', 'a', '__proto__', 'constructor']);
  t.equal(({} as Record<string, unknown>).polluted, undefined);
});

t.test('duplicate keys are reported with their path; the first value stays', async (t) => {
  const duplicates: JsonPath[] = [];
  const value = parseJson('{"a": {"x": 1, "x": 2}, "list": [{"y": 1, "y": 1}], "a": 3}', (path) =>
    duplicates.push(path),
  );
  t.same(duplicates, [['a', 'x'], ['list', 0, 'y'], ['a']]);
  t.same(plain(value), { a: { x: 1 }, list: [{ y: 1 }] });
});

t.test('syntax errors give line, column, what was expected and what came instead', async (t) => {
  const cases: [string, number, number, string, string][] = [
    ['', 1, 1, 'a value', 'the end of the file'],
    ['{\n  "a": 1,\n}', 3, 1, 'a "quoted" key', "'}'"],
    ['{\n  "a": 1\n  "b": 2\n}', 3, 3, `',' or '}' after the value of "a"`, `'"'`],
    ['[1, 2,]', 1, 7, 'a value', "']'"],
    ['[1 2]', 1, 4, "',' or ']' after item 0 of the list", 'a digit'],
    ["{'a': 1}", 1, 2, 'a "quoted" key', 'a single quote (JSON strings use "double quotes")'],
    ['{a: 1}', 1, 2, 'a "quoted" key', 'a letter'],
    ['{"a" 1}', 1, 6, `':' after the key "a"`, 'a digit'],
    ['{"a": tru}', 1, 7, 'a value', 'a letter'],
    ['{"a": "b', 1, 9, "a closing '\"'", 'the end of the file'],
    ['{"a": "b\nc"}', 1, 9, 'a string without raw control characters', 'a control character'],
    ['{"a": "\\x"}', 1, 9, 'an escape such as', 'a letter'],
    ['{"a": "\\u12g4"}', 1, 10, 'four hex digits after \\u', 'a digit'],
    ['{"a": 01}', 1, 8, `',' or '}' after the value of "a"`, 'a digit'],
    ['{"a": 1} {}', 1, 10, 'the end of the file', "'{'"],
    ['\t\t{\r\n\t"a": +1}', 2, 7, 'a value', 'another character'],
  ];
  for (const [text, line, column, expected, got] of cases) {
    const error = t.throws(() => parseJson(text)) as JsonSyntaxError;
    t.ok(error instanceof JsonSyntaxError, JSON.stringify(text));
    t.same([error.line, error.column], [line, column], `${JSON.stringify(text)} at ${line}:${column}`);
    t.match(error.expected, expected);
    t.equal(error.got, got);
  }
});

t.test('a syntax error in peers.json names the file, line and column', async (t) => {
  const text = '{\n  "listen": {\n    "addresses": ["192.0.2.1",]\n  }\n}\n';
  const error = t.throws(() => parseConfig(text, FILE)) as ConfigErrors;
  t.ok(error instanceof ConfigErrors);
  t.equal(error.errors.length, 1);
  const [first] = error.errors;
  t.same([first?.line, first?.column, first?.path], [3, 31, '']);
  t.equal(
    error.message,
    `${FILE}:3:31: invalid JSON: expected a value (an object, a list, a "string", a number, true, false or null), got ']'`,
  );
});
