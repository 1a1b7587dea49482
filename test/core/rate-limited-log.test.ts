import t from 'tap';
import { heldBack, RateLimitedLog } from '../../src/core/rate-limited-log.js';

t.test('one line per cause per interval, with the count held back', async (t) => {
  let now = 0;
  const lines: string[] = [];
  const log = new RateLimitedLog(1000, () => now, 2);
  const say = (cause: string) => log.log(cause, (n) => lines.push(`${cause}${heldBack(n)}`));
  say('replay');
  say('replay');
  say('replay');
  say('icv');
  t.same(lines, ['replay', 'icv'], 'the first of each cause at once, repeats held back');
  now = 1000;
  say('replay');
  t.same(
    lines.at(-1),
    'replay (2 more since the last report)',
    'then one line saying how many were held back',
  );
  say('replay');
  t.equal(lines.length, 3, 'and the interval starts again');
  say('unknown-spi'); // a third cause: the least recently logged (icv) is forgotten
  now = 1500;
  say('icv');
  t.same(lines.at(-1), 'icv', 'a forgotten cause logs again at once');
  t.equal(heldBack(0), '', 'nothing held back, no suffix');
});
