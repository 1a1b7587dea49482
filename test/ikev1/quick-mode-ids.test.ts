import t from 'tap';
import { parseTrafficSelector } from '../../src/core/traffic-selector.js';
import { idFromTrafficSelector } from '../../src/ikev1/identification.js';
import { responderIdsAcceptable } from '../../src/ikev1/quick-mode.js';

/**
 * The client IDs of quick mode message 2. strongSwan, answering an initiator behind a NAT in
 * UDP-encapsulated transport mode, replaces the host addresses of IDci and IDcr with the ones it
 * sees (the NAT's for ours): found in the kernel lab (conformance/kernel-esp.test.ts, scenario
 * nat), where ike-node refused that answer with INVALID_ID_INFORMATION.
 */

const id = (text: string, protocol = 0, port = 0) =>
  idFromTrafficSelector(parseTrafficSelector(text, protocol, port));

const inside = id('192.0.2.130', 17, 1701);
const gateway = id('192.0.2.2', 17, 1701);
const sent = { ci: inside, cr: gateway };
const natAddress = id('192.0.2.1', 17, 1701);

t.test('the same IDs, or none, are always acceptable', async (t) => {
  t.ok(responderIdsAcceptable(sent, [inside, gateway], false), 'echoed unchanged');
  t.ok(responderIdsAcceptable(sent, [inside, gateway], true), 'echoed unchanged, NAT transport');
  t.ok(responderIdsAcceptable(sent, [], false), 'no client IDs in the answer');
});

t.test('UDP-encapsulated transport mode: the host address may be the one the responder sees', async (t) => {
  t.ok(responderIdsAcceptable(sent, [natAddress, gateway], true), "strongSwan's answer: the NAT's address");
  t.notOk(responderIdsAcceptable(sent, [natAddress, gateway], false), 'not without NAT-T transport mode');
  t.notOk(
    responderIdsAcceptable(sent, [id('192.0.2.1', 17, 1702), gateway], true),
    'another port is still refused',
  );
  t.notOk(
    responderIdsAcceptable(sent, [id('192.0.2.1', 6, 1701), gateway], true),
    'another protocol is still refused',
  );
  t.notOk(
    responderIdsAcceptable(sent, [id('192.0.2.0/24', 17, 1701), gateway], true),
    'a subnet instead of a host is still refused',
  );
});

t.test('tunnel mode subnets must come back unchanged', async (t) => {
  const tunnel = { ci: id('198.51.100.0/24'), cr: id('203.0.113.0/24') };
  t.ok(responderIdsAcceptable(tunnel, [tunnel.ci, tunnel.cr], true));
  t.notOk(responderIdsAcceptable(tunnel, [id('198.51.100.0/25'), tunnel.cr], true), 'a narrowed subnet');
});
