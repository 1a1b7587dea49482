import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import type { ChildSa } from '../../src/core/sa.js';
import { algorithm, algorithmsOf, sealKeys } from '../../src/crypto/index.js';
import { Daemon } from '../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../src/daemon/events.js';
import { espRecords, ikev1Record, ikev2Record, KEY_LOG_FILES, KeyLog } from '../../src/daemon/keylog.js';
import { Logger } from '../../src/daemon/logger.js';
import { fromHex, toHex } from '../../src/wire/bytes.js';
import { listenPorts, startDaemonPair, until } from '../helpers/daemon-pair.js';

/**
 * The Wireshark key log: the exact table formats (Wireshark's UAT files ikev1_decryption_table
 * and esp_sa), the files' modes, and the daemon writing what it negotiates there and nowhere else.
 * That tshark decrypts captures with these files is conformance/keylog-decrypt.test.ts.
 */

/** Recognisable key bytes: 0x11 0x12 ... for key `n`. */
const bytes = (length: number, first: number) => Uint8Array.from({ length }, (_, i) => (first + i) & 0xff);

function child(encr: string, integ: string | undefined, over: Partial<ChildSa> = {}): ChildSa {
  const e = algorithm('encr', encr);
  const i = integ === undefined ? undefined : algorithm('integ', integ);
  const keyLength = e.keyLength + e.saltLength;
  return {
    id: 3,
    connection: 'site',
    ikeSaId: 1,
    protocol: 'esp',
    mode: 'tunnel',
    encapsulation: false,
    local: { address: '192.0.2.1', port: 500 },
    remote: { address: '198.51.100.7', port: 500 },
    spiIn: 0xc0ffee01,
    spiOut: 0x0000beef,
    localTs: [],
    remoteTs: [],
    suite: { encr: e, ...(i && { integ: i }) },
    keys: sealKeys('ChildSaKeys', {
      encrIn: bytes(keyLength, 0x10),
      integIn: bytes(i?.keyLength ?? 0, 0x40),
      encrOut: bytes(keyLength, 0x80),
      integOut: bytes(i?.keyLength ?? 0, 0xc0),
    }),
    lifetime: { seconds: 3600 },
    installedAt: 0,
    rekeyAt: 3000,
    expiresAt: 3600,
    ...over,
  };
}

t.test('ikev1_decryption_table: initiator cookie and encryption key, unquoted hex', async (t) => {
  t.equal(
    ikev1Record(fromHex('0123456789abcdef'), fromHex('00112233445566778899aabbccddeeff')),
    '0123456789abcdef,00112233445566778899aabbccddeeff\n',
  );
});

t.test("ikev2_decryption_table: SPIs, SK_e and SK_a of both directions, Wireshark's names", async (t) => {
  const record = (encr: string, integ?: string) =>
    ikev2Record({
      type: 'ike-keys',
      ikeSa: 1,
      version: 2,
      spiI: fromHex('0123456789abcdef'),
      spiR: fromHex('fedcba9876543210'),
      encryption: algorithm('encr', encr),
      integrity: integ === undefined ? undefined : algorithm('integ', integ),
      SK_ei: fromHex('1111'),
      SK_er: fromHex('2222'),
      SK_ai: fromHex(integ ? '3333' : ''),
      SK_ar: fromHex(integ ? '4444' : ''),
    });
  t.equal(
    record('aes256', 'sha256'),
    '0123456789abcdef,fedcba9876543210,1111,2222,"AES-CBC-256 [RFC3602]",3333,4444,"HMAC_SHA2_256_128 [RFC4868]"\n',
  );
  t.equal(
    record('aes128gcm16'),
    '0123456789abcdef,fedcba9876543210,1111,2222,"AES-GCM-128 with 16 octet ICV [RFC5282]",,,"NONE [RFC4306]"\n',
  );
  t.match(record('3des', 'sha1'), /"3DES \[RFC2451\]",3333,4444,"HMAC_SHA1_96 \[RFC2404\]"/);
  t.match(record('chacha20poly1305'), /^# IKE SA 0123456789abcdef,fedcba9876543210: .* not decryptable/);
});

t.test('esp_sa: both directions, quoted fields, inbound first', async (t) => {
  const records = espRecords(child('aes128', 'sha256'));
  t.same(records, [
    // Inbound: the peer sends with our SPI and the "in" keys.
    '"IPv4","198.51.100.7","192.0.2.1","0xc0ffee01","AES-CBC [RFC3602]",' +
      `"0x${toHex(bytes(16, 0x10))}","HMAC-SHA-256-128 [RFC4868]","0x${toHex(bytes(32, 0x40))}"\n`,
    // Outbound: the SPI is zero-padded to 8 digits.
    '"IPv4","192.0.2.1","198.51.100.7","0x0000beef","AES-CBC [RFC3602]",' +
      `"0x${toHex(bytes(16, 0x80))}","HMAC-SHA-256-128 [RFC4868]","0x${toHex(bytes(32, 0xc0))}"\n`,
  ]);
  const [v6] = espRecords(
    child('aes128', 'sha1', {
      local: { address: '2001:db8::1', port: 500 },
      remote: { address: '2001:db8::2', port: 500 },
    }),
  );
  t.match(v6, /^"IPv6","2001:db8::2","2001:db8::1",/, 'IPv6 SAs say so');
});

t.test('esp_sa: Wireshark names for every cipher and integrity algorithm we negotiate', async (t) => {
  const fields = (record: string) => record.trim().slice(1, -1).split('","');
  const expected: Record<string, [string, number]> = {
    '3des': ['TripleDES-CBC [RFC2451]', 24],
    aes128: ['AES-CBC [RFC3602]', 16],
    aes192: ['AES-CBC [RFC3602]', 24],
    aes256: ['AES-CBC [RFC3602]', 32],
    // RFC 3686 and 4106: the key Wireshark wants carries the 4-byte salt at its end.
    aes128ctr: ['AES-CTR [RFC3686]', 20],
    aes192ctr: ['AES-CTR [RFC3686]', 28],
    aes256ctr: ['AES-CTR [RFC3686]', 36],
  };
  for (const bits of [128, 192, 256])
    for (const icv of [8, 12, 16])
      expected[`aes${bits}gcm${icv}`] = [`AES-GCM with ${icv} octet ICV [RFC4106]`, bits / 8 + 4];
  for (const encr of algorithmsOf('encr')) {
    if (encr.name === 'chacha20poly1305') continue;
    const aead = encr.icvLength > 0;
    const [inbound] = espRecords(child(encr.name, aead ? undefined : 'sha1'));
    const f = fields(inbound!);
    const [name, keyLength] = expected[encr.name] ?? ['?', 0];
    t.equal(f[4], name, `${encr.name}: encryption name`);
    t.equal(f[5], `0x${toHex(bytes(keyLength, 0x10))}`, `${encr.name}: ${keyLength}-byte key`);
    if (aead) t.same([f[6], f[7]], ['NULL', ''], `${encr.name}: no separate authentication`);
  }
  t.equal(Object.keys(expected).length, algorithmsOf('encr').length - 1, 'every cipher but ChaCha20 checked');
  const integrity: Record<string, string> = {
    md5: 'HMAC-MD5-96 [RFC2403]',
    sha1: 'HMAC-SHA-1-96 [RFC2404]',
    sha256: 'HMAC-SHA-256-128 [RFC4868]',
    sha384: 'HMAC-SHA-384-192 [RFC4868]',
    sha512: 'HMAC-SHA-512-256 [RFC4868]',
  };
  for (const integ of algorithmsOf('integ')) {
    const f = fields(espRecords(child('aes128', integ.name))[1]!);
    t.equal(f[6], integrity[integ.name], `${integ.name}: authentication name`);
    t.equal(f[7], `0x${toHex(bytes(integ.keyLength, 0xc0))}`, `${integ.name}: whole HMAC key`);
  }
  // Wireshark up to 4.0 has no ChaCha20-Poly1305 for ESP: a comment keeps the file loadable.
  const chacha = espRecords(child('chacha20poly1305', undefined));
  t.match(
    chacha[0],
    /^# 198\.51\.100\.7 -> 192\.0\.2\.1 SPI 0xc0ffee01: chacha20poly1305 is not decryptable/,
  );
  t.notOk(chacha.join('').includes(toHex(bytes(36, 0x10))), 'and carries no key');
});

t.test('the key log directory: private files, appended, headers once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-keylog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keys = join(dir, 'keys');
  // Someone created the ESP table beforehand, readable by all: it must not stay so.
  const log = new KeyLog(keys);
  log.open();
  chmodSync(join(keys, KEY_LOG_FILES.esp), 0o644);
  writeFileSync(join(keys, 'unrelated'), 'x');
  log.open(); // a restart: nothing is truncated, no second header
  t.equal(statSync(keys).mode & 0o777, 0o700, 'directory 0700');
  for (const name of Object.values(KEY_LOG_FILES))
    t.equal(statSync(join(keys, name)).mode & 0o777, 0o600, `${name} 0600`);
  t.match(
    readFileSync(join(keys, KEY_LOG_FILES.preferences), 'utf8'),
    /^esp\.enable_encryption_decode: TRUE$/m,
    'preferences turn ESP decryption on',
  );
  log.ikeKeys({
    type: 'ike-keys',
    ikeSa: 1,
    version: 1,
    spiI: fromHex('0102030405060708'),
    spiR: fromHex('1112131415161718'),
    encryption: algorithm('encr', 'aes128'),
    encryptionKey: bytes(16, 0),
  });
  log.child(child('aes128', 'sha1'));
  log.child(child('aes256gcm16', undefined, { spiIn: 1, spiOut: 2 }));
  const ikev1 = readFileSync(join(keys, KEY_LOG_FILES.ikev1), 'utf8').split('\n');
  t.equal(ikev1.filter((line) => line.startsWith('#')).length, 1, 'one header line');
  t.same(
    ikev1.filter((line) => line && !line.startsWith('#')),
    [`0102030405060708,${toHex(bytes(16, 0))}`],
  );
  const esp = readFileSync(join(keys, KEY_LOG_FILES.esp), 'utf8')
    .split('\n')
    .filter((line) => line && !line.startsWith('#'));
  t.equal(esp.length, 4, 'two records per child SA, appended');
  t.match(esp[2], /"0x00000001","AES-GCM with 16 octet ICV \[RFC4106\]"/);
  t.equal(
    readFileSync(join(keys, KEY_LOG_FILES.ikev2), 'utf8').match(/^[^#]/m),
    null,
    'IKEv2 table: no records yet',
  );
});

t.test("an existing preferences file (a Wireshark profile's) is left as it is", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-keylog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, KEY_LOG_FILES.preferences), 'gui.column.format: "No.", "%m"\n');
  new KeyLog(dir).open();
  t.equal(readFileSync(join(dir, KEY_LOG_FILES.preferences), 'utf8'), 'gui.column.format: "No.", "%m"\n');
  t.ok(readFileSync(join(dir, KEY_LOG_FILES.esp), 'utf8').startsWith('# ike-node'), 'the tables are created');
});

t.test('a key log that cannot be created fails the start', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-keylog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'file'), 'not a directory');
  const log = new KeyLog(join(dir, 'file', 'keys'));
  t.throws(() => log.open(), { code: 'ENOTDIR' });
});

const PSK = 'keylog-test-psk-3d9e1b';
const portsOf = await listenPorts(['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24']);

function config(dir: string, self: string, peer: string, start: 'initiate' | 'respond', keyLog: boolean) {
  const subnet = (address: string) => (address === '127.0.0.21' ? '198.51.100.0/24' : '203.0.113.0/24');
  return parseConfig(
    JSON.stringify({
      listen: { addresses: [self], ...portsOf(self) },
      control: { socket: join(dir, `${self}.sock`) },
      ...(keyLog && { debug: { keyLog: `keys-${self}` } }),
      ikePolicies: { ike: { proposals: ['aes192-sha256-modp2048'] } },
      ipsecPolicies: { esp: { proposals: ['aes256gcm16'], pfs: 'modp2048' } },
      connections: {
        site: {
          ikePolicy: 'ike',
          ipsecPolicy: 'esp',
          local: { address: self, subnets: [subnet(self)] },
          peer: { address: peer, port: portsOf(peer).port, subnets: [subnet(peer)] },
          psk: PSK,
          start,
        },
      },
    }),
    join(dir, `${self}.json`),
  );
}

t.test('two daemons with debug.keyLog write what they negotiated, and only there', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-keylog-'));
  const lines: string[] = [];
  const events: DaemonEvent[] = [];
  const logger = () => new Logger({ level: 'debug', write: (line) => lines.push(line) });
  const responder = new Daemon(config(dir, '127.0.0.22', '127.0.0.21', 'respond', true), {
    logger: logger(),
  });
  const initiator = new Daemon(config(dir, '127.0.0.21', '127.0.0.22', 'initiate', true), {
    logger: logger(),
  });
  for (const daemon of [responder, initiator]) daemon.on('event', (event) => events.push(event));
  await startDaemonPair(t, dir, responder, initiator);
  await until(() => [initiator, responder].every((d) => d.status()[0]?.status === 'Active'));

  const table = (self: string, name: string) =>
    readFileSync(join(dir, `keys-${self}`, name), 'utf8')
      .split('\n')
      .filter((line) => line && !line.startsWith('#'));
  const [ikeI] = table('127.0.0.21', KEY_LOG_FILES.ikev1);
  const [ikeR] = table('127.0.0.22', KEY_LOG_FILES.ikev1);
  t.equal(ikeI, ikeR, 'both ends logged the same cookie and key');
  const [cookie, key] = ikeI!.split(',');
  t.equal(cookie, initiator.status()[0]!.ikeSas[0]!.spiI, 'under the initiator cookie status shows');
  t.equal(key!.length, 48, 'aes192: a 24-byte phase 1 key');

  const [installed] = initiator.kernel.installed();
  const esp = table('127.0.0.21', KEY_LOG_FILES.esp);
  t.same(
    esp,
    espRecords(installed!).map((record) => record.trimEnd()),
    'the installed child SA, both ways',
  );
  t.match(
    esp[0],
    /^"IPv4","127\.0\.0\.22","127\.0\.0\.21",.*"AES-GCM with 16 octet ICV \[RFC4106\]","0x[0-9a-f]{72}","NULL",""$/,
  );
  // The peer's outbound record is our inbound one.
  t.equal(table('127.0.0.22', KEY_LOG_FILES.esp)[1], esp[0]);

  const secrets = [key!, toHex(installed!.keys.encrIn), toHex(installed!.keys.encrOut)];
  const logged = lines.join('');
  const published = JSON.stringify(events);
  t.notOk(
    secrets.some((secret) => logged.includes(secret) || published.includes(secret)),
    'no key in any log line (debug level) or daemon event',
  );
  t.match(
    logged,
    /warn\s+crypto debug\.keyLog is set: IKE and ESP keys are written to .*keys-127\.0\.0\.21\n/,
  );
});

t.test('without debug.keyLog the daemon writes no keys and warns of nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-keylog-'));
  const lines: string[] = [];
  const daemon = new Daemon(config(dir, '127.0.0.23', '127.0.0.24', 'respond', false), {
    logger: new Logger({ level: 'debug', write: (line) => lines.push(line) }),
  });
  t.teardown(async () => {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await daemon.start();
  t.notMatch(lines.join(''), /keyLog/);
  t.same(
    readdir(dir),
    ['127.0.0.23.sock', '127.0.0.23.sock.lock'],
    'only the control socket and its lock in the directory',
  );
});

function readdir(dir: string): string[] {
  return readdirSync(dir).sort();
}
