import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../../shared/errors.js';
import type { Distributor } from '../../../shared/ports/distributor.js';
import { app, ids, startStack, testSeed, type Stack } from './stack.js';

/** The real Pax8 adapter against the distributor peer: paging, retries, idempotent writes, tokens. */
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ seed: testSeed({ extraSubscriptions: 23 }) });
});
afterAll(async () => {
  await stack.stop();
});

async function failure(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('expected a failure');
}

/** Records the waits the retry helper asked for, without sleeping them. */
function recordingSleep(): { delays: number[]; sleep: (ms: number) => Promise<void> } {
  const delays: number[] = [];
  return { delays, sleep: (ms) => (delays.push(ms), Promise.resolve()) };
}

async function appliedChanges(subscriptionId: string): Promise<number> {
  const entry = (await stack.state()).subscriptions.find((s) => s.id === subscriptionId);
  if (entry === undefined) throw new Error(`no subscription ${subscriptionId}`);
  return entry.appliedChanges;
}

describe('reads', () => {
  it('lists every subscription of a company across all pages', async () => {
    const distributor = stack.adapter({ pageSize: 5 });
    const before = await stack.requests('GET /v1/subscriptions');
    const subscriptions = await distributor.listSubscriptions(ids.fabrikam);
    expect(subscriptions).toHaveLength(23);
    expect(new Set(subscriptions.map((s) => s.id)).size).toBe(23);
    expect(subscriptions.map((s) => s.quantity).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 23 }, (_, index) => index + 1),
    );
    // 23 subscriptions at 5 a page: five pages, each asked once.
    expect((await stack.requests('GET /v1/subscriptions')) - before).toBe(5);
    expect(subscriptions[0]).toEqual(
      expect.objectContaining({
        companyId: ids.fabrikam,
        productId: ids.webroot,
        status: 'active',
        distributorStatus: 'Active',
        billingTerm: 'Monthly',
        startDate: expect.any(Date) as unknown,
      }),
    );
  });

  it('filters by status on the port’s terms (pending spans Pax8’s pending states)', async () => {
    await stack.admin('POST', '/provisioning', { state: 'PendingManual', delayInMs: 3_600_000 });
    try {
      const distributor = stack.adapter();
      const placed = await distributor.placeOrder({
        companyId: ids.contoso,
        lines: [{ productId: ids.webroot, quantity: 4, billingTerm: 'Monthly' }],
      });
      const pending = await distributor.listSubscriptions(ids.contoso, { status: 'pending' });
      expect(pending.map((s) => [s.id, s.distributorStatus])).toEqual([
        [placed.lines[0]?.subscriptionId, 'PendingManual'],
      ]);
      const active = await distributor.listSubscriptions(ids.contoso, { status: 'active' });
      expect(active.every((s) => s.distributorStatus === 'Active')).toBe(true);
      expect(active.map((s) => s.id)).not.toContain(placed.lines[0]?.subscriptionId);
    } finally {
      await stack.admin('POST', '/provisioning', { state: null, delayInMs: 0 });
    }
  });

  it('lists only the partner’s companies', async () => {
    const companies = await stack.adapter().listCompanies();
    expect(companies.map((c) => [c.id, c.name, c.externalId, c.status])).toEqual([
      [ids.contoso, 'Contoso', 'contoso', 'active'],
      [ids.fabrikam, 'Fabrikam', 'fabrikam', 'active'],
    ]);
  });

  it('reads a product with its prices and commitment terms', async () => {
    const product = await stack.adapter().getProduct(ids.e3);
    expect(product).toEqual({
      id: ids.e3,
      name: 'Microsoft Office 365 E3',
      vendorName: 'Microsoft',
      sku: 'MST-OFC-EE3-C100',
      vendorSku: 'CFQ7TTC0LF8Q:0001',
      requiresCommitment: true,
      pricing: [
        expect.objectContaining({
          billingTerm: 'Monthly',
          commitmentTerm: 'Annual',
          commitmentTermInMonths: 12,
        }),
        expect.objectContaining({
          billingTerm: 'Annual',
          rates: [
            {
              partnerBuyRate: 273.6,
              suggestedRetailPrice: 288,
              startQuantity: undefined,
              endQuantity: undefined,
              chargeType: 'Per Unit',
            },
          ],
        }),
      ],
      commitments: [
        {
          id: ids.annualCommitment,
          term: 'Annual',
          autoRenew: true,
          allowsQuantityIncrease: true,
          allowsQuantityDecrease: false,
          allowsEarlyCancellation: false,
          cancellationFee: true,
        },
        expect.objectContaining({
          id: ids.threeYearCommitment,
          term: '3-Year',
          allowsQuantityDecrease: true,
        }),
      ],
    });
  });

  it('maps 403 Invalid companyId for another partner’s company to NotFound', async () => {
    const distributor = stack.adapter();
    const error = await failure(distributor.listSubscriptions(ids.foreign));
    expect(error.code).toBe('NotFound');
    expect(error.retryable).toBe(false);
    expect(error.details).toEqual(expect.objectContaining({ httpStatus: 403 }));
    expect((await failure(distributor.getSubscription(ids.foreign, ids.foreignSub))).code).toBe('NotFound');
  });

  it('never reads or changes a subscription through the wrong company', async () => {
    const distributor = stack.adapter();
    expect((await failure(distributor.getSubscription(ids.fabrikam, ids.exchangeSub))).code).toBe('NotFound');
    const error = await failure(distributor.changeQuantity(ids.fabrikam, ids.exchangeSub, 99));
    expect(error.code).toBe('NotFound');
    expect((await distributor.getSubscription(ids.contoso, ids.exchangeSub)).quantity).toBe(10);
  });

  it('retries reads through 429 (honouring Retry-After) and 5xx', async () => {
    const { delays, sleep } = recordingSleep();
    const distributor = stack.adapter({
      retry: { maxAttempts: 5, baseDelayInMs: 1, maxDelayInMs: 2, sleep },
    });
    await stack.fault({
      kind: 'throttle',
      count: 2,
      retryAfterInSeconds: 3,
      match: { pathIncludes: ids.exchangeSub },
    });
    await stack.fault({ kind: 'error', status: 503, match: { pathIncludes: ids.exchangeSub } });
    const subscription = await distributor.getSubscription(ids.contoso, ids.exchangeSub);
    expect(subscription.quantity).toBe(10);
    expect(delays.slice(0, 2)).toEqual([3000, 3000]);
    expect(delays).toHaveLength(3);
  });
});

describe('changing a quantity', () => {
  it('applies the change exactly once under 429s and a lost response', async () => {
    const { delays, sleep } = recordingSleep();
    const distributor = stack.adapter({
      retry: { maxAttempts: 6, baseDelayInMs: 1, maxDelayInMs: 2, sleep },
    });
    const path = `/v1/subscriptions/${ids.exchangeSub}`;
    await stack.fault({
      kind: 'throttle',
      count: 2,
      retryAfterInSeconds: 2,
      match: { method: 'PUT', pathIncludes: path },
    });
    // The third PUT is applied, then the connection is dropped before the answer.
    await stack.fault({ kind: 'dropAfterCommit', match: { method: 'PUT', pathIncludes: path } });
    const before = await appliedChanges(ids.exchangeSub);
    const putsBefore = await stack.requests(`PUT ${path}`);

    const result = await distributor.changeQuantity(ids.contoso, ids.exchangeSub, 12);

    expect(result.quantity).toBe(12);
    expect(result.status).toBe('active');
    expect((await appliedChanges(ids.exchangeSub)) - before).toBe(1);
    // Throttled PUTs never reach the API; the retry after the lost answer read the target and stopped.
    expect((await stack.requests(`PUT ${path}`)) - putsBefore).toBe(1);
    expect(delays.slice(0, 2)).toEqual([2000, 2000]);
    const history = (await fetchHistory(ids.exchangeSub)).map((entry) => entry.quantity);
    expect(history).toEqual([12, 10]);
  });

  it('applies the change exactly once when the answer after the change is a 5xx', async () => {
    const distributor = stack.adapter();
    const path = `/v1/subscriptions/${ids.exchangeSub}`;
    await stack.fault({
      kind: 'errorAfterCommit',
      status: 503,
      match: { method: 'PUT', pathIncludes: path },
    });
    const before = await appliedChanges(ids.exchangeSub);
    const puts = await stack.requests(`PUT ${path}`);
    const result = await distributor.changeQuantity(ids.contoso, ids.exchangeSub, 14);
    expect(result.quantity).toBe(14);
    expect((await appliedChanges(ids.exchangeSub)) - before).toBe(1);
    expect((await stack.requests(`PUT ${path}`)) - puts).toBe(1);
  });

  it('sends nothing when the quantity already is the target', async () => {
    const path = `/v1/subscriptions/${ids.exchangeSub}`;
    const puts = await stack.requests(`PUT ${path}`);
    const result = await stack.adapter().changeQuantity(ids.contoso, ids.exchangeSub, 14);
    expect(result.quantity).toBe(14);
    expect(await stack.requests(`PUT ${path}`)).toBe(puts);
  });

  it('surfaces a refusal (422) as a non-retryable Validation error without retrying', async () => {
    const path = `/v1/subscriptions/${ids.e3Sub}`;
    const puts = await stack.requests(`PUT ${path}`);
    const error = await failure(stack.adapter().changeQuantity(ids.contoso, ids.e3Sub, 15));
    expect(error.code).toBe('Validation');
    expect(error.status).toBe(422);
    expect(error.retryable).toBe(false);
    expect(error.details).toEqual(
      expect.objectContaining({ httpStatus: 422, distributorType: 'UNPROCESSABLE_ENTITY' }),
    );
    expect((await stack.requests(`PUT ${path}`)) - puts).toBe(1);
  });
});

async function fetchHistory(subscriptionId: string): Promise<{ quantity: number; status: string }[]> {
  const response = await fetch(`${stack.peer.baseUrl}/v1/subscriptions/${subscriptionId}/history`, {
    headers: { authorization: `Bearer ${await stack.token()}` },
  });
  return ((await response.json()) as { content: { quantity: number; status: string }[] }).content;
}

describe('cancelling', () => {
  it('cancels once: a lost answer and a second call do not send another DELETE', async () => {
    const target = (await stack.adapter({ pageSize: 50 }).listSubscriptions(ids.fabrikam))[0];
    if (target === undefined) throw new Error('no subscription to cancel');
    const path = `/v1/subscriptions/${target.id}`;
    await stack.fault({ kind: 'dropAfterCommit', match: { method: 'DELETE', pathIncludes: path } });
    const cancelAt = new Date('2026-03-31T00:00:00.000Z');
    const cancelled = await stack.adapter().cancel(ids.fabrikam, target.id, { cancelAt });
    expect(cancelled.status).toBe('pendingCancel');
    expect(cancelled.endDate).toEqual(cancelAt);
    const again = await stack.adapter().cancel(ids.fabrikam, target.id);
    expect(again.status).toBe('pendingCancel');
    expect(await stack.requests(`DELETE ${path}`)).toBe(1);
  });
});

describe('placing orders', () => {
  const line = { productId: ids.exchange, quantity: 7, billingTerm: 'Monthly' as const };

  it('validates a dry run (isMock) and creates nothing', async () => {
    const distributor = stack.adapter();
    const before = (await distributor.listSubscriptions(ids.contoso)).length;
    const placed = await distributor.placeOrder({ companyId: ids.contoso, lines: [line] }, { dryRun: true });
    expect(placed).toEqual({
      orderId: undefined,
      dryRun: true,
      lines: [{ productId: ids.exchange, quantity: 7, subscriptionId: undefined }],
    });
    expect(await distributor.listSubscriptions(ids.contoso)).toHaveLength(before);
    const refused = await failure(
      distributor.placeOrder(
        { companyId: ids.contoso, lines: [{ ...line, billingTerm: 'Annual' }] },
        { dryRun: true },
      ),
    );
    expect(refused.code).toBe('Validation');
  });

  it('buys once when the answer to the order is lost, and finds the subscription it made', async () => {
    const distributor = stack.adapter();
    const before = await distributor.listSubscriptions(ids.contoso);
    await stack.fault({ kind: 'dropAfterCommit', match: { method: 'POST', pathIncludes: '/v1/orders' } });
    const posts = await stack.requests('POST /v1/orders');
    const placed = await distributor.placeOrder({ companyId: ids.contoso, lines: [line] });
    const after = await distributor.listSubscriptions(ids.contoso);
    const fresh = after.filter((s) => !before.some((b) => b.id === s.id));
    expect(fresh).toHaveLength(1);
    expect(fresh[0]).toEqual(expect.objectContaining({ productId: ids.exchange, quantity: 7 }));
    expect(placed.lines).toEqual([{ productId: ids.exchange, quantity: 7, subscriptionId: fresh[0]?.id }]);
    expect((await stack.requests('POST /v1/orders')) - posts).toBe(1);
  });

  it('sends the order again when the failure came before the order was stored', async () => {
    const distributor = stack.adapter();
    await stack.fault({ kind: 'error', status: 503, match: { method: 'POST', pathIncludes: '/v1/orders' } });
    const placed = await distributor.placeOrder({
      companyId: ids.contoso,
      lines: [{ productId: ids.e3, quantity: 3, billingTerm: 'Monthly', commitmentId: ids.annualCommitment }],
    });
    expect(placed.orderId).toEqual(expect.any(String));
    expect(placed.lines[0]?.subscriptionId).toEqual(expect.any(String));
    const subscription = await distributor.getSubscription(
      ids.contoso,
      placed.lines[0]?.subscriptionId ?? '',
    );
    expect(subscription.commitment).toEqual({
      id: ids.annualCommitment,
      term: 'Annual',
      endDate: new Date('2027-03-10T09:30:00.000Z'),
    });
  });

  it('stops with a non-retryable Conflict when only part of an order with a lost answer can be found', async () => {
    const before = new Set((await stack.adapter().listSubscriptions(ids.fabrikam)).map((s) => s.id));
    const lines = [
      { productId: ids.exchange, quantity: 2, billingTerm: 'Monthly' as const },
      { productId: ids.webroot, quantity: 200, billingTerm: 'Monthly' as const },
    ];
    await stack.fault({ kind: 'dropAfterCommit', match: { method: 'POST', pathIncludes: '/v1/orders' } });
    // Between the lost answer and the retry someone else resizes one of the new subscriptions.
    const meddle = async (): Promise<void> => {
      const token = await stack.token();
      const listed = await fetch(
        `${stack.peer.baseUrl}/v1/subscriptions?companyId=${ids.fabrikam}&size=200`,
        {
          headers: { authorization: `Bearer ${token}` },
        },
      );
      const content = ((await listed.json()) as { content: { id: string; quantity: number }[] }).content;
      const webroot = content.find((s) => !before.has(s.id) && s.quantity === 200);
      if (webroot === undefined) return;
      await fetch(`${stack.peer.baseUrl}/v1/subscriptions/${webroot.id}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ quantity: 150 }),
      });
    };
    const posts = await stack.requests('POST /v1/orders');
    const distributor = stack.adapter({ retry: { maxAttempts: 4, sleep: meddle } });
    const error = await failure(distributor.placeOrder({ companyId: ids.fabrikam, lines }));
    expect(error.code).toBe('Conflict');
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('only 1 of 2 lines');
    // It never sent the order a second time.
    expect((await stack.requests('POST /v1/orders')) - posts).toBe(1);
  });

  it('refuses an order for another partner’s company as NotFound', async () => {
    const error = await failure(stack.adapter().placeOrder({ companyId: ids.foreign, lines: [line] }));
    expect(error.code).toBe('NotFound');
  });
});

describe('tokens', () => {
  it('reuses one token until expires_in passes on the adapter’s clock, then gets a new one', async () => {
    let nowInMs = Date.now();
    const distributor: Distributor = stack.adapter({ clock: { now: () => new Date(nowInMs) } });
    const issued = (await stack.state()).tokensIssued;
    await distributor.listCompanies();
    await distributor.getSubscription(ids.contoso, ids.exchangeSub);
    await distributor.listCompanies();
    expect((await stack.state()).tokensIssued - issued).toBe(1);
    nowInMs += 86_400 * 1000;
    await distributor.listCompanies();
    expect((await stack.state()).tokensIssued - issued).toBe(2);
  });

  it('gets a new token once when the cached one is refused with 401', async () => {
    const distributor = stack.adapter();
    await distributor.listCompanies();
    const issued = (await stack.state()).tokensIssued;
    await stack.admin('DELETE', '/tokens');
    expect(await distributor.listCompanies()).toHaveLength(2);
    expect((await stack.state()).tokensIssued - issued).toBe(1);
  });

  it('refuses bad credentials as InvalidCredentials without the secret anywhere in the error', async () => {
    const secret = `${app.clientSecret}-wrong`;
    const error = await failure(stack.adapter({ clientSecret: secret }).listCompanies());
    expect(error.code).toBe('InvalidCredentials');
    expect(error.retryable).toBe(false);
    const seen = [
      error.message,
      error.stack ?? '',
      JSON.stringify(error.details),
      JSON.stringify(error),
      String(error.cause),
    ];
    for (const text of seen) expect(text).not.toContain(secret);
    expect(isAppError(error, 'InvalidCredentials')).toBe(true);
  });
});
