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

export const IKE_POLICY_KEYS = [
  'version',
  'mode',
  'proposals',
  'encryption',
  'integrity',
  'authAlgorithm',
  'dhGroup',
  'lifetime',
  'rekeyMargin',
  'rekeyFuzz',
  'dpd',
] as const;

export const IPSEC_POLICY_KEYS = [
  'protocol',
  'mode',
  'proposals',
  'encryption',
  'integrity',
  'authAlgorithm',
  'pfs',
  'lifetime',
  'lifetimeKilobytes',
  'rekeyMargin',
  'rekeyFuzz',
] as const;

export const LIFETIME_MIN = 60;
export const LIFETIME_MAX = 86400;
export const IKE_LIFETIME_DEFAULT = 10800;
export const IPSEC_LIFETIME_DEFAULT = 3600;
export const DPD_DEFAULTS: Dpd = { delay: 30, timeout: 120, action: 'clear' };

const EXPECT_ENCRYPTION =
  'an encryption algorithm: 3des, aes-128, aes-192, aes-256, or a keyword such as aes128ctr or aes256gcm16';
const EXPECT_INTEGRITY = 'an integrity algorithm: md5, sha1, sha256, sha384 or sha512';
const EXPECT_DH =
  'a Diffie-Hellman group: group2, group5, group14, group15, group16, group19, group20, group31, or a keyword such as modp1024 or ecp256';

export function readIkePolicy(at: Cursor, name: string, crypto: ProviderName): IkePolicy | undefined {
  const before = at.problems.count;
  if (!at.object(IKE_POLICY_KEYS, 'an IKE policy object')) return undefined;
  const versionAt = at.key('version');
  const version = versionAt.present ? versionAt.oneOf([1, 2] as const) : 1;
  const modeAt = at.key('mode');
  if (modeAt.value === 'aggressive') {
    modeAt.fail(
      '"main" (aggressive mode is not supported: it sends a hash of the pre-shared key that an eavesdropper can attack offline)',
    );
  } else if (modeAt.present) {
    modeAt.oneOf(['main'] as const);
  }
  const proposals = readProposals(at, 'ike', crypto, version);
  const lifetime = readLifetime(at, IKE_LIFETIME_DEFAULT, false);
  const dpd = readDpd(at.key('dpd'));
  if (at.problems.count > before || !version || !proposals || !lifetime) return undefined;
  return { name, version, mode: 'main', proposals, lifetime, ...(dpd && { dpd }) };
}

export function readIpsecPolicy(at: Cursor, name: string, crypto: ProviderName): IpsecPolicy | undefined {
  const before = at.problems.count;
  if (!at.object(IPSEC_POLICY_KEYS, 'an IPsec policy object')) return undefined;
  const protocolAt = at.key('protocol');
  if (protocolAt.value === 'ah') protocolAt.fail('"esp" (AH is not supported)');
  else if (protocolAt.present) protocolAt.oneOf(['esp'] as const);
  const modeAt = at.key('mode');
  const mode = modeAt.present ? modeAt.oneOf(['tunnel', 'transport'] as const) : 'tunnel';
  const proposals = readProposals(at, 'esp', crypto, undefined);
  const pfs = readPfs(at.key('pfs'), crypto);
  const lifetime = readLifetime(at, IPSEC_LIFETIME_DEFAULT, true);
  if (at.problems.count > before || !mode || !proposals || !lifetime) return undefined;
  return { name, protocol: 'esp', mode, proposals, ...(pfs && { pfs }), lifetime };
}

/** Suites from `proposals` (strongSwan strings) or from the Neutron-style fields, in preference order. */
function readProposals(
  at: Cursor,
  use: ProposalUse,
  crypto: ProviderName,
  version: 1 | 2 | undefined,
): Suite[] | undefined {
  const fieldNames =
    use === 'ike'
      ? ['encryption', 'integrity', 'authAlgorithm', 'dhGroup']
      : ['encryption', 'integrity', 'authAlgorithm'];
  const fields = fieldNames.filter((key) => at.key(key).present);
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
    const example = use === 'ike' ? '"aes256-sha256-modp2048"' : '"aes256-sha256" (no DH group: that is pfs)';
    const expected = `a list of ${use === 'ike' ? 'IKE' : 'ESP'} proposals such as ${example}`;
    for (const item of proposalsAt.list(expected, { single: true, nonEmpty: true }) ?? []) {
      const text = item.string(expected);
      if (text === undefined) continue;
      const set = parseSet(item, text, use, expected);
      if (!set) continue;
      if (use === 'esp' && set.dh.length) {
        item.fail(
          'an ESP proposal without a Diffie-Hellman group (for perfect forward secrecy set "pfs": "modp2048" instead)',
        );
        continue;
      }
      sets.push({ set, where: () => item });
    }
  } else if (fields.length) {
    const encrAt = at.key('encryption');
    const integAt = at.key('authAlgorithm').present ? at.key('authAlgorithm') : at.key('integrity');
    const dhAt = at.key('dhGroup');
    if (at.key('integrity').present && at.key('authAlgorithm').present) {
      at.key('authAlgorithm').fail('either integrity or authAlgorithm (the same thing), not both', 'both');
    }
    const encr = readNames(encrAt, 'encr', EXPECT_ENCRYPTION, true);
    const aead = encr !== undefined && encr.every((row) => row.kind === 'encr' && row.icvLength > 0);
    const integ = readNames(
      integAt,
      'integ',
      use === 'ike' ? EXPECT_INTEGRITY : `${EXPECT_INTEGRITY} (required unless the encryption is AEAD)`,
      use === 'ike' || !aead,
    );
    const dh = use === 'ike' ? readNames(dhAt, 'dh', EXPECT_DH, true) : [];
    if (!encr || !integ || !dh) return undefined;
    const keywords = [...encr, ...integ, ...dh].map((row) => row.name).join('-');
    const set = parseSet(at, keywords, use, 'algorithms that work together');
    if (!set) return undefined;
    sets.push({ set, where: (kind) => (kind === 'encr' ? encrAt : kind === 'dh' ? dhAt : integAt) });
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
  return suites;
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

/** The registry rows a Neutron-style field names: one name or a list ("aes-256" is aes256). */
function readNames(
  at: Cursor,
  kind: Algorithm['kind'],
  expected: string,
  required: boolean,
): Algorithm[] | undefined {
  if (!at.present) return required ? at.fail(expected) : [];
  const rows: Algorithm[] = [];
  let ok = true;
  for (const item of at.list(`${expected}, or a list of them`, { single: true, nonEmpty: true }) ?? []) {
    const text = item.string(expected);
    const row = text === undefined ? undefined : lookup(kind, text);
    if (row) rows.push(row);
    else if (text !== undefined) item.fail(expected);
    ok &&= row !== undefined;
  }
  return ok && rows.length ? rows : undefined;
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
  const expected = `"none", false, or ${EXPECT_DH}`;
  const text = at.string(expected);
  if (text === undefined) return undefined;
  const row = lookup('dh', text);
  if (!row || row.kind !== 'dh') return at.fail(expected);
  if (!createCryptoProvider(crypto).supports(row.name)) {
    return at.fail(`a group the "${crypto}" crypto provider implements`);
  }
  return row;
}

/**
 * `lifetime` as seconds or Neutron's { "units": "seconds", "value": N }, with rekeyMargin
 * (default min(540, lifetime / 10)) and rekeyFuzz (default a third of the margin).
 */
function readLifetime(at: Cursor, fallback: number, child: boolean): Lifetime | undefined {
  const lifeAt = at.key('lifetime');
  let seconds: number | undefined = fallback;
  if (isJsonObject(lifeAt.value)) {
    lifeAt.object(['units', 'value']);
    const unitsAt = lifeAt.key('units');
    if (unitsAt.present) {
      unitsAt.oneOf(
        ['seconds'] as const,
        child ? '"seconds" (for a limit in kilobytes use lifetimeKilobytes)' : '"seconds"',
      );
    }
    seconds = lifeAt.key('value').integer(LIFETIME_MIN, LIFETIME_MAX, ' of seconds');
  } else if (lifeAt.present) {
    seconds = lifeAt.integer(LIFETIME_MIN, LIFETIME_MAX, ' of seconds');
  }
  if (seconds === undefined) return undefined;
  const marginAt = at.key('rekeyMargin');
  const rekeyMargin = marginAt.present
    ? marginAt.integer(0, seconds - 1, ' of seconds', ' (less than the lifetime)')
    : Math.min(540, Math.floor(seconds / 10));
  if (rekeyMargin === undefined) return undefined;
  const fuzzAt = at.key('rekeyFuzz');
  const rekeyFuzz = fuzzAt.present
    ? fuzzAt.integer(
        0,
        seconds - rekeyMargin - 1,
        ' of seconds',
        ' (lifetime - rekeyMargin - rekeyFuzz must stay positive)',
      )
    : Math.floor(rekeyMargin / 3);
  if (rekeyFuzz === undefined) return undefined;
  let kilobytes: number | undefined;
  if (child && at.key('lifetimeKilobytes').present) {
    kilobytes = at.key('lifetimeKilobytes').integer(1, Number.MAX_SAFE_INTEGER, ' of kilobytes');
    if (kilobytes === undefined) return undefined;
  }
  return { seconds, ...(kilobytes !== undefined && { kilobytes }), rekeyMargin, rekeyFuzz };
}

function readDpd(at: Cursor): Dpd | undefined {
  if (!at.present || at.value === false) return undefined;
  if (
    !at.object(
      ['delay', 'timeout', 'action'],
      'an object { "delay", "timeout", "action" }, or false for no DPD',
    )
  ) {
    return undefined;
  }
  const read = <T>(key: string, fallback: T, get: (child: Cursor) => T | undefined): T | undefined => {
    const child = at.key(key);
    return child.present ? get(child) : fallback;
  };
  const delay = read('delay', DPD_DEFAULTS.delay, (c) => c.integer(1, 86400, ' of seconds'));
  const timeout = read('timeout', DPD_DEFAULTS.timeout, (c) => c.integer(1, 86400, ' of seconds'));
  const action = read('action', DPD_DEFAULTS.action, (c) => c.oneOf(['clear', 'restart', 'hold'] as const));
  if (delay === undefined || timeout === undefined || action === undefined) return undefined;
  return { delay, timeout, action };
}
