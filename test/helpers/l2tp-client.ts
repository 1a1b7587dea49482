import type { Connection } from '../../src/core/connection.js';
import { parseTrafficSelector } from '../../src/core/traffic-selector.js';
import { connection, ipv4 } from './engine-pair.js';

/**
 * An L2TP/IPsec client as the ones built into macOS, iOS and Windows: IKEv1 main mode with a
 * pre-shared key, then quick mode for transport mode, udp/1701 on both ends, identities by
 * address; the offers (and PFS, which these clients do not ask for) are the caller's.
 */
export function l2tpClient(spec: {
  client: string;
  gateway: string;
  ike: readonly string[];
  esp: readonly string[];
  pfs?: string | undefined;
  psk: string;
}): Connection {
  return connection({
    name: 'l2tp',
    ike: [...spec.ike],
    esp: [...spec.esp],
    ...(spec.pfs && { pfs: spec.pfs }),
    mode: 'transport',
    localAddress: spec.client,
    peerAddress: spec.gateway,
    localId: ipv4(spec.client),
    peerId: ipv4(spec.gateway),
    localSubnets: [parseTrafficSelector(spec.client, 17, 1701)],
    peerSubnets: [parseTrafficSelector(spec.gateway, 17, 1701)],
    psk: spec.psk,
    start: 'initiate',
  });
}
