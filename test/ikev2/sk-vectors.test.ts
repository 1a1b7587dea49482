import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createCryptoProvider, PROVIDER_NAMES } from '../../src/crypto/index.js';
import type { CryptoProvider } from '../../src/crypto/provider.js';
import { algorithm } from '../../src/crypto/registry.js';
import { encryptionOf } from '../../src/crypto/transforms.js';
import { decodeMessage, decodePayloads } from '../../src/ikev2/codec.js';
import { HeaderFlag } from '../../src/ikev2/constants.js';
import { IntegrityFailure, SkProtection } from '../../src/ikev2/protection.js';
import { fromHex, toHex } from '../../src/wire/bytes.js';

/**
 * Published IKEv2 messages with an Encrypted payload (vectors/ikev2/): sealing the payloads with
 * the published IV gives the published message byte for byte, the other end opens it to the same
 * payloads, and a flipped bit anywhere fails the integrity check before anything is decoded.
 */

interface SkVector {
  name: string;
  encryption: string;
  sender: 'initiator' | 'responder';
  keymat: string;
  iv: string;
  spiI: string;
  spiR: string;
  exchangeType: number;
  messageId: number;
  plaintext: string;
  message: string;
}

const DIR = join(import.meta.dirname, '../../vectors/ikev2');

/** A provider whose random bytes are the published IV: everything else is the real one's. */
function withIv(provider: CryptoProvider, iv: Uint8Array): CryptoProvider {
  return new Proxy(provider, {
    get(target, property) {
      if (property === 'randomBytes') return () => iv.slice();
      const value = Reflect.get(target, property) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

for (const file of readdirSync(DIR).filter((name) => name.endsWith('.json'))) {
  const { source, kind, vectors } = JSON.parse(readFileSync(join(DIR, file), 'utf8')) as {
    source: string;
    kind: string;
    vectors: SkVector[];
  };
  t.test(file, async (t) => {
    t.equal(kind, 'ikev2-sk');
    t.ok(source.length > 20, 'names its source');
    for (const providerName of PROVIDER_NAMES) {
      const provider = createCryptoProvider(providerName);
      for (const v of vectors) {
        const encryption = encryptionOf(provider, algorithm('encr', v.encryption));
        const other = new Uint8Array(fromHex(v.keymat).length).fill(0xee);
        const keys = (mine: Uint8Array) => ({
          SK_ei: v.sender === 'initiator' ? mine : other,
          SK_er: v.sender === 'responder' ? mine : other,
          SK_ai: new Uint8Array(0),
          SK_ar: new Uint8Array(0),
        });
        const initiatorSends = v.sender === 'initiator';
        const sender = new SkProtection(
          withIv(provider, fromHex(v.iv)),
          encryption,
          undefined,
          keys(fromHex(v.keymat)),
          initiatorSends,
        );
        const receiver = new SkProtection(
          provider,
          encryption,
          undefined,
          keys(fromHex(v.keymat)),
          !initiatorSends,
        );
        // The payloads inside: the published plaintext less its padding, decoded.
        const message = fromHex(v.message);
        const decoded = decodeMessage(message);
        const plaintext = fromHex(v.plaintext);
        const chain = plaintext.subarray(0, plaintext.length - 1 - plaintext[plaintext.length - 1]!);
        const inner = decodePayloads(chain, decoded.encrypted!.innerFirst);
        const sealed = sender.seal(
          {
            spiI: fromHex(v.spiI),
            spiR: fromHex(v.spiR),
            exchangeType: v.exchangeType,
            flags: initiatorSends ? HeaderFlag.INITIATOR : 0,
            messageId: v.messageId,
          },
          inner,
        );
        t.equal(toHex(sealed), v.message, `${providerName} ${v.name}: sealed byte for byte`);
        const opened = receiver.open(message, decoded.encrypted!);
        t.equal(toHex(opened.chain), toHex(chain), `${providerName}: the inner chain, padding removed`);
        t.same(opened.payloads, inner, `${providerName}: the same payloads`);
        // SPIs, flags, message ID, the SK header, IV, ciphertext, tag (not the lengths: those fail decoding).
        for (const at of [0, 19, 23, 28, 40, 50, message.length - 1]) {
          const forged = message.slice();
          forged[at]! ^= 0x01;
          t.throws(
            () => receiver.open(forged, decodeMessage(forged).encrypted!),
            IntegrityFailure,
            `${providerName}: a flipped bit at byte ${at} fails the check`,
          );
        }
      }
    }
  });
}
