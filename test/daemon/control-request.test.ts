import t from 'tap';
import { ControlRequestError, parseControlRequest } from '../../src/daemon/control-request.js';

t.test('a request line is a JSON object with a string command', async (t) => {
  t.same(parseControlRequest('{"command":"status","name":"office"}'), { command: 'status', name: 'office' });
  for (const line of [
    '',
    'status',
    '{"command":',
    '[]',
    'null',
    '"status"',
    '{}',
    '{"command":1}',
    '[{"command":"x"}]',
  ]) {
    t.throws(() => parseControlRequest(line), ControlRequestError, JSON.stringify(line));
  }
  t.throws(() => parseControlRequest('{}'), { message: 'a request is {"command": "..."}' });
});
