import { createHmac } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { UnsupportedAlgorithmError } from '../../../src/crypto/errors.js';
import { createCryptoProvider } from '../../../src/crypto/providers/index.js';
import { algorithm } from '../../../src/crypto/registry.js';
import { EspInbound, EspOutbound, type EspOptions } from '../../../src/kernel/userspace/esp.js';
import { insertEsp } from '../../../src/kernel/userspace/packet.js';
import { fromHex, toHex } from '../../../src/wire/bytes.js';

/**
 * Published ESP packets (vectors/esp/): sealing the payload with the published IV and sequence
 * number gives the published packet byte for byte (SPI, sequence number, IV, encrypted payload,
 * padding 1, 2, 3..., pad length, next header and, for AEADs, the ICV), and opening the packet
 * gives the payload back. Every implementation: node:crypto directly, and the generic provider
 * path over both providers.
 *
 * RFC 3602's samples carry no authenticator; the SA here adds HMAC-SHA1-96 and the test checks
 * the ICV independently (HMAC over SPI to the end of the ciphertext, RFC 4303 section 2.8).
 */

interface EspVector {
  name: string;
  encryption: string;
  key: string;
  spi: string;
  sequence: number;
  iv: string;
  payload: string;
  padLength: number;
  nextHeader: number;
  packet: string;
  ipHeader?: string;
  espIpHeader?: string;
}

interface EspVectorFile {
  source: string;
  kind: string;
  vectors: EspVector[];
}

const DIR = join(import.meta.dirname, '../../../vectors/esp');
const files = readdirSync(DIR)
  .filter((name) => name.endsWith('.json'))
  .map((name) => ({ name, ...(JSON.parse(readFileSync(join(DIR, name), 'utf8')) as EspVectorFile) }));

const IMPLEMENTATIONS: { label: string; provider: 'node' | 'noble'; options: EspOptions }[] = [
  { label: 'node fast path', provider: 'node', options: { implementation: 'node' } },
  { label: 'node provider', provider: 'node', options: { implementation: 'provider' } },
  { label: 'noble provider', provider: 'noble', options: { implementation: 'provider' } },
];

const INTEG_KEY = fromHex('0b'.repeat(20));

t.test('there are ESP vectors and each names its source', async (t) => {
  t.ok(files.length >= 3);
  for (const file of files) {
    t.equal(file.kind, 'esp', file.name);
    t.ok(file.source.length > 50, `${file.name} names its source`);
    t.ok(file.vectors.length > 0, `${file.name} has vectors`);
  }
});

for (const file of files) {
  for (const vector of file.vectors) {
    t.test(`${file.name}: ${vector.name}`, async (t) => {
      const encr = algorithm('encr', vector.encryption);
      const aead = encr.icvLength > 0;
      const integ = aead ? undefined : algorithm('integ', 'sha1');
      const suite = { encr, ...(integ && { integ }) };
      const keys = { encryption: fromHex(vector.key), ...(integ && { integrity: INTEG_KEY }) };
      const spi = Number.parseInt(vector.spi, 16);
      const published = fromHex(vector.packet);
      // What the SA must produce: the published packet, plus our HMAC where the source has none.
      const icv = aead
        ? new Uint8Array(0)
        : createHmac('sha1', INTEG_KEY).update(published).digest().subarray(0, integ!.icvLength);
      const expected = toHex(published) + toHex(icv);
      for (const impl of IMPLEMENTATIONS) {
        const provider = createCryptoProvider(impl.provider);
        let outbound: EspOutbound;
        try {
          outbound = new EspOutbound(
            provider,
            { spi, suite, keys },
            { ...impl.options, firstSequence: vector.sequence },
          );
        } catch (error) {
          t.ok(error instanceof UnsupportedAlgorithmError, `${impl.label}: ${String(error)}`);
          continue;
        }
        const sealed = outbound.seal(fromHex(vector.payload), vector.nextHeader, { iv: fromHex(vector.iv) });
        t.equal(toHex(sealed), expected, `${impl.label}: seal gives the published packet`);
        const inbound = new EspInbound(provider, { spi, suite, keys }, impl.options);
        const opened = inbound.open(fromHex(expected));
        t.ok(opened.ok, `${impl.label}: opens`);
        if (opened.ok) {
          t.equal(toHex(opened.payload), vector.payload, `${impl.label}: payload`);
          t.equal(opened.nextHeader, vector.nextHeader, `${impl.label}: next header`);
          t.equal(opened.sequence, vector.sequence, `${impl.label}: sequence number`);
        }
      }
      if (vector.ipHeader && vector.espIpHeader) {
        // RFC 4303 section 3.1.1 transport mode without UDP: the header gets protocol 50, a new
        // total length and checksum, exactly as the RFC prints the post-encryption packet.
        const original = fromHex(vector.ipHeader + vector.payload);
        const withEsp = insertEsp(original, published);
        t.equal(toHex(withEsp.subarray(0, 20)), vector.espIpHeader, 'post-encryption IP header');
        t.equal(toHex(withEsp.subarray(20)), vector.packet);
      }
    });
  }
}
