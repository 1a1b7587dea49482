import {
  algorithmsOf,
  type DhAlgorithm,
  type EncryptionAlgorithm,
  findAlgorithm,
  type IntegrityAlgorithm,
  type PrfAlgorithm,
} from '../crypto/registry.js';

/**
 * Proposals as configured and negotiated, independent of IKE version. A configured proposal is
 * strongSwan's keyword string ("aes256-sha256-modp2048", "aes128-aes256-sha1-modp1024-modp2048");
 * it lists one or more algorithms of each kind, and expands into suites: single combinations,
 * which is what IKEv1 transforms carry and what negotiation selects.
 */

export interface ProposalSet {
  readonly encr: readonly EncryptionAlgorithm[];
  readonly integ: readonly IntegrityAlgorithm[];
  readonly prf: readonly PrfAlgorithm[];
  readonly dh: readonly DhAlgorithm[];
}

/** One combination of algorithms. `integ` is absent for AEADs, `dh` for ESP without PFS. */
export interface Suite {
  readonly encr: EncryptionAlgorithm;
  readonly integ?: IntegrityAlgorithm;
  readonly prf?: PrfAlgorithm;
  readonly dh?: DhAlgorithm;
}

export type ProposalUse = 'ike' | 'esp';

export class ProposalSyntaxError extends Error {
  override readonly name = 'ProposalSyntaxError';
}

/**
 * Parses a strongSwan-style proposal keyword string. For IKE, a missing PRF is the integrity
 * algorithm's hash (strongSwan does the same), and a DH group is required; for ESP a DH group
 * means PFS.
 */
export function parseProposal(text: string, use: ProposalUse): ProposalSet {
  const encr: EncryptionAlgorithm[] = [];
  const integ: IntegrityAlgorithm[] = [];
  const prf: PrfAlgorithm[] = [];
  const dh: DhAlgorithm[] = [];
  const tokens = text.trim().toLowerCase().split('-');
  for (let i = 0; i < tokens.length; i++) {
    // Some keywords contain a dash ("aes-cbc-256", "hmac-sha2-256-128"): try the longest first.
    let matched = false;
    for (let span = Math.min(4, tokens.length - i); span >= 1 && !matched; span--) {
      const word = tokens.slice(i, i + span).join('-');
      const row =
        findAlgorithm('encr', word) ??
        findAlgorithm('integ', word) ??
        findAlgorithm('prf', word) ??
        findAlgorithm('dh', word);
      if (!row) continue;
      matched = true;
      i += span - 1;
      if (row.kind === 'encr') encr.push(row);
      else if (row.kind === 'integ') integ.push(row);
      else if (row.kind === 'prf') prf.push(row);
      else dh.push(row);
    }
    if (!matched) throw new ProposalSyntaxError(`'${text}': unknown algorithm '${tokens[i]}'`);
  }
  if (encr.length === 0) throw new ProposalSyntaxError(`'${text}': no encryption algorithm`);
  const aead = encr.every((row) => row.icvLength > 0);
  const mixed = !aead && encr.some((row) => row.icvLength > 0);
  if (mixed) throw new ProposalSyntaxError(`'${text}': mixes AEAD and non-AEAD encryption`);
  if (!aead && integ.length === 0) throw new ProposalSyntaxError(`'${text}': no integrity algorithm`);
  if (aead && integ.length > 0)
    throw new ProposalSyntaxError(`'${text}': an AEAD cipher takes no integrity algorithm`);
  if (use === 'ike') {
    if (dh.length === 0) throw new ProposalSyntaxError(`'${text}': no Diffie-Hellman group`);
    if (prf.length === 0) {
      if (aead) throw new ProposalSyntaxError(`'${text}': an AEAD IKE proposal needs a PRF (prfsha256...)`);
      for (const row of integ) {
        const implied = algorithmsOf('prf').find((candidate) => candidate.hash === row.hash);
        if (implied && !prf.includes(implied)) prf.push(implied);
      }
    }
  } else if (prf.length > 0) {
    throw new ProposalSyntaxError(`'${text}': an ESP proposal takes no PRF`);
  }
  return { encr, integ, prf, dh };
}

/** All combinations, in the order the keywords were written (encryption varies slowest). */
export function expandSuites(set: ProposalSet, use: ProposalUse): Suite[] {
  const suites: Suite[] = [];
  const integs = set.integ.length ? set.integ : [undefined];
  const dhs = set.dh.length ? set.dh : [undefined];
  for (const encr of set.encr) {
    for (const integ of integs) {
      for (const dh of dhs) {
        if (use === 'ike') {
          // IKEv1 negotiates one hash for both integrity and PRF: keep the matching pairs.
          const prfs = integ ? set.prf.filter((p) => p.hash === integ.hash) : set.prf;
          for (const prf of prfs.length ? prfs : set.prf)
            suites.push({ encr, ...(integ && { integ }), prf, ...(dh && { dh }) });
        } else {
          suites.push({ encr, ...(integ && { integ }), ...(dh && { dh }) });
        }
      }
    }
  }
  return suites;
}

export function sameSuite(a: Suite, b: Suite): boolean {
  return a.encr === b.encr && a.integ === b.integ && a.prf === b.prf && a.dh === b.dh;
}

/** Our own suite equal to `theirs` when there is one (SAs then share it), else `theirs`. */
export function sharedSuite(ours: readonly Suite[], theirs: Suite): Suite {
  return ours.find((mine) => sameSuite(mine, theirs)) ?? theirs;
}

/** The keyword form, as configs, logs and status print it: "aes256-sha256-modp2048". */
export function formatSuite(suite: Suite): string {
  const words: string[] = [suite.encr.name];
  if (suite.integ) words.push(suite.integ.name);
  if (suite.prf && (!suite.integ || suite.integ.hash !== suite.prf.hash)) words.push(suite.prf.name);
  if (suite.dh) words.push(suite.dh.name);
  return words.join('-');
}

/**
 * Chooses among a peer's offered suites by our preference: the first of `ours` that the peer also
 * offers wins (as a responder configured like isakmpd or strongSwan's default). Returns the
 * index into `offered`, so the caller can answer with the transform the peer actually sent.
 */
export function selectSuite(ours: readonly Suite[], offered: readonly Suite[]): number | undefined {
  for (const mine of ours) {
    const index = offered.findIndex((theirs) => sameSuite(mine, theirs));
    if (index >= 0) return index;
  }
  return undefined;
}

/**
 * The offered suite closest to any of ours, for the "no proposal chosen" explanation: the pair
 * that differs in the fewest algorithms, and which kinds differ.
 */
export function closestSuite(
  ours: readonly Suite[],
  offered: readonly Suite[],
): { ours: Suite; offered: Suite; differ: (keyof Suite)[] } | undefined {
  let best: { ours: Suite; offered: Suite; differ: (keyof Suite)[] } | undefined;
  for (const mine of ours) {
    for (const theirs of offered) {
      const differ = (['encr', 'integ', 'prf', 'dh'] as const).filter((key) => mine[key] !== theirs[key]);
      if (!best || differ.length < best.differ.length) best = { ours: mine, offered: theirs, differ };
    }
  }
  return best;
}

const KIND_LABEL = { encr: 'encryption', integ: 'integrity', prf: 'PRF', dh: 'DH group' } as const;

/**
 * The "no proposal chosen" advice: of every policy's suites, the one closest to something the
 * peer offered, and what to enable in which policy to match it, e.g. "closest: peer's
 * aes256-sha1-modp1024 against our aes256-sha256-modp2048; allow sha1 (integrity) and modp1024
 * (DH group) in ikePolicy 'x' to match".
 */
export function explainMismatch(
  policies: readonly { readonly what: string; readonly suites: readonly Suite[] }[],
  offered: readonly Suite[],
): string | undefined {
  let best: { what: string; match: NonNullable<ReturnType<typeof closestSuite>> } | undefined;
  for (const policy of policies) {
    const match = closestSuite(policy.suites, offered);
    if (match && (!best || match.differ.length < best.match.differ.length))
      best = { what: policy.what, match };
  }
  if (!best) return undefined;
  const { ours, offered: theirs, differ } = best.match;
  // IKEv1 ties the PRF to the integrity hash: name it once.
  const kinds = differ.includes('integ') ? differ.filter((kind) => kind !== 'prf') : differ;
  const enable = kinds.map((kind) =>
    theirs[kind]
      ? `${theirs[kind].name} (${KIND_LABEL[kind]})`
      : `no ${KIND_LABEL[kind]} (the peer offers none)`,
  );
  return (
    `closest: peer's ${formatSuite(theirs)} against our ${formatSuite(ours)}; ` +
    `allow ${enable.join(' and ')} in ${best.what} to match`
  );
}
