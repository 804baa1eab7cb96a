import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import {
  evidenceEventSchema,
  monthSchema,
  splaProductSchema,
  splaRuleSchema,
} from '../../shared/domain/spla.js';
import { correctionInputSchema, splaResponseSchemas } from '../../shared/usecases/spla.js';
import { httpFunction } from './endpoint.js';

const productIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, . _ - (≤ 64)');
const tags = ['spla'];

export const putSplaProduct = httpFunction({
  name: 'spla-products-put',
  route: 'spla/products/{productId}',
  method: 'PUT',
  summary: 'An SPLA product the provider reports: name, SKU, unit (user: SAL counted; core: fixed quantity)',
  tags,
  auth: 'caller',
  params: z.object({ productId: productIdSchema }),
  body: splaProductSchema,
  responses: { 200: { description: 'The product', schema: splaResponseSchemas.product } },
  async handle({ caller, params: { productId }, body, deps }) {
    return { status: 200, body: await deps.spla.putProduct(caller, productId, body) };
  },
});

export const listSplaProducts = httpFunction({
  name: 'spla-products-list',
  route: 'spla/products',
  method: 'GET',
  summary: "The provider's SPLA products",
  tags,
  auth: 'caller',
  responses: { 200: { description: 'Products', schema: splaResponseSchemas.products } },
  async handle({ caller, deps }) {
    return { status: 200, body: { value: await deps.spla.listProducts(caller) } };
  },
});

export const putSplaRule = httpFunction({
  name: 'spla-rules-put',
  route: 'customers/{customerId}/spla/rules/{productId}',
  method: 'PUT',
  summary:
    "Who is authorised for a product at this customer (AD/Entra groups, nested counted; an attribute; a service flag), the exclusions, or a per-core product's fixed quantity",
  tags,
  auth: 'caller',
  params: z.object({ customerId: customerIdSchema, productId: productIdSchema }),
  body: splaRuleSchema,
  responses: { 200: { description: 'The rule', schema: splaResponseSchemas.rule } },
  async handle({ caller, params: { customerId, productId }, body, deps }) {
    return { status: 200, body: await deps.spla.putRule(caller, customerId, productId, body) };
  },
});

export const listSplaRules = httpFunction({
  name: 'spla-rules-list',
  route: 'customers/{customerId}/spla/rules',
  method: 'GET',
  summary: "The customer's SPLA rules",
  tags,
  auth: 'caller',
  params: z.object({ customerId: customerIdSchema }),
  responses: { 200: { description: 'Rules', schema: splaResponseSchemas.rules } },
  async handle({ caller, params: { customerId }, deps }) {
    return { status: 200, body: { value: await deps.spla.listRules(caller, customerId) } };
  },
});

export const appendSplaEvidence = httpFunction({
  name: 'spla-evidence-append',
  route: 'customers/{customerId}/spla/evidence',
  method: 'POST',
  summary:
    'Append evidence from outside atria-m365 (a group snapshot, a change feed); append-only, replays are ignored',
  tags,
  auth: 'caller',
  params: z.object({ customerId: customerIdSchema }),
  body: z.strictObject({ events: z.array(evidenceEventSchema).min(1).max(500) }),
  responses: { 200: { description: 'How many events were new', schema: splaResponseSchemas.appended } },
  async handle({ caller, params: { customerId }, body, deps }) {
    return { status: 200, body: await deps.spla.appendEvidence(caller, customerId, body.events) };
  },
});

export const listSplaEvidence = httpFunction({
  name: 'spla-evidence-list',
  route: 'customers/{customerId}/spla/evidence',
  method: 'GET',
  summary: "The month's stored evidence for the customer, in stored order",
  tags,
  auth: 'caller',
  params: z.object({ customerId: customerIdSchema }),
  query: z.object({ month: monthSchema }),
  responses: { 200: { description: 'Evidence events', schema: splaResponseSchemas.evidence } },
  async handle({ caller, params: { customerId }, query, deps }) {
    return { status: 200, body: { value: await deps.spla.listEvidence(caller, customerId, query.month) } };
  },
});

export const getSplaReport = httpFunction({
  name: 'spla-report',
  route: 'reports/spla',
  method: 'GET',
  summary:
    'The SPLA report of a month: one row per customer × product (JSON or CSV); `view=detail` lists each counted user with dates and rule',
  tags,
  auth: 'caller',
  query: z.object({
    month: monthSchema,
    customerId: customerIdSchema.optional(),
    view: z.enum(['summary', 'detail']).default('summary'),
    format: z.enum(['json', 'csv']).optional(),
  }),
  responses: {
    200: {
      description:
        'The report (JSON; `text/csv` with format=csv or Accept: text/csv: the summary rows, or one row per user with view=detail)',
      schema: splaResponseSchemas.report,
      text: ['text/csv'],
    },
  },
  async handle({ caller, query, deps, headers }) {
    const report = await deps.spla.report(caller, query.month, {
      ...(query.customerId === undefined ? {} : { customerId: query.customerId }),
      details: query.view === 'detail',
    });
    const csv =
      query.format === 'csv' ||
      (query.format === undefined && /\btext\/csv\b/.test(headers.get('accept') ?? ''));
    if (!csv) return { status: 200, body: report };
    return {
      status: 200,
      text: deps.spla.reportCsv(report),
      headers: {
        'content-type': 'text/csv; charset=utf-8',
        'content-disposition': `attachment; filename="spla-${query.month}${query.view === 'detail' ? '-detail' : ''}.csv"`,
      },
    };
  },
});

export const closeSplaMonth = httpFunction({
  name: 'spla-close',
  route: 'reports/spla/{month}/close',
  method: 'POST',
  summary:
    "Freeze a finished month's report (all your customers, or one): later evidence no longer changes it",
  tags,
  auth: 'caller',
  params: z.object({ month: monthSchema }),
  body: z.strictObject({ customerId: customerIdSchema.optional() }),
  responses: { 200: { description: 'The closed reports', schema: splaResponseSchemas.closed } },
  async handle({ caller, params: { month }, body, deps }) {
    return { status: 200, body: { value: await deps.spla.closeMonth(caller, month, body.customerId) } };
  },
});

export const addSplaCorrection = httpFunction({
  name: 'spla-corrections-add',
  route: 'reports/spla/{month}/corrections',
  method: 'POST',
  summary:
    'Correct a closed month for one customer and product, with the reason (within the correction window)',
  tags,
  auth: 'caller',
  params: z.object({ month: monthSchema }),
  body: correctionInputSchema,
  responses: { 201: { description: 'The correction', schema: splaResponseSchemas.correction } },
  async handle({ caller, params: { month }, body, deps }) {
    return { status: 201, body: await deps.spla.addCorrection(caller, month, body) };
  },
});

export const splaFunctions = [
  putSplaProduct,
  listSplaProducts,
  putSplaRule,
  listSplaRules,
  appendSplaEvidence,
  listSplaEvidence,
  getSplaReport,
  closeSplaMonth,
  addSplaCorrection,
];
