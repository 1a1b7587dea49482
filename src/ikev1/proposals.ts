import type { Suite } from '../core/proposal.js';
import {
  algorithmsOf,
  type DhAlgorithm,
  type EncryptionAlgorithm,
  type IntegrityAlgorithm,
  type PrfAlgorithm,
} from '../crypto/registry.js';
import { DecodeError } from '../wire/errors.js';
import { type Attribute, attributeNumber, numberAttribute, type Payload, type Transform } from './codec.js';
import {
  AuthMethod,
  DOI_IPSEC,
  KEY_IKE_TRANSFORM,
  LifeType,
  NotifyType,
  Phase1Attribute,
  Phase2Attribute,
  ProtocolId,
  SIT_IDENTITY_ONLY,
} from './constants.js';

/**
 * Suites to and from IKEv1 SA payloads: phase 1 transforms (RFC 2409 appendix A attributes) and
 * IPsec DOI ESP transforms (RFC 2407 section 4.5). A transform we cannot use is not an error:
 * it is skipped with the reason, and the reasons explain a NO_PROPOSAL_CHOSEN.
 */

type SaPayload = Extract<Payload, { kind: 'sa' }>;

export interface Lifetimes {
  readonly seconds?: number;
  readonly kilobytes?: number;
}

export interface Phase1Offer {
  readonly suite: Suite;
  readonly lifetime: Lifetimes;
  /** The transform as the peer sent it; the responder echoes it. */
  readonly transform: Transform;
}

export interface Phase2Offer {
  readonly proposalNumber: number;
  /** The peer's SPI: the SPI of the SA that carries traffic to the peer. */
  readonly spi: Uint8Array;
  readonly suite: Suite;
  readonly encapsulation: number;
  readonly lifetime: Lifetimes;
  readonly transform: Transform;
}

export interface Parsed<T> {
  readonly offers: T[];
  /** Why each unusable transform was skipped, for the log. */
  readonly skipped: string[];
}

// ---------------------------------------------------------------------------------------------
// Phase 1

/** Every offer we make is one proposal with one transform per suite, in preference order. */
function singleProposalSa(protocolId: number, spi: Uint8Array, transforms: Transform[]): SaPayload {
  return {
    kind: 'sa',
    doi: DOI_IPSEC,
    situation: SIT_IDENTITY_ONLY,
    proposals: [{ number: 1, protocolId, spi, transforms }],
  };
}

export function phase1Sa(suites: readonly Suite[], lifetimeSeconds: number): SaPayload {
  return singleProposalSa(
    ProtocolId.ISAKMP,
    new Uint8Array(0),
    suites.map((suite, i) => ({
      number: i + 1,
      transformId: KEY_IKE_TRANSFORM,
      attributes: phase1Attributes(suite, lifetimeSeconds),
    })),
  );
}

function phase1Attributes(suite: Suite, lifetimeSeconds: number): Attribute[] {
  const { encr, prf, dh } = suite;
  if (encr.ikev1?.phase1 === undefined || !prf?.ikev1 || dh?.ikev1 === undefined)
    throw new RangeError(`suite ${encr.name}/${prf?.name}/${dh?.name} has no IKEv1 phase 1 form`);
  const attributes: Attribute[] = [{ type: Phase1Attribute.ENCRYPTION_ALGORITHM, value: encr.ikev1.phase1 }];
  if (encr.ikev1.keyLengthAttribute)
    attributes.push({ type: Phase1Attribute.KEY_LENGTH, value: encr.keyLength * 8 });
  attributes.push(
    { type: Phase1Attribute.HASH_ALGORITHM, value: prf.ikev1.hash },
    { type: Phase1Attribute.AUTHENTICATION_METHOD, value: AuthMethod.PRE_SHARED_KEY },
    { type: Phase1Attribute.GROUP_DESCRIPTION, value: dh.ikev1 },
    { type: Phase1Attribute.LIFE_TYPE, value: LifeType.SECONDS },
    numberAttribute(Phase1Attribute.LIFE_DURATION, lifetimeSeconds),
  );
  return attributes;
}

export function parsePhase1Sa(sa: SaPayload): Parsed<Phase1Offer> {
  checkSituation(sa);
  const offers: Phase1Offer[] = [];
  const skipped: string[] = [];
  for (const proposal of sa.proposals) {
    if (proposal.protocolId !== ProtocolId.ISAKMP) {
      skipped.push(`proposal ${proposal.number}: protocol ${proposal.protocolId} is not ISAKMP`);
      continue;
    }
    for (const transform of proposal.transforms) {
      const result = phase1Transform(transform);
      if (typeof result === 'string') skipped.push(`transform ${transform.number}: ${result}`);
      else offers.push(result);
    }
  }
  return { offers, skipped };
}

function phase1Transform(transform: Transform): Phase1Offer | string {
  if (transform.transformId !== KEY_IKE_TRANSFORM)
    return `transform id ${transform.transformId} is not KEY_IKE`;
  let encrId: number | undefined;
  let keyBits: number | undefined;
  let prf: PrfAlgorithm | undefined;
  let integ: IntegrityAlgorithm | undefined;
  let dh: DhAlgorithm | undefined;
  const read = readAttributes(transform, PHASE1_LIFE, (type, value) => {
    switch (type) {
      case Phase1Attribute.ENCRYPTION_ALGORITHM:
        encrId = value;
        return undefined;
      case Phase1Attribute.KEY_LENGTH:
        keyBits = value;
        return undefined;
      case Phase1Attribute.HASH_ALGORITHM:
        prf = algorithmsOf('prf').find((row) => row.ikev1?.hash === value);
        if (!prf) return `hash algorithm ${value} is not supported`;
        integ = algorithmsOf('integ').find((row) => row.hash === prf!.hash);
        return undefined;
      case Phase1Attribute.AUTHENTICATION_METHOD:
        return value === AuthMethod.PRE_SHARED_KEY
          ? undefined
          : `authentication method ${authMethodName(value)}`;
      case Phase1Attribute.GROUP_DESCRIPTION:
        dh = dhGroupNumbered(value);
        return dh ? undefined : `DH group ${value} is not supported`;
      default:
        return `attribute ${type} is not supported`;
    }
  });
  if (typeof read === 'string') return read;
  if (encrId === undefined || !prf || !dh) return 'encryption, hash or group missing';
  const encr = findEncryption(encrId, keyBits, 'phase1');
  if (!encr) return `encryption ${encrId}${keyBits ? `/${keyBits} bits` : ''} is not supported`;
  return { suite: { encr, ...(integ && { integ }), prf, dh }, lifetime: read.lifetime, transform };
}

function authMethodName(value: number): string {
  const names: Record<number, string> = { 1: 'PSK', 2: 'DSS', 3: 'RSA', 64221: 'hybrid', 65001: 'XAUTH-PSK' };
  return `${names[value] ?? value} is not supported (only PSK)`;
}

// ---------------------------------------------------------------------------------------------
// Phase 2 (ESP)

export interface Phase2Params {
  readonly spi: Uint8Array;
  readonly encapsulation: number;
  readonly lifetime: Lifetimes;
}

export function phase2Sa(suites: readonly Suite[], params: Phase2Params): SaPayload {
  return singleProposalSa(
    ProtocolId.IPSEC_ESP,
    params.spi,
    suites.map((suite, i) => phase2Transform(i + 1, suite, params)),
  );
}

function phase2Transform(number: number, suite: Suite, params: Phase2Params): Transform {
  const { encr, integ, dh } = suite;
  if (encr.ikev1?.esp === undefined) throw new RangeError(`${encr.name} has no IKEv1 ESP transform id`);
  const attributes: Attribute[] = [...lifetimeAttributes(params.lifetime)];
  if (dh) {
    if (dh.ikev1 === undefined) throw new RangeError(`${dh.name} has no IKEv1 group number`);
    attributes.push({ type: Phase2Attribute.GROUP_DESCRIPTION, value: dh.ikev1 });
  }
  attributes.push({ type: Phase2Attribute.ENCAPSULATION_MODE, value: params.encapsulation });
  if (integ?.ikev1)
    attributes.push({ type: Phase2Attribute.AUTHENTICATION_ALGORITHM, value: integ.ikev1.esp });
  if (encr.ikev1.keyLengthAttribute)
    attributes.push({ type: Phase2Attribute.KEY_LENGTH, value: encr.keyLength * 8 });
  return { number, transformId: encr.ikev1.esp, attributes };
}

/** SA Life Type/Duration pairs, as phase 2 transforms and RESPONDER-LIFETIME carry them. */
export function lifetimeAttributes(lifetime: Lifetimes): Attribute[] {
  const attributes: Attribute[] = [];
  if (lifetime.seconds !== undefined) {
    attributes.push(
      { type: Phase2Attribute.SA_LIFE_TYPE, value: LifeType.SECONDS },
      numberAttribute(Phase2Attribute.SA_LIFE_DURATION, lifetime.seconds),
    );
  }
  if (lifetime.kilobytes !== undefined) {
    attributes.push(
      { type: Phase2Attribute.SA_LIFE_TYPE, value: LifeType.KILOBYTES },
      numberAttribute(Phase2Attribute.SA_LIFE_DURATION, lifetime.kilobytes),
    );
  }
  return attributes;
}

export function parsePhase2Sa(sa: SaPayload): Parsed<Phase2Offer> {
  checkSituation(sa);
  const offers: Phase2Offer[] = [];
  const skipped: string[] = [];
  const numbers = new Set(sa.proposals.map((p) => p.number));
  for (const number of numbers) {
    // Proposals sharing a number form one bundle (RFC 2408 section 4.2): we do ESP alone.
    const bundle = sa.proposals.filter((p) => p.number === number);
    if (bundle.length !== 1 || bundle[0]!.protocolId !== ProtocolId.IPSEC_ESP) {
      skipped.push(`proposal ${number}: only a single ESP proposal is supported (no AH, no IPComp)`);
      continue;
    }
    const proposal = bundle[0]!;
    if (proposal.spi.length !== 4) {
      skipped.push(`proposal ${number}: SPI of ${proposal.spi.length} bytes`);
      continue;
    }
    for (const transform of proposal.transforms) {
      const result = espTransform(transform);
      if (typeof result === 'string')
        skipped.push(`proposal ${number} transform ${transform.number}: ${result}`);
      else offers.push({ proposalNumber: number, spi: proposal.spi, transform, ...result });
    }
  }
  return { offers, skipped };
}

function espTransform(
  transform: Transform,
): { suite: Suite; encapsulation: number; lifetime: Lifetimes } | string {
  let keyBits: number | undefined;
  let integ: IntegrityAlgorithm | undefined;
  let dh: DhAlgorithm | undefined;
  let encapsulation: number | undefined;
  const read = readAttributes(transform, PHASE2_LIFE, (type, value) => {
    switch (type) {
      case Phase2Attribute.GROUP_DESCRIPTION:
        dh = dhGroupNumbered(value);
        return dh ? undefined : `DH group ${value} is not supported`;
      case Phase2Attribute.ENCAPSULATION_MODE:
        encapsulation = value;
        return undefined;
      case Phase2Attribute.AUTHENTICATION_ALGORITHM:
        integ = algorithmsOf('integ').find((row) => row.ikev1?.esp === value);
        return integ ? undefined : `authentication algorithm ${value} is not supported`;
      case Phase2Attribute.KEY_LENGTH:
        keyBits = value;
        return undefined;
      default:
        return `attribute ${type} is not supported`;
    }
  });
  if (typeof read === 'string') return read;
  const encr = findEncryption(transform.transformId, keyBits, 'esp');
  if (!encr)
    return `ESP transform ${transform.transformId}${keyBits ? `/${keyBits} bits` : ''} is not supported`;
  if (encr.icvLength === 0 && !integ) return `${encr.name} without an authentication algorithm`;
  if (encr.icvLength > 0 && integ) return `${encr.name} is an AEAD and takes no authentication algorithm`;
  return {
    suite: { encr, ...(integ && { integ }), ...(dh && { dh }) },
    encapsulation: encapsulation ?? 0,
    lifetime: read.lifetime,
  };
}

// ---------------------------------------------------------------------------------------------
// Shared

function checkSituation(sa: SaPayload): void {
  if (sa.doi !== DOI_IPSEC) throw new DecodeError(`SA DOI ${sa.doi}`, 0, NotifyType.DOI_NOT_SUPPORTED);
  if (sa.situation !== SIT_IDENTITY_ONLY)
    throw new DecodeError(`SA situation ${sa.situation}`, 0, NotifyType.SITUATION_NOT_SUPPORTED);
  if (sa.proposals.length === 0)
    throw new DecodeError('SA without proposals', 0, NotifyType.BAD_PROPOSAL_SYNTAX);
}

/** AES needs its key length; RFC 3602 section 5 makes the attribute mandatory, we default to 128 as others do. */
function findEncryption(
  id: number,
  keyBits: number | undefined,
  use: 'phase1' | 'esp',
): EncryptionAlgorithm | undefined {
  return algorithmsOf('encr').find((row) => {
    const rowId = use === 'phase1' ? row.ikev1?.phase1 : row.ikev1?.esp;
    if (rowId !== id) return false;
    return !row.ikev1!.keyLengthAttribute || row.keyLength * 8 === (keyBits ?? 128);
  });
}

const PHASE1_LIFE = { type: Phase1Attribute.LIFE_TYPE, duration: Phase1Attribute.LIFE_DURATION };
const PHASE2_LIFE = { type: Phase2Attribute.SA_LIFE_TYPE, duration: Phase2Attribute.SA_LIFE_DURATION };

/**
 * Walks a transform's attributes: each must be a number; life type/duration pairs are collected,
 * the rest go to `each`, which returns why the transform is unusable, or undefined.
 */
function readAttributes(
  transform: Transform,
  life: { readonly type: number; readonly duration: number },
  each: (type: number, value: number) => string | undefined,
): { lifetime: Lifetimes } | string {
  const lifetime = new LifetimeReader();
  for (const attribute of transform.attributes) {
    const value = attributeNumber(attribute);
    if (value === undefined) return `attribute ${attribute.type} is too long`;
    const isLife = attribute.type === life.type || attribute.type === life.duration;
    const problem = isLife ? lifetime.add(attribute.type === life.type, value) : each(attribute.type, value);
    if (problem) return problem;
  }
  return { lifetime: lifetime.result() };
}

function dhGroupNumbered(value: number): DhAlgorithm | undefined {
  return algorithmsOf('dh').find((row) => row.ikev1 === value);
}

/** The lifetimes in a bare attribute list (RESPONDER-LIFETIME); unknown attributes are ignored. */
export function readLifetimes(attributes: readonly Attribute[]): Lifetimes {
  const reader = new LifetimeReader();
  for (const attribute of attributes) {
    const value = attributeNumber(attribute);
    if (value === undefined) continue;
    if (attribute.type === Phase2Attribute.SA_LIFE_TYPE) reader.add(true, value);
    else if (attribute.type === Phase2Attribute.SA_LIFE_DURATION) reader.add(false, value);
  }
  return reader.result();
}

/** Life type/duration attributes come in pairs, the type first (RFC 2407 section 4.5). */
class LifetimeReader {
  #type: number | undefined;
  #seconds: number | undefined;
  #kilobytes: number | undefined;

  add(isType: boolean, value: number): string | undefined {
    if (isType) {
      if (value !== LifeType.SECONDS && value !== LifeType.KILOBYTES) return `life type ${value}`;
      this.#type = value;
      return undefined;
    }
    if (this.#type === undefined) return 'life duration without a life type';
    if (this.#type === LifeType.SECONDS) this.#seconds = value;
    else this.#kilobytes = value;
    this.#type = undefined;
    return undefined;
  }

  result(): Lifetimes {
    return {
      ...(this.#seconds !== undefined && { seconds: this.#seconds }),
      ...(this.#kilobytes !== undefined && { kilobytes: this.#kilobytes }),
    };
  }
}
