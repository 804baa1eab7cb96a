import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import type { Customer, CustomerInput } from '../domain/customer.js';
import { AppError } from '../errors.js';
import type { CloudDirectoryFactory } from '../ports/cloud-directory.js';
import { federationRequestSchema, type Federation } from './federation.js';
import type { Customers } from './customers.js';
import type { SagaRunner, SagaStepDefinition, StepOutcome } from './tenants/saga.js';

/**
 * A custom domain for a customer's tenant (issue 14), as a commerce operation: add it (`POST /domains`,
 * unverified), hand back the DNS records to publish (`GET /domains/{id}/verificationDnsRecords`),
 * verify (`POST /domains/{id}/verify`) — polled with backoff until the record is found or the
 * operation's deadline passes, or at once on request — then make it a UPN suffix of the customer
 * and, for a hybridFederated customer given ADFS settings, federate it (the federation use case).
 */

const domainName = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, 'a DNS domain name')
  .refine((d) => !d.endsWith('.onmicrosoft.com'), 'onmicrosoft.com domains come with the tenant');

export const addDomainInputSchema = z.strictObject({
  domain: domainName,
  /** ADFS settings: the domain is federated once verified (hybridFederated customers only). */
  federation: federationRequestSchema.optional(),
});
export type AddDomainInput = z.infer<typeof addDomainInputSchema>;

const storedSchema = z.object({ domain: z.string(), federation: federationRequestSchema.optional() });

export interface DomainsDeps {
  customers: Pick<Customers, 'get' | 'put'>;
  federation: Pick<Federation, 'configure'>;
  cloudDirectory: CloudDirectoryFactory | undefined;
  runner: () => SagaRunner;
  /** How long verification may be polled for before the operation fails visibly. */
  verifyDeadlineInMs?: number;
}

export function createDomains(deps: DomainsDeps) {
  const deadlineInMs = deps.verifyDeadlineInMs ?? 7 * 24 * 60 * 60_000;
  const callerOf = (providerId: string, actor: string): Caller => ({ id: actor, kind: 'apiKey', providerId });
  const done = (result?: Record<string, string | number | boolean>): StepOutcome => ({
    kind: 'done',
    ...(result === undefined ? {} : { result }),
  });

  function cloudOf(customer: Customer) {
    if (customer.entra === undefined)
      throw new AppError('Conflict', `customer ${customer.customerId} has no Entra tenant yet`);
    if (deps.cloudDirectory === undefined)
      throw new AppError('Unavailable', 'Microsoft Graph is not configured');
    return deps.cloudDirectory(customer.entra.tenantId);
  }

  async function customerOf(providerId: string, actor: string, customerId: string) {
    return (await deps.customers.get(callerOf(providerId, actor), customerId)).value;
  }

  const request = (payload: string | number | boolean | undefined) =>
    storedSchema.parse(JSON.parse(String(payload)));

  const steps: SagaStepDefinition[] = [
    {
      name: 'add',
      async execute(ctx) {
        const { domain } = request(ctx.saga.request.payload);
        const customer = await customerOf(ctx.saga.providerId, ctx.saga.actor, ctx.saga.customerId);
        // An existing domain is returned as it is (the port's addDomain): a repeat adds nothing.
        const added = await cloudOf(customer).addDomain(domain);
        return done({ isVerified: added.isVerified });
      },
    },
    {
      name: 'records',
      async execute(ctx) {
        const { domain } = request(ctx.saga.request.payload);
        const customer = await customerOf(ctx.saga.providerId, ctx.saga.actor, ctx.saga.customerId);
        if (ctx.result('add').isVerified === true) return done({ needed: false });
        const records = await cloudOf(customer).listDomainVerificationRecords(domain);
        const txt = records.find((r) => r.recordType === 'Txt');
        const mx = records.find((r) => r.recordType === 'Mx');
        return done({
          needed: true,
          ...(txt?.text === undefined ? {} : { txt: txt.text, txtLabel: txt.label, ttl: txt.ttl }),
          ...(mx?.mailExchange === undefined
            ? {}
            : { mx: mx.mailExchange, mxPreference: mx.preference ?? 0 }),
        });
      },
    },
    {
      name: 'verify',
      async execute(ctx): Promise<StepOutcome> {
        const { domain } = request(ctx.saga.request.payload);
        if (ctx.result('add').isVerified === true) return done({ verified: true });
        const customer = await customerOf(ctx.saga.providerId, ctx.saga.actor, ctx.saga.customerId);
        const cloud = cloudOf(customer);
        const found = await cloud.getDomain(domain);
        if (found.isVerified) return done({ verified: true });
        const answer = await cloud.verifyDomain(domain);
        if (!answer.verified) return { kind: 'poll', reason: `not verified yet: ${answer.reason}` };
        return done({ verified: true });
      },
    },
    {
      name: 'upnSuffix',
      async execute(ctx) {
        const { domain, federation } = request(ctx.saga.request.payload);
        const caller = callerOf(ctx.saga.providerId, ctx.saga.actor);
        const customer = await customerOf(ctx.saga.providerId, ctx.saga.actor, ctx.saga.customerId);
        const entra = customer.entra;
        if (entra === undefined) throw new AppError('Conflict', 'the customer lost its tenant meanwhile');
        const hybrid = customer.identityMode === 'hybridFederated' && federation !== undefined;
        const domains = entra.domains.includes(domain) ? entra.domains : [...entra.domains, domain];
        const upnSuffixes =
          customer.ad === undefined || customer.ad.upnSuffixes.includes(domain) || !hybrid
            ? customer.ad?.upnSuffixes
            : [...customer.ad.upnSuffixes, domain];
        const next: CustomerInput = {
          ...inputOf(customer),
          entra: {
            ...entra,
            domains,
            ...(hybrid && entra.federatedDomain === undefined ? { federatedDomain: domain } : {}),
          },
          ...(customer.ad === undefined || upnSuffixes === undefined
            ? {}
            : { ad: { ...customer.ad, upnSuffixes } }),
        };
        if (JSON.stringify(next) !== JSON.stringify(inputOf(customer)))
          await deps.customers.put(caller, ctx.saga.customerId, next);
        return done({ upnSuffix: domain });
      },
    },
    {
      name: 'federate',
      async execute(ctx) {
        const { domain, federation } = request(ctx.saga.request.payload);
        const customer = await customerOf(ctx.saga.providerId, ctx.saga.actor, ctx.saga.customerId);
        if (federation === undefined || customer.identityMode !== 'hybridFederated')
          return done({ federated: false });
        // PUT-like: configuring the same settings again is a no-op in Graph.
        await deps.federation.configure(
          callerOf(ctx.saga.providerId, ctx.saga.actor),
          ctx.saga.customerId,
          domain,
          federation,
        );
        return done({ federated: true });
      },
    },
  ];

  const keyOf = (domain: string) => `domain:${domain}`;

  async function add(caller: Caller, customerId: string, input: AddDomainInput) {
    const customer = (await deps.customers.get(caller, customerId)).value;
    cloudOf(customer);
    if (input.federation !== undefined && customer.identityMode !== 'hybridFederated')
      throw new AppError(
        'Validation',
        `customer ${customerId} is ${customer.identityMode}: only hybridFederated customers federate a domain`,
        {
          details: { errors: [{ path: 'body.federation', message: 'only for hybridFederated customers' }] },
        },
      );
    const payload = JSON.stringify(input);
    const fingerprint = createHash('sha256').update(payload).digest('base64url');
    const runner = deps.runner();
    const started = await runner.start({
      providerId: caller.providerId,
      customerId,
      kind: 'domain.add',
      request: { payload },
      actor: caller.id,
      idempotencyKey: keyOf(input.domain),
      fingerprint,
      held: false,
      deadlineInMs,
    });
    const saga = started.created
      ? await runner.advance(caller.providerId, started.saga.operationId)
      : started.saga;
    return { created: started.created, operation: runner.visible(saga) };
  }

  /** Verify now (the customer says the record is published): runs the operation without waiting for its backoff. */
  async function verifyNow(caller: Caller, customerId: string, domain: string) {
    await deps.customers.get(caller, customerId);
    const runner = deps.runner();
    const found = await runner.lookup(
      caller.providerId,
      customerId,
      'domain.add',
      keyOf(domain.toLowerCase()),
    );
    if (found === undefined)
      throw new AppError('NotFound', `domain ${domain} was not added through this API`);
    return runner.visible(await runner.advance(caller.providerId, found.saga.operationId, { force: true }));
  }

  return { steps, add, verifyNow };
}
export type Domains = ReturnType<typeof createDomains>;

function inputOf(customer: Customer): CustomerInput {
  const {
    customerId: _id,
    providerId: _provider,
    createdAt: _created,
    updatedAt: _updated,
    ...input
  } = customer;
  return input;
}
