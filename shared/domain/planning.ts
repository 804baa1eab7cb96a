import { allowedUpnSuffixes, writesToAd, writesToEntra, type Customer } from './customer.js';
import { upnParts } from './identity.js';
import { newStep, type OperationKind, type Step } from './operation.js';
import type { CreateUserRequest, UserRecord } from './user.js';

/**
 * Pure planning of the operation engine: which steps a request needs, whether it fits the customer,
 * what the bulk guard decides, how long to wait before a retry and when an operation gives up.
 */

export interface PlanIssue {
  path: string;
  message: string;
}

/** Steps of a create: AD first (hybrid needs the objectGUID), then Entra, then licences. */
export function planCreateSteps(customer: Customer, request: Pick<CreateUserRequest, 'licencePlan'>): Step[] {
  const steps: Step[] = [];
  if (writesToAd(customer.identityMode)) steps.push(newStep('ad.create'));
  if (writesToEntra(customer.identityMode)) steps.push(newStep('entra.create'));
  if (request.licencePlan !== undefined) steps.push(newStep('licences'));
  return steps;
}

/** Steps of a change to an existing user, for the directories the user is linked in. */
export function planChangeSteps(
  kind: Exclude<OperationKind, 'user.create'>,
  customer: Customer,
  user: Pick<UserRecord, 'ad' | 'entra'>,
  groupDirectory?: 'ad' | 'entra',
): Step[] {
  const ad = user.ad !== undefined && writesToAd(customer.identityMode);
  const entra = user.entra !== undefined && writesToEntra(customer.identityMode);
  const names: string[] = [];
  switch (kind) {
    case 'user.update':
    case 'user.disable':
    case 'user.enable': {
      const verb = kind.slice('user.'.length);
      if (ad) names.push(`ad.${verb}`);
      if (entra) names.push(`entra.${verb}`);
      break;
    }
    case 'user.delete':
      // Entra first: a federated user whose AD account is gone could no longer sign in anyway.
      if (entra) names.push('entra.delete');
      if (ad) names.push('ad.delete');
      break;
    case 'user.password':
      if (ad) names.push('ad.password');
      // Federated users sign in against AD through ADFS: they have no cloud password.
      if (entra && customer.identityMode !== 'hybridFederated') names.push('entra.password');
      break;
    case 'user.licences':
      if (entra) names.push('licences.change');
      break;
    case 'user.groupAdd':
    case 'user.groupRemove': {
      // One directory per membership: the group lives in AD or in Entra, never both.
      const verb = kind.slice('user.'.length);
      if (groupDirectory === 'ad' && ad) names.push(`ad.${verb}`);
      if (groupDirectory === 'entra' && entra) names.push(`entra.${verb}`);
      break;
    }
  }
  return names.map(newStep);
}

/** What a customer's configuration says about one create request (empty: it fits). */
export function createRequestIssues(customer: Customer, request: CreateUserRequest): PlanIssue[] {
  const errors: PlanIssue[] = [];
  const { domain } = upnParts(request.userPrincipalName);
  const suffixes = allowedUpnSuffixes(customer);
  if (!suffixes.includes(domain)) {
    errors.push({
      path: 'body.userPrincipalName',
      message: `domain must be one of: ${suffixes.join(', ') || '(none configured)'}`,
    });
  }
  if (customer.identityMode === 'hybridFederated' && domain !== customer.entra?.federatedDomain) {
    errors.push({
      path: 'body.userPrincipalName',
      message: `hybrid users sign in through ADFS: use @${customer.entra?.federatedDomain ?? ''}`,
    });
  }
  if (request.licencePlan !== undefined) {
    if (customer.identityMode === 'adOnly')
      errors.push({ path: 'body.licencePlan', message: 'adOnly customers have no Entra licences' });
    else if (!customer.licencePlans.some((p) => p.name === request.licencePlan)) {
      errors.push({
        path: 'body.licencePlan',
        message: `unknown plan; the customer has: ${customer.licencePlans.map((p) => p.name).join(', ') || '(none)'}`,
      });
    }
    if (request.usageLocation === undefined && customer.defaultUsageLocation === undefined) {
      errors.push({
        path: 'body.usageLocation',
        message: 'required for licences (the customer has no defaultUsageLocation)',
      });
    }
  }
  for (const group of request.groups ?? []) {
    const directory = group.slice(0, group.indexOf('.'));
    if (directory === 'ad' ? !writesToAd(customer.identityMode) : !writesToEntra(customer.identityMode))
      errors.push({
        path: 'body.groups',
        message: `${group}: a ${customer.identityMode} customer's users have no ${directory === 'ad' ? 'AD' : 'Entra'} account`,
      });
  }
  if (writesToAd(customer.identityMode) && request.accountEnabled && request.password === undefined) {
    errors.push({ path: 'body.password', message: 'an enabled AD account needs an initial password' });
  }
  if (customer.identityMode === 'cloudOnly' && request.password !== undefined) {
    errors.push({
      path: 'body.password',
      message: 'cloud-only users get a random password; set one with POST …/password',
    });
  }
  return errors;
}

export interface GuardSettings {
  /** Hold a disable/delete that would affect more than this share of the customer's users in the window… */
  maxSharePercent: number;
  /** …once at least this many are affected (small customers are not held for one user). */
  minUsers: number;
  windowInMinutes: number;
}

/** Like Entra Connect's accidental-delete threshold: `affected` counts this request too. */
export function guardHolds(settings: GuardSettings, affected: number, totalUsers: number): boolean {
  return affected >= settings.minUsers && affected * 100 > settings.maxSharePercent * Math.max(totalUsers, 1);
}

export interface BackoffSettings {
  baseDelayInMs: number;
  maxDelayInMs: number;
}

/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): a
 * uniformly random delay up to base·2^(retry-1), capped; never shorter than the server's Retry-After.
 */
export function retryDelayInMs(
  retry: number,
  settings: BackoffSettings,
  random: () => number,
  retryAfterInSeconds?: number,
): number {
  const ceiling = Math.min(settings.maxDelayInMs, settings.baseDelayInMs * 2 ** Math.max(0, retry - 1));
  const jittered = Math.max(settings.baseDelayInMs / 2, Math.floor(random() * ceiling));
  const floor =
    retryAfterInSeconds === undefined
      ? 0
      : Math.min(retryAfterInSeconds, maxHonouredRetryAfterInSeconds) * 1000;
  return Math.max(jittered, floor);
}

/**
 * The longest server-requested wait a step is re-scheduled by. A Retry-After of 1e20 s (seen from a
 * fuzzed Partner Center or Pax8 answer, test/fuzz/regressions.test.ts) would otherwise make an invalid
 * Date; beyond an hour the operation's deadline is what should decide.
 */
export const maxHonouredRetryAfterInSeconds = 3600;

/** Overall time an operation may take before it fails visibly, by kind (creates touch most systems). */
export interface DeadlineSettings {
  createDeadlineInMinutes: number;
  changeDeadlineInMinutes: number;
}

export function deadlineFor(kind: OperationKind, start: Date, settings: DeadlineSettings): Date {
  const minutes =
    kind === 'user.create' ? settings.createDeadlineInMinutes : settings.changeDeadlineInMinutes;
  return new Date(start.getTime() + minutes * 60_000);
}

/**
 * The CN of a new AD user. First the display name (what AD Users and Computers does); when that RDN is
 * taken in the OU, `<displayName> (<sAMAccountName>)`: deterministic, readable, and unique because the
 * sAMAccountName is unique in the domain. Documented in README ("AD name clashes").
 */
export function adCommonName(displayName: string, sAMAccountName: string, clash: boolean): string {
  if (!clash) return displayName.slice(0, 64);
  const suffix = ` (${sAMAccountName})`;
  return `${displayName.slice(0, 64 - suffix.length)}${suffix}`;
}
