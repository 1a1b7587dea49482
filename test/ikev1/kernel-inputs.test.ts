import t from 'tap';
import { onlyChild, sitePair } from '../helpers/engine-pair.js';
import type { EngineOptions } from '../../src/engine.js';

/**
 * What the kernel backends ask of the IKEv1 engine: SPIs the kernel reserved, ESP in UDP without a
 * NAT (the userspace data plane), and the kernel's events (ACQUIRE, EXPIRE, MAPPING) as inputs.
 */

const A = '192.0.2.1';
const B = '192.0.2.2';

function pair(
  aOptions: Partial<EngineOptions> = {},
  bOptions: Partial<EngineOptions> = {},
  start: 'initiate' | 'respond' = 'initiate',
) {
  return sitePair({ a: { start }, engines: { a: aOptions, b: bOptions } });
}

const only = onlyChild;

t.test('inbound SPIs come from the kernel backend when it reserves them', async (t) => {
  const asked: string[] = [];
  let next = 0xc0000100;
  const allocateSpi = (local: string, remote: string) => {
    asked.push(`${local}<-${remote}`);
    return next++;
  };
  const { pair: p, a, b } = pair({ allocateSpi }, { allocateSpi });
  p.initiate(a);
  t.equal(only(a).spiIn, 0xc0000100, "the initiator's inbound SPI is the first the kernel gave");
  t.equal(only(b).spiIn, 0xc0000101, "the responder's inbound SPI is the second");
  t.equal(only(a).spiOut, only(b).spiIn, 'and they cross over');
  t.same(asked, [`${A}<-${B}`, `${B}<-${A}`], 'each side asked for its own address, from its peer');
});

t.test('SPIs the kernel reserves in the background: asked for with actions, answered later', async (t) => {
  const { pair: p, a, b } = pair({ reserveSpis: true }, { reserveSpis: true, compute: 'deferred' });
  const asked: string[] = [];
  p.reserveSpi = (side, local, remote) => {
    asked.push(`${side.name}: ${local}<-${remote}`);
    return side === a ? 0xc0000a01 : 0xc0000b01;
  };
  p.initiate(a);
  t.equal(only(a).spiIn, 0xc0000a01, "the initiator's inbound SPI is the one its kernel reserved");
  t.equal(only(b).spiIn, 0xc0000b01, "the responder's too");
  t.equal(only(a).spiOut, only(b).spiIn, 'and they cross over');
  t.same(asked, [`a: ${A}<-${B}`, `b: ${B}<-${A}`], 'one reservation each, for its own address');

  const failing = pair({ reserveSpis: true });
  failing.pair.reserveSpi = () => new Error('ENOSPC');
  failing.pair.initiate(failing.a);
  t.equal(only(failing.a).spiOut, only(failing.b).spiIn, 'a failed reservation: the child SA is up anyway');
  t.ok(
    failing.a.logs.some((line) => line.startsWith('warn:') && line.includes('ENOSPC')),
    'with a random SPI, and the cause logged',
  );
});

t.test('forced encapsulation: ESP in UDP on 4500 with no NAT in the path', async (t) => {
  const { pair: p, a, b } = pair({ forceEncapsulation: true });
  p.initiate(a);
  t.ok(only(a).encapsulation && only(b).encapsulation, 'both sides encapsulate');
  t.equal(only(a).local.port, 4500, 'the initiator floated to the NAT-T port');
  t.equal(only(b).remote.port, 4500, 'the responder follows');
  const ikeA = a.engine.status()[0]!.ikeSas[0]!;
  const ikeB = b.engine.status()[0]!.ikeSas[0]!;
  t.same(
    ikeA.nat,
    { local: false, remote: false, forced: true },
    'the forcing side knows there is no real NAT',
  );
  t.same(
    ikeB.nat,
    { local: false, remote: true },
    'its peer believes it is behind a NAT (as with strongSwan encap=yes)',
  );
  t.notOk(
    p.sent.some((packet) => packet.keepalive),
    'no keepalives: nobody is behind a real NAT on the forcing side',
  );

  const responderForces = pair({}, { forceEncapsulation: true });
  responderForces.pair.initiate(responderForces.a);
  t.ok(
    only(responderForces.a).encapsulation && only(responderForces.b).encapsulation,
    'a forcing responder gets the same result',
  );
});

t.test('ACQUIRE initiates a connection once; repeats while it is under way or up do nothing', async (t) => {
  const { pair: p, a, b } = pair({}, {}, 'respond');
  const firstActions = a.engine.kernelEvent({ type: 'acquire', connection: 'test' }, p.now);
  t.ok(
    firstActions.some((action) => action.type === 'send'),
    'the first ACQUIRE starts main mode',
  );
  t.same(
    a.engine.kernelEvent({ type: 'acquire', connection: 'test' }, p.now),
    [],
    'a second ACQUIRE meanwhile is ignored',
  );
  p.run(a, firstActions);
  t.equal(a.installed.size, 1, 'the child SA is up');
  t.equal(b.installed.size, 1, 'on both sides');
  t.same(
    a.engine.kernelEvent({ type: 'acquire', connection: 'test' }, p.now),
    [],
    'an ACQUIRE with the SA up is ignored',
  );
  t.same(
    a.engine.kernelEvent({ type: 'acquire', connection: 'nope' }, p.now),
    [],
    'an ACQUIRE for an unknown connection is ignored',
  );
});

t.test('a soft EXPIRE rekeys the child SA now; a hard one deletes it and tells the peer', async (t) => {
  const { pair: p, a, b } = pair();
  p.initiate(a);
  const first = only(a);
  p.run(a, a.engine.kernelEvent({ type: 'expire', child: first.id, hard: false }, p.now));
  t.equal(a.installed.size, 2, 'the replaced child SA stays a moment for what the peer still sends on it');
  p.advance(5);
  t.equal(a.installed.size, 1, 'one child SA after the rekey');
  t.not(only(a).spiIn, first.spiIn, 'a new one');
  t.equal(only(b).spiOut, only(a).spiIn, 'the peer has the new one too');
  t.ok(
    a.events.some((event) => event.type === 'child-up' && event.rekeyed === first.id),
    'reported as a rekey of the first',
  );

  const second = only(a);
  p.run(a, a.engine.kernelEvent({ type: 'expire', child: second.id, hard: true }, p.now));
  t.equal(a.installed.size, 0, 'the hard expiry deleted it');
  t.equal(b.installed.size, 0, 'and the Delete reached the peer');
  t.same(
    a.engine.kernelEvent({ type: 'expire', child: 12345, hard: true }, p.now),
    [],
    'unknown child: nothing',
  );
});

t.test('a NAT MAPPING event moves the IKE SA to the new port', async (t) => {
  const { pair: p, a, b } = pair({ forceEncapsulation: true });
  p.initiate(a);
  const child = only(b);
  p.run(
    b,
    b.engine.kernelEvent({ type: 'mapping', child: child.id, remote: { address: A, port: 4501 } }, p.now),
  );
  t.equal(b.engine.status()[0]!.ikeSas[0]!.remote, `${A}:4501`, 'the IKE SA follows the new mapping');
  t.same(only(b).remote, { address: A, port: 4501 }, 'the child SA is installed again with the new port');
  t.equal(only(b).spiIn, child.spiIn, 'the same SA, not a new one');
  const again = b.engine.kernelEvent(
    { type: 'mapping', child: child.id, remote: { address: A, port: 4501 } },
    p.now,
  );
  t.same(again, [], 'the same mapping twice changes nothing');
});

t.test('a kernel that cannot reserve an SPI: a random one, and the negotiation goes on', async (t) => {
  const allocateSpi = () => {
    throw new Error('ENOSPC');
  };
  const { pair: p, a, b } = pair({ allocateSpi });
  p.initiate(a);
  t.equal(only(a).spiOut, only(b).spiIn, 'the child SA is up');
  t.ok(
    a.logs.some((line) => line.startsWith('warn:') && line.includes('ENOSPC')),
    'the failure is logged with its cause',
  );
});

t.test('a child SA the kernel refused is deleted on both sides and its connection is in Error', async (t) => {
  const { pair: p, a, b } = pair();
  p.initiate(a);
  const child = only(a);
  p.run(
    a,
    a.engine.kernelEvent({ type: 'install-failed', child: child.id, reason: 'no such algorithm' }, p.now),
  );
  t.equal(a.installed.size, 0, 'the refused child SA is gone');
  t.equal(b.installed.size, 0, 'and the Delete reached the peer');
  t.match(
    a.engine.status()[0],
    { status: 'Error', error: /the kernel refused the child SA: no such algorithm/ },
    'the connection says why',
  );
  t.same(
    a.engine.kernelEvent({ type: 'install-failed', child: 12345, reason: 'x' }, p.now),
    [],
    'unknown child: nothing',
  );
});

t.test(
  "a responder's inbound SA refused before message 3: message 3 is answered with a Delete",
  async (t) => {
    const { pair: p, a, b } = pair();
    let refused = false;
    p.wire = (packet) => {
      // The responder's inbound SA is installed when its quick mode answer leaves: refuse it then.
      if (!refused && b.inbound.size === 1) {
        refused = true;
        const [pending] = b.inbound.values();
        p.run(
          b,
          b.engine.kernelEvent({ type: 'install-failed', child: pending!.id, reason: 'ENOMEM' }, p.now),
        );
      }
      return packet;
    };
    p.initiate(a);
    t.ok(refused, 'the inbound SA was refused');
    t.equal(b.inbound.size, 0, 'its inbound SA is taken away');
    t.equal(b.installed.size, 0, 'message 3 installs nothing');
    t.equal(a.installed.size, 0, "the responder's Delete took the initiator's SAs away");
    t.match(b.engine.status()[0], { status: 'Error', error: /ENOMEM/ }, 'the connection says why');
    t.notOk(
      b.logs.some((line) => /MALFORMED/.test(line)),
      'message 3 was read, not taken for garbage',
    );
  },
);
