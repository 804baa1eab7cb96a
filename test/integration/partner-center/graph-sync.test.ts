import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { graphSkuIds, offers, startStack, type Stack } from './stack.js';

/**
 * What the customer tenant shows in Graph about what Partner Center sold: one companySubscription per
 * Partner Center subscription, found by `commerceSubscriptionId` (G resources/companysubscription.md),
 * owned by the partner tenant, and the customer in the partner tenant's `/contracts`.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.stop();
});

async function graphGet(
  tenantId: string,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const token = await stack.token('https://graph.microsoft.com/.default', tenantId);
  const response = await fetch(`${stack.graph.graphBaseUrl}${path}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('Partner Center subscriptions in the customer tenant', () => {
  it('each subscription is a companySubscription with its Partner Center id, seats, owner and term end; cancelled ones are Deleted', async () => {
    const customerId = await stack.readyCustomer();
    const line = {
      catalogItemId: offers.e3,
      quantity: 4,
      termDuration: 'P1Y',
      billingCycle: 'monthly',
    } as const;
    const first = await stack.commerce.buy(customerId, [line], { operationKey: `buy-${randomUUID()}` });
    const second = await stack.commerce.buy(customerId, [{ ...line, quantity: 2 }], {
      operationKey: `buy-${randomUUID()}`,
    });
    const firstId = first.orders[0]?.lines[0]?.subscriptionId ?? '';
    const secondId = second.orders[0]?.lines[0]?.subscriptionId ?? '';
    const subscription = await stack.commerce.getSubscription(customerId, firstId);

    const byId = await graphGet(customerId, `/directory/subscriptions(commerceSubscriptionId='${firstId}')`);
    expect(byId.status).toBe(200);
    expect(byId.body).toMatchObject({
      commerceSubscriptionId: firstId,
      skuId: graphSkuIds.e3,
      skuPartNumber: 'SPE_E3',
      totalLicenses: 4,
      status: 'Enabled',
      isTrial: false,
      ownerTenantId: stack.partnerTenantId,
    });
    // The term ends at 00:00 UTC the day after commitmentEndDate.
    expect(new Date(String(byId.body.nextLifecycleDateTime)).getTime()).toBe(
      (subscription.commitmentEndDate?.getTime() ?? 0) + 24 * 3_600_000,
    );
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(6);

    await stack.commerce.cancel(customerId, secondId, { operationKey: `cancel-${secondId}` });
    const cancelled = await graphGet(
      customerId,
      `/directory/subscriptions(commerceSubscriptionId='${secondId}')`,
    );
    expect(cancelled.body).toMatchObject({ status: 'Deleted', totalLicenses: 2 });
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(4);
    const list = z
      .object({ value: z.array(z.object({ commerceSubscriptionId: z.string() }).loose()) })
      .parse((await graphGet(customerId, '/directory/subscriptions')).body);
    expect(list.value.map((item) => item.commerceSubscriptionId).sort()).toEqual([firstId, secondId].sort());
  });

  it('the new customer appears in the partner tenant’s contracts', async () => {
    const customerId = await stack.readyCustomer();
    const contracts = z
      .object({ value: z.array(z.object({ customerId: z.string(), defaultDomainName: z.string() }).loose()) })
      .parse((await graphGet(stack.partnerTenantId, '/contracts')).body);
    expect(contracts.value.map((contract) => contract.customerId)).toContain(customerId);
  });
});
