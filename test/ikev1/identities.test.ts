import t from 'tap';
import { connection, EnginePair } from '../helpers/engine-pair.js';

/**
 * Main mode picks the key by address, before any identity (RFC 2409 5.4): a gateway with one
 * connection per client identity learns which one a negotiation is for from message 5.
 */

const GW = '192.0.2.2';

t.test('a gateway with a connection per client identity puts each client on its own', async (t) => {
  const pair = new EnginePair();
  const ids = ['alice@example.net', 'bob@example.net', 'carol@example.net'];
  const gateway = pair.add(
    'gw',
    GW,
    ids.map((id, i) =>
      connection({
        name: id.split('@')[0]!,
        localAddress: GW,
        peerAddress: 'any',
        peerId: { type: 'user-fqdn', value: id },
        localSubnets: ['203.0.113.0/24'],
        peerSubnets: [`198.51.100.${i * 16}/28`],
      }),
    ),
  );
  // Bob and Carol connect (Alice stays away), from addresses of their own.
  for (const [i, id] of ids.entries()) {
    if (i === 0) continue;
    const address = `192.0.2.${10 + i}`;
    const client = pair.add(address, address, [
      connection({
        localAddress: address,
        peerAddress: GW,
        start: 'initiate',
        localId: { type: 'user-fqdn', value: id },
        localSubnets: [`198.51.100.${i * 16}/28`],
        peerSubnets: ['203.0.113.0/24'],
      }),
    ]);
    pair.initiate(client);
    t.equal(client.installed.size, 1, `${id}: up`);
  }
  const status = Object.fromEntries(gateway.engine.status().map((c) => [c.name, c]));
  t.equal(status['alice']!.status, 'Down', 'alice: no SA');
  for (const name of ['bob', 'carol']) {
    t.equal(status[name]!.status, 'Active', `${name}: Active`);
    t.equal(status[name]!.ikeSas.length, 1, `${name}: its own ISAKMP SA`);
    t.equal(status[name]!.ikeSas[0]!.remoteId, `${name}@example.net`);
  }
  t.same(
    gateway.engine.status('bob').map((c) => c.name),
    ['bob'],
    'status of one connection by name',
  );
});

t.test('an identity no connection is configured for is refused', async (t) => {
  const pair = new EnginePair();
  const gateway = pair.add('gw', GW, [
    connection({
      name: 'alice',
      localAddress: GW,
      peerAddress: 'any',
      peerId: { type: 'user-fqdn', value: 'alice@example.net' },
    }),
  ]);
  const client = pair.add('m', '192.0.2.30', [
    connection({
      localAddress: '192.0.2.30',
      peerAddress: GW,
      start: 'initiate',
      localId: { type: 'user-fqdn', value: 'mallory@example.net' },
    }),
  ]);
  pair.initiate(client);
  t.equal(client.installed.size, 0);
  t.match(gateway.engine.status()[0], {
    status: 'Error',
    error: /peer identifies as 'mallory@example\.net', expected 'alice@example\.net'/,
  });
});
