import { explainMismatch, formatSuite, type ProposalSet, type Suite } from '../core/proposal.js';
import {
  type DhAlgorithm,
  type EncryptionAlgorithm,
  findIkev2,
  type IntegrityAlgorithm,
  type PrfAlgorithm,
} from '../crypto/registry.js';
import type { Attribute as AttributeValue, Proposal, Transform } from './codec.js';
import { Attribute, EsnId, ProtocolId, TransformType } from './constants.js';

/**
 * Suites to and from IKEv2 SA payloads (RFC 7296 sections 2.7, 3.3). We offer what each
 * configured proposal names as one proposal of several transforms per type, as strongSwan does;
 * as a responder we choose by our own preference the first of our suites that one of the peer's
 * proposals allows, and answer with exactly one transform of each type, as the peer sent it.
 */

export type SaUse = 'ike' | 'esp';

/** A suite as a proposal set of one algorithm per kind (for policies without `offers`). */
function suiteAsSet(suite: Suite): ProposalSet {
  return {
    encr: [suite.encr],
    integ: suite.integ ? [suite.integ] : [],
    prf: suite.prf ? [suite.prf] : [],
    dh: suite.dh ? [suite.dh] : [],
  };
}

function encrTransform(encr: EncryptionAlgorithm): Transform {
  return {
    type: TransformType.ENCR,
    id: encr.ikev2.id,
    attributes: encr.ikev2.keyLengthAttribute
      ? [{ type: Attribute.KEY_LENGTH, value: encr.keyLength * 8 }]
      : [],
  };
}

/**
 * Our proposals, numbered from 1. `sets` are the policy's proposals as written; for ESP, `pfs`
 * adds the DH group to each (RFC 7296 2.17: KE in CREATE_CHILD_SA) and ESN is always "no ESN".
 */
export function offerProposals(
  use: SaUse,
  sets: readonly ProposalSet[],
  spi: Uint8Array,
  pfs?: readonly DhAlgorithm[],
): Proposal[] {
  return sets.map((set, index) => {
    const transforms: Transform[] = set.encr.map(encrTransform);
    if (use === 'ike')
      for (const prf of set.prf)
        transforms.push({ type: TransformType.PRF, id: prf.ikev2.id, attributes: [] });
    for (const integ of set.integ)
      transforms.push({ type: TransformType.INTEG, id: integ.ikev2.id, attributes: [] });
    const groups = use === 'ike' ? set.dh : (pfs ?? []);
    for (const dh of groups) transforms.push({ type: TransformType.DH, id: dh.ikev2, attributes: [] });
    if (use === 'esp') transforms.push({ type: TransformType.ESN, id: EsnId.NONE, attributes: [] });
    return {
      number: index + 1,
      protocolId: use === 'ike' ? ProtocolId.IKE : ProtocolId.ESP,
      spi,
      transforms,
    };
  });
}

/** The proposal sets of a policy: as written, or one per suite. */
export function policySets(policy: {
  readonly offers?: readonly ProposalSet[];
  readonly proposals: readonly Suite[];
}): readonly ProposalSet[] {
  return policy.offers ?? policy.proposals.map(suiteAsSet);
}

/** What a peer's proposal allows, per transform type; transforms we cannot use are skipped with why. */
export interface Allowed {
  readonly encr: { algorithm: EncryptionAlgorithm; transform: Transform }[];
  readonly prf: { algorithm: PrfAlgorithm; transform: Transform }[];
  readonly integ: { algorithm: IntegrityAlgorithm; transform: Transform }[];
  readonly dh: { algorithm: DhAlgorithm; transform: Transform }[];
  readonly esn: Transform[];
  /** A DH transform NONE was offered: the peer accepts no PFS. */
  dhNone?: Transform;
  readonly skipped: string[];
}

export function allowed(proposal: Proposal): Allowed {
  const out: Allowed = { encr: [], prf: [], integ: [], dh: [], esn: [], skipped: [] };
  for (const transform of proposal.transforms) {
    const keyBits = keyLength(transform.attributes);
    const unknownAttribute = transform.attributes.some((a) => a.type !== Attribute.KEY_LENGTH);
    // RFC 7296 3.3.6: a transform with an attribute we do not understand is not usable.
    if (unknownAttribute) {
      out.skipped.push(`transform type ${transform.type} id ${transform.id} with an unknown attribute`);
      continue;
    }
    switch (transform.type) {
      case TransformType.ENCR: {
        const algorithm = findIkev2('encr', transform.id, keyBits);
        if (algorithm) out.encr.push({ algorithm, transform });
        else out.skipped.push(`encryption ${transform.id}${keyBits ? `/${keyBits}` : ''}`);
        break;
      }
      case TransformType.PRF: {
        const algorithm = findIkev2('prf', transform.id);
        if (algorithm) out.prf.push({ algorithm, transform });
        else out.skipped.push(`PRF ${transform.id}`);
        break;
      }
      case TransformType.INTEG: {
        if (transform.id === 0) break; // NONE, with an AEAD cipher
        const algorithm = findIkev2('integ', transform.id);
        if (algorithm) out.integ.push({ algorithm, transform });
        else out.skipped.push(`integrity ${transform.id}`);
        break;
      }
      case TransformType.DH: {
        if (transform.id === 0) {
          out.dhNone = transform; // NONE: no PFS is fine too
          break;
        }
        const algorithm = findIkev2('dh', transform.id);
        if (algorithm) out.dh.push({ algorithm, transform });
        else out.skipped.push(`DH group ${transform.id}`);
        break;
      }
      case TransformType.ESN:
        out.esn.push(transform);
        break;
      default:
        out.skipped.push(`transform type ${transform.type}`);
    }
  }
  return out;
}

function keyLength(attributes: readonly AttributeValue[]): number | undefined {
  const attribute = attributes.find((a) => a.type === Attribute.KEY_LENGTH);
  return attribute && 'value' in attribute ? attribute.value : undefined;
}

/** The peer's proposal allows `suite` (for ESP with `dh` only when it offers that group; ESN off). */
function pick(use: SaUse, suite: Suite, allows: Allowed): Transform[] | undefined {
  const encr = allows.encr.find((e) => e.algorithm === suite.encr);
  if (!encr) return undefined;
  const transforms: Transform[] = [encr.transform];
  if (use === 'ike') {
    const prf = allows.prf.find((p) => p.algorithm === suite.prf);
    if (!prf) return undefined;
    transforms.push(prf.transform);
  }
  if (suite.integ) {
    const integ = allows.integ.find((i) => i.algorithm === suite.integ);
    if (!integ) return undefined;
    transforms.push(integ.transform);
  } else if (allows.integ.length > 0 && !suite.encr.icvLength) {
    return undefined;
  }
  if (suite.dh) {
    const dh = allows.dh.find((d) => d.algorithm === suite.dh);
    if (!dh) return undefined;
    transforms.push(dh.transform);
  } else if (use === 'ike') {
    return undefined; // an IKE SA needs a group
  } else if (allows.dh.length > 0) {
    // A child offered with groups but without NONE requires PFS (RFC 7296 3.3.3).
    if (!allows.dhNone) return undefined;
    transforms.push(allows.dhNone);
  }
  if (use === 'esp') {
    const noEsn = allows.esn.find((t) => t.id === EsnId.NONE);
    if (allows.esn.length > 0 && !noEsn) return undefined;
    if (noEsn) transforms.push(noEsn);
  }
  return transforms;
}

export interface Choice {
  readonly suite: Suite;
  /** Our answer: the peer's proposal number, one transform of each type as it sent them. */
  readonly proposal: Proposal;
}

/**
 * The responder's choice: the first of `ours` (in our order) that one of the peer's proposals of
 * protocol `use` allows; undefined when none does.
 */
export function choose(
  use: SaUse,
  ours: readonly Suite[],
  offered: readonly Proposal[],
  spi: Uint8Array,
): Choice | undefined {
  const protocolId = use === 'ike' ? ProtocolId.IKE : ProtocolId.ESP;
  const candidates = offered
    .filter((p) => p.protocolId === protocolId)
    .map((p) => ({ p, allows: allowed(p) }));
  for (const suite of ours) {
    for (const { p, allows } of candidates) {
      const transforms = pick(use, suite, allows);
      if (transforms) return { suite, proposal: { number: p.number, protocolId, spi, transforms } };
    }
  }
  return undefined;
}

/** The suite a responder chose, when it is one we offered (exactly one transform per type). */
export function chosenSuite(
  use: SaUse,
  reply: readonly Proposal[],
  ours: readonly Suite[],
): { suite: Suite; spi: Uint8Array } | undefined {
  if (reply.length !== 1) return undefined;
  const proposal = reply[0]!;
  const allows = allowed(proposal);
  if (
    allows.skipped.length ||
    allows.encr.length !== 1 ||
    allows.prf.length > 1 ||
    allows.integ.length > 1 ||
    allows.dh.length > 1
  )
    return undefined;
  const suite = ours.find(
    (s) =>
      s.encr === allows.encr[0]!.algorithm &&
      (use === 'esp' || s.prf === allows.prf[0]?.algorithm) &&
      s.integ === allows.integ[0]?.algorithm &&
      s.dh === allows.dh[0]?.algorithm,
  );
  return suite && { suite, spi: proposal.spi };
}

/** The suites of every proposal the peer offered, for "no proposal chosen" explanations. */
export function offeredSuites(use: SaUse, offered: readonly Proposal[]): Suite[] {
  const suites: Suite[] = [];
  for (const proposal of offered) {
    const a = allowed(proposal);
    for (const encr of a.encr)
      for (const integ of a.integ.length ? a.integ : [undefined])
        for (const prf of use === 'ike' ? a.prf : [undefined])
          for (const dh of a.dh.length ? a.dh : [undefined])
            suites.push({
              encr: encr.algorithm,
              ...(integ && { integ: integ.algorithm }),
              ...(prf && { prf: prf.algorithm }),
              ...(dh && { dh: dh.algorithm }),
            });
  }
  return suites;
}

/**
 * Why nothing the peer offered is acceptable, as IKEv1 says it: what the peer offers, what we
 * accept, and the closest pair with what to allow in which policy to make them match.
 */
export function noProposalReason(
  use: SaUse,
  policies: readonly { readonly what: string; readonly suites: readonly Suite[] }[],
  offered: readonly Proposal[],
): string {
  const theirs = offeredSuites(use, offered);
  const ours = [...new Set(policies.flatMap((policy) => policy.suites).map(formatSuite))];
  const advice = explainMismatch(policies, theirs);
  return `no proposal chosen: peer offers ${theirs.map(formatSuite).join(', ') || 'nothing usable'}; we accept ${ours.join(', ')}${advice ? `; ${advice}` : ''}`;
}
