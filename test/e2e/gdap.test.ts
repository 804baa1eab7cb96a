import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { definitions } from '../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../dev/host/local-host.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../dev/peers/identity-graph/index.js';
import { createCredentialFor, createGraphDirectoryFactory } from '../../shared/adapters/graph/index.js';
import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import { gdapRoles } from '../../shared/domain/tenant.js';
import type { Clock } from '../../shared/ports/clock.js';
import { quietLogger } from '../support/stack.js';
import { callApi } from '../support/http.js';

/**
 * GDAP end to end on the Graph peer (issue 14): a relationship with the documented least-privilege
 * roles, locked for approval with the customer's link, followed with backoff across a restart (a new
 * composition resumes it from storage), approved as the customer would, then access assignments for the
 * provider's security groups; a second, never-approved one is cancelled. Another provider sees nothing.
 */
const partnerTenant = randomUUID();
const customerTenant = randomUUID();
const app = { clientId: randomUUID(), clientSecret: `secret-${randomUUID()}` };
const run = randomUUID().slice(0, 8);
const providers = { blue: `prov-blue-${run}`, red: `prov-red-${run}` };
/** The provider's security groups in its partner tenant (created in beforeAll). */
const groups: string[] = [];

let graph: IdentityGraphPeer;
let deps: AppDeps;
let host: LocalHost;
let settings: ReturnType<typeof loadSettings>;
const keys = { blue: '', red: '' };
let now = Date.now();
const clock: Clock = { now: () => new Date(now) };

function api(key: string, method: string, path: string, body?: unknown, headers?: Record<string, string>) {
  return callApi(host.url, key, method, path, body, headers);
}

const gdapSchema = z
  .object({
    operationId: z.string(),
    state: z.string(),
    approvalLink: z.string().optional(),
    roles: z.array(z.object({ roleDefinitionId: z.string(), name: z.string(), why: z.string() })),
    steps: z.array(
      z
        .object({ name: z.string(), state: z.string(), result: z.record(z.string(), z.unknown()).optional() })
        .loose(),
    ),
  })
  .loose();

const partnerDirectory = () =>
  createGraphDirectoryFactory({
    credentialFor: createCredentialFor({ ...app, authorityHost: graph.authorityHost }),
    graphBaseUrl: graph.graphBaseUrl,
    customHosts: ['127.0.0.1'],
  })(partnerTenant);

beforeAll(async () => {
  graph = await startIdentityGraphPeer({
    seed: {
      tenants: [
        {
          id: partnerTenant,
          displayName: 'Blue Partner',
          partnerTenantType: 'resellerPartnerDelegatedAdmin',
          domains: [
            { id: `p${partnerTenant.slice(0, 8)}.onmicrosoft.com`, isInitial: true, isDefault: true },
          ],
        },
        {
          id: customerTenant,
          displayName: 'Contoso',
          domains: [
            { id: `c${customerTenant.slice(0, 8)}.onmicrosoft.com`, isInitial: true, isDefault: true },
          ],
        },
      ],
      apps: [
        {
          ...app,
          homeTenantId: partnerTenant,
          tenants: [customerTenant],
          roles: [
            'Directory.Read.All',
            'Organization.Read.All',
            'Group.ReadWrite.All',
            'DelegatedAdminRelationship.ReadWrite.All',
          ],
        },
      ],
    },
  });
  for (const name of ['technicians', 'billing']) {
    const group = await partnerDirectory().createGroup({
      displayName: `Atria ${name}`,
      mailNickname: `atria-${name}`,
    });
    groups.push(group.id);
  }
  settings = loadSettings({
    LOG_LEVEL: 'warn',
    TableStorage: inject('storageConnectionString'),
    Graph__authorityHost: graph.authorityHost,
    Graph__baseUrl: graph.graphBaseUrl,
    Graph__clientId: app.clientId,
    Graph__clientSecret: app.clientSecret,
    Graph__homeTenantId: partnerTenant,
    Engine__retryBaseDelayInMs: '1000',
  });
  deps = createComposition(settings, { log: quietLogger, clock });
  host = await startLocalHost({ definitions, deps, port: 0, log: quietLogger, timers: false });
  keys.blue = (await deps.callers.createApiKey({ providerId: providers.blue, name: 'blue' })).apiKey;
  keys.red = (await deps.callers.createApiKey({ providerId: providers.red, name: 'red' })).apiKey;
  const put = await api(keys.blue, 'PUT', '/customers/contoso', {
    displayName: 'Contoso',
    identityMode: 'cloudOnly',
    entra: { tenantId: customerTenant, domains: [`c${customerTenant.slice(0, 8)}.onmicrosoft.com`] },
  });
  expect(put.status).toBeLessThan(300);
}, 60_000);

afterAll(async () => {
  await host?.stop();
  await deps?.close();
  await graph?.stop();
});

describe('GDAP for a customer tenant', () => {
  let operationId = '';
  let relationshipId = '';

  it('creates a relationship with the documented least-privilege roles, locks it and hands back the approval link', async () => {
    const answer = await api(keys.blue, 'POST', '/customers/contoso/gdap', { securityGroupIds: groups });
    expect(answer.status).toBe(202);
    const op = gdapSchema.parse(answer.body);
    operationId = op.operationId;
    expect(op.state).toBe('retryScheduled');
    relationshipId = String(op.steps.find((s) => s.name === 'create')?.result?.relationshipId);
    expect(op.approvalLink).toBe(
      `https://admin.microsoft.com/AdminPortal/Home#/partners/invitation/granularAdminRelationships/${relationshipId}`,
    );
    expect(op.steps.find((s) => s.name === 'tier')?.result?.partnerTenantType).toBe(
      'resellerPartnerDelegatedAdmin',
    );
    expect(op.roles.map((r) => r.name)).not.toContain('Global Administrator');
    for (const role of op.roles) expect(role.why.length).toBeGreaterThan(10);

    const relationship = await partnerDirectory().getDelegatedAdminRelationship(relationshipId);
    expect(relationship.status).toBe('approvalPending');
    expect(relationship.customerTenantId).toBe(customerTenant);
    expect([...relationship.roleDefinitionIds].sort()).toEqual(
      gdapRoles.map((r) => r.roleDefinitionId).sort(),
    );
    expect(relationship.autoExtendDuration).toBe('P180D');
    expect((await api(keys.red, 'GET', `/customers/contoso/gdap/${operationId}`)).status).toBe(404);
    expect(
      (await api(keys.red, 'POST', '/customers/contoso/gdap', { securityGroupIds: groups })).status,
    ).toBe(404);
  });

  it('a repeat is the same operation (one relationship)', async () => {
    const again = await api(keys.blue, 'POST', '/customers/contoso/gdap', { securityGroupIds: groups });
    expect(again.status).toBe(200);
    expect(gdapSchema.parse(again.body).operationId).toBe(operationId);
    const mine = await partnerDirectory().listDelegatedAdminRelationships({
      customerTenantId: customerTenant,
    });
    expect(mine).toHaveLength(1);
  });

  it('after a restart the new process follows it; once approved, access assignments for the groups', async () => {
    await deps.close();
    deps = createComposition(settings, { log: quietLogger, clock });
    now += 10 * 60_000;
    await deps.commerceOperations.sweep({ providerId: providers.blue });
    expect((await deps.commerceOperations.get(providers.blue, operationId))?.value.state).toBe(
      'retryScheduled',
    );

    const approved = await fetch(`${graph.adminUrl}/gdap/relationships/${relationshipId}/approve`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(approved.status).toBe(200);
    now += 10 * 60_000;
    await deps.commerceOperations.sweep({ providerId: providers.blue });
    const op = gdapSchema.parse((await api(keys.blue, 'GET', `/customers/contoso/gdap/${operationId}`)).body);
    expect(op.state).toBe('succeeded');
    expect(op.steps.find((step) => step.name === 'assignments')?.result).toMatchObject({
      groups: 2,
      created: 2,
    });
    expect(op.steps.find((step) => step.name === 'assignmentsActive')?.result).toMatchObject({ active: 2 });
    const assignments = await partnerDirectory().listDelegatedAdminAccessAssignments(relationshipId);
    expect(assignments.map((a) => a.securityGroupId).sort()).toEqual([...groups].sort());
    expect(assignments.every((a) => a.status === 'active')).toBe(true);
  });

  it('an invitation that expires unapproved ends the operation as failed, saying so', async () => {
    const answer = await api(keys.blue, 'POST', '/customers/contoso/gdap', {
      securityGroupIds: groups,
      duration: 'P60D',
    });
    const op = gdapSchema.parse(answer.body);
    const id = String(op.steps.find((s) => s.name === 'create')?.result?.relationshipId);
    const expired = await fetch(`${graph.adminUrl}/gdap/relationships/${id}/expire`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(expired.status).toBe(200);
    now += 60 * 60_000;
    await deps.commerceOperations.sweep({ providerId: providers.blue });
    const after = (await deps.commerceOperations.get(providers.blue, op.operationId))?.value;
    expect(after?.state).toBe('failed');
    expect(after?.error?.message).toContain('expired; it was never approved');
  });

  it('a relationship never approved can be cancelled: no longer followed, visible as cancelled', async () => {
    const other = [groups[0] ?? ''];
    const answer = await api(keys.blue, 'POST', '/customers/contoso/gdap', {
      securityGroupIds: other,
      duration: 'P30D',
    });
    expect(answer.status).toBe(202);
    const op = gdapSchema.parse(answer.body);
    const cancelled = await api(keys.blue, 'POST', `/customers/contoso/gdap/${op.operationId}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(gdapSchema.parse(cancelled.body).state).toBe('cancelled');
    now += 60 * 60_000;
    await deps.commerceOperations.sweep({ providerId: providers.blue });
    expect((await deps.commerceOperations.get(providers.blue, op.operationId))?.value.state).toBe(
      'cancelled',
    );
    // The approved one cannot be "cancelled".
    expect((await api(keys.blue, 'POST', `/customers/contoso/gdap/${operationId}/cancel`)).status).toBe(409);
  });
});
