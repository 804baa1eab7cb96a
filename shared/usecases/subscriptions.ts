import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import {
  billingCycles,
  isBillingCycleAllowed,
  termDurations,
  type BillingCycle,
  type TermDuration,
} from '../domain/nce.js';
import {
  judgeSpend,
  planSeatChange,
  purchaseAmount,
  utcDay,
  type CommerceOperationKind,
  type SpendCaps,
} from '../domain/tenant.js';
import { AppError, isAppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { Commerce, CommerceSubscription, Offer } from '../ports/commerce.js';
import type { Store } from '../ports/store.js';
import { loadCustomer } from './customers.js';
import { fromPartnerCenter, type Licensing, type LicensingConnectors } from './licensing.js';
import type { Saga, SagaRunner, SagaStepDefinition, StepOutcome } from './tenants/saga.js';

/**
 * Buying and changing a customer's Partner Center subscriptions from Atria (1-Tier, issue 14). Every
 * purchase and change is an operation on the commerce saga (tenants/saga.ts): persisted step by step,
 * resumed by the sweeper after a crash, and idempotent where it costs money — the checkout's
 * `MS-RequestId` is derived from the operation id, so a lost checkout answer or a worker killed
 * mid-checkout re-sends the same request and Partner Center answers the first order. Money safety:
 * daily spend caps per provider and per customer and an approval threshold apply to every buy;
 * `dryRun` says what would be bought at what price; every purchase, change and cancellation appends
 * a ledger entry with its idempotency key, reason and figures.
 */

export const buyInputSchema = z.strictObject({
  productId: z.string().regex(/^[A-Za-z0-9]{1,32}$/, 'a Partner Center product id'),
  skuId: z.string().regex(/^[A-Za-z0-9]{1,16}$/, 'a Partner Center SKU id'),
  termDuration: z.enum(termDurations),
  billingCycle: z.enum(billingCycles),
  quantity: z.number().int().min(1).max(100_000),
  /** Why it is bought (kept on the ledger entry). */
  reason: z.string().trim().min(1).max(500),
  dryRun: z.boolean().default(false),
});
export type BuyInput = z.infer<typeof buyInputSchema>;

export const quantityInputSchema = z.strictObject({
  quantity: z.number().int().min(0).max(100_000),
  reason: z.string().trim().min(1).max(500),
});
export const cancelInputSchema = z.strictObject({ reason: z.string().trim().min(1).max(500) });
export const autoRenewInputSchema = z.strictObject({
  enabled: z.boolean(),
  reason: z.string().trim().min(1).max(500),
});

const storedBuySchema = z.object({
  pcCustomerId: z.string(),
  productId: z.string(),
  skuId: z.string(),
  termDuration: z.enum(termDurations),
  billingCycle: z.enum(billingCycles),
  quantity: z.number(),
  reason: z.string(),
});
const storedChangeSchema = z.object({
  pcCustomerId: z.string(),
  subscriptionId: z.string(),
  reason: z.string(),
  /** quantity: target seats; plan `now` (PATCH) or `atRenewal` (scheduledNextTermInstructions). */
  quantity: z.number().optional(),
  plan: z.enum(['now', 'atRenewal']).optional(),
  enabled: z.boolean().optional(),
  /** Seats added by a quantity increase, and their price (spend caps apply to those). */
  addedSeats: z.number().optional(),
  productId: z.string().optional(),
  skuId: z.string().optional(),
});

const spendRowSchema = z.object({ total: z.number(), operationIds: z.array(z.string()) });

export interface SubscriptionsDeps {
  store: Store;
  clock: Clock;
  connectors: LicensingConnectors;
  licensing: Pick<Licensing, 'getSources' | 'recordSubscriptionChange'>;
  runner: () => SagaRunner;
  caps: SpendCaps;
  /** How long a buy may take, polling included, before it fails visibly. */
  deadlineInMs?: number;
}

export function createSubscriptions(deps: SubscriptionsDeps) {
  const spend = deps.store.collection('commercespend', spendRowSchema);
  const deadlineInMs = deps.deadlineInMs ?? 24 * 60 * 60_000;

  function commerceFor(providerId: string): Commerce {
    const pc = deps.connectors.partnerCenter;
    if (pc?.providerId !== providerId)
      throw new AppError(
        'Conflict',
        'this provider has no Partner Center connector (1-Tier buying is not set up)',
      );
    return pc.commerce;
  }

  async function pcCustomerOf(caller: Caller, customerId: string): Promise<string> {
    await loadCustomer(deps.store, caller, customerId);
    const sources = await deps.licensing.getSources(caller, customerId);
    if (sources.partnerCenterCustomerId === undefined)
      throw new AppError(
        'Conflict',
        `customer ${customerId} has no Partner Center customer id (PUT …/licensing/sources, or create its tenant here)`,
      );
    return sources.partnerCenterCustomerId;
  }

  /**
   * The offer as the catalog has it now (ids change over time, product-resources.md), priced by a
   * Partner Center cart that is never checked out: catalog availabilities carry no price.
   */
  async function findOffer(
    commerce: Commerce,
    pcCustomerId: string,
    line: {
      productId: string;
      skuId: string;
      termDuration: TermDuration;
      billingCycle: BillingCycle;
      quantity: number;
    },
    quoteKey: string,
  ) {
    const offers = await commerce.findOffers(line.productId, line.skuId);
    for (const offer of offers) {
      const offered = offer.terms.some(
        (t) => t.termDuration === line.termDuration && t.billingCycle === line.billingCycle,
      );
      if (!offered) continue;
      const unitPrice = await priceOf(
        commerce,
        pcCustomerId,
        { ...line, catalogItemId: offer.catalogItemId },
        quoteKey,
      );
      return { offer, unitPrice };
    }
    throw new AppError(
      'Validation',
      `the catalog has no ${line.productId}:${line.skuId} offer with term ${line.termDuration} billed ${line.billingCycle}`,
      {
        details: { errors: [{ path: 'body.termDuration', message: 'not offered with this billing cycle' }] },
      },
    );
  }

  async function priceOf(
    commerce: Commerce,
    pcCustomerId: string,
    line: { catalogItemId: string; termDuration: TermDuration; billingCycle: BillingCycle; quantity: number },
    quoteKey: string,
  ): Promise<number | undefined> {
    const quote = await commerce.quote(
      pcCustomerId,
      [
        {
          catalogItemId: line.catalogItemId,
          quantity: line.quantity,
          termDuration: line.termDuration,
          billingCycle: line.billingCycle,
        },
      ],
      { operationKey: quoteKey },
    );
    return quote.lines[0]?.unitPrice;
  }

  /** The price of seats added to a subscription: its offer, term and billing cycle, quoted now. */
  async function quoteAddedSeats(
    commerce: Commerce,
    pcCustomerId: string,
    sub: CommerceSubscription,
    quantity: number,
    quoteKey: string,
  ): Promise<number | undefined> {
    const term = termDurations.find((t) => t === sub.termDuration);
    const cycle = billingCycles.find((c) => c === sub.billingCycle);
    if (term === undefined || cycle === undefined) return undefined;
    const line = { termDuration: term, billingCycle: cycle, quantity };
    try {
      return await priceOf(commerce, pcCustomerId, { ...line, catalogItemId: sub.catalogItemId }, quoteKey);
    } catch (error) {
      // The subscription keeps the catalog id it was bought under; the catalog may have moved on
      // (400019): price the same product, SKU, term and cycle under its current id.
      if (!isAppError(error) || error.details?.partnerCenterCode !== '400019') throw error;
      const [productId, skuId] = sub.catalogItemId.split(':');
      if (productId === undefined || skuId === undefined) return undefined;
      const offer = (await commerce.findOffers(productId, skuId)).find((o) =>
        o.terms.some((t) => t.termDuration === term && t.billingCycle === cycle),
      );
      if (offer === undefined) return undefined;
      return priceOf(
        commerce,
        pcCustomerId,
        { ...line, catalogItemId: offer.catalogItemId },
        `${quoteKey}@current`,
      );
    }
  }

  /** The catalog's id now for the subscription's product, SKU, term and billing cycle. */
  async function currentCatalogItemId(commerce: Commerce, sub: CommerceSubscription) {
    const [productId, skuId] = sub.catalogItemId.split(':');
    if (productId === undefined || skuId === undefined) return undefined;
    const offer = (await commerce.findOffers(productId, skuId)).find((o) =>
      o.terms.some((t) => t.termDuration === sub.termDuration && t.billingCycle === sub.billingCycle),
    );
    return offer?.catalogItemId;
  }

  const providerPartition = (providerId: string) => `p|${providerId}`;
  const customerPartition = (providerId: string, customerId: string) => `c|${providerId}|${customerId}`;

  async function spentToday(providerId: string, customerId: string) {
    const day = utcDay(deps.clock.now());
    const [p, c] = await Promise.all([
      spend.get(providerPartition(providerId), day),
      spend.get(customerPartition(providerId, customerId), day),
    ]);
    return { provider: p?.value.total ?? 0, customer: c?.value.total ?? 0 };
  }

  /** Adds the amount to one counter once per operation (etag-guarded, so parallel buys are all counted). */
  async function reserve(partition: string, day: string, operationId: string, amount: number, cap: number) {
    for (let attempt = 0; attempt < 8; attempt++) {
      const row = await spend.get(partition, day);
      if (row?.value.operationIds.includes(operationId) === true) return;
      const total = (row?.value.total ?? 0) + amount;
      if (total > cap)
        throw new AppError('Conflict', `the daily spend cap of ${cap} would be exceeded (${total})`, {
          retryable: false,
          details: {
            reason: 'SpendCapExceeded',
            figures: { amount, spentToday: row?.value.total ?? 0, cap },
          },
        });
      const value = { total, operationIds: [...(row?.value.operationIds ?? []), operationId] };
      try {
        if (row === undefined) await spend.create(partition, day, value);
        else await spend.replace(partition, day, value, row.etag);
        return;
      } catch (error) {
        if (!isAppError(error, 'AlreadyExists') && !isAppError(error, 'ConcurrencyConflict')) throw error;
      }
    }
    throw new AppError('ConcurrencyConflict', 'the spend counter is busy', { retryable: true });
  }

  /** Takes an operation's amount off a counter again (etag-guarded; nothing when it was never added). */
  async function release(partition: string, day: string, operationId: string, amount: number) {
    for (let attempt = 0; attempt < 8; attempt++) {
      const row = await spend.get(partition, day);
      if (row?.value.operationIds.includes(operationId) !== true) return;
      const value = {
        total: Math.max(0, Math.round((row.value.total - amount) * 100) / 100),
        operationIds: row.value.operationIds.filter((id) => id !== operationId),
      };
      try {
        await spend.replace(partition, day, value, row.etag);
        return;
      } catch (error) {
        if (!isAppError(error, 'ConcurrencyConflict')) throw error;
      }
    }
    throw new AppError('ConcurrencyConflict', 'the spend counter is busy', { retryable: true });
  }

  /**
   * A buy or increase that ended without reaching Partner Center gives its reservation back: the
   * checkout (or apply) step never ran, or Partner Center refused it. Anything whose outcome may be a
   * purchase (e.g. a deadline while a checkout was being retried) keeps it — over-counting is the safe side.
   */
  async function onFinished(saga: Saga): Promise<void> {
    if (saga.state !== 'failed' && saga.state !== 'cancelled') return;
    const spent = saga.steps.find((step) => step.name === 'spend');
    const reserved = spent?.result?.reserved;
    const day = spent?.result?.day;
    if (typeof reserved !== 'number' || reserved === 0 || typeof day !== 'string') return;
    const sending = saga.steps.find((step) => step.name === 'checkout' || step.name === 'apply');
    const nothingBought = sending === undefined || sending.attempts === 0 || sending.state === 'failed';
    if (!nothingBought) return;
    await release(providerPartition(saga.providerId), day, saga.operationId, reserved);
    await release(customerPartition(saga.providerId, saga.customerId), day, saga.operationId, reserved);
  }

  function fingerprint(value: unknown): string {
    return createHash('sha256').update(JSON.stringify(value)).digest('base64url');
  }

  // ---------- steps ----------

  const catalogStep: SagaStepDefinition = {
    name: 'catalog',
    async execute(ctx) {
      const r = ctx.saga.kind === 'subscription.buy' ? storedBuySchema.parse(ctx.saga.request) : undefined;
      if (r === undefined) {
        const c = storedChangeSchema.parse(ctx.saga.request);
        if (c.productId === undefined || c.skuId === undefined || c.addedSeats === undefined) return done();
        const commerce = commerceFor(ctx.saga.providerId);
        const sub = await commerce.getSubscription(c.pcCustomerId, c.subscriptionId);
        const offer = (await commerce.findOffers(c.productId, c.skuId))[0];
        const key = `${ctx.saga.operationId}:quote`;
        const price = await quoteAddedSeats(commerce, c.pcCustomerId, sub, c.addedSeats, key);
        return done(priceResult(offer, price, c.addedSeats));
      }
      // Catalog ids change over time (product-resources.md): look the availability up now.
      const { offer, unitPrice } = await findOffer(
        commerceFor(ctx.saga.providerId),
        r.pcCustomerId,
        r,
        `${ctx.saga.operationId}:quote`,
      );
      return done({ ...priceResult(offer, unitPrice, r.quantity), catalogItemId: offer.catalogItemId });
    },
  };

  const spendStep: SagaStepDefinition = {
    name: 'spend',
    async execute(ctx) {
      const priced = ctx.result('catalog');
      if (priced.amount === undefined && priced.priced !== false) return done({ reserved: 0 });
      const amount = typeof priced.amount === 'number' ? priced.amount : 0;
      const day = utcDay(new Date(ctx.saga.createdAt));
      const { providerId, customerId, operationId } = ctx.saga;
      await reserve(providerPartition(providerId), day, operationId, amount, deps.caps.dailyPerProvider);
      await reserve(
        customerPartition(providerId, customerId),
        day,
        operationId,
        amount,
        deps.caps.dailyPerCustomer,
      );
      return done({ reserved: amount, day });
    },
  };

  const checkoutStep: SagaStepDefinition = {
    name: 'checkout',
    async execute(ctx) {
      const r = storedBuySchema.parse(ctx.saga.request);
      const catalogItemId = String(ctx.result('catalog').catalogItemId);
      // The MS-RequestId comes from this key: a repeat (lost answer, crashed worker) is the same order.
      const purchase = await commerceFor(ctx.saga.providerId).buy(
        r.pcCustomerId,
        [{ catalogItemId, quantity: r.quantity, termDuration: r.termDuration, billingCycle: r.billingCycle }],
        { operationKey: `${ctx.saga.operationId}:checkout` },
      );
      const order = purchase.orders[0];
      if (order === undefined) {
        const first = purchase.errors[0];
        throw new AppError(
          'Upstream',
          `Partner Center did not order it: ${first?.code ?? ''} ${first?.description ?? ''}`,
          {
            retryable: true,
          },
        );
      }
      const line = order.lines[0];
      return done({
        orderId: order.id,
        orderStatus: order.status,
        ...(line?.subscriptionId === undefined ? {} : { subscriptionId: line.subscriptionId }),
        ...(line === undefined ? {} : { orderedCatalogItemId: line.catalogItemId }),
      });
    },
  };

  const provisioningStep: SagaStepDefinition = {
    name: 'provisioning',
    async execute(ctx): Promise<StepOutcome> {
      const checkout = ctx.result('checkout');
      if (typeof checkout.subscriptionId === 'string')
        return done({ subscriptionId: checkout.subscriptionId });
      const r = storedBuySchema.parse(ctx.saga.request);
      const order = await commerceFor(ctx.saga.providerId).getOrder(r.pcCustomerId, String(checkout.orderId));
      const id = order.lines[0]?.subscriptionId;
      if (id === undefined)
        return { kind: 'poll', reason: `order ${order.id} is ${order.status}; provisioning` };
      return done({ subscriptionId: id });
    },
  };

  function ledgerStep(kind: CommerceOperationKind): SagaStepDefinition {
    return {
      name: 'ledger',
      async execute(ctx) {
        const commerce = commerceFor(ctx.saga.providerId);
        const request = ctx.saga.request;
        const pcCustomerId = String(request.pcCustomerId);
        const subscriptionId =
          kind === 'subscription.buy'
            ? String(ctx.result('provisioning').subscriptionId)
            : String(request.subscriptionId);
        const sub = await commerce.getSubscription(pcCustomerId, subscriptionId);
        const priced = ctx.result('catalog');
        const licenceSkuId = typeof priced.licenceSkuId === 'string' ? priced.licenceSkuId : undefined;
        const figures: Record<string, string | number> = {
          operationId: ctx.saga.operationId,
          kind,
          reason: String(request.reason),
          quantity: sub.quantity,
          ...numbersOf(priced, ['unitPrice', 'amount']),
          ...(typeof priced.currency === 'string' ? { currency: priced.currency } : {}),
          ...(typeof request.quantity === 'number' ? { requestedQuantity: request.quantity } : {}),
          ...(typeof request.plan === 'string' ? { plan: request.plan } : {}),
        };
        const checkout = ctx.result('checkout');
        if (typeof checkout.orderId === 'string') figures.orderId = checkout.orderId;
        await deps.licensing.recordSubscriptionChange(ctx.saga.providerId, ctx.saga.customerId, {
          subscription: fromPartnerCenter(sub, licenceSkuId),
          cause: causeOf(kind, request),
          actor: ctx.saga.approvedBy ?? ctx.saga.actor,
          idempotencyKey: `${ctx.saga.operationId}:ledger`,
          figures,
        });
        return done({ subscriptionId, quantity: sub.quantity, status: sub.status });
      },
    };
  }

  const applyStep: SagaStepDefinition = {
    name: 'apply',
    async execute(ctx) {
      const c = storedChangeSchema.parse(ctx.saga.request);
      const commerce = commerceFor(ctx.saga.providerId);
      const options = { operationKey: `${ctx.saga.operationId}:apply` };
      let after: CommerceSubscription;
      if (ctx.saga.kind === 'subscription.cancel')
        after = await commerce.cancel(c.pcCustomerId, c.subscriptionId, options);
      else if (ctx.saga.kind === 'subscription.autoRenew')
        after = await commerce.setAutoRenew(c.pcCustomerId, c.subscriptionId, c.enabled === true, options);
      else if (c.plan === 'atRenewal') {
        // The next term is ordered from the catalog as it is then: a subscription bought under an
        // availability id that has since changed names the current one (else 400019).
        const sub = await commerce.getSubscription(c.pcCustomerId, c.subscriptionId);
        const current = await currentCatalogItemId(commerce, sub);
        after = await commerce.scheduleRenewalChange(
          c.pcCustomerId,
          c.subscriptionId,
          {
            quantity: c.quantity ?? 0,
            ...(current === undefined || current === sub.catalogItemId ? {} : { catalogItemId: current }),
          },
          options,
        );
      } else
        after = await commerce.changeQuantity(c.pcCustomerId, c.subscriptionId, c.quantity ?? 0, options);
      return done({
        quantity: after.quantity,
        status: after.status,
        autoRenewEnabled: after.autoRenewEnabled,
      });
    },
  };

  const steps: Record<'buy' | 'change', SagaStepDefinition[]> = {
    buy: [catalogStep, spendStep, checkoutStep, provisioningStep, ledgerStep('subscription.buy')],
    change: [catalogStep, spendStep, applyStep],
  };

  function stepsFor(kind: CommerceOperationKind): SagaStepDefinition[] {
    switch (kind) {
      case 'subscription.buy':
        return steps.buy;
      case 'subscription.quantity':
      case 'subscription.cancel':
      case 'subscription.autoRenew':
        return [...steps.change, ledgerStep(kind)];
      case 'tenant.create':
      case 'domain.add':
      case 'gdap.relationship':
        throw new AppError('Internal', `${kind} is not a subscription operation`);
    }
  }

  // ---------- use cases ----------

  async function buy(
    caller: Caller,
    customerId: string,
    input: BuyInput,
    idempotencyKey: string | undefined,
  ) {
    const pcCustomerId = await pcCustomerOf(caller, customerId);
    const commerce = commerceFor(caller.providerId);
    if (!isBillingCycleAllowed(input.termDuration, input.billingCycle))
      throw new AppError(
        'Validation',
        `a ${input.billingCycle} billing cycle is longer than a ${input.termDuration} term`,
        {
          details: { errors: [{ path: 'body.billingCycle', message: 'longer than the term' }] },
        },
      );
    // A request-time quote is a throwaway cart: a fresh key each time (it buys nothing).
    const { offer, unitPrice } = await findOffer(commerce, pcCustomerId, input, `quote:${randomUUID()}`);
    if (input.quantity < offer.minimumQuantity || input.quantity > offer.maximumQuantity)
      throw new AppError(
        'Validation',
        `quantity must be between ${offer.minimumQuantity} and ${offer.maximumQuantity} for this offer`,
        {
          details: { errors: [{ path: 'body.quantity', message: 'outside the offer minimum/maximum' }] },
        },
      );
    const amount = purchaseAmount(unitPrice, input.quantity);
    const sofar = await spentToday(caller.providerId, customerId);
    const decision = judgeSpend(amount, deps.caps, sofar);
    const preview = {
      catalogItemId: offer.catalogItemId,
      productTitle: offer.productTitle,
      skuTitle: offer.skuTitle,
      termDuration: input.termDuration,
      billingCycle: input.billingCycle,
      quantity: input.quantity,
      unitPrice: unitPrice ?? null,
      amount: amount ?? null,
      currency: offer.currency ?? null,
      spentToday: sofar,
      caps: deps.caps,
    };
    if (input.dryRun)
      return {
        kind: 'dryRun' as const,
        body: {
          dryRun: true,
          ...preview,
          decision:
            decision.kind === 'refused'
              ? 'refused'
              : decision.needsApproval
                ? 'waitsForApproval'
                : 'wouldBuy',
          reason: decision.reason ?? null,
        },
      };
    if (decision.kind === 'refused')
      throw new AppError('Conflict', decision.reason, {
        details: { reason: 'SpendCapExceeded', figures: decision.figures },
      });
    const request = {
      pcCustomerId,
      productId: input.productId,
      skuId: input.skuId,
      termDuration: input.termDuration,
      billingCycle: input.billingCycle,
      quantity: input.quantity,
      reason: input.reason,
    };
    const started = await deps.runner().start({
      providerId: caller.providerId,
      customerId,
      kind: 'subscription.buy',
      request,
      actor: caller.id,
      ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
      fingerprint: fingerprint(request),
      held: decision.needsApproval,
      deadlineInMs,
    });
    const saga = started.created
      ? await deps.runner().advance(caller.providerId, started.saga.operationId)
      : started.saga;
    return {
      kind: 'operation' as const,
      created: started.created,
      body: {
        ...deps.runner().visible(saga),
        preview,
        ...(decision.reason === undefined ? {} : { approval: decision.reason }),
      },
    };
  }

  async function change(
    caller: Caller,
    customerId: string,
    subscriptionId: string,
    kind: 'subscription.quantity' | 'subscription.cancel' | 'subscription.autoRenew',
    input: { reason: string; quantity?: number; enabled?: boolean },
    idempotencyKey: string | undefined,
  ) {
    const pcCustomerId = await pcCustomerOf(caller, customerId);
    const commerce = commerceFor(caller.providerId);
    // Another customer's subscription id is not this customer's: 404 like a missing one.
    const sub = await commerce.getSubscription(pcCustomerId, subscriptionId);
    const now = deps.clock.now();
    const request: Record<string, string | number | boolean> = {
      pcCustomerId,
      subscriptionId,
      reason: input.reason,
    };
    let held = false;
    if (kind === 'subscription.quantity') {
      const target = input.quantity ?? sub.quantity;
      const reducibleNow = sub.refundableSeats
        .filter((lot) => lot.allowedUntil.getTime() > now.getTime())
        .reduce((sum, lot) => sum + lot.quantity, 0);
      const plan = planSeatChange({
        current: sub.quantity,
        target,
        reducibleNow,
        autoRenewEnabled: sub.autoRenewEnabled,
        status: sub.status,
        commitmentEndDate: sub.commitmentEndDate,
      });
      if (plan.kind === 'refused')
        throw new AppError(sub.status === 'active' ? 'ReductionWindowClosed' : 'Conflict', plan.reason, {
          details: { figures: plan.figures },
        });
      if (plan.kind === 'none')
        return { kind: 'unchanged' as const, body: { subscriptionId, quantity: sub.quantity } };
      request.quantity = target;
      request.plan = plan.kind === 'atRenewal' ? 'atRenewal' : 'now';
      if (plan.kind === 'increase') {
        const [productId, skuId] = sub.catalogItemId.split(':');
        if (productId !== undefined && skuId !== undefined) {
          const key = `quote:${randomUUID()}`;
          const price = await quoteAddedSeats(commerce, pcCustomerId, sub, plan.by, key);
          const decision = judgeSpend(
            purchaseAmount(price, plan.by),
            deps.caps,
            await spentToday(caller.providerId, customerId),
          );
          if (decision.kind === 'refused')
            throw new AppError('Conflict', decision.reason, {
              details: { reason: 'SpendCapExceeded', figures: decision.figures },
            });
          held = decision.needsApproval;
          Object.assign(request, { addedSeats: plan.by, productId, skuId });
        }
      }
    } else if (kind === 'subscription.cancel') {
      const until = sub.cancellationAllowedUntil;
      if (sub.status !== 'active')
        throw new AppError(
          'Conflict',
          `the subscription is ${sub.status}; only an active one can be cancelled`,
        );
      if (until === undefined || until.getTime() <= now.getTime())
        throw new AppError(
          'CancellationWindowClosed',
          `cancellation was allowed only until ${until?.toISOString() ?? 'the end of the 168-hour window'} (New Commerce); turn auto-renew off so it ends at the term's end instead`,
          { details: { figures: { cancellationAllowedUntil: until?.toISOString() ?? 'unknown' } } },
        );
    } else {
      if (sub.status !== 'active')
        throw new AppError(
          'Conflict',
          `the subscription is ${sub.status}; auto-renew can change only while it is active`,
        );
      if (sub.autoRenewEnabled === input.enabled)
        return {
          kind: 'unchanged' as const,
          body: { subscriptionId, autoRenewEnabled: sub.autoRenewEnabled },
        };
      request.enabled = input.enabled === true;
    }
    const started = await deps.runner().start({
      providerId: caller.providerId,
      customerId,
      kind,
      request,
      actor: caller.id,
      ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
      fingerprint: fingerprint(request),
      held,
      deadlineInMs,
    });
    const saga = started.created
      ? await deps.runner().advance(caller.providerId, started.saga.operationId)
      : started.saga;
    return { kind: 'operation' as const, created: started.created, body: deps.runner().visible(saga) };
  }

  async function operation(caller: Caller, operationId: string) {
    const row = await deps.runner().get(caller.providerId, operationId);
    if (row === undefined) throw new AppError('NotFound', `operation ${operationId} not found`);
    try {
      await loadCustomer(deps.store, caller, row.value.customerId);
    } catch (error) {
      // POST /tenants: the customer is created by the operation's last step.
      if (!(isAppError(error, 'NotFound') && row.value.kind === 'tenant.create')) throw error;
    }
    return row.value;
  }

  return {
    stepsFor,
    onFinished,
    buy,
    changeQuantity: (
      caller: Caller,
      customerId: string,
      subscriptionId: string,
      input: z.infer<typeof quantityInputSchema>,
      key?: string,
    ) => change(caller, customerId, subscriptionId, 'subscription.quantity', input, key),
    cancel: (
      caller: Caller,
      customerId: string,
      subscriptionId: string,
      input: z.infer<typeof cancelInputSchema>,
      key?: string,
    ) => change(caller, customerId, subscriptionId, 'subscription.cancel', input, key),
    setAutoRenew: (
      caller: Caller,
      customerId: string,
      subscriptionId: string,
      input: z.infer<typeof autoRenewInputSchema>,
      key?: string,
    ) => change(caller, customerId, subscriptionId, 'subscription.autoRenew', input, key),
    async getOperation(caller: Caller, operationId: string) {
      return deps.runner().visible(await operation(caller, operationId));
    },
    async approve(caller: Caller, operationId: string) {
      await operation(caller, operationId);
      return deps.runner().visible(await deps.runner().approve(caller.providerId, operationId, caller.id));
    },
    async cancelOperation(caller: Caller, operationId: string) {
      await operation(caller, operationId);
      return deps.runner().visible(await deps.runner().cancel(caller.providerId, operationId));
    },
  };
}
export type Subscriptions = ReturnType<typeof createSubscriptions>;

const done = (result?: Record<string, string | number | boolean>): StepOutcome => ({
  kind: 'done',
  ...(result === undefined ? {} : { result }),
});

function priceResult(offer: Offer | undefined, unitPrice: number | undefined, quantity: number) {
  const amount = purchaseAmount(unitPrice, quantity);
  return {
    priced: amount !== undefined,
    ...(unitPrice === undefined ? {} : { unitPrice }),
    ...(amount === undefined ? {} : { amount }),
    ...(offer?.currency === undefined ? {} : { currency: offer.currency }),
    ...(offer?.licenceSkuId === undefined ? {} : { licenceSkuId: offer.licenceSkuId }),
    ...(offer === undefined ? {} : { offerName: `${offer.productTitle} ${offer.skuTitle}`.trim() }),
  };
}

function numbersOf(record: Record<string, string | number | boolean>, names: string[]) {
  const out: Record<string, number> = {};
  for (const name of names) {
    const value = record[name];
    if (typeof value === 'number') out[name] = value;
  }
  return out;
}

function causeOf(kind: CommerceOperationKind, request: Record<string, string | number | boolean>) {
  if (kind === 'subscription.buy') return 'purchase' as const;
  if (kind === 'subscription.autoRenew') return 'renewal' as const;
  if (kind === 'subscription.cancel') return 'reduction' as const;
  return request.plan === 'now' && typeof request.addedSeats === 'number'
    ? ('purchase' as const)
    : ('reduction' as const);
}
