import { EventEmitter } from 'node:events';
import t from 'tap';
import type { ConnectionState, ConnectionStatus } from '../../src/core/status.js';
import type { DaemonEvent } from '../../src/daemon/events.js';
import { awaitOutcome, type Goal } from '../../src/daemon/outcome.js';

/** The outcome waiter on its own: a fake daemon whose events and status the test drives. */

class FakeDaemon extends EventEmitter<{ event: [DaemonEvent] }> {
  state: ConnectionState = 'Down';
  error: { error: string; cause: ConnectionStatus['cause'] } | undefined;
  status(name: string): ConnectionStatus[] {
    return [{ name, peer: '192.0.2.2', status: this.state, ...this.error, ikeSas: [], childSas: [] }];
  }
  move(status: ConnectionState, extra: Partial<Extract<DaemonEvent, { type: 'connection' }>> = {}): void {
    const previous = this.state;
    this.state = status;
    this.emit('event', { type: 'connection', connection: 'office', status, previous, time: 0, ...extra });
  }
}

const wait = (daemon: FakeDaemon, goal: Goal, command = () => {}, options = {}) =>
  awaitOutcome(daemon, 'office', goal, command, options);

t.test('up: resolves when the connection becomes Active', async (t) => {
  const daemon = new FakeDaemon();
  const outcome = wait(daemon, 'up', () => daemon.move('Pending'));
  daemon.move('Active', { connection: 'other' } as never); // another connection's event: ignored
  daemon.state = 'Pending';
  daemon.move('Active');
  t.same(await outcome, { connection: 'office', state: 'up' });
  t.equal(daemon.listenerCount('event'), 0, 'it stops listening');
});

t.test('failed: the typed cause and reason of a failed negotiation or of an Error status', async (t) => {
  const daemon = new FakeDaemon();
  const refused = wait(daemon, 'up', () => daemon.move('Pending'));
  daemon.emit('event', {
    type: 'negotiation-failed',
    kind: 'child',
    connection: 'office',
    cause: 'no-proposal',
    reason: 'the peer refused quick mode 1: NO_PROPOSAL_CHOSEN',
    time: 0,
  });
  t.same(await refused, {
    connection: 'office',
    state: 'failed',
    failure: { cause: 'no-proposal', reason: 'the peer refused quick mode 1: NO_PROPOSAL_CHOSEN' },
  });
  const error = wait(daemon, 'up', () => daemon.move('Pending'));
  daemon.move('Error', { error: 'no answer from 192.0.2.2:500', cause: 'timeout' });
  t.match(await error, { state: 'failed', failure: { cause: 'timeout', reason: /no answer/ } });
});

t.test('settled by the command itself: already Active, or refused by our own configuration', async (t) => {
  const daemon = new FakeDaemon();
  daemon.state = 'Active';
  t.match(await wait(daemon, 'up'), { state: 'up' });
  daemon.state = 'Error';
  daemon.error = { error: "'office' needs local.address to initiate", cause: 'config' };
  t.match(await wait(daemon, 'up'), {
    state: 'failed',
    failure: { cause: 'config', reason: /local\.address/ },
  });
  t.match(await wait(daemon, 'down'), { state: 'down' }, 'an Error connection has nothing up: down');
});

t.test('down: resolves when the connection has nothing up any more', async (t) => {
  const daemon = new FakeDaemon();
  daemon.state = 'Active';
  const outcome = wait(daemon, 'down');
  daemon.move('Pending'); // not yet
  daemon.move('Down');
  t.same(await outcome, { connection: 'office', state: 'down' });
});

t.test('timeout: a typed failure when nothing settles it in time', async (t) => {
  const daemon = new FakeDaemon();
  const outcome = await wait(daemon, 'up', () => daemon.move('Pending'), { timeout: 0.05 });
  t.same(outcome, {
    connection: 'office',
    state: 'timeout',
    failure: { cause: 'timeout', reason: 'no outcome within 0.05 s' },
  });
  t.equal(daemon.listenerCount('event'), 0);
});

t.test('an AbortSignal stops the wait; a command that throws rejects', async (t) => {
  const daemon = new FakeDaemon();
  const controller = new AbortController();
  const outcome = wait(daemon, 'up', () => daemon.move('Pending'), { signal: controller.signal });
  controller.abort(new Error('changed my mind'));
  await t.rejects(outcome, /changed my mind/);
  t.equal(daemon.listenerCount('event'), 0, 'no listener left behind');
  let ran = false;
  await t.rejects(
    wait(daemon, 'up', () => (ran = true), { signal: AbortSignal.abort(new Error('too late')) }),
    /too late/,
  );
  t.notOk(ran, 'an aborted signal: the command is not given');
  await t.rejects(
    wait(daemon, 'up', () => {
      throw new Error("no connection named 'office'");
    }),
    /no connection named/,
  );
  t.equal(daemon.listenerCount('event'), 0);
});

t.test('the node stopping settles what still waits as down', async (t) => {
  const daemon = new FakeDaemon();
  const stopped = new AbortController();
  const outcome = awaitOutcome(daemon, 'office', 'up', () => daemon.move('Pending'), {
    stopped: stopped.signal,
  });
  stopped.abort();
  t.same(await outcome, { connection: 'office', state: 'down' });
});

t.test('settled by an event the command caused: no timer is left behind', async (t) => {
  const daemon = new FakeDaemon();
  const outcome = await wait(daemon, 'up', () => daemon.move('Active'), { timeout: 3600 });
  t.same(outcome, { connection: 'office', state: 'up' });
  // A timer left armed would keep this process alive for an hour: tap would time the test out.
  t.equal(daemon.listenerCount('event'), 0);
});
