import t from 'tap';
import { parseConfig } from '../../../src/config/index.js';
import { importIsakmpd, type JsonObject } from '../../../src/config/import/index.js';
import { EnginePair } from '../../helpers/engine-pair.js';
import { l2tpClient } from '../../helpers/l2tp-client.js';
import { fixture } from './fixtures/helpers.js';
import {
  MACOS_ESP_PROPOSALS,
  MACOS_IKE_PROPOSALS,
} from '../../../conformance/kernel-lab/ikev1-macos-offer.js';

/**
 * The acceptance case, in process: the imported isakmpd line as the responder, and a
 * client sending the macOS/iOS L2TP offer of the kernel-lab scenario
 * (conformance/kernel-lab/ikev1-macos-offer.ts): one proposal of 14 main mode transforms, then
 * quick mode for transport mode, udp/1701 both ways, no PFS.
 *
 * isakmpd (-K) accepts that offer whatever `quick` says: it takes the initiator's first ESP
 * transform it supports, the encapsulation mode and PFS group as offered
 * (sbin/isakmpd/ike_quick_mode.c responder_recv_HASH_SA_NONCE, message.c message_negotiate_sa,
 * ipsec.c ipsec_is_attribute_incompatible), and the IDs because the responder's one matches the
 * rule's local ID (connection.c connection_passive_lookup_by_ids). The import says the same in
 * peers.json terms (every ESP suite after the rule's own, acceptModes, acceptPfs): the first test
 * shows the offer accepted, the second that each of the three is needed.
 */

const GATEWAY = '192.0.2.1';
const CLIENT = '198.51.100.20';

function negotiate(config: JsonObject) {
  const gatewayConfig = parseConfig(JSON.stringify(config), 'imported.json', {});
  const pair = new EnginePair();
  const gateway = pair.add('gateway', GATEWAY, [...gatewayConfig.connections]);
  const client = pair.add('macos', CLIENT, [
    l2tpClient({
      client: CLIENT,
      gateway: GATEWAY,
      ike: MACOS_IKE_PROPOSALS,
      esp: MACOS_ESP_PROPOSALS,
      psk: 'my-tunnel-is-private',
    }),
  ]);
  pair.initiate(client, 'l2tp');
  return { gateway, client };
}

const imported = () => {
  const line = fixture('isakmpd-l2tp.conf');
  return importIsakmpd(line.text, line.file).config;
};

t.test('the imported issue line accepts the macOS offer', async (t) => {
  const { gateway, client } = negotiate(imported());
  const [status] = gateway.engine.status();
  t.equal(status?.status, 'Active', 'the gateway is Active');
  t.match(
    status?.childSas[0],
    { mode: 'transport', localTs: ['192.0.2.1/32[udp/1701]'] },
    'a transport child',
  );
  t.equal(client.installed.size, 1, 'the client installed its child SA');
});

t.test('each of the three isakmpd leniencies is needed: mode, ESP suites, PFS', async (t) => {
  const name = 'from-192.0.2.1-to-any';
  const without = (change: (policy: JsonObject) => JsonObject) => {
    const config = imported();
    const policies = config.ipsecPolicies as Record<string, JsonObject>;
    policies[name] = change({ ...policies[name]! });
    return config;
  };
  const strict: [string, (policy: JsonObject) => JsonObject][] = [
    ['acceptModes', ({ acceptModes: _, ...rest }) => rest],
    [
      'the extra ESP suites',
      (policy) => ({ ...policy, proposals: (policy.proposals as string[]).slice(0, 1) }),
    ],
    ['acceptPfs', ({ acceptPfs: _, ...rest }) => rest],
  ];
  for (const [what, change] of strict) {
    const { gateway, client } = negotiate(without(change));
    const [status] = gateway.engine.status();
    t.equal(
      status?.ikeSas[0]?.algorithms,
      'aes128-sha1-modp1024',
      `without ${what}: main mode still succeeds`,
    );
    t.equal(status?.childSas.length, 0, `without ${what}: quick mode refused`);
    t.equal(client.installed.size, 0);
  }
  const { gateway } = negotiate(imported());
  t.match(
    gateway.engine.status()[0]?.childSas[0],
    { algorithms: 'aes256-sha1', remoteTs: [`${CLIENT}/32[udp/1701]`] },
    "with all three: the client's first ESP suite the import lists",
  );
});
