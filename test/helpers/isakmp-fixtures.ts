import type { Payload } from '../../src/ikev1/codec.js';
import { numberAttribute } from '../../src/ikev1/codec.js';

/** A main mode message 1 like a macOS client's: one proposal, several transforms, TV and TLV attributes. */
export const mainModeSa: Payload = {
  kind: 'sa',
  doi: 1,
  situation: 1,
  proposals: [
    {
      number: 1,
      protocolId: 1,
      spi: new Uint8Array(0),
      transforms: [
        {
          number: 1,
          transformId: 1,
          attributes: [
            { type: 1, value: 7 },
            { type: 14, value: 256 },
            { type: 2, value: 4 },
            { type: 3, value: 1 },
            { type: 4, value: 14 },
            { type: 11, value: 1 },
            numberAttribute(12, 28800),
          ],
        },
        {
          number: 2,
          transformId: 1,
          attributes: [
            { type: 1, value: 5 },
            { type: 2, value: 2 },
            { type: 3, value: 1 },
            { type: 4, value: 2 },
            { type: 11, value: 1 },
            numberAttribute(12, 86400),
          ],
        },
      ],
    },
  ],
};
