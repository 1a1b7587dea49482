import t from 'tap';
import { parseConfig } from '../../../src/config/index.js';
import { importIsakmpd, type JsonObject } from '../../../src/config/import/index.js';
import { parseTrafficSelector } from '../../../src/core/traffic-selector.js';
import { connection, EnginePair, ipv4 } from '../../helpers/engine-pair.js';
import { fixture } from './fixtures/helpers.js';

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
 * rule's local ID (connection.c connection_passive_lookup_by_ids). ike-node's responder accepts
 * only the ipsecPolicy's mode, suites and PFS group: the "todo" test below says so until the
 * engine learns isakmpd's leniency; the next one shows that those three are all that is missing.
 */

const GATEWAY = '192.0.2.1';
const CLIENT = '198.51.100.20';

/** As MACOS_IKE_PROPOSALS and MACOS_ESP_PROPOSALS in conformance/kernel-lab/ikev1-macos-offer.ts. */
const MACOS_IKE = [
  'aes256-sha256-modp2048',
  'aes128-sha256-modp2048',
  'aes256-sha1-modp2048',
  'aes128-sha1-modp2048',
  '3des-sha1-modp2048',
  'aes256-sha256-modp1536',
  'aes256-sha1-modp1536',
  'aes128-sha1-modp1536',
  '3des-sha1-modp1536',
  'aes256-sha256-modp1024',
  'aes256-sha1-modp1024',
  'aes128-sha1-modp1024',
  '3des-sha1-modp1024',
  '3des-md5-modp1024',
];
const MACOS_ESP = ['aes256-sha1', 'aes128-sha1', '3des-sha1', 'aes256-md5', 'aes128-md5', '3des-md5'];

function negotiate(config: JsonObject) {
  const gatewayConfig = parseConfig(JSON.stringify(config), 'imported.json', {});
  const pair = new EnginePair();
  const gateway = pair.add('gateway', GATEWAY, [...gatewayConfig.connections]);
  const client = pair.add('macos', CLIENT, [
    connection({
      name: 'l2tp',
      ike: MACOS_IKE,
      esp: MACOS_ESP,
      mode: 'transport',
      localAddress: CLIENT,
      peerAddress: GATEWAY,
      localId: ipv4(CLIENT),
      peerId: ipv4(GATEWAY),
      localSubnets: [parseTrafficSelector(CLIENT, 17, 1701)],
      peerSubnets: [parseTrafficSelector(GATEWAY, 17, 1701)],
      psk: 'my-tunnel-is-private',
      start: 'initiate',
    }),
  ]);
  pair.initiate(client, 'l2tp');
  return { gateway, client };
}

const imported = () => {
  const line = fixture('isakmpd-l2tp.conf');
  return importIsakmpd(line.text, line.file).config;
};

/** Until the engine changes: these assertions run and fail, reported as TODO. */
const TODO = {
  todo: 'ike-node responder: accept the offered encapsulation mode, ESP suite and (absent) PFS, as isakmpd -K does',
};

t.test('the imported issue line accepts the macOS offer', async (t) => {
  const { gateway, client } = negotiate(imported());
  const [status] = gateway.engine.status();
  t.equal(status?.status, 'Active', 'the gateway is Active', TODO);
  t.match(
    status?.childSas[0],
    { mode: 'transport', localTs: ['192.0.2.1/32[udp/1701]'] },
    'a transport child',
    TODO,
  );
  t.equal(client.installed.size, 1, 'the client installed its child SA', TODO);
});

t.test('main mode already succeeds; mode, ESP suite and PFS are what quick mode lacks', async (t) => {
  const { gateway, client } = negotiate(imported());
  const [status] = gateway.engine.status();
  t.equal(status?.ikeSas[0]?.state, 'ESTABLISHED', 'main mode: the ISAKMP SA is established');
  t.equal(
    status?.ikeSas[0]?.algorithms,
    'aes128-sha1-modp1024',
    "aes128-sha1-modp1024, the gateway's first choice",
  );
  t.equal(status?.childSas.length, 0, 'quick mode: refused');
  t.equal(client.installed.size, 0, 'the client has no child SA');

  // The same import with the quick mode settings the offer asks for: each one is needed, and
  // together they are enough.
  const offered: JsonObject = { mode: 'transport', proposals: ['aes128-aes192-aes256-sha1'], pfs: 'none' };
  const withSettings = (settings: JsonObject) => {
    const config = imported();
    const policies = config.ipsecPolicies as Record<string, JsonObject>;
    const name = 'from-192.0.2.1-to-any';
    policies[name] = { ...policies[name], ...settings };
    return config;
  };
  for (const missing of Object.keys(offered)) {
    const settings = Object.fromEntries(Object.entries(offered).filter(([key]) => key !== missing));
    const { gateway } = negotiate(withSettings(settings));
    t.equal(gateway.engine.status()[0]?.childSas.length, 0, `without the offered ${missing}: still refused`);
  }
  const accepted = negotiate(withSettings(offered));
  const [active] = accepted.gateway.engine.status();
  t.equal(active?.status, 'Active', 'transport, sha1 and no PFS: Active');
  t.match(
    active?.childSas[0],
    {
      mode: 'transport',
      algorithms: 'aes128-sha1',
      localTs: ['192.0.2.1/32[udp/1701]'],
      remoteTs: [`${CLIENT}/32[udp/1701]`],
    },
    'the selectors the rule writes (192.0.2.1, 0.0.0.0/0) cover the udp/1701 ones offered',
  );
  t.equal(accepted.client.installed.size, 1, 'the client installed its child SA');
});
