import { decodeLink, RTM_NEWLINK } from '../../src/kernel/netlink/route.js';
import {
  concat,
  decodeAttributes,
  decodeError,
  decodeMessages,
  encodeAttribute,
  encodeMessage as encodeNetlink,
  NLMSG_ERROR,
  NetlinkParseError,
} from '../../src/kernel/netlink/message.js';
import {
  decodeMessage as decodePfkey,
  encodeMessage as encodePfkey,
  PfkeyParseError,
} from '../../src/kernel/pfkey/codec.js';
import type { PfkeyFlavour } from '../../src/kernel/pfkey/constants.js';
import {
  buildAddSa,
  buildGetSpi,
  buildRegister,
  buildSaQuery,
  buildSpdAdd,
  buildAddFlow,
  readAcquire,
  readExpire,
  readNewMapping,
  readSpi,
  readSupported,
  type SadbRequest,
} from '../../src/kernel/pfkey/messages.js';
import * as X from '../../src/kernel/xfrm/constants.js';
import {
  buildPolicy,
  buildSa,
  decodePolicyMessage,
  decodeSaMessage,
  decodeXfrmEvent,
  lifetimeCfg,
  userpolicyInfo,
} from '../../src/kernel/xfrm/messages.js';
import {
  anySelector,
  encodeUserAcquire,
  encodeUserExpire,
  encodeUserMapping,
  encodeUserTmpls,
  type XfrmSelector,
  type XfrmUserTmpl,
} from '../../src/kernel/xfrm/structs.js';
import { mutateBytes } from '../mutate.js';
import { bytesTarget } from '../target.js';

/**
 * The kernel's messages as the backends decode them: netlink framing, XFRM answers and events
 * (NEWSA, NEWPOLICY, ACQUIRE, EXPIRE, MAPPING), rtnetlink links and errors; PF_KEY v2 messages of
 * both flavours with the reads the backend makes of them (SPI, supported algorithms, ACQUIRE,
 * EXPIRE, NAT-T mappings). Seeds are what the builders make: the kernel answers with the same
 * structures.
 */

const ip4 = (text: string) => Uint8Array.from(text.split('.').map(Number));
const LOCAL = ip4('192.0.2.1');
const REMOTE = ip4('192.0.2.2');
const SELECTOR: XfrmSelector = {
  ...anySelector(2),
  daddr: ip4('203.0.113.0'),
  saddr: ip4('198.51.100.0'),
  prefixlenD: 24,
  prefixlenS: 24,
};
const TEMPLATE: XfrmUserTmpl = {
  id: { daddr: REMOTE, spi: 0, proto: 50 },
  family: 2,
  saddr: LOCAL,
  reqid: 7,
  mode: X.XFRM_MODE_TUNNEL,
  share: 0,
  optional: 0,
  aalgos: 0xffffffff,
  ealgos: 0xffffffff,
  calgos: 0xffffffff,
};

function nl(type: number, payload: Uint8Array): Uint8Array {
  return encodeNetlink({ type, flags: 0, seq: 1, pid: 0, payload });
}

function xfrmSeeds(): Uint8Array[] {
  const sa = buildSa({
    src: REMOTE,
    dst: LOCAL,
    spi: 0xc0000001,
    mode: X.XFRM_MODE_TUNNEL,
    reqid: 7,
    selector: anySelector(),
    lifetime: lifetimeCfg({ hardAddSeconds: 3630 }),
    replayWindow: 32,
    algorithms: [
      {
        type: X.XFRMA_ALG_CRYPT,
        value: concat([new Uint8Array(64), Uint8Array.of(128, 0, 0, 0), new Uint8Array(16)]),
      },
    ],
    encap: { sport: 4500, dport: 4500 },
  });
  const policy = buildPolicy({
    selector: SELECTOR,
    dir: X.XFRM_POLICY_OUT,
    priority: 100,
    templates: [TEMPLATE],
  });
  const info = userpolicyInfo({ selector: SELECTOR, dir: X.XFRM_POLICY_OUT, priority: 100 });
  const acquire = concat([
    encodeUserAcquire({
      id: TEMPLATE.id,
      saddr: LOCAL,
      sel: SELECTOR,
      policy: info,
      aalgos: 1,
      ealgos: 1,
      calgos: 1,
      seq: 9,
    }),
    encodeAttribute(X.XFRMA_TMPL, encodeUserTmpls([TEMPLATE, TEMPLATE])),
  ]);
  const expire = encodeUserExpire({
    state: decodeSaMessage({ type: X.XFRM_MSG_NEWSA, flags: 0, seq: 0, pid: 0, payload: sa }).info,
    hard: true,
  });
  const mapping = encodeUserMapping({
    id: { daddr: REMOTE, spi: 0xc0000001, family: 2, proto: 50 },
    reqid: 7,
    oldSaddr: REMOTE,
    newSaddr: ip4('192.0.2.3'),
    oldSport: 4500,
    newSport: 31337,
  });
  // AF_UNSPEC, ARPHRD_NONE, index 9, flags UP|RUNNING, then IFLA_IFNAME "tun0" and IFLA_MTU 1400.
  const link = concat([
    Uint8Array.of(0, 0, 0xfe, 0xff, 9, 0, 0, 0, 0x41, 0, 1, 0, 0, 0, 0, 0),
    encodeAttribute(3, Uint8Array.of(0x74, 0x75, 0x6e, 0x30, 0)),
    encodeAttribute(4, Uint8Array.of(0x78, 5, 0, 0)),
  ]);
  const error = concat([Uint8Array.of(0xef, 0xff, 0xff, 0xff), nl(X.XFRM_MSG_NEWSA, new Uint8Array(0))]);
  const messages = [
    nl(X.XFRM_MSG_NEWSA, sa),
    nl(X.XFRM_MSG_NEWPOLICY, policy),
    nl(X.XFRM_MSG_ACQUIRE, acquire),
    nl(X.XFRM_MSG_EXPIRE, expire),
    nl(X.XFRM_MSG_POLEXPIRE, concat([new Uint8Array(policy.subarray(0, 168)), new Uint8Array(8).fill(1)])),
    nl(X.XFRM_MSG_MAPPING, mapping),
    nl(RTM_NEWLINK, link),
    nl(NLMSG_ERROR, error),
  ];
  return [...messages, concat(messages), concat([messages[0]!, messages[0]!, messages[2]!])];
}

/** Every decoder the XFRM and rtnetlink code applies to what the kernel sends, each on every message. */
function checkNetlink(input: Uint8Array): void {
  for (const message of decodeMessages(input)) {
    const decoders = [
      () => decodeXfrmEvent(message),
      () => decodeSaMessage(message),
      () => decodePolicyMessage(message),
      () => decodeLink(message),
      () => decodeError(message),
      () => decodeAttributes(message.payload),
    ];
    eachDecoder(decoders, (error) => error instanceof NetlinkParseError);
  }
}

/** Each decoder on its own: its typed error ends that one, anything else is the finding. */
function eachDecoder(decoders: readonly (() => unknown)[], typed: (error: unknown) => boolean): void {
  for (const decode of decoders) {
    try {
      decode();
    } catch (error) {
      if (!typed(error)) throw error;
    }
  }
}

export const xfrmTarget = bytesTarget({
  name: 'netlink',
  description: 'netlink framing, XFRM answers and events, rtnetlink links and errors',
  seeds: xfrmSeeds,
  mutate: (rng, input, seeds) => mutateBytes(rng, input, seeds, { order: 'le', align: 4 }),
  check: checkNetlink,
  typed: (error) => error instanceof NetlinkParseError,
});

// ---------------------------------------------------------------------------------------------
// PF_KEY

const FLAVOURS: readonly PfkeyFlavour[] = ['linux', 'openbsd'];

function pfkeySeeds(): Uint8Array[] {
  const seeds: Uint8Array[] = [];
  for (const flavour of FLAVOURS) {
    const requests: SadbRequest[] = [
      buildRegister(flavour),
      buildGetSpi(flavour, { src: '192.0.2.2', dst: '192.0.2.1', min: 256, max: 0xffffffff }),
      buildSaQuery(flavour, 'get', { spi: 0xc0000001, src: '192.0.2.2', dst: '192.0.2.1' }),
      buildAddSa(flavour, 'update', {
        direction: 'in',
        spi: 0xc0000001,
        src: '2001:db8::2',
        dst: '2001:db8::1',
        auth: 2,
        encrypt: 12,
        authKey: new Uint8Array(20).fill(1),
        encryptKey: new Uint8Array(16).fill(2),
        replay: 32,
        mode: 'tunnel',
        reqid: 7,
        lifetime: { soft: { bytes: 1000n, seconds: 3000n }, hard: { bytes: 2000n, seconds: 3600n } },
        udpEncap: { sport: 4500, dport: 4500 },
        ...(flavour === 'openbsd' && { tag: 'ike-node' }),
      }),
      flavour === 'linux'
        ? buildSpdAdd({
            src: { address: '198.51.100.0', prefixlen: 24, port: 0 },
            dst: { address: '203.0.113.0', prefixlen: 24, port: 0 },
            proto: 0,
            dir: 'out',
            priority: 100,
            requests: [
              { proto: 50, mode: 2, level: 3, reqid: 7, tunnel: { src: '192.0.2.1', dst: '192.0.2.2' } },
            ],
          })
        : buildAddFlow({
            src: { address: '198.51.100.0', mask: '255.255.255.0', port: 0 },
            dst: { address: '203.0.113.0', mask: '255.255.255.0', port: 0 },
            proto: 0,
            direction: 'out',
            flowType: 3,
            local: '192.0.2.1',
            peer: '192.0.2.2',
          }),
    ];
    for (const [i, request] of requests.entries()) {
      const message = { ...request, seq: i, pid: 0 };
      seeds.push(encodePfkey(message, { flavour }));
      // The kernel's kinds of message, with the extensions of the requests: ACQUIRE, EXPIRE, NEW_MAPPING.
      for (const type of [6, 8, flavour === 'linux' ? 23 : 15])
        seeds.push(encodePfkey({ ...message, type }, { flavour }));
    }
  }
  return seeds;
}

function checkPfkey(input: Uint8Array): void {
  // The flavour is the low bit of the last byte, so that each reproducer names it.
  const flavour = FLAVOURS[(input[input.length - 1] ?? 0) & 1]!;
  const message = decodePfkey(input, { flavour });
  eachDecoder(
    [readSpi, readSupported, readAcquire, readExpire, readNewMapping].map((read) => () => read(message)),
    (error) => error instanceof PfkeyParseError,
  );
}

export const pfkeyTarget = bytesTarget({
  name: 'pfkey',
  description: 'PF_KEY v2 messages (Linux af_key and OpenBSD) and what the backend reads of them',
  seeds: pfkeySeeds,
  mutate: (rng, input, seeds) => mutateBytes(rng, input, seeds, { order: 'le', align: 8 }),
  check: checkPfkey,
  typed: (error) => error instanceof PfkeyParseError,
});
