import { randomUUID } from 'node:crypto';
import type { AppRecord, ExtensionPropertyRecord, TenantState } from '../state.js';
import {
  badRequest,
  denied,
  graphError,
  isRecord,
  notFound,
  type GraphContext,
  type GraphRequest,
  type GraphResponse,
} from './context.js';

/**
 * Directory extensions (resources/extensionproperty.md, application-post-extensionproperty.md,
 * application-list-extensionproperty.md, extensionproperty-delete.md,
 * directoryobject-getavailableextensionproperties.md): defined on an application in its home tenant,
 * usable on users of every tenant where that multi-tenant app is consented, as
 * `extension_{appId without dashes}_{name}`.
 */

/** application-post-extensionproperty.md permissions (application). */
const writeApplications = [
  'Application.ReadWrite.OwnedBy',
  'Application.ReadWrite.All',
  'Directory.ReadWrite.All',
];
const readApplications = ['Application.Read.All', ...writeApplications, 'Directory.Read.All'];

const dataTypes = new Set(['Binary', 'Boolean', 'DateTime', 'Integer', 'LargeInteger', 'String']);
const targets = new Set(['User', 'Group', 'AdministrativeUnit', 'Application', 'Device', 'Organization']);

function compactAppId(app: AppRecord): string {
  return app.clientId.replace(/-/g, '');
}

function extensionView(app: AppRecord, ext: ExtensionPropertyRecord): Record<string, unknown> {
  return {
    '@odata.type': '#microsoft.graph.extensionProperty',
    id: ext.id,
    deletedDateTime: null,
    appDisplayName: app.displayName,
    dataType: ext.dataType,
    isMultiValued: ext.isMultiValued,
    isSyncedFromOnPremises: false,
    name: ext.name,
    targetObjects: ext.targetObjects,
  };
}

function applicationView(app: AppRecord): Record<string, unknown> {
  return {
    id: app.objectId,
    appId: app.clientId,
    displayName: app.displayName,
    signInAudience: 'AzureADMultipleOrgs',
  };
}

/** `/applications/{objectId}` or `/applications(appId='{appId}')`, among the apps homed in this tenant. */
function findApplication(ctx: GraphContext, key: string): AppRecord | undefined {
  const byAppId = /^\(appId='(.*)'\)$/.exec(key);
  for (const app of ctx.state.apps.values()) {
    if (app.homeTenantId !== ctx.tenant.id) continue;
    if (
      byAppId?.[1] !== undefined
        ? app.clientId === byAppId[1].toLowerCase()
        : app.objectId === key.toLowerCase()
    )
      return app;
  }
  return undefined;
}

/** The extension definition a user property name refers to, if an app consented in the tenant defines it. */
export function userExtension(
  tenant: TenantState,
  apps: Iterable<AppRecord>,
  property: string,
): ExtensionPropertyRecord | undefined {
  const match = /^extension_([0-9a-f]{32})_\w+$/i.exec(property);
  if (match?.[1] === undefined) return undefined;
  for (const app of apps) {
    if (compactAppId(app) !== match[1].toLowerCase() || !app.tenants.has(tenant.id)) continue;
    const ext = app.extensionProperties.find((e) => e.name.toLowerCase() === property.toLowerCase());
    if (ext?.targetObjects.includes('User') === true) return ext;
  }
  return undefined;
}

function validScalar(ext: ExtensionPropertyRecord, value: unknown): boolean {
  switch (ext.dataType) {
    case 'String':
      return typeof value === 'string' && value.length <= 256;
    case 'Boolean':
      return typeof value === 'boolean';
    case 'Integer':
      return typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31;
    case 'LargeInteger':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'DateTime':
      return typeof value === 'string' && !Number.isNaN(Date.parse(value));
    case 'Binary':
      return typeof value === 'string' && Buffer.from(value, 'base64').length <= 256;
  }
}

/** The documented value rules (types, 256 characters or bytes, per item when multi-valued); null clears. */
export function validExtensionValue(ext: ExtensionPropertyRecord, value: unknown): boolean {
  if (value === null) return true;
  if (ext.isMultiValued) return Array.isArray(value) && value.every((v) => validScalar(ext, v));
  return validScalar(ext, value);
}

/** resources/extensionproperty.md: "Only 100 extension values … can be written to any single … resource." */
export const maxExtensionValues = 100;

/** /applications… routes; `segments` start after `applications`. */
export function applications(ctx: GraphContext, req: GraphRequest, segments: string[]): GraphResponse {
  const [key, child, childId, extra] = segments;
  const writing = req.method !== 'GET';
  const forbidden = denied(ctx, writing ? writeApplications : readApplications);
  if (forbidden !== undefined) return forbidden;
  if (key === undefined) {
    if (req.method !== 'GET') return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
    const homed = [...ctx.state.apps.values()].filter((a) => a.homeTenantId === ctx.tenant.id);
    return {
      status: 200,
      body: {
        '@odata.context': `${ctx.graphBaseUrl}/$metadata#applications`,
        value: homed.map(applicationView),
      },
    };
  }
  const app = findApplication(ctx, key);
  if (app === undefined) return notFound(ctx, key);
  // Application.ReadWrite.OwnedBy reaches only apps the caller owns: here, its own registration.
  if (
    writing &&
    !ctx.token.roles.some((r) => r === 'Application.ReadWrite.All' || r === 'Directory.ReadWrite.All') &&
    app.clientId !== ctx.token.appId.toLowerCase()
  )
    return graphError(
      ctx,
      403,
      'Authorization_RequestDenied',
      'Insufficient privileges to complete the operation.',
    );
  if (child === undefined) {
    if (req.method !== 'GET') return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
    return {
      status: 200,
      body: {
        '@odata.context': `${ctx.graphBaseUrl}/$metadata#applications/$entity`,
        ...applicationView(app),
      },
    };
  }
  if (child !== 'extensionProperties' || extra !== undefined)
    return badRequest(ctx, `Resource not found for the segment '${segments.at(-1) ?? ''}'.`);
  const context = `${ctx.graphBaseUrl}/$metadata#applications('${app.objectId}')/extensionProperties`;
  if (childId === undefined) {
    if (req.method === 'GET')
      return {
        status: 200,
        body: { '@odata.context': context, value: app.extensionProperties.map((e) => extensionView(app, e)) },
      };
    if (req.method !== 'POST') return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
    const body = req.body;
    if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
    const name = body['name'];
    // Name rules are inferred: Entra takes letters, digits and underscores.
    if (typeof name !== 'string' || !/^[A-Za-z0-9_]{1,80}$/.test(name))
      return badRequest(ctx, "Invalid value specified for property 'name' of resource 'ExtensionProperty'.");
    const dataType = body['dataType'];
    if (typeof dataType !== 'string' || !dataTypes.has(dataType))
      return badRequest(
        ctx,
        "Invalid value specified for property 'dataType' of resource 'ExtensionProperty'.",
      );
    const targetObjects = body['targetObjects'];
    if (
      !Array.isArray(targetObjects) ||
      targetObjects.length === 0 ||
      !targetObjects.every((t) => typeof t === 'string' && targets.has(t))
    )
      return badRequest(
        ctx,
        "Invalid value specified for property 'targetObjects' of resource 'ExtensionProperty'.",
      );
    const isMultiValued = body['isMultiValued'] ?? false;
    if (typeof isMultiValued !== 'boolean')
      return badRequest(
        ctx,
        "Invalid value specified for property 'isMultiValued' of resource 'ExtensionProperty'.",
      );
    const fullName = `extension_${compactAppId(app)}_${name}`;
    if (app.extensionProperties.some((e) => e.name.toLowerCase() === fullName.toLowerCase()))
      // Inferred wording, as for other duplicate keys.
      return badRequest(ctx, 'Another object with the same value for property name already exists.');
    const ext: ExtensionPropertyRecord = {
      id: randomUUID(),
      name: fullName,
      dataType: dataType as ExtensionPropertyRecord['dataType'],
      isMultiValued,
      targetObjects: targetObjects as string[],
    };
    app.extensionProperties.push(ext);
    return {
      status: 201,
      headers: { Location: `${ctx.graphBaseUrl}/applications/${app.objectId}/extensionProperties/${ext.id}` },
      body: { '@odata.context': `${context}/$entity`, ...extensionView(app, ext) },
    };
  }
  const ext = app.extensionProperties.find((e) => e.id === childId.toLowerCase());
  if (ext === undefined) return notFound(ctx, childId);
  if (req.method === 'GET')
    return { status: 200, body: { '@odata.context': `${context}/$entity`, ...extensionView(app, ext) } };
  if (req.method === 'DELETE') {
    // extensionproperty-delete.md: 204; values already written stay but can no longer be read or set.
    app.extensionProperties = app.extensionProperties.filter((e) => e !== ext);
    return { status: 204 };
  }
  return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
}

/** POST /directoryObjects/getAvailableExtensionProperties: the extensions usable in this tenant. */
export function availableExtensionProperties(ctx: GraphContext): GraphResponse {
  const forbidden = denied(ctx, ['Directory.Read.All', 'Directory.ReadWrite.All', ...readApplications]);
  if (forbidden !== undefined) return forbidden;
  const value: Record<string, unknown>[] = [];
  for (const app of ctx.state.apps.values()) {
    if (!app.tenants.has(ctx.tenant.id)) continue;
    for (const ext of app.extensionProperties) value.push(extensionView(app, ext));
  }
  return {
    status: 200,
    body: {
      '@odata.context': `${ctx.graphBaseUrl}/$metadata#Collection(microsoft.graph.extensionProperty)`,
      value,
    },
  };
}
