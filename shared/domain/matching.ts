/**
 * Matching an existing tenant's users to what Atria (and AD) already hold, pure and linear in time:
 * the local side is indexed once (anchor, UPN, primary SMTP, employee id, Entra id), each cloud user is
 * then looked up in O(1), never compared pairwise.
 *
 * The rules follow Entra Connect (entra-docs how-to-connect-install-existing-tenant.md) and go beyond:
 * - hard match: `onPremisesImmutableId` equals base64(objectGUID) or base64(ms-DS-ConsistencyGuid);
 * - soft match: the UPN, or the *primary* SMTP proxy address (`SMTP:` upper case) only, never a
 *   secondary `smtp:` one;
 * - holders of admin roles are never matched automatically (Connect refuses them too);
 * - every candidate gets a confidence from weighted rules (midPoint's correlation): at or above the
 *   definite threshold it is linked, between candidate and definite it becomes a case for a person,
 *   and two candidates for one object (or one local object claimed twice) are never guessed.
 */

export interface MatchWeights {
  upn: number;
  primarySmtp: number;
  displayName: number;
  employeeId: number;
}

export interface MatchRules {
  weights: MatchWeights;
  /** At or above: linked automatically. */
  definite: number;
  /** At or above (and below definite): a case for a person. Below: no candidate. */
  candidate: number;
  /** Tenants can block soft matching (Entra's BlockSoftMatch); then only hard anchors link. */
  softMatch: boolean;
}

/** UPN + display name is definite; UPN or primary SMTP alone is a candidate for a person to confirm. */
export const defaultMatchRules: MatchRules = {
  weights: { upn: 0.6, primarySmtp: 0.6, displayName: 0.3, employeeId: 0.35 },
  definite: 0.9,
  candidate: 0.5,
  softMatch: true,
};

/** A soft match never reaches a hard anchor's certainty. */
const softCeiling = 0.99;

export interface CloudIdentity {
  id: string;
  userPrincipalName: string;
  displayName: string;
  onPremisesImmutableId: string | null;
  /** Graph `proxyAddresses`: `SMTP:` marks the primary address, `smtp:` the others. */
  proxyAddresses: string[];
  employeeId: string | null;
  /** Holds a directory role (Global Administrator, …): never matched automatically. */
  isAdmin: boolean;
}

/** One object Atria or AD already holds. */
export interface LocalIdentity {
  /** Stable key: the Atria user id, or `ad:<objectGUID base64>` for an AD object not in Atria. */
  key: string;
  userPrincipalName: string;
  displayName: string;
  /** base64 of objectGUID and of ms-DS-ConsistencyGuid, where known (the on-prem source anchors). */
  anchors: string[];
  primarySmtp: string | null;
  employeeId: string | null;
  /** Already linked to this Entra object (Tenant Connect re-run, or Atria created it). */
  entraObjectId: string | null;
}

export interface Candidate {
  key: string;
  score: number;
  /** Which rules contributed, e.g. ['upn', 'displayName'] or ['anchor']. */
  rules: string[];
}

export type MatchDecision =
  /** Linked: already (`linked`), by anchor (`hard`) or by a definite soft score (`soft`). */
  | { kind: 'match'; how: 'linked' | 'hard' | 'soft'; key: string; score: number; rules: string[] }
  /** A person decides: below definite, ambiguous, or an admin. */
  | { kind: 'case'; reason: 'belowDefinite' | 'ambiguous' | 'adminRole'; candidates: Candidate[] }
  /** No candidate at all: the user exists only in the cloud. */
  | { kind: 'none' };

/** Primary SMTP address of a Graph proxyAddresses list (case-sensitive prefix, per Exchange). */
export function primarySmtpOf(proxyAddresses: readonly string[]): string | null {
  for (const address of proxyAddresses) if (address.startsWith('SMTP:')) return address.slice(5);
  return null;
}

/** base64 of a GUID's 16 bytes in AD's byte order (the first three fields little-endian). */
export function guidToBase64(guid: string): string {
  const hex = guid.replace(/[{}-]/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a GUID: ${guid}`);
  const bytes = Buffer.from(hex, 'hex');
  const ordered = Buffer.concat([
    Buffer.from(bytes.subarray(0, 4)).reverse(),
    Buffer.from(bytes.subarray(4, 6)).reverse(),
    Buffer.from(bytes.subarray(6, 8)).reverse(),
    bytes.subarray(8),
  ]);
  return ordered.toString('base64');
}

const fold = (value: string): string => value.trim().toLowerCase();
const foldName = (value: string): string => fold(value).replace(/\s+/g, ' ');

function addTo(index: Map<string, string[]>, key: string | null, value: string): void {
  if (key === null || key === '') return;
  const list = index.get(key);
  if (list === undefined) index.set(key, [value]);
  else if (!list.includes(value)) list.push(value);
}

/**
 * Indexes the local side once, then decides for each cloud user as it streams past. Tracks which local
 * objects were matched so a second claim on one local object is caught (`claimedTwice`) and the
 * unclaimed ones can be reported as only local.
 */
export class Matcher {
  private readonly byKey = new Map<string, LocalIdentity>();
  private readonly byAnchor = new Map<string, string[]>();
  private readonly byUpn = new Map<string, string[]>();
  private readonly bySmtp = new Map<string, string[]>();
  private readonly byEntraId = new Map<string, string>();
  /** local key → the cloud ids that matched it. */
  private readonly claims = new Map<string, string[]>();
  /** local keys that were a candidate of some case: not "only local", a person decides them. */
  private readonly considered = new Set<string>();

  constructor(
    locals: Iterable<LocalIdentity>,
    private readonly rules: MatchRules = defaultMatchRules,
  ) {
    if (!(rules.candidate > 0 && rules.candidate <= rules.definite && rules.definite <= 1))
      throw new Error('match rules need 0 < candidate ≤ definite ≤ 1');
    for (const local of locals) {
      this.byKey.set(local.key, local);
      // Anchors are base64 and case-sensitive (DOMAIN.md): never folded.
      for (const anchor of local.anchors) addTo(this.byAnchor, anchor, local.key);
      addTo(this.byUpn, fold(local.userPrincipalName), local.key);
      addTo(this.bySmtp, local.primarySmtp === null ? null : fold(local.primarySmtp), local.key);
      if (local.entraObjectId !== null) this.byEntraId.set(local.entraObjectId, local.key);
    }
  }

  get size(): number {
    return this.byKey.size;
  }

  local(key: string): LocalIdentity | undefined {
    return this.byKey.get(key);
  }

  /** Scores one local object against one cloud user (soft rules only). */
  score(cloud: CloudIdentity, local: LocalIdentity): Candidate {
    const { weights } = this.rules;
    const rules: string[] = [];
    let score = 0;
    if (fold(cloud.userPrincipalName) === fold(local.userPrincipalName)) {
      score += weights.upn;
      rules.push('upn');
    }
    const smtp = primarySmtpOf(cloud.proxyAddresses);
    if (smtp !== null && local.primarySmtp !== null && fold(smtp) === fold(local.primarySmtp)) {
      score += weights.primarySmtp;
      rules.push('primarySmtp');
    }
    // Supporting rules only count next to an identifying one (a shared name alone is no evidence).
    if (rules.length > 0) {
      if (foldName(cloud.displayName) === foldName(local.displayName)) {
        score += weights.displayName;
        rules.push('displayName');
      }
      if (cloud.employeeId !== null && local.employeeId !== null && cloud.employeeId === local.employeeId) {
        score += weights.employeeId;
        rules.push('employeeId');
      }
    }
    return { key: local.key, score: Math.min(softCeiling, Math.round(score * 1000) / 1000), rules };
  }

  match(cloud: CloudIdentity): MatchDecision {
    const decision = this.decide(cloud);
    if (decision.kind === 'case')
      for (const candidate of decision.candidates) this.considered.add(candidate.key);
    if (decision.kind === 'match') {
      const claimed = this.claims.get(decision.key);
      if (claimed === undefined) this.claims.set(decision.key, [cloud.id]);
      else if (!claimed.includes(cloud.id)) claimed.push(cloud.id);
    }
    return decision;
  }

  private decide(cloud: CloudIdentity): MatchDecision {
    // An existing link is not a new match: Connect evaluates matching only for new objects.
    const linked = this.byEntraId.get(cloud.id);
    if (linked !== undefined)
      return { kind: 'match', how: 'linked', key: linked, score: 1, rules: ['linked'] };

    const hard =
      cloud.onPremisesImmutableId === null ? [] : (this.byAnchor.get(cloud.onPremisesImmutableId) ?? []);
    if (hard.length > 1)
      return {
        kind: 'case',
        reason: 'ambiguous',
        candidates: hard.map((key) => ({ key, score: 1, rules: ['anchor'] })),
      };
    const hardKey = hard[0];
    if (hardKey !== undefined) {
      const candidate = { key: hardKey, score: 1, rules: ['anchor'] };
      if (cloud.isAdmin) return { kind: 'case', reason: 'adminRole', candidates: [candidate] };
      return { kind: 'match', how: 'hard', ...candidate };
    }

    if (!this.rules.softMatch) return { kind: 'none' };
    const keys = new Set<string>(this.byUpn.get(fold(cloud.userPrincipalName)) ?? []);
    const smtp = primarySmtpOf(cloud.proxyAddresses);
    if (smtp !== null) for (const key of this.bySmtp.get(fold(smtp)) ?? []) keys.add(key);
    const candidates: Candidate[] = [];
    for (const key of keys) {
      const local = this.byKey.get(key);
      // A local object already linked to another Entra object is not free to match.
      if (local === undefined || (local.entraObjectId !== null && local.entraObjectId !== cloud.id)) continue;
      const candidate = this.score(cloud, local);
      if (candidate.score >= this.rules.candidate) candidates.push(candidate);
    }
    candidates.sort((a, b) => b.score - a.score || a.key.localeCompare(b.key));
    const best = candidates[0];
    if (best === undefined) return { kind: 'none' };
    if (cloud.isAdmin) return { kind: 'case', reason: 'adminRole', candidates };
    if (candidates.length > 1) return { kind: 'case', reason: 'ambiguous', candidates };
    if (best.score >= this.rules.definite) return { kind: 'match', how: 'soft', ...best };
    return { kind: 'case', reason: 'belowDefinite', candidates };
  }

  /** Local objects matched by more than one cloud user: none of those matches may stand. */
  *claimedTwice(): Iterable<{ key: string; cloudIds: string[] }> {
    for (const [key, cloudIds] of this.claims) if (cloudIds.length > 1) yield { key, cloudIds };
  }

  /** Local objects no cloud user matched nor named as a candidate (only in Atria or AD). */
  *unclaimed(): Iterable<LocalIdentity> {
    for (const [key, local] of this.byKey)
      if (!this.claims.has(key) && !this.considered.has(key)) yield local;
  }

  /** Records a case candidate seen by an earlier run (a resumed run's earlier pages). */
  restoreCandidate(key: string): void {
    this.considered.add(key);
  }

  /** Records a match made outside this matcher (a resumed run's earlier pages). */
  restoreClaim(key: string, cloudId: string): void {
    const claimed = this.claims.get(key);
    if (claimed === undefined) this.claims.set(key, [cloudId]);
    else if (!claimed.includes(cloudId)) claimed.push(cloudId);
  }
}

// ─── Attribute differences by source of truth ─────────────────────────────────────────────────────────

/** Attributes compared between the cloud and the local side. */
export const comparedAttributes = [
  'userPrincipalName',
  'displayName',
  'givenName',
  'surname',
  'jobTitle',
  'department',
] as const;
export type ComparedAttribute = (typeof comparedAttributes)[number];

export type AttributeValues = Partial<Record<ComparedAttribute, string | null>>;

/**
 * Who is authoritative for an attribute: for a user anchored in AD (hybrid) AD wins every attribute
 * Connect would sync; for a cloud-only user Entra is the source.
 */
export function sourceOfTruth(attribute: ComparedAttribute, anchoredInAd: boolean): 'ad' | 'cloud' {
  void attribute; // every compared attribute follows the user's anchor today; kept per attribute on purpose
  return anchoredInAd ? 'ad' : 'cloud';
}

export interface AttributeDifference {
  attribute: ComparedAttribute;
  cloud: string | null;
  local: string | null;
  /** The side whose value is kept; the other side is changed to it when the diff is applied. */
  winner: 'ad' | 'cloud';
}

/** Differences on the attributes both sides know (an attribute unknown on one side is not compared). */
export function diffAttributes(
  cloud: AttributeValues,
  local: AttributeValues,
  anchoredInAd: boolean,
): AttributeDifference[] {
  const differences: AttributeDifference[] = [];
  for (const attribute of comparedAttributes) {
    const a = cloud[attribute];
    const b = local[attribute];
    if (a === undefined || b === undefined) continue;
    const same =
      attribute === 'userPrincipalName' ? fold(a ?? '') === fold(b ?? '') : (a ?? '') === (b ?? '');
    if (!same)
      differences.push({ attribute, cloud: a, local: b, winner: sourceOfTruth(attribute, anchoredInAd) });
  }
  return differences;
}

// ─── The accidental-delete guard for sync passes ──────────────────────────────────────────────────────

export interface DeleteGuard {
  /** More deletions than this in one pass stop it (Entra Connect's export default is 500). */
  maxCount: number;
  /** More than this share of the customer's users in one pass stops it… */
  maxPercent: number;
  /** …once at least this many are deleted (so one leaver of a ten-user customer passes). */
  minForPercent: number;
}

export function deleteGuardTrips(deletions: number, users: number, guard: DeleteGuard): boolean {
  if (deletions > guard.maxCount) return true;
  return deletions >= guard.minForPercent && deletions * 100 > guard.maxPercent * Math.max(users, 1);
}
