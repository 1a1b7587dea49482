import { inspect } from 'node:util';
import { bytesToBigInt, fromHex } from '../wire/bytes.js';
import { CryptoError, InvalidLengthError, InvalidPublicValueError } from './errors.js';
import { type ModpGroupName, modpPrime } from './modp.js';
import type { CryptoProvider, RawKeyPair } from './provider.js';
import { type DhAlgorithm, type DhGroupName, dhGroup } from './registry.js';

/**
 * One side of a Diffie-Hellman exchange: our public value for the KE payload, and the shared
 * secret from the peer's. The private key lives in the provider's closure, never on this object.
 */
export class KeyExchange {
  readonly group: DhAlgorithm;
  readonly #pair: RawKeyPair;

  constructor(provider: CryptoProvider, group: DhGroupName | DhAlgorithm, privateKey?: Uint8Array) {
    this.group = typeof group === 'string' ? dhGroup(group) : group;
    this.#pair = provider.keyPair(this.group, privateKey);
  }

  /** Our value for the KE payload (read from the provider: it may make it only when asked). */
  get publicKey(): Uint8Array {
    return this.#pair.publicKey;
  }

  /** The private value, for a computation finished elsewhere (dh-job.ts); never logged. */
  get privateKey(): Uint8Array {
    return this.#pair.privateKey;
  }

  /** Validates the peer's public value and returns g^xy in IKE's form; throws InvalidPublicValueError. */
  computeSharedSecret(peerPublic: Uint8Array): Uint8Array {
    validatePeerPublic(this.group, peerPublic);
    let shared: Uint8Array;
    try {
      shared = this.#pair.sharedSecret(peerPublic);
    } catch (error) {
      if (error instanceof CryptoError) throw error;
      throw new InvalidPublicValueError(
        this.group.name,
        `rejected by the provider (${(error as Error).message})`,
      );
    }
    // RFC 7748 section 6.1 / RFC 8031 section 2: a low-order point yields an all-zero secret.
    if (shared.every((byte) => byte === 0))
      throw new InvalidPublicValueError(this.group.name, 'shared secret is all zero');
    return shared;
  }

  toString(): string {
    return `KeyExchange(${this.group.name})`;
  }

  toJSON(): object {
    return { group: this.group.name };
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** Short-Weierstrass parameters (a = -3) of the ECP groups, from RFC 5903 sections 3.1 and 3.2. */
const ECP_CURVES: Partial<Record<DhGroupName, { p: bigint; b: bigint }>> = {
  ecp256: {
    p: bytesToBigInt(fromHex('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff')),
    b: bytesToBigInt(fromHex('5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b')),
  },
  ecp384: {
    p: bytesToBigInt(
      fromHex(
        'fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff',
      ),
    ),
    b: bytesToBigInt(
      fromHex(
        'b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef',
      ),
    ),
  },
};

export function ecpCurveParameters(group: DhGroupName): { p: bigint; b: bigint } | undefined {
  return ECP_CURVES[group];
}

/**
 * The checks of RFC 6989 section 2 (MODP: 1 < y < p-1; ECP: coordinates in range and on the curve),
 * and the exact KE payload length every group requires.
 */
export function validatePeerPublic(group: DhAlgorithm, value: Uint8Array): void {
  if (value.length !== group.publicLength) {
    throw new InvalidPublicValueError(
      group.name,
      new InvalidLengthError('public value', String(group.publicLength), value.length).message,
    );
  }
  if (group.family === 'modp') {
    const p = modpPrime(group.name as ModpGroupName);
    const y = bytesToBigInt(value);
    if (y <= 1n || y >= p - 1n) throw new InvalidPublicValueError(group.name, 'not in the range 1 < y < p-1');
  } else if (group.family === 'ecp') {
    const { p, b } = ECP_CURVES[group.name]!;
    const half = group.publicLength / 2;
    const x = bytesToBigInt(value.subarray(0, half));
    const y = bytesToBigInt(value.subarray(half));
    if (x >= p || y >= p)
      throw new InvalidPublicValueError(group.name, 'coordinate not below the field prime');
    const rhs = (((x * x) % p) * x - 3n * x + b) % p;
    if ((y * y - rhs) % p !== 0n) throw new InvalidPublicValueError(group.name, 'point is not on the curve');
  }
}
