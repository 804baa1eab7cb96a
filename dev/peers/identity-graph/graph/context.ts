import type { VerifiedToken } from '../identity.js';
import type { Faults } from '../faults.js';
import type { DirectoryState, TenantState } from '../state.js';

export interface GraphRequest {
  method: string;
  /** Decoded path segments after /v1.0 (e.g. ['users', 'ada@contoso.example']). */
  segments: string[];
  query: URLSearchParams;
  /** Lower-cased header names. */
  headers: Record<string, string | undefined>;
  body: unknown;
  /** Raw query string as sent, for building nextLinks that keep every original parameter. */
  rawQuery: string;
}

export interface GraphResponse {
  status: number;
  headers?: Record<string, string>;
  /** JSON body; a string is sent as text/plain (e.g. /users/$count). */
  body?: unknown;
}

export interface GraphContext {
  state: DirectoryState;
  tenant: TenantState;
  token: VerifiedToken;
  faults: Faults;
  /** e.g. https://127.0.0.1:PORT/v1.0 */
  graphBaseUrl: string;
  requestId: string;
  clientRequestId: string;
  /** True inside $batch (nested $batch is refused). */
  inBatch: boolean;
}

export function graphError(
  ctx: GraphContext,
  status: number,
  code: string,
  message: string,
  extraHeaders?: Record<string, string>,
): GraphResponse {
  return {
    status,
    ...(extraHeaders === undefined ? {} : { headers: extraHeaders }),
    body: {
      error: {
        code,
        message,
        innerError: {
          date: new Date().toISOString().replace(/\.\d+Z$/, ''),
          'request-id': ctx.requestId,
          'client-request-id': ctx.clientRequestId,
        },
      },
    },
  };
}

export const badRequest = (ctx: GraphContext, message: string): GraphResponse =>
  graphError(ctx, 400, 'Request_BadRequest', message);

export const notFound = (ctx: GraphContext, id: string): GraphResponse =>
  graphError(
    ctx,
    404,
    'Request_ResourceNotFound',
    `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
  );

export const invalidValue = (ctx: GraphContext, property: string, resource: string): GraphResponse =>
  badRequest(ctx, `Invalid value specified for property '${property}' of resource '${resource}'.`);

/** App roles that grant each kind of access (Microsoft Graph permissions reference, least privileged first). */
export const permissions = {
  readUsers: ['User.Read.All', 'User.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'],
  writeUsers: ['User.ReadWrite.All', 'Directory.ReadWrite.All'],
  readDomains: ['Domain.Read.All', 'Domain.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'],
  writeDomains: ['Domain.ReadWrite.All'],
  readOrganization: [
    'Organization.Read.All',
    'Organization.ReadWrite.All',
    'Directory.Read.All',
    'Directory.ReadWrite.All',
  ],
  readSkus: [
    'LicenseAssignment.Read.All',
    'Organization.Read.All',
    'Directory.Read.All',
    'Directory.ReadWrite.All',
  ],
  assignLicences: ['LicenseAssignment.ReadWrite.All', 'User.ReadWrite.All', 'Directory.ReadWrite.All'],
  readGroups: [
    'GroupMember.Read.All',
    'Group.Read.All',
    'Group.ReadWrite.All',
    'Directory.Read.All',
    'Directory.ReadWrite.All',
  ],
  writeGroups: ['Group.ReadWrite.All', 'Directory.ReadWrite.All'],
  writeMembers: ['GroupMember.ReadWrite.All', 'Group.ReadWrite.All', 'Directory.ReadWrite.All'],
  /** contract-list.md */
  readContracts: ['Directory.Read.All', 'Directory.ReadWrite.All'],
} as const;

export function denied(ctx: GraphContext, needs: readonly string[]): GraphResponse | undefined {
  if (needs.some((role) => ctx.token.roles.includes(role))) return undefined;
  return graphError(
    ctx,
    403,
    'Authorization_RequestDenied',
    'Insufficient privileges to complete the operation.',
  );
}

/** Projects a record onto $select (or the default set) with unset properties as null. */
export function project(
  record: Record<string, unknown>,
  select: string[] | undefined,
  defaults: readonly string[],
  collectionDefaults: Record<string, unknown> = {},
): Record<string, unknown> {
  const keys = select ?? defaults;
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const value = record[key];
    out[key] = value === undefined ? (key in collectionDefaults ? collectionDefaults[key] : null) : value;
  }
  return out;
}

export function parseSelect(query: URLSearchParams): string[] | undefined {
  const raw = query.get('$select');
  if (raw === null || raw.trim() === '') return undefined;
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function contextUrl(
  ctx: GraphContext,
  entitySet: string,
  select: string[] | undefined,
  single: boolean,
): string {
  const sel = select === undefined ? '' : `(${select.join(',')})`;
  return `${ctx.graphBaseUrl}/$metadata#${entitySet}${sel}${single ? '/$entity' : ''}`;
}

export function encodeToken(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeToken(token: string): unknown {
  try {
    return JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
