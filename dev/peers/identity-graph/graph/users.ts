import { randomUUID } from 'node:crypto';
import {
  effectiveLicences,
  holdsSku,
  licenceAssignmentStates,
  recordPropertyChange,
  type TenantState,
  type UserRecord,
} from '../state.js';
import { FilterSyntaxError, parseFilter, type Getter } from './filter.js';
import { maxExtensionValues, userExtension, validExtensionValue } from './extensions.js';
import {
  badRequest,
  contextUrl,
  decodeToken,
  denied,
  encodeToken,
  graphError,
  invalidValue,
  isRecord,
  notFound,
  parseSelect,
  permissions,
  project,
  type GraphContext,
  type GraphRequest,
  type GraphResponse,
} from './context.js';

/** The 11 properties GET and list return without $select (user-get.md, user-list.md). */
export const defaultUserProperties = [
  'businessPhones',
  'displayName',
  'givenName',
  'jobTitle',
  'mail',
  'mobilePhone',
  'officeLocation',
  'preferredLanguage',
  'surname',
  'userPrincipalName',
  'id',
] as const;

const collectionDefaults = { businessPhones: [], otherMails: [], proxyAddresses: [], assignedLicenses: [] };

const writable = new Set([
  'accountEnabled',
  'ageGroup',
  'businessPhones',
  'city',
  'companyName',
  'consentProvidedForMinor',
  'country',
  'department',
  'displayName',
  'employeeHireDate',
  'employeeId',
  'employeeType',
  'faxNumber',
  'givenName',
  'jobTitle',
  'mail',
  'mailNickname',
  'mobilePhone',
  'officeLocation',
  'onPremisesImmutableId',
  'otherMails',
  'passwordPolicies',
  'passwordProfile',
  'postalCode',
  'preferredLanguage',
  'showInAddressList',
  'state',
  'streetAddress',
  'surname',
  'usageLocation',
  'userPrincipalName',
  'userType',
]);

/** Supported only on a single-user GET; on /users they give 501 (user-list.md). */
const singleUserOnly = new Set([
  'aboutMe',
  'birthday',
  'hireDate',
  'interests',
  'mySite',
  'pastProjects',
  'preferredName',
  'responsibilities',
  'schools',
  'skills',
  'mailboxSettings',
]);

const filterable = new Set([
  'id',
  'userPrincipalName',
  'displayName',
  'givenName',
  'surname',
  'mail',
  'mailNickname',
  'accountEnabled',
  'onPremisesImmutableId',
  'usageLocation',
  'employeeId',
  'jobTitle',
  'department',
  'companyName',
  'userType',
  'createdDateTime',
  'otherMails',
  'proxyAddresses',
  'assignedLicenses',
  'city',
  'country',
  'state',
  'officeLocation',
  'preferredLanguage',
  'mobilePhone',
  'businessPhones',
]);
const endsWithAllowed = new Set(['mail', 'otherMails', 'userPrincipalName', 'proxyAddresses']);

/** Max lengths from resources/user.md. */
const maxLengths: Record<string, number> = {
  displayName: 256,
  givenName: 64,
  surname: 64,
  mailNickname: 64,
  mobilePhone: 64,
  department: 64,
  companyName: 64,
  jobTitle: 128,
  city: 128,
  state: 128,
  country: 128,
  postalCode: 40,
  streetAddress: 1024,
  employeeId: 16,
};

function valueText(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    ? String(value)
    : '';
}

export function userGetter(user: UserRecord): Getter {
  return (property) => {
    if (property === 'id') return user.id;
    if (property === 'assignedLicenses') return effectiveLicences(user);
    if (property === 'proxyAddresses') return [`SMTP:${String(user.props['userPrincipalName'])}`];
    return user.props[property];
  };
}

export function userView(user: UserRecord, select: string[] | undefined): Record<string, unknown> {
  const record: Record<string, unknown> = {
    ...user.props,
    id: user.id,
    // Direct and inherited (group-based) ones; the per-source detail only on $select (user.md).
    assignedLicenses: effectiveLicences(user).map((l) => ({
      disabledPlans: l.disabledPlans,
      skuId: l.skuId,
    })),
    licenseAssignmentStates: licenceAssignmentStates(user, valueText(user.props['createdDateTime'])),
    proxyAddresses: [`SMTP:${String(user.props['userPrincipalName'])}`],
    passwordProfile: null,
    deletedDateTime: user.deletedAtMs === undefined ? null : new Date(user.deletedAtMs).toISOString(),
  };
  return project(record, select, defaultUserProperties, collectionDefaults);
}

/** Within the replication-lag window a just-created object is not yet readable. */
export function lagging(ctx: GraphContext, createdAtMs: number): boolean {
  return (
    ctx.faults.replicationLagInMs > 0 && ctx.state.clock.nowMs() - createdAtMs < ctx.faults.replicationLagInMs
  );
}

export function lookupUser(ctx: GraphContext, key: string): UserRecord | undefined {
  const user = ctx.tenant.findUser(key);
  if (user === undefined || lagging(ctx, user.createdAtMs)) return undefined;
  return user;
}

/** `/users/{id|upn}` and `/users('{upn}')` (user-get.md: a UPN starting with $ needs the second form). */
export function userKey(ctx: GraphContext, segment: string): string | GraphResponse {
  const quoted = /^\('(.*)'\)$/.exec(segment);
  if (quoted?.[1] !== undefined) return quoted[1].replace(/''/g, "'");
  if (segment.startsWith('$')) return badRequest(ctx, `Invalid object identifier '${segment}'.`);
  return segment;
}

const upnAlias = /^[A-Za-z0-9'._!#^~-]+$/;

function validateUpn(ctx: GraphContext, upn: unknown): GraphResponse | undefined {
  if (typeof upn !== 'string') return invalidValue(ctx, 'userPrincipalName', 'User');
  const at = upn.lastIndexOf('@');
  const alias = upn.slice(0, at);
  const domain = upn.slice(at + 1).toLowerCase();
  if (at <= 0 || !upnAlias.test(alias) || alias.startsWith('.') || alias.endsWith('.') || alias.length > 64) {
    return invalidValue(ctx, 'userPrincipalName', 'User');
  }
  const record = ctx.tenant.domains.get(domain);
  if (record === undefined || !record.isVerified) {
    return badRequest(
      ctx,
      'The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.',
    );
  }
  return undefined;
}

/** Entra's default policy: 8–256 characters and three of upper, lower, digit, symbol. */
function passwordComplies(password: string): boolean {
  if (password.length < 8 || password.length > 256) return false;
  const classes = [/[A-Z]/, /[a-z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  return classes >= 3;
}

function validatePasswordProfile(ctx: GraphContext, profile: unknown): GraphResponse | undefined {
  if (!isRecord(profile)) return invalidValue(ctx, 'passwordProfile', 'User');
  const password = profile['password'];
  if (typeof password !== 'string' || password.length === 0)
    return invalidValue(ctx, 'passwordProfile', 'User');
  if (!passwordComplies(password)) {
    return badRequest(
      ctx,
      'The specified password does not comply with password complexity requirements. Please provide a different password.',
    );
  }
  for (const key of Object.keys(profile)) {
    if (
      !['password', 'forceChangePasswordNextSignIn', 'forceChangePasswordNextSignInWithMfa'].includes(key)
    ) {
      return invalidValue(ctx, 'passwordProfile', 'User');
    }
  }
  return undefined;
}

function duplicate(ctx: GraphContext, property: string): GraphResponse {
  return badRequest(ctx, `Another object with the same value for property ${property} already exists.`);
}

function isFederated(tenant: TenantState, upn: string): boolean {
  const domain = upn.slice(upn.lastIndexOf('@') + 1).toLowerCase();
  return tenant.domains.get(domain)?.authenticationType === 'Federated';
}

/** Validates the properties present in a POST or PATCH body (shared rules). */
function validateProperties(
  ctx: GraphContext,
  body: Record<string, unknown>,
  self: UserRecord | undefined,
): GraphResponse | undefined {
  let extensionValues = Object.keys(self?.props ?? {}).filter(
    (k) => k.startsWith('extension_') && self?.props[k] !== null && !(k in body),
  ).length;
  for (const [key, value] of Object.entries(body)) {
    if (key.startsWith('@odata.')) continue;
    // Directory extensions of apps consented in this tenant (resources/extensionproperty.md).
    const extension = key.startsWith('extension_')
      ? userExtension(ctx.tenant, ctx.state.apps.values(), key)
      : undefined;
    if (extension !== undefined) {
      if (!validExtensionValue(extension, value)) return invalidValue(ctx, key, 'User');
      if (value !== null) extensionValues += 1;
      if (extensionValues > maxExtensionValues)
        return badRequest(ctx, `A resource can hold at most ${String(maxExtensionValues)} extension values.`);
      continue;
    }
    if (!writable.has(key)) {
      if (key === 'id' || key === 'createdDateTime' || key === 'assignedLicenses')
        return invalidValue(ctx, key, 'User');
      return badRequest(
        ctx,
        `Property '${key}' does not exist as a declared property or extension property.`,
      );
    }
    const max = maxLengths[key];
    if (max !== undefined && value !== null && (typeof value !== 'string' || value.length > max))
      return invalidValue(ctx, key, 'User');
  }
  if (
    'displayName' in body &&
    (typeof body['displayName'] !== 'string' || body['displayName'].trim() === '')
  ) {
    return invalidValue(ctx, 'displayName', 'User');
  }
  if ('accountEnabled' in body && typeof body['accountEnabled'] !== 'boolean')
    return invalidValue(ctx, 'accountEnabled', 'User');
  if (
    'usageLocation' in body &&
    (typeof body['usageLocation'] !== 'string' || !/^[A-Z]{2}$/.test(body['usageLocation']))
  ) {
    return invalidValue(ctx, 'usageLocation', 'User');
  }
  if (
    'mailNickname' in body &&
    (typeof body['mailNickname'] !== 'string' ||
      !/^[\x21-\x7e]+$/.test(body['mailNickname']) ||
      /[@()\\[\]";:<>,]/.test(body['mailNickname']))
  ) {
    return invalidValue(ctx, 'mailNickname', 'User');
  }
  if ('userPrincipalName' in body) {
    const failure = validateUpn(ctx, body['userPrincipalName']);
    if (failure !== undefined) return failure;
    const upn = String(body['userPrincipalName']).toLowerCase();
    // Soft-deleted users keep their UPN until they are purged.
    for (const other of ctx.tenant.users.values()) {
      if (other === self || other.purged === true) continue;
      if (String(other.props['userPrincipalName']).toLowerCase() === upn)
        return duplicate(ctx, 'userPrincipalName');
    }
  }
  if ('onPremisesImmutableId' in body && body['onPremisesImmutableId'] !== null) {
    const immutableId = body['onPremisesImmutableId'];
    if (typeof immutableId !== 'string' || immutableId.length === 0 || /[$_]/.test(immutableId)) {
      return invalidValue(ctx, 'onPremisesImmutableId', 'User');
    }
    for (const other of ctx.tenant.users.values()) {
      if (other === self || other.purged === true) continue;
      if (other.props['onPremisesImmutableId'] === immutableId)
        return duplicate(ctx, 'onPremisesImmutableId');
    }
  }
  if ('passwordProfile' in body) {
    const failure = validatePasswordProfile(ctx, body['passwordProfile']);
    if (failure !== undefined) return failure;
  }
  return undefined;
}

export function createUser(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, permissions.writeUsers);
  if (forbidden !== undefined) return forbidden;
  const body = req.body;
  if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
  for (const required of ['accountEnabled', 'displayName', 'mailNickname', 'userPrincipalName']) {
    if (body[required] === undefined || body[required] === null) return invalidValue(ctx, required, 'User');
  }
  const failure = validateProperties(ctx, body, undefined);
  if (failure !== undefined) return failure;
  const upn = String(body['userPrincipalName']);
  const federated = isFederated(ctx.tenant, upn);
  const immutableId = body['onPremisesImmutableId'];
  // user-post-users.md: onPremisesImmutableId is required for a UPN in a federated domain; such users
  // sign in at the federation service, so no cloud password is needed.
  if (federated && (typeof immutableId !== 'string' || immutableId.length === 0)) {
    return badRequest(
      ctx,
      "Property 'onPremisesImmutableId' is required when the userPrincipalName is in a federated domain.",
    );
  }
  if (!federated && body['passwordProfile'] === undefined)
    return invalidValue(ctx, 'passwordProfile', 'User');
  const now = ctx.state.clock;
  const id = randomUUID();
  const props: Record<string, unknown> = { ...body };
  delete props['passwordProfile'];
  for (const key of Object.keys(props)) if (key.startsWith('@odata.')) delete props[key];
  props['createdDateTime'] = now
    .now()
    .toISOString()
    .replace(/\.\d+Z$/, 'Z');
  const user: UserRecord = {
    id,
    props,
    assignedLicenses: [],
    deletedAtMs: undefined,
    createdAtMs: now.nowMs(),
    seq: ctx.tenant.nextSeq(),
  };
  ctx.tenant.users.set(id, user);
  return {
    status: 201,
    headers: { Location: `${ctx.graphBaseUrl}/directoryObjects/${id}/Microsoft.DirectoryServices.User` },
    body: { '@odata.context': contextUrl(ctx, 'users', undefined, true), ...userView(user, undefined) },
  };
}

export function getUser(ctx: GraphContext, req: GraphRequest, key: string): GraphResponse {
  const forbidden = denied(ctx, permissions.readUsers);
  if (forbidden !== undefined) return forbidden;
  const user = lookupUser(ctx, key);
  if (user === undefined) return notFound(ctx, key);
  const select = parseSelect(req.query);
  return {
    status: 200,
    body: { '@odata.context': contextUrl(ctx, 'users', select, true), ...userView(user, select) },
  };
}

export function updateUser(ctx: GraphContext, req: GraphRequest, key: string): GraphResponse {
  const forbidden = denied(ctx, permissions.writeUsers);
  if (forbidden !== undefined) return forbidden;
  const user = lookupUser(ctx, key);
  if (user === undefined) return notFound(ctx, key);
  const body = req.body;
  if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
  const failure = validateProperties(ctx, body, user);
  if (failure !== undefined) return failure;
  const nextUpn = String(body['userPrincipalName'] ?? user.props['userPrincipalName']);
  const nextImmutable =
    'onPremisesImmutableId' in body ? body['onPremisesImmutableId'] : user.props['onPremisesImmutableId'];
  if (isFederated(ctx.tenant, nextUpn) && (typeof nextImmutable !== 'string' || nextImmutable.length === 0)) {
    return badRequest(
      ctx,
      "Property 'onPremisesImmutableId' is required when the userPrincipalName is in a federated domain.",
    );
  }
  const changed: string[] = [];
  for (const [k, v] of Object.entries(body)) {
    if (k.startsWith('@odata.')) continue;
    changed.push(k);
    // proxyAddresses is derived from the UPN here.
    if (k === 'userPrincipalName') changed.push('proxyAddresses');
    if (k === 'passwordProfile') continue;
    user.props[k] = v;
  }
  recordPropertyChange(ctx.tenant, user, changed);
  return { status: 204 };
}

export function deleteUser(ctx: GraphContext, key: string): GraphResponse {
  const forbidden = denied(ctx, permissions.writeUsers);
  if (forbidden !== undefined) return forbidden;
  const user = lookupUser(ctx, key);
  if (user === undefined) return notFound(ctx, key);
  user.deletedAtMs = ctx.state.clock.nowMs();
  user.seq = ctx.tenant.nextSeq();
  return { status: 204 };
}

function advancedQueryError(ctx: GraphContext, operator: string): GraphResponse {
  return graphError(
    ctx,
    400,
    'Request_UnsupportedQuery',
    `Operator '${operator}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information`,
  );
}

interface ListPlan {
  users: UserRecord[];
  select: string[] | undefined;
  advanced: boolean;
}

/** Applies $filter, $search, $orderby and the advanced-query rules; shared by /users and /users/$count. */
function planUserQuery(ctx: GraphContext, req: GraphRequest): ListPlan | GraphResponse {
  const advanced = req.headers['consistencylevel']?.toLowerCase() === 'eventual';
  const countRequested = req.query.get('$count') === 'true';
  const select = parseSelect(req.query);
  if (req.query.has('$skip')) return badRequest(ctx, "Query option '$skip' is not supported.");
  if (req.query.has('$expand'))
    return graphError(ctx, 501, 'NotImplemented', 'The local Graph peer does not support $expand on users.');
  for (const property of select ?? []) {
    if (singleUserOnly.has(property)) {
      return graphError(
        ctx,
        501,
        'NotImplemented',
        `The property '${property}' is only supported for a single user.`,
      );
    }
  }
  let users = ctx.tenant.liveUsers();
  const filterText = req.query.get('$filter');
  const orderBy = req.query.get('$orderby');
  if (filterText !== null) {
    let parsed;
    try {
      parsed = parseFilter(filterText);
    } catch (error) {
      const message = error instanceof FilterSyntaxError ? error.message : 'Invalid filter clause.';
      return badRequest(ctx, `Invalid filter clause: ${message}`);
    }
    for (const property of parsed.properties) {
      // Directory extension properties support $filter (eq) too (resources/extensionproperty.md).
      if (
        !filterable.has(property) &&
        userExtension(ctx.tenant, ctx.state.apps.values(), property) === undefined
      ) {
        return graphError(
          ctx,
          400,
          'Request_UnsupportedQuery',
          `Unsupported or invalid query filter clause specified for property '${property}' of resource 'User'.`,
        );
      }
    }
    const advancedUsed = [...parsed.advancedOperators];
    const needsAdvanced = advancedUsed.length > 0 || orderBy !== null;
    if (needsAdvanced && !(advanced && countRequested)) {
      return advancedQueryError(ctx, advancedUsed[0] ?? 'orderby');
    }
    for (const property of parsed.endsWithProperties) {
      if (!endsWithAllowed.has(property)) {
        return graphError(
          ctx,
          400,
          'Request_UnsupportedQuery',
          `Unsupported or invalid query filter clause specified for property '${property}' of resource 'User'.`,
        );
      }
    }
    users = users.filter((user) => parsed.test(userGetter(user)));
  }
  const search = req.query.get('$search');
  if (search !== null) {
    if (!advanced) {
      return graphError(
        ctx,
        400,
        'Request_UnsupportedQuery',
        "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
      );
    }
    const match = /^"(\w+):(.*)"$/.exec(search.trim());
    if (match?.[1] === undefined || match[2] === undefined)
      return badRequest(ctx, 'Invalid $search: use "property:value".');
    const [, property, term] = match;
    users = users.filter((user) =>
      valueText(userGetter(user)(property)).toLowerCase().includes(term.toLowerCase()),
    );
  }
  if (orderBy !== null) {
    const [property, direction] = orderBy.trim().split(/\s+/);
    if (property !== 'displayName' && property !== 'userPrincipalName') {
      return graphError(
        ctx,
        400,
        'Request_UnsupportedQuery',
        `Sorting not supported for property '${property ?? ''}'.`,
      );
    }
    const sign = direction?.toLowerCase() === 'desc' ? -1 : 1;
    users = [...users].sort(
      (a, b) => sign * String(a.props[property]).localeCompare(String(b.props[property])),
    );
  }
  return { users, select, advanced };
}

export function listUsers(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, permissions.readUsers);
  if (forbidden !== undefined) return forbidden;
  const plan = planUserQuery(ctx, req);
  if (!('users' in plan)) return plan;
  const topRaw = req.query.get('$top');
  const top = topRaw === null ? 100 : Number(topRaw);
  if (!Number.isInteger(top) || top < 1 || top > 999) {
    return badRequest(
      ctx,
      `Invalid page size specified: '${topRaw ?? ''}'. Must be between 1 and 999 inclusive.`,
    );
  }
  let offset = 0;
  const skipToken = req.query.get('$skiptoken');
  if (skipToken !== null) {
    const decoded = decodeToken(skipToken);
    if (!isRecord(decoded) || typeof decoded['o'] !== 'number') return badRequest(ctx, 'Invalid $skiptoken.');
    offset = decoded['o'];
  }
  const page = plan.users.slice(offset, offset + top);
  const body: Record<string, unknown> = { '@odata.context': contextUrl(ctx, 'users', plan.select, false) };
  // $count=true without ConsistencyLevel is silently ignored; @odata.count only on the first page (paging.md).
  if (plan.advanced && req.query.get('$count') === 'true' && skipToken === null)
    body['@odata.count'] = plan.users.length;
  if (offset + top < plan.users.length) {
    const params = new URLSearchParams(req.rawQuery);
    params.set('$skiptoken', encodeToken({ o: offset + top }));
    body['@odata.nextLink'] = `${ctx.graphBaseUrl}/users?${params.toString()}`;
  }
  body['value'] = page.map((user) => userView(user, plan.select));
  return { status: 200, body };
}

export function countUsers(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, permissions.readUsers);
  if (forbidden !== undefined) return forbidden;
  if (req.headers['consistencylevel']?.toLowerCase() !== 'eventual')
    return badRequest(ctx, '$count is not currently supported.');
  const query = new URLSearchParams(req.rawQuery);
  query.set('$count', 'true');
  const plan = planUserQuery(ctx, { ...req, query });
  if (!('users' in plan)) return plan;
  return { status: 200, body: String(plan.users.length) };
}

export function assignLicense(ctx: GraphContext, req: GraphRequest, key: string): GraphResponse {
  const forbidden = denied(ctx, permissions.assignLicences);
  if (forbidden !== undefined) return forbidden;
  const user = lookupUser(ctx, key);
  if (user === undefined) return notFound(ctx, key);
  const body = req.body;
  if (!isRecord(body) || !Array.isArray(body['addLicenses']) || !Array.isArray(body['removeLicenses'])) {
    return badRequest(
      ctx,
      "Invalid value specified for property 'addLicenses' or 'removeLicenses' of resource 'User'.",
    );
  }
  const add: { skuId: string; disabledPlans: string[] }[] = [];
  for (const item of body['addLicenses'] as unknown[]) {
    if (!isRecord(item) || typeof item['skuId'] !== 'string') return invalidValue(ctx, 'addLicenses', 'User');
    const disabled = item['disabledPlans'] ?? [];
    if (!Array.isArray(disabled) || disabled.some((p) => typeof p !== 'string'))
      return invalidValue(ctx, 'disabledPlans', 'User');
    add.push({
      skuId: item['skuId'].toLowerCase(),
      disabledPlans: (disabled as string[]).map((p) => p.toLowerCase()),
    });
  }
  const remove = (body['removeLicenses'] as unknown[]).map((s) => String(s).toLowerCase());
  for (const skuId of remove) {
    if (!user.assignedLicenses.some((l) => l.skuId === skuId))
      return badRequest(ctx, 'User does not have a corresponding license.');
  }
  for (const { skuId, disabledPlans } of add) {
    const sku = ctx.tenant.skus.get(skuId);
    if (sku === undefined || sku.appliesTo !== 'User' || ctx.tenant.capabilityStatus(skuId) === 'Deleted') {
      return badRequest(ctx, `License ${skuId} does not correspond to a valid company License.`);
    }
    for (const plan of disabledPlans) {
      if (!sku.servicePlans.some((p) => p.servicePlanId.toLowerCase() === plan)) {
        return badRequest(
          ctx,
          `Invalid value specified for disabledPlans: service plan ${plan} is not part of SKU ${skuId}.`,
        );
      }
    }
  }
  if (
    add.length > 0 &&
    (typeof user.props['usageLocation'] !== 'string' || user.props['usageLocation'] === '')
  ) {
    return badRequest(ctx, 'License assignment cannot be done for user with invalid usage location.');
  }
  for (const { skuId } of add) {
    // Held through a group already: a direct assignment of the same SKU takes no second seat.
    const already = holdsSku(user, skuId);
    const sku = ctx.tenant.skus.get(skuId);
    // Only enabled units can be assigned: suspended ones cannot (licenseunitsdetail.md); warning ones are
    // in their grace period and are not counted as free either (inferred).
    if (
      !already &&
      sku !== undefined &&
      ctx.tenant.consumedUnits(skuId) >= ctx.tenant.prepaidUnits(skuId).enabled
    ) {
      return badRequest(ctx, `Subscription with SKU ${skuId} does not have any available licenses.`);
    }
  }
  user.assignedLicenses = user.assignedLicenses.filter((l) => !remove.includes(l.skuId));
  for (const item of add) {
    const existing = user.assignedLicenses.find((l) => l.skuId === item.skuId);
    if (existing === undefined) user.assignedLicenses.push(item);
    else existing.disabledPlans = item.disabledPlans;
  }
  recordPropertyChange(ctx.tenant, user, ['assignedLicenses']);
  return {
    status: 200,
    body: { '@odata.context': contextUrl(ctx, 'users', undefined, true), ...userView(user, undefined) },
  };
}
