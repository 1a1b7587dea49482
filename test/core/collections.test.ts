import t from 'tap';
import {
  appended,
  CountBuckets,
  EMPTY,
  GroupIndex,
  isMember,
  join,
  leave,
  type Members,
  membersOf,
  without,
} from '../../src/core/collections.js';

t.test('short lists: appended and without make new arrays of exactly their length', async (t) => {
  const [a, b, c] = [{ n: 1 }, { n: 2 }, { n: 3 }];
  const one = appended(EMPTY, a);
  t.same(one, [a]);
  t.same(EMPTY, [], 'the shared empty list is never changed');
  const three = appended(appended(one, b), c);
  t.same(three, [a, b, c]);
  t.same(one, [a], 'the list appended to is unchanged');
  t.same(without(three, b), [a, c]);
  t.same(three, [a, b, c], 'the list taken from is unchanged');
  t.equal(without(three, { n: 2 }), three, 'an item it does not hold: the same list');
  t.equal(without(one, a), EMPTY, 'the last item gone: the shared empty list');
  t.ok(Object.isFrozen(EMPTY));
});

t.test('Members: one member held as itself, a Set from the second, back to itself at one', async (t) => {
  const [a, b, c] = [{ n: 1 }, { n: 2 }, { n: 3 }];
  let members: Members<{ n: number }> = undefined;
  members = join(members, a);
  t.equal(members, a, 'one member: no Set');
  t.equal(join(members, a), a, 'joining twice changes nothing');
  members = join(members, b);
  t.ok(members instanceof Set, 'two members: a Set');
  members = join(members, c);
  t.same(membersOf(members), [a, b, c]);
  t.ok(isMember(members, b));
  members = leave(members, b);
  t.notOk(isMember(members, b));
  members = leave(members, a);
  t.equal(members, c, 'back to one: the member itself');
  t.equal(leave(members, a), c, 'leaving when not a member changes nothing');
  t.equal(leave(members, c), undefined, 'none left');
  t.same(membersOf(undefined), []);
});

t.test('GroupIndex: keys go with their last member', async (t) => {
  const index = new GroupIndex<string, { n: number }>();
  const [a, b] = [{ n: 1 }, { n: 2 }];
  t.same([...index.get('k')], [], 'an unknown key has no members');
  index.add('k', a);
  t.same([...index.get('k')], [a]);
  index.add('k', b);
  const seen = [...index.get('k')];
  t.same(seen, [a, b]);
  for (const member of seen) index.delete('k', member);
  t.same([...index.get('k')], [], 'gone with the last member');
  index.add('k', a);
  t.same([...index.get('k')], [a], 'the key works again after it was emptied');
  index.delete('other', a);
  t.same([...index.get('k')], [a], 'deleting under another key changes nothing');
});

t.test('CountBuckets: the key holding the most, as counts go up and down by one', async (t) => {
  const counts = new CountBuckets<string>();
  t.equal(counts.busiest(), undefined, 'nothing held');
  counts.moved('a', 0, 1);
  counts.moved('b', 0, 1);
  counts.moved('b', 1, 2);
  t.same(counts.busiest(), { key: 'b', count: 2 });
  counts.moved('a', 1, 2);
  t.same(counts.busiest(), { key: 'b', count: 2 }, 'a tie: the one that got there first');
  counts.moved('b', 2, 1);
  t.same(counts.busiest(), { key: 'a', count: 2 });
  counts.moved('a', 2, 1);
  t.same(counts.busiest(), { key: 'b', count: 1 }, 'the most falls by one');
  counts.moved('b', 1, 0);
  counts.moved('a', 1, 0);
  t.equal(counts.busiest(), undefined, 'all gone');
});
