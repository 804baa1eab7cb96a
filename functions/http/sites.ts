import { z } from 'zod';
import { pageQuerySchema } from '../../shared/usecases/paging.js';
import { httpFunction } from './endpoint.js';
import { pagedBody } from './paging.js';

const siteParams = z.object({
  siteId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lowercase letters, digits and - (≤ 40)'),
});
const pemPublicKey = z
  .string()
  .max(4096)
  .regex(/^-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----\s*$/, 'a PEM public key');
const siteView = z.object({
  siteId: z.string(),
  providerId: z.string(),
  publicKeyPem: z.string(),
  agentPublicKeyPem: z.string().optional(),
  registeredAt: z.string(),
  updatedAt: z.string().optional(),
  agent: z.object({
    state: z.enum(['ok', 'stale', 'noDcReachable', 'neverSeen']),
    lastHeartbeatAt: z.string().nullable(),
    agentVersion: z.string().nullable(),
    dcsReachable: z.array(z.string()),
    queueLag: z.number().nullable(),
    lastError: z.string().nullable(),
  }),
});

export const putSite = httpFunction({
  name: 'sites-put',
  route: 'sites/{siteId}',
  method: 'PUT',
  summary:
    "Register or re-key a customer site's relay agent: the site's X25519 key (passwords are sealed to it) and the agent's Ed25519 key (its replies must be signed with it)",
  tags: ['sites'],
  auth: 'caller',
  params: siteParams,
  body: z
    .object({
      /** X25519: initial passwords are sealed to it. */
      publicKeyPem: pemPublicKey,
      /** The agent's Ed25519 key: replies and heartbeats claiming this site must carry its signature. */
      agentPublicKeyPem: pemPublicKey,
    })
    .strict(),
  responses: {
    200: { description: 'Re-registered (the heartbeat is kept)', schema: siteView },
    201: { description: 'Registered', schema: siteView },
  },
  async handle({ caller, params: { siteId }, body, deps }) {
    const { site, created } = await deps.sites.register(caller, siteId, body);
    return { status: created ? 201 : 200, body: site };
  },
});

export const getSite = httpFunction({
  name: 'sites-get',
  route: 'sites/{siteId}',
  method: 'GET',
  summary: "One of the caller's sites with its agent's last heartbeat",
  tags: ['sites'],
  auth: 'caller',
  params: siteParams,
  responses: { 200: { description: 'The site', schema: siteView } },
  async handle({ caller, params: { siteId }, deps }) {
    return { status: 200, body: await deps.sites.getForCaller(caller, siteId) };
  },
});

export const listSites = httpFunction({
  name: 'sites-list',
  route: 'sites',
  method: 'GET',
  summary: "The caller's sites (paged: follow nextLink)",
  tags: ['sites'],
  auth: 'caller',
  query: pageQuerySchema,
  responses: {
    200: {
      description: 'A page of sites',
      schema: z.object({ value: z.array(siteView), nextLink: z.string().optional() }),
    },
  },
  async handle({ caller, query, deps }) {
    return { status: 200, body: pagedBody('sites', query, await deps.sites.listForCaller(caller, query)) };
  },
});

export const deleteSite = httpFunction({
  name: 'sites-delete',
  route: 'sites/{siteId}',
  method: 'DELETE',
  summary: 'Remove a site no customer uses any more',
  tags: ['sites'],
  auth: 'caller',
  params: siteParams,
  responses: { 204: { description: 'Removed' } },
  async handle({ caller, params: { siteId }, deps }) {
    await deps.sites.remove(caller, siteId);
    return { status: 204 };
  },
});
