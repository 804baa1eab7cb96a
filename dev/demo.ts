import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, EqualityFilter } from 'ldapts';
import { z } from 'zod';
import { createCredentialFor, createGraphDirectoryFactory } from '../shared/adapters/graph/index.js';
import { peersFileSchema } from './peers/run-all.js';

/**
 * `npm run demo` (with `npm start` running): provisions a batch of users through the HTTP API, waits for
 * their operations and prints where each landed — the AD account (DN, objectGUID) and the Entra user
 * (object id, onPremisesImmutableId, licences) — read back from each directory itself.
 */
const { values } = parseArgs({
  options: { count: { type: 'string', default: '5' }, timeout: { type: 'string', default: '180' } },
});
const count = Number(values.count);
/** Operations still running after this many seconds are reported as failures (e.g. the agent is down). */
const timeoutInMs = Number(values.timeout) * 1000;
const demo = z
  .object({ baseUrl: z.string(), apiKey: z.string(), customerId: z.string(), hybrid: z.boolean() })
  .parse(JSON.parse(readFileSync(join(process.cwd(), '.local', 'demo.json'), 'utf8')));
const peers = peersFileSchema.parse(
  JSON.parse(readFileSync(join(process.cwd(), '.local', 'peers.json'), 'utf8')),
);
const headers = { 'x-functions-key': demo.apiKey, 'content-type': 'application/json' };
const customer = z
  .object({
    entra: z.object({
      tenantId: z.string(),
      federatedDomain: z.string().optional(),
      domains: z.array(z.string()),
    }),
  })
  .parse(await (await fetch(`${demo.baseUrl}/customers/${demo.customerId}`, { headers })).json());
const domain = customer.entra.federatedDomain ?? customer.entra.domains[0] ?? '';
const run = Date.now().toString(36);

const operation = z.object({
  operationId: z.string(),
  state: z.string(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  steps: z.array(
    z.object({
      name: z.string(),
      state: z.string(),
      error: z.object({ code: z.string(), message: z.string() }).optional(),
    }),
  ),
});
const finalStates = ['succeeded', 'failed', 'compensated', 'compensationFailed', 'cancelled', 'needsLicence'];
/** Why a user did not make it: the operation's error, or its failed step's, or the HTTP answer. */
const failures: string[] = [];
const started = performance.now();
const accepted = await Promise.all(
  Array.from({ length: count }, async (_, i) => {
    const userId = `demo-${run}-${i}`;
    const response = await fetch(`${demo.baseUrl}/customers/${demo.customerId}/users`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        userId,
        userPrincipalName: `${userId}@${domain}`,
        displayName: `Demo User ${i}`,
        ...(demo.hybrid ? { password: `Demo!${run}#Pw${i}` } : {}),
      }),
    });
    if (response.status !== 202) {
      failures.push(`${userId}: POST answered ${response.status}: ${await response.text()}`);
      return undefined;
    }
    return { userId, operationId: operation.parse(await response.json()).operationId };
  }),
).then((list) => list.filter((a) => a !== undefined));
const finished = await Promise.all(
  accepted.map(async ({ userId, operationId }) => {
    for (;;) {
      const op = operation.parse(
        await (await fetch(`${demo.baseUrl}/operations/${operationId}`, { headers })).json(),
      );
      if (finalStates.includes(op.state) || performance.now() - started > timeoutInMs) return { userId, op };
      await new Promise((r) => setTimeout(r, 200));
    }
  }),
);
const seconds = (performance.now() - started) / 1000;

const cloud = createGraphDirectoryFactory({
  credentialFor: createCredentialFor({
    clientId: peers.graph.app.clientId,
    clientSecret: peers.graph.app.clientSecret,
    authorityHost: peers.identity.authorityHost,
  }),
  graphBaseUrl: peers.graph.baseUrl,
  customHosts: ['127.0.0.1'],
})(customer.entra.tenantId);
const ldap =
  'url' in peers.ad
    ? new Client({ url: peers.ad.url, tlsOptions: { ca: readFileSync(peers.ad.caFile) } })
    : undefined;
if (ldap !== undefined && 'url' in peers.ad) await ldap.bind(peers.ad.bindDn, peers.ad.password);

console.log(`${count} users, ${seconds.toFixed(1)} s from first POST to last finished operation\n`);
for (const { userId, op } of finished) {
  const upn = `${userId}@${domain}`;
  console.log(
    `${userId}  operation ${op.state}  [${op.steps.map((s) => `${s.name}:${s.state}`).join(' → ')}]`,
  );
  if (ldap !== undefined && 'url' in peers.ad) {
    const { searchEntries } = await ldap.search(peers.ad.baseDn, {
      scope: 'sub',
      filter: new EqualityFilter({ attribute: 'userPrincipalName', value: upn }),
      attributes: ['objectGUID'],
      explicitBufferAttributes: ['objectGUID'],
    });
    const entry = searchEntries[0];
    console.log(
      `   AD     ${entry === undefined ? '(none)' : `${entry.dn}  objectGUID(base64)=${(entry.objectGUID as Buffer).toString('base64')}`}`,
    );
  }
  const entra = await cloud.findUserByUpn(upn);
  console.log(
    `   Entra  ${entra === undefined ? '(none)' : `${entra.id}  onPremisesImmutableId=${entra.onPremisesImmutableId ?? '(none)'}  licences=${entra.assignedLicences.map((l) => l.skuId).join(',') || '(none)'}`}`,
  );
}
await ldap?.unbind();

for (const { userId, op } of finished) {
  if (op.state === 'succeeded') continue;
  const step = op.steps.find((s) => s.error !== undefined);
  const reason = op.error ?? step?.error;
  failures.push(
    `${userId}: operation ${op.operationId} ${op.state}${reason === undefined ? '' : ` — ${reason.code}: ${reason.message}`}`,
  );
}
if (failures.length > 0) {
  console.error(`\n${failures.length} of ${count} users did not succeed:`);
  for (const failure of failures) console.error(`  ${failure}`);
  process.exitCode = 1;
} else console.log(`\nall ${count} users succeeded (run id ${run}: npm run demo again makes new ones)`);
