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
const agentView = z.object({
  agentId: z.string(),
  state: z.enum(['ok', 'unavailable', 'noDcReachable']),
  lastHeartbeatAt: z.string(),
  agentVersion: z.string(),
  dcsReachable: z.array(z.string()),
  queueLag: z.number(),
  lastError: z.string().nullable(),
  signedWithNextKey: z.boolean().optional(),
});
const siteView = z.object({
  siteId: z.string(),
  providerId: z.string(),
  publicKeyPem: z.string(),
  agentPublicKeyPem: z.string().optional(),
  registeredAt: z.string(),
  updatedAt: z.string().optional(),
  /** An open key rotation: its next keys are trusted beside the current ones until finished. */
  rotation: z
    .object({ publicKeyPem: z.string(), agentPublicKeyPem: z.string(), startedAt: z.string() })
    .optional(),
  agents: z.array(agentView),
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

const keyPair = z
  .object({
    /** The next X25519 key: passwords are sealed to it once the rotation is finished. */
    publicKeyPem: pemPublicKey,
    /** The next Ed25519 agent key: accepted beside the current one from now on. */
    agentPublicKeyPem: pemPublicKey,
  })
  .strict();

export const startKeyRotation = httpFunction({
  name: 'sites-key-rotation-put',
  route: 'sites/{siteId}/key-rotation',
  method: 'PUT',
  summary:
    "Start rotating a site's agent keys without downtime: the next keys (printed by `agent keys rotate` on the agent's machine) are trusted beside the current ones",
  tags: ['sites'],
  auth: 'caller',
  params: siteParams,
  body: keyPair,
  responses: { 200: { description: 'The site with its open rotation', schema: siteView } },
  async handle({ caller, params: { siteId }, body, deps }) {
    return { status: 200, body: await deps.sites.startRotation(caller, siteId, body) };
  },
});

export const finishKeyRotation = httpFunction({
  name: 'sites-key-rotation-finish',
  route: 'sites/{siteId}/key-rotation/finish',
  method: 'POST',
  summary:
    'Finish a key rotation: the next keys become current and the old ones are refused (409 while an available agent has not signed a heartbeat with the next key)',
  tags: ['sites'],
  auth: 'caller',
  params: siteParams,
  responses: { 200: { description: 'The site with its new keys', schema: siteView } },
  async handle({ caller, params: { siteId }, deps }) {
    return { status: 200, body: await deps.sites.finishRotation(caller, siteId) };
  },
});

export const cancelKeyRotation = httpFunction({
  name: 'sites-key-rotation-delete',
  route: 'sites/{siteId}/key-rotation',
  method: 'DELETE',
  summary: 'Abandon an open key rotation: only the current keys are trusted',
  tags: ['sites'],
  auth: 'caller',
  params: siteParams,
  responses: { 204: { description: 'No rotation is open' } },
  async handle({ caller, params: { siteId }, deps }) {
    await deps.sites.cancelRotation(caller, siteId);
    return { status: 204 };
  },
});
