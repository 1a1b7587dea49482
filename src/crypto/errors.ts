/** Typed errors of the crypto layer. Engines map them to notifies; none carries key material. */

export class CryptoError extends Error {
  constructor(
    readonly code:
      'UNSUPPORTED_ALGORITHM' | 'INVALID_PUBLIC_VALUE' | 'INTEGRITY_CHECK_FAILED' | 'INVALID_LENGTH',
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The provider has no implementation of this algorithm (noble has no 3DES, for instance). */
export class UnsupportedAlgorithmError extends CryptoError {
  constructor(
    readonly algorithm: string,
    readonly provider: string,
    reason = 'not implemented',
  ) {
    super(
      'UNSUPPORTED_ALGORITHM',
      `${algorithm} is not available in the '${provider}' crypto provider: ${reason}`,
    );
  }
}

/** A peer's Diffie-Hellman public value failed validation (RFC 6989 checks), or produced a degenerate secret. */
export class InvalidPublicValueError extends CryptoError {
  constructor(
    readonly group: string,
    readonly reason: string,
  ) {
    super('INVALID_PUBLIC_VALUE', `invalid ${group} public value: ${reason}`);
  }
}

/** An AEAD tag or an integrity checksum did not verify. */
export class IntegrityCheckError extends CryptoError {
  constructor(algorithm: string) {
    super('INTEGRITY_CHECK_FAILED', `${algorithm}: integrity check failed`);
  }
}

export class InvalidLengthError extends CryptoError {
  constructor(what: string, expected: string, actual: number) {
    super('INVALID_LENGTH', `${what}: expected ${expected} bytes, got ${actual}`);
  }
}
