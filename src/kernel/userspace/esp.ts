import type { Suite } from '../../core/proposal.js';
import type { CryptoProvider } from '../../crypto/provider.js';
import { asBuffer } from '../../wire/bytes.js';
import {
  createEspTransform,
  type EspKeys,
  type EspTransform,
  type EspTransformImplementation,
} from './esp-crypto.js';
import { IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_NONE } from './packet.js';
import { ReplayWindow, SequenceCounter } from './replay.js';

/**
 * ESP (RFC 4303) for one SA and one direction, without I/O: `EspOutbound.seal` turns a payload
 * (an inner IP packet in tunnel mode, upper-layer data in transport mode) into an ESP packet,
 * `EspInbound.open` checks and takes one apart. Sequence numbers are 32-bit (no ESN).
 */

/** What to build an SA direction from. */
export interface EspSaParams {
  readonly spi: number;
  /** encr, and integ for non-AEAD ciphers. */
  readonly suite: Pick<Suite, 'encr' | 'integ'>;
  readonly keys: EspKeys;
}

export interface EspOptions {
  /** `node` (node:crypto directly) when the provider is node's, else `provider`. */
  readonly implementation?: EspTransformImplementation;
}

/** Why an inbound packet was dropped. */
export type EspDropCause =
  /** Shorter than header, IV, one block and ICV, or ciphertext not a whole number of blocks. */
  | 'truncated'
  /** A duplicate, or left of the anti-replay window, or sequence number 0. */
  | 'replay'
  /** The ICV (HMAC or AEAD tag) does not verify. */
  | 'icv'
  /** Pad length beyond the plaintext, or padding other than 1, 2, 3... (RFC 4303 section 2.4). */
  | 'padding'
  /** A next header the SA cannot carry (tunnel mode: only IPv4 and IPv6). */
  | 'next-header'
  /** Next header 59: a dummy packet (section 2.6), discarded silently. */
  | 'dummy';

export type EspOpenResult =
  | {
      readonly ok: true;
      readonly sequence: number;
      readonly nextHeader: number;
      /** A view into the decrypted plaintext. */
      readonly payload: Buffer;
    }
  | { readonly ok: false; readonly cause: EspDropCause };

/** The outbound counter ran out (2^32 - 1 packets): the SA must be replaced. */
export class SequenceExhaustedError extends Error {
  override readonly name = 'SequenceExhaustedError';
  constructor(readonly spi: number) {
    super(`ESP SA ${spi.toString(16).padStart(8, '0')} sent 2^32 - 1 packets and must be rekeyed`);
  }
}

const HEADER = 8;

/**
 * Any 32-bit value: RFC 4303 section 2.1 reserves 1-255 and keeps 0 off the wire, which is the
 * SPI allocator's business (draft-mcgrew-gcm-test-01 case #4 uses SPI 0).
 */
function checkSpi(spi: number): void {
  if (!Number.isInteger(spi) || spi < 0 || spi > 0xffffffff) throw new RangeError(`bad ESP SPI ${spi}`);
}

export class EspOutbound {
  readonly spi: number;
  readonly #transform: EspTransform;
  readonly #sequence: SequenceCounter;
  /** Payload bytes and packets sealed. */
  bytes = 0;
  packets = 0;

  constructor(
    provider: CryptoProvider,
    params: EspSaParams,
    options: EspOptions & { readonly firstSequence?: number } = {},
  ) {
    checkSpi(params.spi);
    this.spi = params.spi;
    this.#transform = createEspTransform(provider, params.suite, params.keys, options.implementation);
    this.#sequence = new SequenceCounter(options.firstSequence);
  }

  /** The sequence number the next packet will carry (2^32 once exhausted). */
  get nextSequence(): number {
    return this.#sequence.peek;
  }

  get exhausted(): boolean {
    return this.#sequence.exhausted;
  }

  /** The ESP packet's length for a payload of `length` bytes (no TFC padding). */
  sealedLength(length: number): number {
    const t = this.#transform;
    const plain = length + 2;
    return HEADER + t.ivLength + plain + ((t.alignment - (plain % t.alignment)) % t.alignment) + t.icvLength;
  }

  /**
   * One ESP packet around `payload`: SPI, the next sequence number, IV, the encrypted payload,
   * padding 1, 2, 3..., pad length and next header (section 2.4), then the ICV. Throws
   * SequenceExhaustedError after 2^32 - 1 packets. `iv` is for known-answer tests only.
   */
  seal(payload: Uint8Array, nextHeader: number, options?: { readonly iv?: Uint8Array }): Buffer {
    const seq = this.#sequence.next();
    if (seq === undefined) throw new SequenceExhaustedError(this.spi);
    const t = this.#transform;
    const packet = Buffer.allocUnsafe(this.sealedLength(payload.length));
    packet.writeUInt32BE(this.spi, 0);
    packet.writeUInt32BE(seq, 4);
    const start = HEADER + t.ivLength;
    packet.set(payload, start);
    const trailer = packet.length - t.icvLength - 2;
    const padLength = trailer - start - payload.length;
    for (let i = 1; i <= padLength; i++) packet[start + payload.length + i - 1] = i;
    packet[trailer] = padLength;
    packet[trailer + 1] = nextHeader;
    t.seal(packet, seq, options?.iv);
    this.bytes += payload.length;
    this.packets++;
    return packet;
  }
}

const FAIL = {
  truncated: { ok: false, cause: 'truncated' },
  replay: { ok: false, cause: 'replay' },
  icv: { ok: false, cause: 'icv' },
  padding: { ok: false, cause: 'padding' },
  'next-header': { ok: false, cause: 'next-header' },
  dummy: { ok: false, cause: 'dummy' },
} as const satisfies Record<EspDropCause, EspOpenResult>;

export class EspInbound {
  readonly spi: number;
  readonly mode: 'tunnel' | 'transport' | undefined;
  readonly #transform: EspTransform;
  readonly #replay: ReplayWindow;
  readonly #minimum: number;
  readonly #block: number;
  /** Payload bytes and packets accepted. */
  bytes = 0;
  packets = 0;

  /**
   * `mode` adds the next-header check: tunnel mode carries only IPv4 (4) and IPv6 (41). Without
   * it any next header but 59 is returned.
   */
  constructor(
    provider: CryptoProvider,
    params: EspSaParams,
    options: EspOptions & { readonly replayWindow?: number; readonly mode?: 'tunnel' | 'transport' } = {},
  ) {
    checkSpi(params.spi);
    this.spi = params.spi;
    this.mode = options.mode;
    this.#transform = createEspTransform(provider, params.suite, params.keys, options.implementation);
    this.#replay = new ReplayWindow(options.replayWindow);
    const t = this.#transform;
    this.#block = t.alignment;
    this.#minimum = HEADER + t.ivLength + t.alignment + t.icvLength;
  }

  /** Highest sequence number accepted so far. */
  get highestSequence(): number {
    return this.#replay.top;
  }

  /**
   * Checks in the order of RFC 4303 section 3.4: length; the replay pre-check (duplicates and
   * packets left of the window cost no ICV computation); the ICV; only then the window moves
   * (section 3.4.3); then the trailer (pad length and padding, section 2.4) and next header.
   */
  open(datagram: Uint8Array): EspOpenResult {
    const packet = asBuffer(datagram);
    const t = this.#transform;
    if (packet.length < this.#minimum) return FAIL.truncated;
    if ((packet.length - HEADER - t.ivLength - t.icvLength) % this.#block !== 0) return FAIL.truncated;
    const seq = packet.readUInt32BE(4);
    if (this.#replay.check(seq) !== 'new') return FAIL.replay;
    const plaintext = t.open(packet);
    if (plaintext === undefined) return FAIL.icv;
    this.#replay.accept(seq);
    const length = plaintext.length;
    const padLength = plaintext[length - 2]!;
    const nextHeader = plaintext[length - 1]!;
    const payloadLength = length - 2 - padLength;
    if (payloadLength < 0) return FAIL.padding;
    for (let i = 0; i < padLength; i++) if (plaintext[payloadLength + i] !== i + 1) return FAIL.padding;
    if (nextHeader === IPPROTO_NONE) return FAIL.dummy;
    if (this.mode === 'tunnel' && nextHeader !== IPPROTO_IPIP && nextHeader !== IPPROTO_IPV6) {
      return FAIL['next-header'];
    }
    this.bytes += payloadLength;
    this.packets++;
    return { ok: true, sequence: seq, nextHeader, payload: plaintext.subarray(0, payloadLength) };
  }
}
