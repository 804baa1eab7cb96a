/**
 * Group-based licensing on the Graph peer, on the wire through the Graph SDK and through the
 * CloudDirectory adapter: group assignLicense (group-assignlicense.md), licenseAssignmentStates
 * (licenseassignmentstate.md), one seat per user whatever the sources and CountViolation when none is
 * free (licensing-groups-resolve-problems.md), and reprocessLicenseAssignment
 * (user-reprocesslicenseassignment.md).
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@microsoft/microsoft-graph-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../../dev/peers/identity-graph/index.js';
import type { CloudDirectory } from '../../../shared/ports/cloud-directory.js';
import { adapterFor, expectGraphError, sdkClient, send, type App } from './raw.js';
import { allRoles, skuE3 } from './support.js';

const tenantId = randomUUID();
const app: App = { clientId: randomUUID(), clientSecret: `s-${randomUUID()}` };
let peer: IdentityGraphPeer;
let graph: Client;
let directory: CloudDirectory;
let counter = 0;

const idOf = (body: unknown): string => z.object({ id: z.string() }).parse(body).id;

async function user(): Promise<string> {
  const name = `gbl${counter++}`;
  const created = await send(graph, 'POST', '/users', {
    accountEnabled: true,
    displayName: name,
    mailNickname: name,
    userPrincipalName: `${name}@contoso.example`,
    usageLocation: 'NL',
    passwordProfile: { password: `Pw-${randomUUID()}` },
  });
  expect(created.status, created.text).toBe(201);
  return idOf(created.body);
}

async function licensedGroup(name: string): Promise<string> {
  const group = await send(graph, 'POST', '/groups', {
    displayName: name,
    mailNickname: name,
    mailEnabled: false,
    securityEnabled: true,
  });
  const id = idOf(group.body);
  const licensed = await send(graph, 'POST', `/groups/${id}/assignLicense`, {
    addLicenses: [{ skuId: skuE3, disabledPlans: [] }],
    removeLicenses: [],
  });
  expect(licensed.status).toBe(202);
  return id;
}

async function consumed(): Promise<number> {
  const sku = await send(graph, 'GET', `/subscribedSkus/${tenantId}_${skuE3}`);
  return z.object({ consumedUnits: z.number() }).parse(sku.body).consumedUnits;
}

async function states(userId: string) {
  const found = await send(graph, 'GET', `/users/${userId}?$select=assignedLicenses,licenseAssignmentStates`);
  return z
    .object({
      assignedLicenses: z.array(z.object({ skuId: z.string() }).loose()),
      licenseAssignmentStates: z.array(
        z
          .object({ assignedByGroup: z.string().nullable(), state: z.string(), error: z.string().nullable() })
          .loose(),
      ),
    })
    .parse(found.body);
}

beforeAll(async () => {
  peer = await startIdentityGraphPeer({
    seed: {
      tenants: [
        {
          id: tenantId,
          displayName: 'Contoso',
          domains: [{ id: 'contoso.example', isDefault: true }],
          skus: [{ skuId: skuE3, skuPartNumber: 'ENTERPRISEPACK', enabled: 2 }],
        },
      ],
      apps: [{ ...app, homeTenantId: tenantId, tenants: [tenantId], roles: allRoles }],
    },
  });
  graph = sdkClient(peer, tenantId, app);
  directory = adapterFor(peer, tenantId, app);
});

afterAll(async () => {
  await peer?.stop();
});

describe('group-based licensing', () => {
  it('gives a member the group licence as an Active inherited state; assignedLicenses shows it only on $select for the group', async () => {
    const group = await licensedGroup('gbl-a');
    const member = await user();
    const added = await send(graph, 'POST', `/groups/${group}/members/$ref`, {
      '@odata.id': `https://graph.microsoft.com/v1.0/directoryObjects/${member}`,
    });
    expect(added.status).toBe(204);
    expect(await states(member)).toEqual({
      assignedLicenses: [{ disabledPlans: [], skuId: skuE3 }],
      licenseAssignmentStates: [
        expect.objectContaining({ assignedByGroup: group, state: 'Active', error: null, skuId: skuE3 }),
      ],
    });
    expect(await consumed()).toBe(1);
    expect((await send(graph, 'GET', `/groups/${group}`)).body).not.toHaveProperty('assignedLicenses');
    expect((await send(graph, 'GET', `/groups/${group}?$select=id,assignedLicenses`)).body).toMatchObject({
      assignedLicenses: [{ skuId: skuE3, disabledPlans: [] }],
    });
    expect(await directory.listLicensedGroups()).toContainEqual({ id: group, skuIds: [skuE3] });

    // Leaving the group gives the seat back.
    expect((await send(graph, 'DELETE', `/groups/${group}/members/${member}/$ref`)).status).toBe(204);
    expect(await states(member)).toEqual({ assignedLicenses: [], licenseAssignmentStates: [] });
    expect(await consumed()).toBe(0);
    // A licensed group cannot be deleted until its licences are removed (resolve-problems.md).
    expectGraphError(await send(graph, 'DELETE', `/groups/${group}`), 400, 'Request_BadRequest');
    expect(
      (
        await send(graph, 'POST', `/groups/${group}/assignLicense`, {
          addLicenses: [],
          removeLicenses: [skuE3],
        })
      ).status,
    ).toBe(202);
    expect((await send(graph, 'DELETE', `/groups/${group}`)).status).toBe(204);
  });

  it('takes one seat per user however many sources give it: two licensed groups and a direct assignment', async () => {
    const [a, b] = [await licensedGroup('gbl-b1'), await licensedGroup('gbl-b2')];
    const member = await user();
    const before = await consumed();
    await directory.assignLicences(member, { add: [{ skuId: skuE3, disabledPlanIds: [] }], remove: [] });
    await directory.addGroupMember(a, member);
    await directory.addGroupMember(b, member);
    expect(await consumed()).toBe(before + 1);
    const listed = await directory.listGroupMemberLicences(a);
    expect(listed).toEqual([
      {
        id: member,
        states: expect.arrayContaining([
          { skuId: skuE3, assignedByGroup: null, state: 'Active', error: null },
          { skuId: skuE3, assignedByGroup: a, state: 'Active', error: null },
          { skuId: skuE3, assignedByGroup: b, state: 'Active', error: null },
        ]) as unknown,
      },
    ]);
    await directory.removeGroupMember(a, member);
    await directory.removeGroupMember(b, member);
    expect(await consumed()).toBe(before + 1);
    await directory.assignLicences(member, { add: [], remove: [skuE3] });
    expect(await consumed()).toBe(before);
  });

  it('records CountViolation when no seat is free, keeps it when one frees up, and assigns it on reprocess', async () => {
    const group = await licensedGroup('gbl-c');
    const holder = await user();
    await directory.assignLicences(holder, { add: [{ skuId: skuE3, disabledPlanIds: [] }], remove: [] });
    const filler = await user();
    await directory.assignLicences(filler, { add: [{ skuId: skuE3, disabledPlanIds: [] }], remove: [] });
    expect(await consumed()).toBe(2);
    const waiting = await user();
    await directory.addGroupMember(group, waiting);
    expect((await states(waiting)).licenseAssignmentStates).toEqual([
      expect.objectContaining({ assignedByGroup: group, state: 'Error', error: 'CountViolation' }),
    ]);
    expect((await states(waiting)).assignedLicenses).toEqual([]);
    // A direct assignment is refused as before: the error state took no seat.
    expectGraphError(
      await send(graph, 'POST', `/users/${await user()}/assignLicense`, {
        addLicenses: [{ skuId: skuE3, disabledPlans: [] }],
        removeLicenses: [],
      }),
      400,
      'Request_BadRequest',
    );

    await directory.assignLicences(filler, { add: [], remove: [skuE3] });
    // Entra does not retry by itself (resolve-problems: "Force group license processing").
    expect((await states(waiting)).licenseAssignmentStates[0]?.state).toBe('Error');
    await directory.reprocessLicenceAssignment(waiting);
    expect((await states(waiting)).licenseAssignmentStates).toEqual([
      expect.objectContaining({ assignedByGroup: group, state: 'Active', error: null }),
    ]);
    expect(await consumed()).toBe(2);
  });
});
