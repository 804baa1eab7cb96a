/**
 * GDAP as documented (api-reference/v1.0: tenantrelationship-post-delegatedadminrelationships.md,
 * delegatedadminrelationship-update.md, delegatedadminrelationship-delete.md,
 * delegatedadminrelationship-post-requests.md, delegatedadminrelationship-post-accessassignments.md,
 * resources/delegatedadminrelationship.md), with an app-only token holding
 * DelegatedAdminRelationship.ReadWrite.All in the partner tenant; the customer's approval and the passing
 * of time come from the admin API and the peer clock.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Client } from '@microsoft/microsoft-graph-client';
import { isAppError } from '../../../shared/errors.js';
import {
  adapterFor,
  expectGraphError,
  expectShape,
  rejection,
  sdkClient,
  send,
  type Json,
  type Raw,
} from './raw.js';
import { admin, allRoles, startFixture, type Fixture } from './support.js';

const exchangeAdmin = '29232cdf-9323-42fd-ade2-1d097af3e4de';
const intuneAdmin = '3a2c62db-5318-420d-8d74-23affee5d9d5';
const userAdmin = 'fe930be7-5e62-47db-91af-98c3a49a38b1';
const globalAdmin = '62e90394-69f5-4237-9190-012177145e10';
const dayInMs = 24 * 3600_000;
const base = '/tenantRelationships/delegatedAdminRelationships';

let f: Fixture;
let partner: Client;

/** A client with a fresh token (after the peer clock moved, the cached one is expired there). */
function freshPartner(): Client {
  return sdkClient(f.peer, f.partnerTenantId, f);
}

beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f.peer.stop();
});
beforeEach(async () => {
  await admin(f, 'POST', '/reset');
  await admin(f, 'POST', '/apps', {
    clientId: f.clientId,
    homeTenantId: f.partnerTenantId,
    roles: [...allRoles, 'DelegatedAdminRelationship.ReadWrite.All'],
  });
  partner = freshPartner();
});

function relationshipBody(extra: Json = {}): Json {
  // The request example of tenantrelationship-post-delegatedadminrelationships.md, for our customer.
  return {
    displayName: 'Contoso admin relationship',
    duration: 'P730D',
    customer: { tenantId: f.customerTenantId, displayName: 'Contoso subsidiary Inc' },
    accessDetails: { unifiedRoles: [{ roleDefinitionId: exchangeAdmin }, { roleDefinitionId: intuneAdmin }] },
    autoExtendDuration: 'P180D',
    ...extra,
  };
}

const documentedRelationship = {
  '@odata.type': '#microsoft.graph.delegatedAdminRelationship',
  '@odata.context':
    'https://graph.microsoft.com/v1.0/tenantRelationships/$metadata#delegatedAdminRelationships',
  '@odata.etag': 'W/"JyIxODAwZTY4My0wMDAwLTAyMDAtMDAwMC02MTU0OWFmMDAwMDAiJw=="',
  id: '5d027261-d21f-4aa9-b7db-7fa1f56fb163-8777b240-c6f0-4469-9e98-a3205431b836',
  displayName: 'Contoso admin relationship',
  duration: 'P730D',
  customer: { tenantId: '4b827261-d21f-4aa9-b7db-7fa1f56fb163', displayName: 'Contoso subsidiary Inc' },
  accessDetails: { unifiedRoles: [{ roleDefinitionId: '29232cdf-9323-42fd-ade2-1d097af3e4de' }] },
  status: 'created',
  autoExtendDuration: 'P180D',
  createdDateTime: '2022-02-10T11:24:42.3148266Z',
  lastModifiedDateTime: '2022-02-10T11:24:42.3148266Z',
  endDateTime: '2024-02-10T11:24:42.3148266Z',
};

async function create(extra: Json = {}): Promise<Raw> {
  return send(partner, 'POST', base, relationshipBody(extra));
}

async function approve(id: string, body: Json = {}): Promise<{ status: number; body: unknown }> {
  return admin(f, 'POST', `/gdap/relationships/${id}/approve`, body);
}

async function securityGroup(client: Client, name: string): Promise<string> {
  const raw = await send(client, 'POST', '/groups', {
    displayName: name,
    mailEnabled: false,
    mailNickname: name.replace(/\W/g, ''),
    securityEnabled: true,
  });
  expect(raw.status).toBe(201);
  return raw.body['id'] as string;
}

describe('delegatedAdminRelationships on the wire', () => {
  it('creates (201, Location, etag), updates with If-Match, locks for approval, and follows approval to active', async () => {
    const created = await create();
    expect(created.status).toBe(201);
    expectShape(created.body, documentedRelationship);
    const id = created.body['id'] as string;
    expect(id).toMatch(/^[0-9a-f-]{36}-[0-9a-f-]{36}$/);
    expect(created.headers.get('location')).toBe(`${f.peer.graphBaseUrl}${base}/${id}`);
    expect(created.body['status']).toBe('created');
    const etag = created.body['@odata.etag'] as string;

    // delegatedadminrelationship-update.md: If-Match is required and must be current.
    const patch = { displayName: 'Updated Contoso admin relationship', duration: 'P31D' };
    expect((await send(partner, 'PATCH', `${base}/${id}`, patch)).status).toBe(400);
    expectGraphError(
      await send(partner, 'PATCH', `${base}/${id}`, patch, { 'If-Match': 'W/"stale"' }),
      412,
      'PreconditionFailed',
    );
    const updated = await send(partner, 'PATCH', `${base}/${id}`, patch, { 'If-Match': etag });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ ...patch, status: 'created' });
    expect(updated.body['@odata.etag']).not.toBe(etag);

    // delegatedadminrelationship-post-requests.md: 201 with Location; status moves to approvalPending.
    const lock = await send(partner, 'POST', `${base}/${id}/requests`, { action: 'lockForApproval' });
    expect(lock.status).toBe(201);
    expectShape(lock.body, {
      '@odata.type': '#microsoft.graph.delegatedAdminRelationshipRequest',
      id: '5a6666c9-7282-0a41-67aa-25a5a3fbf339',
      action: 'lockForApproval',
      status: 'created',
      createdDateTime: '2022-02-10T10:55:47.1180588Z',
      lastModifiedDateTime: '2022-02-10T10:55:47.1180588Z',
    });
    expect(lock.headers.get('location')).toContain(`${base}/${id}/requests/`);
    const pending = await send(partner, 'GET', `${base}/${id}`);
    expect(pending.body['status']).toBe('approvalPending');
    // Editable and deletable only while created.
    const nowEtag = pending.body['@odata.etag'] as string;
    expectGraphError(
      await send(partner, 'PATCH', `${base}/${id}`, { duration: 'P90D' }, { 'If-Match': nowEtag }),
      400,
      'Request_BadRequest',
      /only in the created status/,
    );
    expectGraphError(
      await send(partner, 'DELETE', `${base}/${id}`, undefined, { 'If-Match': nowEtag }),
      400,
      'Request_BadRequest',
    );

    // The customer approves; the relationship is activating for a minute, then active.
    const approved = await approve(id, { activatingForMs: 60_000 });
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ status: 'activating' });
    expect(
      (await send(partner, 'GET', '/tenantRelationships/delegatedAdminCustomers')).body['value'],
    ).toEqual([]);
    await admin(f, 'POST', '/clock', { advanceByInMs: 61_000 });
    partner = freshPartner();
    const active = await send(partner, 'GET', `${base}/${id}`);
    expect(active.body['status']).toBe('active');
    const activated = Date.parse(active.body['activatedDateTime'] as string);
    // resources/delegatedadminrelationship.md: endDateTime = activatedDateTime + duration.
    expect(Date.parse(active.body['endDateTime'] as string) - activated).toBe(31 * dayInMs);
    const customers = await send(partner, 'GET', '/tenantRelationships/delegatedAdminCustomers');
    expect(customers.body['value']).toEqual([
      expect.objectContaining({
        id: f.customerTenantId,
        tenantId: f.customerTenantId,
        displayName: 'Contoso',
      }),
    ]);
    const requests = (await send(partner, 'GET', `${base}/${id}/requests`)).body['value'] as Json[];
    expect(requests.map((r) => [r['action'], r['status']])).toEqual([
      ['lockForApproval', 'succeeded'],
      ['approve', 'succeeded'],
    ]);
  });

  it('assigns access to a partner security group once active (pending, then active) and records operations', async () => {
    const id = (await create()).body['id'] as string;
    const group = await securityGroup(partner, 'Atria helpdesk');
    const assignmentBody = {
      accessContainer: { accessContainerId: group, accessContainerType: 'securityGroup' },
      accessDetails: { unifiedRoles: [{ roleDefinitionId: exchangeAdmin }] },
    };
    expectGraphError(
      await send(partner, 'POST', `${base}/${id}/accessAssignments`, assignmentBody),
      400,
      'Request_BadRequest',
      /only in an active relationship/,
    );
    await send(partner, 'POST', `${base}/${id}/requests`, { action: 'lockForApproval' });
    await approve(id);
    const created = await send(partner, 'POST', `${base}/${id}/accessAssignments`, assignmentBody);
    expect(created.status).toBe(201);
    // delegatedadminrelationship-post-accessassignments.md, the response example.
    expectShape(created.body, {
      '@odata.type': '#microsoft.graph.delegatedAdminAccessAssignment',
      '@odata.etag': 'W/"JyIxODAwZTY4My0wMDAwLTAyMDAtMDAwMC02MTU0OWFmMDAwMDAiJw=="',
      id: 'a9d6cf90-083a-47dc-ace2-1da98be3f344',
      status: 'pending',
      createdDateTime: '2022-02-13T10:33:52.3182097Z',
      lastModifiedDateTime: '2022-02-13T10:33:52.3182097Z',
      accessContainer: { accessContainerId: group, accessContainerType: 'securityGroup' },
      accessDetails: { unifiedRoles: [{ roleDefinitionId: exchangeAdmin }] },
    });
    expect(created.body['status']).toBe('pending');
    expect(created.headers.get('location')).toContain(`/accessAssignments/${String(created.body['id'])}`);
    const listed = (await send(partner, 'GET', `${base}/${id}/accessAssignments`)).body['value'] as Json[];
    expect(listed.map((a) => a['status'])).toEqual(['active']);
    const operations = (await send(partner, 'GET', `${base}/${id}/operations`)).body['value'] as Json[];
    expect(operations).toEqual([
      expect.objectContaining({ operationType: 'delegatedAdminAccessAssignmentUpdate', status: 'complete' }),
    ]);
    // Roles outside the relationship, a second assignment for the group, and a group that does not exist.
    expectGraphError(
      await send(partner, 'POST', `${base}/${id}/accessAssignments`, {
        ...assignmentBody,
        accessDetails: { unifiedRoles: [{ roleDefinitionId: userAdmin }] },
      }),
      400,
      'Request_BadRequest',
      /not part of the relationship/,
    );
    expect((await send(partner, 'POST', `${base}/${id}/accessAssignments`, assignmentBody)).status).toBe(409);
    expect(
      (
        await send(partner, 'POST', `${base}/${id}/accessAssignments`, {
          ...assignmentBody,
          accessContainer: { accessContainerId: f.customerTenantId, accessContainerType: 'securityGroup' },
        })
      ).status,
    ).toBe(400);

    // Terminate: the customer disappears from delegatedAdminCustomers.
    const terminate = await send(partner, 'POST', `${base}/${id}/requests`, { action: 'terminate' });
    expect(terminate.status).toBe(201);
    expect((await send(partner, 'GET', `${base}/${id}`)).body['status']).toBe('terminated');
    expect(
      (await send(partner, 'GET', '/tenantRelationships/delegatedAdminCustomers')).body['value'],
    ).toEqual([]);
  });

  it('validates duration (P1D–P2Y), autoExtendDuration, roles, displayName length and uniqueness', async () => {
    for (const duration of ['PT1H', 'P0D', 'P731D', 'P3Y', 'soon'])
      expectGraphError(
        await create({ duration, displayName: `d ${duration}` }),
        400,
        'Request_BadRequest',
        /P1D and P2Y/,
      );
    expect((await create({ duration: 'P1D', displayName: 'one day' })).status).toBe(201);
    expect((await create({ duration: 'P2Y', displayName: 'two years' })).status).toBe(201);
    expectGraphError(
      await create({ autoExtendDuration: 'P90D', displayName: 'x1' }),
      400,
      'Request_BadRequest',
    );
    expect(
      (await create({ autoExtendDuration: undefined, displayName: 'default extend' })).body[
        'autoExtendDuration'
      ],
    ).toBe('PT0S');
    expectGraphError(
      await create({ displayName: 'x'.repeat(51) }),
      400,
      'Request_BadRequest',
      /50 characters/,
    );
    expect((await create({ displayName: 'x'.repeat(50) })).status).toBe(201);
    expect((await create({ displayName: 'same name' })).status).toBe(201);
    // Unique across all of the partner's relationships (case-insensitively).
    expect((await create({ displayName: 'Same Name' })).status).toBe(409);
    expectGraphError(
      await create({
        displayName: 'bad role',
        accessDetails: { unifiedRoles: [{ roleDefinitionId: f.customerTenantId }] },
      }),
      400,
      'Request_BadRequest',
    );
    expectGraphError(
      await create({ displayName: 'no roles', accessDetails: { unifiedRoles: [] } }),
      400,
      'Request_BadRequest',
    );
    expectGraphError(
      await create({
        displayName: 'ga',
        accessDetails: { unifiedRoles: [{ roleDefinitionId: globalAdmin }] },
      }),
      400,
      'Request_BadRequest',
      /cannot be auto-extended/,
    );
    const { displayName: _omitted, ...noName } = relationshipBody();
    expect((await send(partner, 'POST', base, noName)).status).toBe(400);
  });

  it('expires at the end of the duration without auto-extension, and renews by 180 days with it', async () => {
    const fixed = (await create({ displayName: 'fixed', duration: 'P30D', autoExtendDuration: 'PT0S' })).body[
      'id'
    ] as string;
    const renewing = (await create({ displayName: 'renewing', duration: 'P30D' })).body['id'] as string;
    for (const id of [fixed, renewing]) {
      await send(partner, 'POST', `${base}/${id}/requests`, { action: 'lockForApproval' });
      await approve(id);
    }
    const before = Date.parse(
      (await send(partner, 'GET', `${base}/${renewing}`)).body['endDateTime'] as string,
    );
    await admin(f, 'POST', '/clock', { advanceByInMs: 31 * dayInMs });
    partner = freshPartner();
    expect((await send(partner, 'GET', `${base}/${fixed}`)).body['status']).toBe('expired');
    const renewed = await send(partner, 'GET', `${base}/${renewing}`);
    expect(renewed.body['status']).toBe('active');
    expect(Date.parse(renewed.body['endDateTime'] as string) - before).toBe(180 * dayInMs);
  });

  it('lets an unapproved invitation lapse after 90 days, and deletes a relationship still created', async () => {
    const waiting = (await create({ displayName: 'waiting' })).body['id'] as string;
    await send(partner, 'POST', `${base}/${waiting}/requests`, { action: 'lockForApproval' });
    const draft = await create({ displayName: 'draft' });
    const deleted = await send(partner, 'DELETE', `${base}/${String(draft.body['id'])}`, undefined, {
      'If-Match': draft.body['@odata.etag'] as string,
    });
    expect(deleted.status).toBe(204);
    expectGraphError(
      await send(partner, 'GET', `${base}/${String(draft.body['id'])}`),
      404,
      'Request_ResourceNotFound',
    );
    await admin(f, 'POST', '/clock', { advanceByInMs: 91 * dayInMs });
    partner = freshPartner();
    expect((await send(partner, 'GET', `${base}/${waiting}`)).body['status']).toBe('expired');
    expect((await approve(waiting)).status).toBe(409);
  });

  it('needs DelegatedAdminRelationship roles: none → 403, Read.All reads but cannot write', async () => {
    await admin(f, 'POST', '/reset');
    expectGraphError(await send(freshPartner(), 'GET', base), 403, 'Authorization_RequestDenied');
    await admin(f, 'POST', '/apps', {
      clientId: f.clientId,
      homeTenantId: f.partnerTenantId,
      roles: ['DelegatedAdminRelationship.Read.All'],
    });
    const reader = freshPartner();
    expect((await send(reader, 'GET', base)).status).toBe(200);
    expectGraphError(
      await send(reader, 'POST', base, relationshipBody()),
      403,
      'Authorization_RequestDenied',
    );
  });
});

describe('CloudDirectory GDAP', () => {
  it('runs invitation to active with access assignments, every step safe to repeat', async () => {
    const directory = adapterFor(f.peer, f.partnerTenantId, f);
    expect((await directory.getOrganization()).id).toBe(f.partnerTenantId);
    const input = {
      displayName: 'atria-contoso-1',
      duration: 'P730D',
      customerTenantId: f.customerTenantId,
      roleDefinitionIds: [userAdmin, exchangeAdmin],
    };
    const created = await directory.createDelegatedAdminRelationship(input);
    expect(created).toMatchObject({
      status: 'created',
      customerTenantId: f.customerTenantId,
      roleDefinitionIds: [userAdmin, exchangeAdmin],
      autoExtendDuration: 'PT0S',
      activatedDateTime: null,
    });
    // A retry after a lost answer gets the same relationship, not a second one.
    expect((await directory.createDelegatedAdminRelationship(input)).id).toBe(created.id);
    expect(
      await directory.listDelegatedAdminRelationships({ customerTenantId: f.customerTenantId }),
    ).toHaveLength(1);
    const updated = await directory.updateDelegatedAdminRelationship(created.id, { duration: 'P365D' });
    expect(updated.duration).toBe('P365D');

    const locked = await directory.requestDelegatedAdminRelationshipAction(created.id, 'lockForApproval');
    expect(locked.status).toBe('approvalPending');
    expect(
      (await directory.requestDelegatedAdminRelationshipAction(created.id, 'lockForApproval')).status,
    ).toBe('approvalPending');
    await approve(created.id);
    const active = await directory.getDelegatedAdminRelationship(created.id);
    expect(active.status).toBe('active');
    expect(active.activatedDateTime).not.toBeNull();

    const group = await securityGroup(partner, 'Atria operators');
    const assignment = await directory.createDelegatedAdminAccessAssignment(created.id, {
      securityGroupId: group,
      roleDefinitionIds: [userAdmin],
    });
    expect(assignment).toMatchObject({
      securityGroupId: group,
      roleDefinitionIds: [userAdmin],
      status: 'pending',
    });
    const again = await directory.createDelegatedAdminAccessAssignment(created.id, {
      securityGroupId: group,
      roleDefinitionIds: [userAdmin],
    });
    expect(again.id).toBe(assignment.id);
    expect((await directory.listDelegatedAdminAccessAssignments(created.id)).map((a) => a.status)).toEqual([
      'active',
    ]);
    expect((await directory.listDelegatedAdminOperations(created.id))[0]).toMatchObject({
      status: 'complete',
    });
    expect(await directory.listDelegatedAdminCustomers()).toEqual([
      { tenantId: f.customerTenantId, displayName: 'Contoso' },
    ]);
    await directory.deleteDelegatedAdminAccessAssignment(created.id, assignment.id);
    await directory.deleteDelegatedAdminAccessAssignment(created.id, assignment.id);
    expect(await directory.listDelegatedAdminAccessAssignments(created.id)).toEqual([]);

    const terminated = await directory.requestDelegatedAdminRelationshipAction(created.id, 'terminate');
    expect(terminated.status).toBe('terminated');
    expect((await directory.requestDelegatedAdminRelationshipAction(created.id, 'terminate')).status).toBe(
      'terminated',
    );
    expect(await directory.listDelegatedAdminCustomers()).toEqual([]);
  });

  it('deletes a never-approved relationship idempotently and maps refusals to AppErrors', async () => {
    const directory = adapterFor(f.peer, f.partnerTenantId, f);
    const created = await directory.createDelegatedAdminRelationship({
      displayName: 'never approved',
      duration: 'P90D',
      roleDefinitionIds: [userAdmin],
    });
    expect(created.customerTenantId).toBeNull();
    await directory.deleteDelegatedAdminRelationship(created.id);
    await directory.deleteDelegatedAdminRelationship(created.id);
    const missing = await rejection(directory.getDelegatedAdminRelationship(created.id));
    expect(isAppError(missing) && missing.code).toBe('NotFound');
    const invalid = await rejection(
      directory.createDelegatedAdminRelationship({
        displayName: 'too long',
        duration: 'P3Y',
        roleDefinitionIds: [userAdmin],
      }),
    );
    expect(isAppError(invalid) && invalid.code).toBe('Validation');
  });
});
