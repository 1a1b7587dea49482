import t from 'tap';
import { Problems } from '../../src/config/errors.js';
import { parseJson } from '../../src/config/json.js';
import { Schema } from '../../src/config/schema.js';
import { closestName, editDistance } from '../../src/config/suggest.js';
import { validate } from '../../src/config/validate.js';

/** The schema interpreter on small schemas: one problem per wrong value, at the deepest path. */

const FILE = 'f.json';

function check(schema: object, text: string): string[] {
  const problems = new Problems(FILE);
  validate(new Schema(schema), parseJson(text), problems);
  return problems.list.map((error) => error.message.slice(`${FILE}: `.length));
}

t.test(
  'types, ranges, enums and patterns: one problem per value, in the words of its description',
  async (t) => {
    const schema = {
      type: 'object',
      properties: {
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        ratio: { type: 'number', minimum: 0.5, description: 'a ratio of at least 0.5' },
        mode: { enum: ['a', 'b'] },
        fixed: { const: 'x' },
        word: { type: 'string', pattern: '^[a-z]+$', minLength: 2, description: 'a word' },
        flag: { type: 'boolean' },
      },
      additionalProperties: false,
    };
    t.same(
      check(schema, '{"port": 80, "ratio": 0.5, "mode": "b", "fixed": "x", "word": "ok", "flag": true}'),
      [],
    );
    t.same(check(schema, '{"port": 0, "ratio": 0.1, "mode": "c", "fixed": "y", "word": "A", "flag": 1}'), [
      'port: expected a whole number from 1 to 65535, got 0',
      'ratio: expected a ratio of at least 0.5, got 0.1',
      'mode: expected "a" or "b", got "c"',
      'fixed: expected "x", got "y"',
      'word: expected a word, got "A"',
      'flag: expected true or false, got 1',
    ]);
    t.same(check(schema, '{"port": 80.5}'), ['port: expected a whole number from 1 to 65535, got 80.5']);
    t.same(check(schema, '{"ratio": 3}'), [], 'an integer is a number');
    t.same(check(schema, '[]'), [
      'expected an object with the keys port, ratio, mode, fixed, word, flag, got an empty list',
    ]);
  },
);

t.test('objects: unknown keys with "did you mean", required keys, named entries', async (t) => {
  const schema = {
    type: 'object',
    properties: {
      address: { type: 'string', description: 'an address' },
      port: { type: 'integer' },
      groups: {
        type: 'object',
        propertyNames: { pattern: '^[a-z]+$', description: 'a lower-case name' },
        additionalProperties: {
          type: 'array',
          items: { type: 'string' },
          minItems: 1,
          description: 'a list',
        },
      },
    },
    required: ['address'],
    additionalProperties: false,
  };
  t.same(check(schema, '{"adress": "x", "colour": 1}'), [
    'adress: unknown key; did you mean "address"?',
    'colour: unknown key; expected one of the keys address, port, groups',
    'address: expected an address, got nothing',
  ]);
  t.same(check(schema, '{"address": "x", "groups": {"ok": ["a"], "Bad": [], "x": [1]}}'), [
    'groups.Bad: expected a lower-case name, got the name "Bad"',
    'groups.Bad: expected a list, got an empty list',
    'groups.x[0]: expected a string, got 1',
  ]);
});

t.test('oneOf and anyOf: the alternative whose type fits speaks; otherwise the description', async (t) => {
  const schema = {
    type: 'object',
    properties: {
      names: {
        description: 'a name, or a list of them',
        anyOf: [
          { type: 'string', minLength: 1, description: 'a name' },
          { type: 'array', minItems: 1, items: { type: 'string', minLength: 1, description: 'a name' } },
        ],
      },
      dpd: {
        description: 'an object, or false',
        oneOf: [
          { const: false },
          { type: 'object', properties: { delay: { type: 'integer' } }, additionalProperties: false },
        ],
      },
      key: {
        type: 'object',
        description: 'exactly one of "file" or "env"',
        properties: { file: { type: 'string' }, env: { type: 'string' } },
        additionalProperties: false,
        oneOf: [{ required: ['file'] }, { required: ['env'] }],
      },
    },
    additionalProperties: false,
  };
  t.same(check(schema, '{"names": "a", "dpd": false, "key": {"env": "E"}}'), []);
  t.same(check(schema, '{"names": ["a"], "dpd": {"delay": 3}, "key": {"file": "f"}}'), []);
  t.same(check(schema, '{"names": ["a", ""], "dpd": {"delai": 3}}'), [
    'names[1]: expected a name, got ""',
    'dpd.delai: unknown key; did you mean "delay"?',
  ]);
  t.same(check(schema, '{"names": [], "dpd": true}'), [
    'names: expected a name, or a list of them, got an empty list',
    'dpd: expected an object, or false, got true',
  ]);
  t.same(check(schema, '{"names": 5, "dpd": "no"}'), [
    'names: expected a name, or a list of them, got 5',
    'dpd: expected an object, or false, got "no"',
  ]);
  t.same(check(schema, '{"key": {"file": "f", "env": "E"}}'), [
    'key: expected exactly one of "file" or "env", got an object with the keys "file" and "env"',
  ]);
  t.same(check(schema, '{"key": {}}'), ['key: expected exactly one of "file" or "env", got an empty object']);
});

t.test('$ref to $defs, with a description beside the reference', async (t) => {
  const schema = {
    type: 'object',
    properties: {
      a: { $ref: '#/$defs/port' },
      b: { $ref: '#/$defs/port', description: 'the other port' },
    },
    additionalProperties: false,
    $defs: { port: { type: 'integer', minimum: 1, maximum: 9 } },
  };
  t.same(check(schema, '{"a": 0, "b": 10}'), [
    'a: expected a whole number from 1 to 9, got 0',
    'b: expected the other port, got 10',
  ]);
});

t.test('values under a psk key are described by type and length only', async (t) => {
  const schema = {
    type: 'object',
    properties: { psk: { type: 'string', minLength: 20, description: 'a long key' } },
    additionalProperties: false,
  };
  t.same(check(schema, '{"psk": "hunter2"}'), ['psk: expected a long key, got a string of 7 characters']);
});

t.test(
  '"did you mean": case, separators, typos and swapped letters; nothing when nothing is close',
  async (t) => {
    const keys = ['address', 'port', 'natPort', 'ikeVersion', 'encryptionAlgorithm', 'psk', 'endpointGroup'];
    t.equal(closestName('adress', keys), 'address');
    t.equal(closestName('Address', keys), 'address');
    t.equal(closestName('ike_version', keys), 'ikeVersion');
    t.equal(closestName('encryption-algorithm', keys), 'encryptionAlgorithm');
    t.equal(closestName('pks', keys), 'psk');
    t.equal(closestName('nat_port', keys), 'natPort');
    t.equal(closestName('endpointGroups', keys), 'endpointGroup');
    t.equal(closestName('colour', keys), undefined);
    t.equal(closestName('ip', keys), undefined, 'short names need a closer match');
    t.equal(closestName('pfs', keys), undefined);
    t.equal(editDistance('pks', 'psk'), 1);
    t.equal(editDistance('kitten', 'sitting'), 3);
    t.equal(editDistance('', 'abc'), 3);
  },
);
