import { z } from 'zod';
import { httpFunction } from './endpoint.js';

const siteParams = z.object({
  siteId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lowercase letters, digits and - (≤ 40)'),
});
const pemPublicKey = z
  .string()
  .regex(/^-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----\s*$/, 'a PEM public key');
const siteView = z.object({
  siteId: z.string(),
  providerId: z.string(),
  publicKeyPem: z.string(),
  agentPublicKeyPem: z.string().optional(),
  registeredAt: z.string(),
});

export const putSite = httpFunction({
  name: 'sites-put',
  route: 'sites/{siteId}',
  method: 'PUT',
  summary:
    "Register a customer site's relay agent: its X25519 public key (initial passwords are sealed to it)",
  tags: ['sites'],
  auth: 'caller',
  params: siteParams,
  body: z.object({
    /** X25519: initial passwords are sealed to it. */
    publicKeyPem: pemPublicKey,
    /** The agent's Ed25519 key; when set, replies claiming this site must carry its signature. */
    agentPublicKeyPem: pemPublicKey.optional(),
  }),
  responses: { 200: { description: 'Registered', schema: siteView } },
  async handle({ caller, params: { siteId }, body, deps }) {
    const site = await deps.sites.register(caller, siteId, body.publicKeyPem, body.agentPublicKeyPem);
    const { heartbeat: _h, ...view } = site;
    return { status: 200, body: view };
  },
});
