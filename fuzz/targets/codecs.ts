import { decodeMessage as decodeV1, decodePayloads as decodeV1Payloads } from '../../src/ikev1/codec.js';
import { decodeMessage as decodeV2, decodePayloads as decodeV2Payloads } from '../../src/ikev2/codec.js';
import { DecodeError } from '../../src/wire/errors.js';
import { mutateIkeMessage } from '../mutate.js';
import { ikeSeeds } from '../seeds.js';
import { bytesTarget } from '../target.js';

/**
 * The two IKE codecs on their own: a datagram decoded as the engine decodes it, and an encrypted
 * body decoded as if it were the plaintext (the chain decoder that runs behind decryption).
 * DecodeError is the one typed error.
 */

export const ikev1Codec = bytesTarget({
  name: 'ikev1-codec',
  description: 'ISAKMP codec (src/ikev1/codec.ts): header, payload chains, SA/proposal/transform attributes',
  seeds: () => ikeSeeds(1),
  mutate: mutateIkeMessage,
  check: (input) => {
    const message = decodeV1(input);
    if (!message.payloads)
      decodeV1Payloads(message.body, message.header.nextPayload, { offset: 28, allowTrailing: true });
  },
  typed: (error) => error instanceof DecodeError,
});

export const ikev2Codec = bytesTarget({
  name: 'ikev2-codec',
  description: 'IKEv2 codec (src/ikev2/codec.ts): header, payloads, SK/SKF located, the inner chain decoder',
  seeds: () => ikeSeeds(2),
  mutate: mutateIkeMessage,
  check: (input) => {
    const message = decodeV2(input);
    if (message.encrypted) decodeV2Payloads(message.encrypted.body, message.encrypted.innerFirst, 32);
  },
  typed: (error) => error instanceof DecodeError,
});
