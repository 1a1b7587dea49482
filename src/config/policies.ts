import type { Dpd, IkePolicy, IpsecPolicy, Lifetime } from '../core/connection.js';
import {
  expandSuites,
  parseProposal,
  ProposalSyntaxError,
  sameSuite,
  type ProposalSet,
  type ProposalUse,
  type Suite,
} from '../core/proposal.js';
import type { ProviderName } from '../crypto/provider.js';
import { createCryptoProvider } from '../crypto/providers/index.js';
import { type Algorithm, type DhAlgorithm, findAlgorithm } from '../crypto/registry.js';
import type { Cursor } from './cursor.js';
import { isJsonObject } from './json.js';

/**
 * ikePolicies and ipsecPolicies entries (and the same objects written inline in a connection):
 * algorithms as strongSwan proposal strings or as Neutron-style fields, lifetimes and DPD.
 */

export const IKE_LIFETIME_DEFAULT = 10800;
export const IPSEC_LIFETIME_DEFAULT = 3600;
export const DPD_DEFAULTS: Dpd = { delay: 30, timeout: 120, action: 'clear' };

const IKE_VERSIONS = [1, 2, 'v1', 'v2'] as const;

export function readIkePolicy(at: Cursor, name: string, crypto: ProviderName): IkePolicy | undefined {
  if (!isJsonObject(at.value) || !at.valid) return undefined;
  const versionAt = aliased(at, 'version', 'ikeVersion');
  const written = versionAt.present ? versionAt.choice(IKE_VERSIONS) : 1;
  const version = written === undefined ? undefined : written === 1 || written === 'v1' ? 1 : 2;
  // The schema allows "main" only, and says why not aggressive mode.
  aliased(at, 'mode', 'phase1NegotiationMode').choice(['main'] as const);
  const read = readProposals(at, 'ike', crypto, version);
  const lifetime = readLifetime(at, IKE_LIFETIME_DEFAULT, false);
  const dpd = readDpd(at.key('dpd'));
  if (at.hasProblems() || !version || !read || !lifetime) return undefined;
  return {
    name,
    version,
    mode: 'main',
    proposals: read.suites,
    offers: read.sets,
    lifetime,
    ...(dpd && { dpd }),
  };
}

export function readIpsecPolicy(at: Cursor, name: string, crypto: ProviderName): IpsecPolicy | undefined {
  if (!isJsonObject(at.value) || !at.valid) return undefined;
  // The schema allows "esp" only, and says that AH is not supported.
  aliased(at, 'protocol', 'transformProtocol').choice(['esp'] as const);
  const modeAt = aliased(at, 'mode', 'encapsulationMode');
  const mode = modeAt.present ? modeAt.choice(['tunnel', 'transport'] as const) : 'tunnel';
  const read = readProposals(at, 'esp', crypto, undefined);
  const written = groupsAsPfs(at, read?.groups ?? []);
  const pfs = written ? written.pfs : readPfs(at.key('pfs'), crypto);
  // What a responder accepts beyond what it proposes (isakmpd answers whatever it supports).
  const modesAt = at.key('acceptModes');
  const acceptModes = modesAt.present
    ? modesAt.items().map((item) => item.choice(['tunnel', 'transport'] as const))
    : undefined;
  const pfsAt = at.key('acceptPfs');
  const acceptPfs = pfsAt.present
    ? pfsAt.items().map((item) => (item.value === 'none' ? ('none' as const) : readPfs(item, crypto)))
    : written?.acceptPfs;
  const lifetime = readLifetime(at, IPSEC_LIFETIME_DEFAULT, true);
  if (at.hasProblems() || !mode || !read || !lifetime) return undefined;
  return {
    name,
    protocol: 'esp',
    mode,
    proposals: read.suites,
    offers: read.sets,
    ...(pfs && { pfs }),
    ...(acceptModes && { acceptModes: acceptModes.filter((m) => m !== undefined) }),
    ...(acceptPfs && { acceptPfs: acceptPfs.filter((p) => p !== undefined) }),
    lifetime,
  };
}

/**
 * ESP proposals written with Diffie-Hellman groups, as strongSwan users write them
 * (`aes256gcm16-modp2048`): the first group is the PFS group we propose, and a responder accepts
 * any group written (and no PFS when a proposal has no group). Undefined when no proposal names a
 * group; `pfs` beside them is a problem, since both would say the same.
 */
function groupsAsPfs(
  at: Cursor,
  groups: readonly (DhAlgorithm | 'none')[],
): { pfs: DhAlgorithm; acceptPfs?: (DhAlgorithm | 'none')[] } | undefined {
  const first = groups.find((group): group is DhAlgorithm => group !== 'none');
  if (!first) return undefined;
  if (at.key('pfs').present) {
    at.key('pfs').fail('no "pfs" when the ESP proposals name their Diffie-Hellman groups', 'both');
    return undefined;
  }
  return groups.length > 1 ? { pfs: first, acceptPfs: [...groups] } : { pfs: first };
}

/**
 * A key with a second name (OpenStack Neutron's, such as encryptionAlgorithm for encryption):
 * whichever is written; both at once is a problem, since they mean the same.
 */
function aliased(at: Cursor, key: string, alias: string): Cursor {
  const main = at.key(key);
  const other = at.key(alias);
  if (main.present && other.present) {
    other.fail(`either ${key} or ${alias} (the same thing), not both`, 'both');
  }
  return other.present && !main.present ? other : main;
}

/** Suites from `proposals` (strongSwan strings) or from the Neutron-style fields, in preference order. */
function readProposals(
  at: Cursor,
  use: ProposalUse,
  crypto: ProviderName,
  version: 1 | 2 | undefined,
): { suites: Suite[]; sets: ProposalSet[]; groups: (DhAlgorithm | 'none')[] } | undefined {
  const groups: (DhAlgorithm | 'none')[] = [];
  const encrAt = aliased(at, 'encryption', 'encryptionAlgorithm');
  const integAt = aliased(at, 'integrity', 'authAlgorithm');
  const dhAt = use === 'ike' ? at.key('dhGroup') : undefined;
  const fieldKeys = ['encryption', 'encryptionAlgorithm', 'integrity', 'authAlgorithm'];
  if (use === 'ike') fieldKeys.push('dhGroup');
  const fields = fieldKeys.filter((key) => at.key(key).present);
  const proposalsAt = at.key('proposals');
  const fieldsText = use === 'ike' ? 'encryption, integrity and dhGroup' : 'encryption and integrity';
  if (proposalsAt.present && fields.length) {
    return proposalsAt.fail(
      `either proposals or the fields ${fieldsText}, not both`,
      `also ${fields.join(', ')}`,
    );
  }
  const sets: { set: ProposalSet; where: (kind: Algorithm['kind']) => Cursor }[] = [];
  if (proposalsAt.present) {
    for (const item of proposalsAt.items()) {
      const text = item.string();
      if (text === undefined) continue;
      const set = parseSet(item, text, use, item.expected);
      if (!set) continue;
      if (use === 'esp') {
        // strongSwan's syntax: a group in an ESP proposal is its PFS group (readIpsecPolicy).
        groups.push(...(set.dh.length ? set.dh : ['none' as const]));
        sets.push({ set: { ...set, dh: [] }, where: () => item });
        continue;
      }
      sets.push({ set, where: () => item });
    }
    if (proposalsAt.hasProblems()) return undefined;
  } else if (fields.length) {
    const encr = readNames(encrAt, 'encr', true);
    const aead = encr !== undefined && encr.every((row) => row.kind === 'encr' && row.icvLength > 0);
    const integ = readNames(
      integAt,
      'integ',
      use === 'ike' || !aead,
      ' (required unless the encryption is AEAD)',
    );
    const dh = dhAt ? readNames(dhAt, 'dh', true) : [];
    if (!encr || !integ || !dh) return undefined;
    const keywords = [...encr, ...integ, ...dh].map((row) => row.name).join('-');
    const set = parseSet(at, keywords, use, 'algorithms that work together');
    if (!set) return undefined;
    sets.push({ set, where: (kind) => (kind === 'encr' ? encrAt : kind === 'dh' && dhAt ? dhAt : integAt) });
  } else {
    return proposalsAt.fail(`a list of proposals, or the fields ${fieldsText}`);
  }
  const suites: Suite[] = [];
  for (const { set, where } of sets) {
    checkAlgorithms(set, use, where, crypto, version);
    for (const suite of expandSuites(set, use)) {
      if (version === 1 && suite.prf && suite.integ && suite.prf.hash !== suite.integ.hash) {
        where('prf').fail(
          `a PRF with the integrity algorithm's hash (IKEv1 negotiates one hash for both)`,
          `${suite.integ.name} with ${suite.prf.name}`,
        );
        return undefined;
      }
      if (!suites.some((known) => sameSuite(known, suite))) suites.push(suite);
    }
  }
  return { suites, sets: sets.map(({ set }) => set), groups: [...new Set(groups)] };
}

function parseSet(at: Cursor, text: string, use: ProposalUse, expected: string): ProposalSet | undefined {
  try {
    return parseProposal(text, use);
  } catch (error) {
    if (!(error instanceof ProposalSyntaxError)) throw error;
    const reason = error.message.replace(/^'.*?': /, '');
    return at.fail(expected, `${JSON.stringify(text)} (${reason})`);
  }
}

/**
 * The registry rows a Neutron-style field names: one name or a list ("aes-256" is aes256). A
 * required field that is absent is a problem; `note` says when it is required.
 */
function readNames(
  at: Cursor,
  kind: Algorithm['kind'],
  required: boolean,
  note = '',
): Algorithm[] | undefined {
  if (!at.present) return required ? at.fail(`${at.expected}${note}`) : [];
  const rows: Algorithm[] = [];
  for (const item of at.items()) {
    const text = item.string();
    const row = text === undefined ? undefined : lookup(kind, text);
    if (row) rows.push(row);
    else item.fail();
  }
  return at.hasProblems() || !rows.length ? undefined : rows;
}

function lookup(kind: Algorithm['kind'], text: string): Algorithm | undefined {
  const lower = text.trim().toLowerCase();
  return findAlgorithm(kind, lower) ?? findAlgorithm(kind, lower.replace(/-/g, ''));
}

/**
 * What the chosen crypto provider implements and, for IKEv1, what IKEv1 can negotiate (IKEv1
 * phase 1 has no AES-CTR, AES-GCM, ChaCha20 or Curve25519).
 */
function checkAlgorithms(
  set: ProposalSet,
  use: ProposalUse,
  where: (kind: Algorithm['kind']) => Cursor,
  crypto: ProviderName,
  version: 1 | 2 | undefined,
): void {
  const provider = createCryptoProvider(crypto);
  const reported = new Set<string>();
  const report = (kind: Algorithm['kind'], expected: string, row: Algorithm) => {
    const key = `${kind}:${expected}:${row.name}`;
    if (reported.has(key)) return;
    reported.add(key);
    where(kind).fail(expected, JSON.stringify(row.name));
  };
  for (const row of [...set.encr, ...set.integ, ...set.prf, ...set.dh]) {
    const primitive = row.kind === 'encr' ? row.primitive : row.kind === 'dh' ? row.name : row.hash;
    if (!provider.supports(primitive)) {
      report(row.kind, `an algorithm the "${crypto}" crypto provider implements`, row);
    }
  }
  if (use === 'ike' && version === 1) {
    for (const row of set.encr) {
      if (row.ikev1?.phase1 === undefined) {
        report(
          'encr',
          'an encryption algorithm IKEv1 can negotiate for the IKE SA (3des, aes128, aes192, aes256)',
          row,
        );
      }
    }
    for (const row of set.dh) {
      if (row.ikev1 === undefined) report('dh', 'a Diffie-Hellman group IKEv1 can negotiate', row);
    }
  }
}

/** Algorithms of an ESP policy that IKEv1's quick mode cannot negotiate (ChaCha20-Poly1305, Curve25519). */
export function ikev1EspGaps(policy: IpsecPolicy): string[] {
  const gaps = new Set<string>();
  for (const suite of policy.proposals) {
    if (suite.encr.ikev1?.esp === undefined) gaps.add(suite.encr.name);
    if (suite.integ && suite.integ.ikev1?.esp === undefined) gaps.add(suite.integ.name);
  }
  if (policy.pfs && policy.pfs.ikev1 === undefined) gaps.add(policy.pfs.name);
  return [...gaps];
}

function readPfs(at: Cursor, crypto: ProviderName): DhAlgorithm | undefined {
  if (!at.present || at.value === false || at.value === 'none') return undefined;
  const text = at.string();
  if (text === undefined) return undefined;
  const row = lookup('dh', text);
  if (!row || row.kind !== 'dh') return at.fail();
  if (!createCryptoProvider(crypto).supports(row.name)) {
    return at.fail(`a group the "${crypto}" crypto provider implements`);
  }
  return row;
}

/**
 * `lifetime` as seconds or Neutron's { "units": "seconds", "value": N } (the schema holds both to
 * 60-86400 s), with rekeyMargin (default min(540, lifetime / 10)) and rekeyFuzz (default a third
 * of the margin), which must leave part of the lifetime.
 */
function readLifetime(at: Cursor, fallback: number, child: boolean): Lifetime | undefined {
  const lifeAt = at.key('lifetime');
  let seconds: number | undefined = fallback;
  if (lifeAt.present) seconds = isJsonObject(lifeAt.value) ? lifeAt.key('value').number() : lifeAt.number();
  if (seconds === undefined) return undefined;
  const marginAt = at.key('rekeyMargin');
  let rekeyMargin = marginAt.present ? marginAt.number() : Math.min(540, Math.floor(seconds / 10));
  if (rekeyMargin !== undefined && rekeyMargin >= seconds) {
    rekeyMargin = marginAt.fail(
      `a whole number of seconds from 0 to ${seconds - 1} (less than the lifetime)`,
    );
  }
  if (rekeyMargin === undefined) return undefined;
  const fuzzAt = at.key('rekeyFuzz');
  let rekeyFuzz = fuzzAt.present ? fuzzAt.number() : Math.floor(rekeyMargin / 3);
  if (rekeyFuzz !== undefined && rekeyFuzz >= seconds - rekeyMargin) {
    rekeyFuzz = fuzzAt.fail(
      `a whole number of seconds from 0 to ${seconds - rekeyMargin - 1} (lifetime - rekeyMargin - rekeyFuzz must stay positive)`,
    );
  }
  if (rekeyFuzz === undefined) return undefined;
  const kilobytes = child ? at.key('lifetimeKilobytes').number() : undefined;
  return { seconds, ...(kilobytes !== undefined && { kilobytes }), rekeyMargin, rekeyFuzz };
}

function readDpd(at: Cursor): Dpd | undefined {
  if (!isJsonObject(at.value)) return undefined; // absent, false, or rejected by the schema
  const read = (key: 'delay' | 'timeout') => at.key(key).number() ?? DPD_DEFAULTS[key];
  const action = at.key('action').choice(['clear', 'restart', 'hold'] as const) ?? DPD_DEFAULTS.action;
  return { delay: read('delay'), timeout: read('timeout'), action };
}
