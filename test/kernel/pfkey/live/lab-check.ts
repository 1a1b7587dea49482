/**
 * A live check of the PF_KEY backend against Linux af_key, run inside the kernel lab:
 *   conformance/lab/klab-run -t 240 test/kernel/pfkey/live/lab-check.sh
 * (the script sets up a dummy interface and runs this with `node --import tsx`). It needs root,
 * af_key and the built native shim. Each check prints PASS or FAIL; the exit status is the
 * number of failures. Not a tap test: the host has no AF_KEY.
 */
import { execSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { parseTrafficSelector } from '../../../../src/core/traffic-selector.js';
import type { ChildSa } from '../../../../src/core/sa.js';
import { algorithm } from '../../../../src/crypto/registry.js';
import type { KernelEvent } from '../../../../src/kernel/backend.js';
import { PfkeyChannel } from '../../../../src/kernel/pfkey/channel.js';
import { PfkeyError } from '../../../../src/kernel/pfkey/errors.js';
import { buildAddSa, buildSpdAdd } from '../../../../src/kernel/pfkey/messages.js';
import { openPfkeyBackend } from '../../../../src/kernel/pfkey/open.js';
import { socketFd } from '../../../../src/native/dgram-fd.js';
import { loadNative } from '../../../../src/native/index.js';

let failures = 0;
function check(ok: boolean, what: string, detail = ''): void {
  if (!ok) failures++;
  console.log(`${ok ? 'PASS' : 'FAIL'}: ${what}${detail ? ` -- ${detail}` : ''}`);
}
const sh = (command: string) => execSync(command, { encoding: 'utf8' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(test: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (test()) return true;
    await sleep(50);
  }
  return test();
}

const native = loadNative();
const events: KernelEvent[] = [];
const host = {
  onEvent: (event: KernelEvent) => {
    console.log('event', JSON.stringify(event));
    events.push(event);
  },
  log: (level: string, text: string) => console.log(`log ${level}: ${text}`),
};

const key = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (seed + i) & 0xff);

function child(overrides: Partial<ChildSa>): ChildSa {
  return {
    id: 1,
    connection: 'site',
    ikeSaId: 1,
    protocol: 'esp',
    mode: 'tunnel',
    encapsulation: false,
    local: { address: '192.0.2.1', port: 500 },
    remote: { address: '192.0.2.2', port: 500 },
    spiIn: 0,
    spiOut: 0x22000001,
    localTs: [parseTrafficSelector('10.1.0.0/16')],
    remoteTs: [parseTrafficSelector('10.2.0.0/24')],
    suite: { encr: algorithm('encr', 'aes128'), integ: algorithm('integ', 'sha1') },
    keys: { encrIn: key(16, 1), integIn: key(20, 2), encrOut: key(16, 3), integOut: key(20, 4) },
    lifetime: { seconds: 3600 },
    installedAt: 0,
    rekeyAt: 3240,
    expiresAt: 3600,
    ...overrides,
  };
}

// 1. Leftovers of an "earlier run": an SA and a policy with a reqid of our range, and one without.
const raw = new PfkeyChannel(native, native.openPfkey(), {
  flavour: 'linux',
  timeoutMs: 5000,
  onMessage: () => undefined,
  onError: (error) => console.log('raw channel error', error.message),
});
raw.start();
const leftover = (spi: number, reqid: number) =>
  buildAddSa('linux', 'add', {
    direction: 'out',
    spi,
    src: '192.0.2.1',
    dst: '192.0.2.9',
    auth: 3,
    encrypt: 12,
    authKey: key(20, 9),
    encryptKey: key(16, 9),
    replay: 32,
    mode: 'tunnel',
    reqid,
  });
await raw.request(leftover(0x33000001, 0x3c10), 'leftover SA, our reqid');
await raw.request(leftover(0x33000002, 7), 'leftover SA, a foreign reqid');
await raw.request(
  buildSpdAdd({
    src: { address: '10.7.0.0', prefixlen: 16, port: 0 },
    dst: { address: '10.8.0.0', prefixlen: 16, port: 0 },
    proto: 0,
    dir: 'out',
    priority: 100,
    requests: [
      { proto: 50, mode: 2, level: 3, reqid: 0x3c10, tunnel: { src: '192.0.2.1', dst: '192.0.2.9' } },
    ],
  }),
  'leftover policy',
);

// Facts about af_key that the backend relies on.
try {
  await raw.request(
    buildAddSa('linux', 'add', {
      direction: 'out',
      spi: 0x33000003,
      src: '192.0.2.1',
      dst: '192.0.2.9',
      auth: 0,
      encrypt: 20, // SADB_X_EALG_AES_GCM_ICV16
      encryptKey: key(20, 1),
      replay: 32,
      mode: 'tunnel',
    }),
    'AES-GCM through af_key',
  );
  check(false, 'af_key refuses AES-GCM (no AEAD through PF_KEY)', 'it was accepted');
} catch (error) {
  check(
    error instanceof PfkeyError && error.code === 'ENOSYS',
    'af_key refuses AES-GCM with ENOSYS',
    String(error),
  );
}
await raw.request(
  buildAddSa('linux', 'add', {
    direction: 'out',
    spi: 0x33000004,
    src: '192.0.2.1',
    dst: '192.0.2.9',
    auth: 5, // SADB_X_AALG_SHA2_256HMAC
    encrypt: 12,
    authKey: key(32, 1),
    encryptKey: key(16, 1),
    replay: 32,
    mode: 'tunnel',
  }),
  'SHA-256 through af_key',
);
const sha256State = sh('ip xfrm state get src 192.0.2.1 dst 192.0.2.9 proto esp spi 0x33000004');
check(
  /auth-trunc hmac\(sha256\) 0x[0-9a-f]+ 96/.test(sha256State),
  'af_key truncates hmac(sha256) to 96 bits',
  sha256State.trim(),
);
sh('ip xfrm state delete src 192.0.2.1 dst 192.0.2.9 proto esp spi 0x33000004');

// 2. Open: REGISTER (slow the first time) and the cleanup of our reqid range.
let started = Date.now();
const backend = await openPfkeyBackend(host, { timeoutMs: 5000 });
console.log(`open (REGISTER + cleanup) took ${Date.now() - started} ms`);
let states = sh('ip xfrm state');
let policies = sh('ip xfrm policy');
check(
  !states.includes('0x33000001') && states.includes('0x33000002'),
  'open removed the SA with our reqid only',
);
check(!policies.includes('10.7.0.0/16'), 'open removed the policy with our reqid');
sh('ip xfrm state delete src 192.0.2.1 dst 192.0.2.9 proto esp spi 0x33000002');

// 3. GETSPI, then install a NAT-T tunnel child with it.
started = Date.now();
const spiIn = backend.allocateSpi('192.0.2.1', '192.0.2.2');
console.log(`allocateSpi took ${Date.now() - started} ms: 0x${spiIn.toString(16)}`);
check(spiIn >= 0xc0000000 && spiIn <= 0xcfffffff, 'GETSPI gave an SPI of our range');
states = sh('ip xfrm state');
check(
  states.includes(`spi 0x${spiIn.toString(16)}`),
  'the larval SA is in the kernel',
  states.split('\n').slice(0, 4).join(' | '),
);
const first = child({
  spiIn,
  encapsulation: true,
  local: { address: '192.0.2.1', port: 4500 },
  remote: { address: '192.0.2.2', port: 31000 },
});
await backend.install(first);
states = sh('ip xfrm state');
policies = sh('ip xfrm policy');
console.log(states);
console.log(policies);
const inbound = sh(`ip xfrm state get src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x${spiIn.toString(16)}`);
check(
  /mode tunnel/.test(inbound) && /reqid 15360/.test(inbound),
  'inbound SA: tunnel mode, reqid 0x3c00',
  inbound.split('\n')[1],
);
check(/encap type espinudp sport 31000 dport 4500/.test(inbound), 'inbound SA: ESP in UDP 31000 -> 4500');
check(
  /auth-trunc hmac\(sha1\) 0x02030405060708090a0b0c0d0e0f101112131415 96/.test(inbound),
  'inbound SA: hmac(sha1)/96, the inbound key',
);
check(
  /enc cbc\(aes\) 0x0102030405060708090a0b0c0d0e0f10/.test(inbound),
  'inbound SA: cbc(aes), the inbound key',
);
const outbound = sh('ip xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x22000001');
check(/encap type espinudp sport 4500 dport 31000/.test(outbound), 'outbound SA: ESP in UDP 4500 -> 31000');
check(
  /lifetime config:/.test(sh('ip -s xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x22000001')),
  'lifetimes present',
);
for (const dir of ['out', 'in', 'fwd']) {
  const found = new RegExp(
    `src 10\\.${dir === 'out' ? 1 : 2}\\.0\\.0/${dir === 'out' ? 16 : 24} dst 10\\.${dir === 'out' ? 2 : 1}\\.0\\.0/${dir === 'out' ? 24 : 16}\\s*\\n\\s*dir ${dir} priority \\d+[^\\n]*\\n\\s*tmpl src 192\\.0\\.2\\.${dir === 'out' ? 1 : 2} dst 192\\.0\\.2\\.${dir === 'out' ? 2 : 1}\\s*\\n\\s*proto esp reqid 15360 mode tunnel`,
  ).test(policies);
  check(found, `policy ${dir}: selector, tunnel template, reqid 0x3c00`);
}
const counters = await backend.counters(first);
check(
  counters !== undefined && counters.bytesIn === 0 && counters.packetsOut === 0,
  'counters read',
  JSON.stringify(counters),
);

// 4. A rekey shares the policies; removing the old child keeps them.
const second = child({ id: 2, spiIn: backend.allocateSpi('192.0.2.1', '192.0.2.2'), spiOut: 0x22000002 });
await backend.install(second);
await backend.remove(first);
states = sh('ip xfrm state');
policies = sh('ip xfrm policy');
check(
  !states.includes('spi 0x22000001') && states.includes('spi 0x22000002'),
  'rekey: the old SAs went, the new stayed',
);
check((policies.match(/reqid 15360/g) ?? []).length === 3, 'rekey: the three policies stayed');

// 5. A transport child with AES-CTR and SHA-512, IPv4 host to host, protocol and port.
const third = child({
  id: 3,
  connection: 'host',
  mode: 'transport',
  remote: { address: '192.0.2.4', port: 500 },
  spiIn: backend.allocateSpi('192.0.2.1', '192.0.2.4'),
  spiOut: 0x22000003,
  localTs: [parseTrafficSelector('192.0.2.1', 17, 1701)],
  remoteTs: [parseTrafficSelector('192.0.2.4', 17)],
  suite: { encr: algorithm('encr', 'aes256ctr'), integ: algorithm('integ', 'sha512') },
  keys: { encrIn: key(36, 1), integIn: key(64, 2), encrOut: key(36, 3), integOut: key(64, 4) },
});
await backend.install(third);
const ctr = sh(`ip xfrm state get src 192.0.2.4 dst 192.0.2.1 proto esp spi 0x${third.spiIn.toString(16)}`);
check(
  /enc rfc3686\(ctr\(aes\)\)/.test(ctr) &&
    /auth-trunc hmac\(sha512\) 0x[0-9a-f]+ 256/.test(ctr) &&
    /mode transport/.test(ctr),
  'AES-CTR (key + salt) and sha512/256, transport',
  ctr.split('\n').slice(1, 4).join(' | '),
);
policies = sh('ip xfrm policy');
check(
  /src 192\.0\.2\.1\/32 dst 192\.0\.2\.4\/32 proto udp sport 1701\s*\n\s*dir out/.test(policies),
  'transport policy: udp sport 1701',
  '',
);
check(
  !/src 192\.0\.2\.4\/32 dst 192\.0\.2\.1\/32[^\n]*\n\s*dir fwd/.test(policies),
  'transport mode: no fwd policy',
);
await backend.remove(third);

// 6. Socket options on real UDP sockets.
const bypass = createSocket('udp4');
await new Promise<void>((resolve) => bypass.bind(0, '192.0.2.1', resolve));
const nat = createSocket('udp4');
await new Promise<void>((resolve) => nat.bind(4500, '192.0.2.1', resolve));
try {
  backend.configureSocket(socketFd(bypass), 4, false);
  backend.configureSocket(socketFd(nat), 4, true);
  check(true, 'configureSocket: IP_IPSEC_POLICY bypass in/out and UDP_ENCAP accepted');
} catch (error) {
  check(false, 'configureSocket', String(error));
}

// 7. A trap: traffic to 192.0.2.3 makes an ACQUIRE for 'trapped'; the bypass socket is not trapped.
await backend.trap({
  connection: 'trapped',
  mode: 'transport',
  local: '192.0.2.1',
  remote: '192.0.2.3',
  localTs: [parseTrafficSelector('192.0.2.1')],
  remoteTs: [parseTrafficSelector('192.0.2.3')],
});
const txBefore = Number(sh('cat /sys/class/net/d0/statistics/tx_packets'));
await new Promise<void>((resolve) => bypass.send('bypass', 9, '192.0.2.3', () => resolve()));
await sleep(200);
const txAfter = Number(sh('cat /sys/class/net/d0/statistics/tx_packets'));
check(
  txAfter > txBefore,
  'the bypass socket sends in the clear through a trapped destination',
  `${txBefore} -> ${txAfter}`,
);
check(!events.some((event) => event.type === 'acquire'), 'no ACQUIRE for the bypass socket');
const plain = createSocket('udp4');
plain.on('error', () => undefined);
await new Promise<void>((resolve) => plain.bind(0, '192.0.2.1', resolve));
started = Date.now();
plain.send('trigger', 9, '192.0.2.3', () => undefined);
const acquired = await until(() => events.some((event) => event.type === 'acquire'), 5000);
check(
  acquired && events.some((e) => e.type === 'acquire' && e.connection === 'trapped'),
  `ACQUIRE -> acquire event for 'trapped'`,
  `${Date.now() - started} ms`,
);
await backend.untrap('trapped');
check(!sh('ip xfrm policy').includes('192.0.2.3'), 'untrap removed the trap policies');

// 8. Kernel lifetimes: soft after 2 s, hard after 4 s.
const short = child({
  id: 4,
  connection: 'short',
  remote: { address: '192.0.2.5', port: 500 },
  spiIn: backend.allocateSpi('192.0.2.1', '192.0.2.5'),
  spiOut: 0x22000004,
  remoteTs: [parseTrafficSelector('10.5.0.0/24')],
  installedAt: 0,
  rekeyAt: 2,
  expiresAt: 4,
});
await backend.install(short);
started = Date.now();
const soft = await until(() => events.some((e) => e.type === 'expire' && e.child === 4 && !e.hard), 10_000);
check(soft, 'soft EXPIRE -> expire event (hard false)', `${Date.now() - started} ms`);
const hard = await until(() => events.some((e) => e.type === 'expire' && e.child === 4 && e.hard), 10_000);
check(hard, 'hard EXPIRE -> expire event (hard true)', `${Date.now() - started} ms`);
await backend.remove(short);

// 9. close removes everything ours.
await backend.close();
states = sh('ip xfrm state');
policies = sh('ip xfrm policy');
// The kernel's own acquire state for the trapped packet (spi 0, made by xfrm_state_find, not by
// us) stays until net.core.xfrm_acq_expires (30 s): PF_KEY cannot delete an SA without an SPI.
const left = states
  .split(/\n(?=src )/)
  .filter((entry) => entry.trim() !== '' && !/spi 0x00000000 /.test(entry));
check(left.length === 0, "close: no SA left (but the kernel's spi-0 acquire state)", states);
check(
  policies.trim() === '' || !/reqid 15[3-9]\d\d/.test(policies),
  'close: no policy of ours left',
  policies,
);
bypass.close();
nat.close();
plain.close();
raw.close();
console.log(`${failures} failures`);
process.exit(failures);
