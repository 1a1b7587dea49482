import t from 'tap';
import { UdpEndpoints } from '../../src/net/udp.js';

/** Binding problems an operator meets first are said plainly. */

const options = (address: string) => ({
  addresses: [address],
  port: 21700,
  natPort: 21701,
  onReceive: () => {},
  onError: () => {},
});

t.test('a port in use and an address we do not have', async (t) => {
  const first = await UdpEndpoints.open(options('127.0.0.1'));
  t.teardown(() => first.close());
  await t.rejects(
    UdpEndpoints.open(options('127.0.0.1')),
    /cannot listen on 127\.0\.0\.1 port 21700: the port is in use \(is another IKE daemon, such as strongSwan's charon, running\?\)/,
  );
  await t.rejects(
    UdpEndpoints.open(options('192.0.2.77')),
    /192\.0\.2\.77 port 21700: no interface has this address/,
  );
});
