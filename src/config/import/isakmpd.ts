import { isIP } from 'node:net';
import { formatAddress, parseAddress } from '../../core/address.js';
import { type Host, type IkeRule, parseIpsecConf, type PhaseMode } from './isakmpd-parse.js';
import {
  assemble,
  ImportError,
  type ImportResult,
  type JsonObject,
  lineOf,
  listenSection,
  Names,
  protocolValue,
} from './shared.js';

/**
 * OpenBSD ipsec.conf(5) `ike` rules to peers.json, with the meaning ipsecctl(8) gives them when it
 * writes isakmpd's configuration (sbin/ipsecctl/ike.c, parse.y; isakmpd defaults from
 * sbin/isakmpd/conf.h):
 *
 * - Phase 1 (`main`): one transform; default enc aes (key length 128 to 256: isakmpd accepts
 *   128, 192 and 256), auth hmac-sha1, group modp3072; lifetime 3600 s (LIFE_MAIN_MODE).
 * - Phase 2 (`quick`): default enc aes (128-256), auth hmac-sha2-256, group modp3072, i.e. PFS
 *   unless `group none`; lifetime 1200 s (LIFE_QUICK_MODE).
 * - Rules without a peer (`to` a subnet or `any`, `peer any`) share isakmpd's default peer (any
 *   address); rules for the same peer share its phase 1 settings: the transforms accumulate
 *   (ike.c adds them) while the key, local address and identities are replaced by later rules.
 * - `passive` answers only; `active` and `dynamic` initiate; `dynamic` also runs DPD every 5 s.
 */

const LIFE_MAIN_MODE = 3600;
const LIFE_QUICK_MODE = 1200;
const DYNAMIC_DPD_INTERVAL = 5;
const LIFETIME_MIN = 60;
const LIFETIME_MAX = 86400;

/** parse.y's transform tables, in their order: parse_xf takes the first name the text begins. */
const ENC_NAMES = [
  'unknown',
  'none',
  '3des-cbc',
  'aes',
  'aes-128',
  'aes-192',
  'aes-256',
  'aesctr',
  'aes-128-ctr',
  'aes-192-ctr',
  'aes-256-ctr',
  'aes-128-gcm',
  'aes-192-gcm',
  'aes-256-gcm',
  'aes-128-gmac',
  'aes-192-gmac',
  'aes-256-gmac',
  'blowfish',
  'cast128',
  'chacha20-poly1305',
  'null',
];
const AUTH_NAMES = [
  'unknown',
  'none',
  'hmac-md5',
  'hmac-ripemd160',
  'hmac-sha1',
  'hmac-sha2-256',
  'hmac-sha2-384',
  'hmac-sha2-512',
];
const GROUP_NAMES = [
  'unknown',
  'none',
  'modp768',
  'grp1',
  'modp1024',
  'grp2',
  'modp1536',
  'grp5',
  'modp2048',
  'grp14',
  'modp3072',
  'grp15',
  'modp4096',
  'grp16',
  'modp6144',
  'grp17',
  'modp8192',
  'grp18',
  'ecp256',
  'grp19',
  'ecp384',
  'grp20',
  'ecp521',
  'grp21',
  'ecp224',
  'grp26',
  'bp224',
  'grp27',
  'bp256',
  'grp28',
  'bp384',
  'grp29',
  'bp512',
  'grp30',
];

/** ike.c's main mode ciphers, as ike-node keywords (aes: isakmpd accepts 128 to 256 bits). */
const MAIN_ENC: Readonly<Record<string, string[]>> = {
  '3des-cbc': ['3des'],
  aes: ['aes128', 'aes192', 'aes256'],
  'aes-128': ['aes128'],
  'aes-192': ['aes192'],
  'aes-256': ['aes256'],
};
/** ike.c's quick mode ciphers; `aesctr` is 128-bit only there, the GCM ones have 16-byte ICVs. */
const QUICK_ENC: Readonly<Record<string, string[]>> = {
  ...MAIN_ENC,
  aesctr: ['aes128ctr'],
  'aes-128-ctr': ['aes128ctr'],
  'aes-192-ctr': ['aes192ctr'],
  'aes-256-ctr': ['aes256ctr'],
  'aes-128-gcm': ['aes128gcm16'],
  'aes-192-gcm': ['aes192gcm16'],
  'aes-256-gcm': ['aes256gcm16'],
};
const AEAD = new Set(['aes-128-gcm', 'aes-192-gcm', 'aes-256-gcm']);
const MAIN_AUTH: Readonly<Record<string, string>> = {
  'hmac-md5': 'md5',
  'hmac-sha1': 'sha1',
  'hmac-sha2-256': 'sha256',
  'hmac-sha2-384': 'sha384',
  'hmac-sha2-512': 'sha512',
};
const GROUPS: Readonly<Record<string, string>> = {
  modp768: 'modp768',
  grp1: 'modp768',
  modp1024: 'modp1024',
  grp2: 'modp1024',
  modp1536: 'modp1536',
  grp5: 'modp1536',
  modp2048: 'modp2048',
  grp14: 'modp2048',
  modp3072: 'modp3072',
  grp15: 'modp3072',
  modp4096: 'modp4096',
  grp16: 'modp4096',
  ecp256: 'ecp256',
  grp19: 'ecp256',
  ecp384: 'ecp384',
  grp20: 'ecp384',
};

/** One phase 1 section of isakmpd: the default peer, or one peer (with one local address). */
interface PeerSection {
  readonly name: string;
  readonly peer?: string;
  readonly proposals: string[];
  lifetime: number;
  lifetimeLine: number;
  psk?: string;
  pskLines: number[];
  local?: string;
  srcid?: string;
  dstid?: string;
  dynamic: boolean;
}

interface ConnectionDraft {
  /** The phase 2 name, which is also the connection's. */
  readonly flow: string;
  readonly section: PeerSection;
  readonly rule: IkeRule;
  readonly src: Host;
  readonly dst: Host;
  readonly ipsec: JsonObject;
}

export function importIsakmpd(text: string, file: string): ImportResult {
  const parsed = parseIpsecConf(text, file);
  const warnings: string[] = [];
  const at = (line: number) => lineOf(file, line);
  for (const { line, kind } of parsed.skipped) {
    warnings.push(`${at(line)}: a ${kind} rule is kernel state isakmpd does not negotiate: not imported`);
  }
  if (!parsed.rules.length) throw new ImportError(file, 'at least one ike rule', 'none');

  const sections = new Map<string, PeerSection>();
  const drafts: ConnectionDraft[] = [];
  const names = new Names();
  for (const rule of parsed.rules) {
    const main = mainProposal(rule.main, file);
    const ipsec = ipsecPolicy(rule, file);
    const pairs = expand(rule, file);
    for (const { src, dst } of pairs) {
      const peer = rulePeer(rule, dst);
      if (rule.ikemode !== 'passive' && !peer) {
        throw new ImportError(
          at(rule.line),
          `a peer for an ${rule.ikemode} rule (peer ADDRESS, or to a single host): there is no one to initiate to`,
          `to ${hostName(dst)}`,
        );
      }
      const section = peerSection(sections, peer, rule, main, file);
      recordPhase1(section, rule, warnings, at);
      // ike.c names phase 2 sections by their flow: a later rule for the same flow replaces it.
      const flow = p2Name(rule, src, dst);
      const earlier = drafts.findIndex((d) => d.flow === flow);
      if (earlier >= 0) {
        warnings.push(
          `${at(rule.line)}: the flow ${flow} again (line ${drafts[earlier]!.rule.line}): isakmpd keeps this rule`,
        );
        drafts.splice(earlier, 1);
      }
      drafts.push({ flow, section, rule, src, dst, ipsec });
    }
    if (rule.tag !== undefined) {
      warnings.push(
        `${at(rule.line)}: tag ${JSON.stringify(rule.tag)} (a pf tag on the SAs' traffic) has no peers.json equivalent: not imported`,
      );
    }
    for (const phase of [rule.main, rule.quick]) {
      if (phase?.transforms.comp) {
        warnings.push(
          `${at(phase.transforms.comp.line)}: comp (IPcomp) is not negotiated by ike rules: ignored, as ipsecctl does`,
        );
      }
    }
  }

  const ikePolicies: JsonObject = {};
  const policyNames = new Map<PeerSection, string>();
  for (const section of sections.values()) {
    const name = names.unique(section.name);
    policyNames.set(section, name);
    ikePolicies[name] = {
      proposals: section.proposals,
      lifetime: section.lifetime,
      ...(section.dynamic && { dpd: { delay: DYNAMIC_DPD_INTERVAL, action: 'restart' } }),
    };
    if (section.peer && section.dstid === undefined) {
      warnings.push(
        `${file}: ${section.name}: no dstid: isakmpd accepts any phase 1 identity from ${section.peer}, ike-node expects its address`,
      );
    }
  }
  const ipsecPolicies: JsonObject = {};
  const connections: JsonObject = {};
  for (const draft of drafts) {
    const name = names.unique(draft.flow);
    ipsecPolicies[name] = draft.ipsec;
    connections[name] = connection(draft, name, policyNames.get(draft.section)!, file);
  }
  warnings.push(
    'isakmpd, run with -K as ipsecctl(8) requires, answers quick mode with any transform, encapsulation mode and PFS group it supports that the initiator proposes (sbin/isakmpd/ike_quick_mode.c, ipsec.c): ' +
      'for passive rules the ipsecPolicy says so explicitly (every ESP suite after the rule\'s own, acceptModes, acceptPfs including "none"), so clients such as macOS/iOS L2TP (transport mode, no PFS) are accepted; trim those lists to harden. ' +
      'Active rules accept only their own quick mode settings when they answer',
  );
  return {
    config: assemble({
      listen: listenSection(drafts.map((d) => ({ local: localAddress(d), peer: d.section.peer ?? 'any' }))),
      ikePolicies,
      ipsecPolicies,
      connections,
    }),
    warnings,
  };
}

/** ipsecctl's rule expansion: every source with every destination of the same address family. */
function expand(rule: IkeRule, file: string): { src: Host; dst: Host }[] {
  const families = (hosts: readonly Host[]) => new Set(hosts.flatMap((h) => (h.any ? [4, 6] : [h.family!])));
  const srcFamilies = families(rule.src);
  const dstFamilies = families(rule.dst);
  if (![...srcFamilies].some((f) => dstFamilies.has(f))) {
    throw new ImportError(
      lineOf(file, rule.line),
      'source and destination of one address family',
      'IPv4 and IPv6',
    );
  }
  const concrete = (hosts: readonly Host[]): Host[] =>
    hosts.flatMap((h) =>
      h.any
        ? [
            { address: '0.0.0.0', family: 4, prefix: 0 },
            { address: '::', family: 6, prefix: 0 },
          ]
        : [h],
    );
  const pairs: { src: Host; dst: Host }[] = [];
  for (const src of concrete(rule.src)) {
    for (const dst of concrete(rule.dst)) if (src.family === dst.family) pairs.push({ src, dst });
  }
  return pairs;
}

/** parse.y's set_rule_peers: `peer`, else a destination that is a single host; `any` means none. */
function rulePeer(rule: IkeRule, dst: Host): string | undefined {
  if (rule.peer) return rule.peer.any ? undefined : normal(rule.peer.address!);
  return dst.prefix === undefined ? normal(dst.address!) : undefined;
}

function normal(address: string): string {
  return formatAddress(parseAddress(address));
}

function hostName(host: Host): string {
  return host.prefix === undefined ? host.address! : `${host.address}/${host.prefix}`;
}

/**
 * After ike.c's phase 2 name, from-SRC[=PROTO][:PORT]-to-DST[=PROTO][:PORT], with "any" for
 * 0.0.0.0/0 (and "any-ipv6" for ::/0), made a valid peers.json name.
 */
function p2Name(rule: IkeRule, src: Host, dst: Host): string {
  const name = (host: Host) =>
    host.prefix === 0 ? (host.family === 4 ? 'any' : 'any-ipv6') : hostName(host);
  const proto = rule.proto ? `=${rule.proto}` : '';
  return (
    `from-${name(src)}${proto}${rule.sport ? `:${rule.sport}` : ''}` +
    `-to-${name(dst)}${proto}${rule.dport ? `:${rule.dport}` : ''}`
  );
}

function peerSection(
  sections: Map<string, PeerSection>,
  peer: string | undefined,
  rule: IkeRule,
  proposal: string,
  file: string,
): PeerSection {
  // ike.c: peer-ADDRESS[-local-ADDRESS], or the one default peer for every peer-less rule.
  const local = rule.local ? normal(rule.local.address!) : undefined;
  const name = peer ? `peer-${peer}${local ? `-local-${local}` : ''}` : 'peer-default';
  let section = sections.get(name);
  const earlier = section !== undefined;
  if (!section) {
    section = {
      name,
      ...(peer && { peer }),
      proposals: [],
      lifetime: LIFE_MAIN_MODE,
      lifetimeLine: rule.line,
      pskLines: [],
      dynamic: false,
    };
    sections.set(name, section);
  }
  if (!section.proposals.includes(proposal)) section.proposals.push(proposal);
  const lifetime = checkLifetime(rule.main?.lifetime, LIFE_MAIN_MODE, file);
  if (earlier && lifetime !== section.lifetime) {
    throw new ImportError(
      lineOf(file, rule.main?.lifetime?.line ?? rule.line),
      `the main mode lifetime of the other rules for ${name} (${section.lifetime} s, line ${section.lifetimeLine}): an ikePolicy has one lifetime`,
      `${lifetime} s`,
    );
  }
  section.lifetime = lifetime;
  section.lifetimeLine = rule.main?.lifetime?.line ?? rule.line;
  return section;
}

/** ike.c sets the key, the local address and the identities of a phase 1 section with "force". */
function recordPhase1(
  section: PeerSection,
  rule: IkeRule,
  warnings: string[],
  at: (line: number) => string,
): void {
  if (rule.psk === undefined) {
    throw new ImportError(
      at(rule.line),
      'psk "..." (without it isakmpd uses RSA signatures, which are not supported)',
      'no psk',
    );
  }
  if (section.psk !== undefined && section.psk !== rule.psk) {
    warnings.push(
      `${at(rule.line)}: another psk for ${section.name} than line ${section.pskLines.at(-1)}: isakmpd keeps the last one, and so does this import, for every rule of ${section.name}`,
    );
  }
  section.psk = rule.psk;
  section.pskLines.push(rule.line);
  if (rule.local) section.local = normal(rule.local.address!);
  for (const key of ['srcid', 'dstid'] as const) {
    const value = rule[key];
    if (value === undefined) continue;
    if (section[key] !== undefined && section[key] !== value) {
      warnings.push(
        `${at(rule.line)}: another ${key} for ${section.name}: isakmpd keeps the last one, ${JSON.stringify(value)}`,
      );
    }
    section[key] = value;
  }
  if (rule.ikemode === 'dynamic') {
    section.dynamic = true;
    if (rule.srcid === undefined && section.srcid === undefined) {
      warnings.push(
        `${at(rule.line)}: dynamic without srcid: isakmpd identifies as this host's name (gethostname), unknown here; set local.id`,
      );
    }
  }
}

/**
 * The local address of a connection: the rule's `local`; else, in transport mode, a single-host
 * source, since a transport-mode SA protects its own endpoints' traffic, so the source host is
 * where IKE must run (isakmpd binds every address; ike-node listens on this one, see README).
 */
function localAddress({ rule, section, src }: ConnectionDraft): string | undefined {
  if (section.local) return section.local;
  return rule.tmode === 'transport' && src.prefix === undefined ? normal(src.address!) : undefined;
}

function connection(draft: ConnectionDraft, name: string, ikePolicy: string, file: string): JsonObject {
  const { rule, section, src, dst } = draft;
  const local: JsonObject = {};
  const address = localAddress(draft);
  if (address) local.address = address;
  if (section.srcid !== undefined) local.id = identity(section.srcid, file, rule.line);
  const peer: JsonObject = { address: section.peer ?? 'any' };
  if (section.dstid !== undefined) peer.id = identity(section.dstid, file, rule.line);
  if (rule.proto === undefined) {
    local.subnets = [hostName(src)];
    peer.subnets = [hostName(dst)];
  } else {
    // ike.c puts the protocol in both IDs, each port in its own side's.
    const protocol = protocolValue(rule.proto);
    local.selectors = [{ subnet: hostName(src), protocol, ...(rule.sport && { port: rule.sport }) }];
    peer.selectors = [{ subnet: hostName(dst), protocol, ...(rule.dport && { port: rule.dport }) }];
  }
  return {
    ikePolicy,
    ipsecPolicy: name,
    local,
    peer,
    psk: section.psk,
    start: rule.ikemode === 'passive' ? 'respond' : 'initiate',
  };
}

/**
 * parse.y's get_id_type: an address, user@fqdn when it has an '@', else an FQDN; peers.json writes
 * an FQDN as @name so that no name is taken for another form ("keyid:...").
 */
function identity(text: string, file: string, line: number): string {
  if (isIP(text)) return normal(text);
  if (text.includes('@')) {
    if (text.startsWith('@')) {
      throw new ImportError(
        lineOf(file, line),
        'an identity peers.json can express: isakmpd sends one with an @ as a USER_FQDN, and peers.json reads a leading @ as an FQDN',
        JSON.stringify(text),
      );
    }
    return text;
  }
  return `@${text}`;
}

function lookup(text: string, table: readonly string[]): string | undefined {
  return table.find((name) => text.length > 0 && name.startsWith(text));
}

function checkLifetime(lifetime: PhaseMode['lifetime'], fallback: number, file: string): number {
  if (!lifetime) return fallback;
  if (lifetime.seconds < LIFETIME_MIN || lifetime.seconds > LIFETIME_MAX) {
    throw new ImportError(
      lineOf(file, lifetime.line),
      `a lifetime of ${LIFETIME_MIN} to ${LIFETIME_MAX} seconds (what ike-node accepts)`,
      `${lifetime.seconds} seconds`,
    );
  }
  return lifetime.seconds;
}

/** ike.c's ike_section_p1: one transform from `main auth/enc/group`, with its defaults. */
function mainProposal(main: PhaseMode | undefined, file: string): string {
  const where = (line: number | undefined) => lineOf(file, line ?? main!.line);
  const t = main?.transforms ?? {};
  const enc = t.enc ? lookup(t.enc.value, ENC_NAMES) : 'aes';
  const encWords = enc && MAIN_ENC[enc];
  if (!encWords)
    throw unsupported(
      where(t.enc?.line),
      'main mode enc',
      t.enc!.value,
      enc,
      'aes, aes-128, aes-192, aes-256 or 3des',
    );
  const auth = t.auth ? lookup(t.auth.value, AUTH_NAMES) : 'hmac-sha1';
  const hash = auth && MAIN_AUTH[auth];
  if (!hash)
    throw unsupported(
      where(t.auth?.line),
      'main mode auth',
      t.auth!.value,
      auth,
      'hmac-md5, hmac-sha1 or hmac-sha2-256/384/512',
    );
  const group = t.group ? lookup(t.group.value, GROUP_NAMES) : 'modp3072';
  const dh = group && GROUPS[group];
  if (!dh)
    throw unsupported(
      where(t.group?.line),
      'main mode group',
      t.group!.value,
      group,
      'modp768 to modp4096, ecp256 or ecp384',
    );
  return [...encWords, hash, dh].join('-');
}

/** ike.c's ike_section_p2: the quick mode transform, the PFS group and the encapsulation. */
function ipsecPolicy(rule: IkeRule, file: string): JsonObject {
  const quick = rule.quick;
  const where = (line: number | undefined) => lineOf(file, line ?? quick?.line ?? rule.line);
  const t = quick?.transforms ?? {};
  const enc = t.enc ? lookup(t.enc.value, ENC_NAMES) : 'aes';
  const encWords = enc && QUICK_ENC[enc];
  if (!encWords)
    throw unsupported(
      where(t.enc?.line),
      'quick mode enc',
      t.enc!.value,
      enc,
      'aes, aes-128/192/256, aesctr, aes-N-ctr, aes-N-gcm or 3des',
    );
  let integ: string | undefined;
  if (AEAD.has(enc!)) {
    if (t.auth)
      throw new ImportError(
        where(t.auth.line),
        `no auth with ${enc} ("authentication is implicit")`,
        t.auth.value,
      );
  } else {
    const auth = t.auth ? lookup(t.auth.value, AUTH_NAMES) : 'hmac-sha2-256';
    integ = auth && MAIN_AUTH[auth];
    if (!integ)
      throw unsupported(
        where(t.auth?.line),
        'quick mode auth',
        t.auth!.value,
        auth,
        'hmac-md5, hmac-sha1 or hmac-sha2-256/384/512',
      );
  }
  const group = t.group ? lookup(t.group.value, GROUP_NAMES) : 'modp3072';
  const pfs = group === 'none' ? 'none' : group && GROUPS[group];
  if (!pfs)
    throw unsupported(
      where(t.group?.line),
      'quick mode group',
      t.group!.value,
      group,
      'none, modp768 to modp4096, ecp256 or ecp384',
    );
  const configured = [...encWords, ...(integ ? [integ] : [])].join('-');
  const policy: JsonObject = {
    mode: rule.tmode,
    proposals: [configured],
    pfs,
    lifetime: checkLifetime(quick?.lifetime, LIFE_QUICK_MODE, file),
  };
  if (rule.ikemode !== 'passive') return policy;
  // A passive rule only answers, and isakmpd -K answers with any transform, mode and group it
  // supports that the initiator proposes (ike_quick_mode.c, message.c message_negotiate_sa,
  // ipsec.c ipsec_is_attribute_incompatible): said explicitly, after the rule's own choices.
  // Except modp768, which RFC 8247 says MUST NOT be used: isakmpd takes it, we do not follow.
  const groups = [...new Set([pfs, ...Object.values(GROUPS)])].filter(
    (group) => group !== 'none' && group !== 'modp768',
  );
  return {
    ...policy,
    proposals: [configured, ...ISAKMPD_ESP.filter((proposal) => proposal !== configured)],
    acceptModes: rule.tmode === 'tunnel' ? ['tunnel', 'transport'] : ['transport', 'tunnel'],
    acceptPfs: [...groups, 'none'],
  };
}

/** Every quick mode transform isakmpd supports that ike-node negotiates, as ESP proposals. */
const ISAKMPD_ESP = [
  'aes256-aes192-aes128-sha256-sha384-sha512-sha1-md5',
  'aes256ctr-aes192ctr-aes128ctr-sha256-sha384-sha512-sha1-md5',
  'aes256gcm16-aes192gcm16-aes128gcm16',
  '3des-sha256-sha1-md5',
];

function unsupported(
  where: string,
  what: string,
  written: string,
  known: string | undefined,
  supported: string,
) {
  return new ImportError(
    where,
    `a ${what} ike-node supports: ${supported}`,
    known && known !== written ? `${JSON.stringify(written)} (${known})` : JSON.stringify(written),
  );
}
