import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { definitions } from '../../../functions/definitions.js';
import { loadSettings, settingsSchema } from '../../../shared/config.js';
import { commandQueueName, replyQueueName } from '../../../shared/relay-protocol/schema.js';

/**
 * infra/ in step with the code, read as text (no Bicep compiler here): every queue the code sends to
 * or consumes is declared, every app setting the config schema needs in Azure is set by api.bicep (the
 * schema then accepts exactly those names), and each identity holds the built-in roles its calls need.
 */
const infra = (file: string): string => readFileSync(join('infra', file), 'utf8');
const servicebus = infra('app/servicebus.bicep');
const api = infra('app/api.bicep');
const rbac = infra('app/rbac.bicep');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

/** Queue names written literally in production code: contracts, senders, receivers, triggers. */
function queuesInCode(): Set<string> {
  const names = new Set<string>();
  for (const file of ['shared', 'functions', 'agent'].flatMap(sourceFiles)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\b(?:queue|queueName)\s*:\s*'([a-z0-9][a-z0-9-]*)'/g))
      names.add(m[1] ?? '');
    for (const m of text.matchAll(/create(?:Sender|Receiver)\(\s*'([a-z0-9][a-z0-9-]*)'/g))
      names.add(m[1] ?? '');
  }
  for (const d of definitions) if (d.kind === 'serviceBusQueue') names.add(d.queueName);
  names.add(replyQueueName);
  return names;
}

function queuesInBicep(): Set<string> {
  const names = new Set<string>();
  const work = /var workQueueNames = \[([^\]]*)\]/.exec(servicebus)?.[1] ?? '';
  for (const m of work.matchAll(/'([^']+)'/g)) names.add(m[1] ?? '');
  for (const m of servicebus.matchAll(
    /resource \w+ 'Microsoft\.ServiceBus\/namespaces\/queues@[^']+' = \{[^}]*?name: '([^'$]+)'/g,
  ))
    names.add(m[1] ?? '');
  return names;
}

/** App setting names api.bicep sets (the keys of its `var …Settings` objects). */
function settingsInBicep(): Map<string, string> {
  const names = new Map<string, string>();
  for (const block of api.matchAll(
    /var \w+Settings = [^\n]*\n([\s\S]*?)\n(?=var |resource |param |output )/g,
  )) {
    for (const m of (block[1] ?? '').matchAll(/^\s+([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.+)$/gm))
      names.set(m[1] ?? '', (m[2] ?? '').trim());
  }
  // Inline objects, e.g. `empty(x) ? {} : { PartnerCenter__providerId: x }`.
  for (const m of api.matchAll(/\{ ([A-Za-z_][A-Za-z0-9_]*): ([^}]+) \}/g))
    names.set(m[1] ?? '', (m[2] ?? '').trim());
  return names;
}

/** A value the setting's own schema accepts (Bicep values are expressions, resolved only in Azure). */
function sampleFor(name: string, schema: z.ZodType): string {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const candidates = [
    randomUUID(),
    'https://example.invalid/',
    'atria.servicebus.windows.net',
    privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    Buffer.alloc(32, 7).toString('base64'),
    '1',
    'text',
  ];
  const fit = candidates.find((c) => schema.safeParse(c).success);
  if (fit === undefined) throw new Error(`no sample value fits ${name}`);
  return fit;
}

// Read by the Functions host or the Azure Monitor SDK, not by shared/config.ts.
const hostSettings = /^(AzureWebJobsStorage__|APPLICATIONINSIGHTS_|FUNCTIONS_)|__credential$|__clientId$/;

describe('infra/ declares what the code uses', () => {
  it('declares every queue the code sends to or consumes, and the per-site command queues', () => {
    const declared = queuesInBicep();
    const used = queuesInCode();
    expect(used.size).toBeGreaterThanOrEqual(2);
    expect([...used].filter((q) => !declared.has(q))).toEqual([]);
    // Site queues are per site: the Bicep pattern must produce the name the relay sends to.
    const pattern = /name: 'agent-site-\$\{siteId\}'/.exec(servicebus);
    expect(pattern, 'servicebus.bicep declares agent-site-${siteId}').not.toBeNull();
    expect(commandQueueName('s1')).toBe('agent-site-s1');
  });

  it('sets every app setting the config schema requires in Azure, and the schema accepts them', () => {
    const bicep = settingsInBicep();
    const shape = settingsSchema.shape as Record<string, z.ZodType>;
    expect(bicep.get('ATRIA_ENVIRONMENT')).toBe("'azure'");
    // Names in api.bicep that the schema does not know are typos (the schema would drop them).
    const unknown = [...bicep.keys()].filter((n) => !(n in shape) && !hostSettings.test(n));
    expect(unknown).toEqual([]);
    const env: Record<string, string> = { ATRIA_ENVIRONMENT: 'azure' };
    for (const name of bicep.keys()) {
      const schema = shape[name];
      if (schema === undefined || name === 'ATRIA_ENVIRONMENT') continue;
      // A plain literal in Bicep is the value itself; an expression gets a sample of its type.
      const literal = /^'([^'$]*)'$/.exec(bicep.get(name) ?? '')?.[1];
      env[name] =
        literal !== undefined && schema.safeParse(literal).success ? literal : sampleFor(name, schema);
    }
    // Throws, naming each missing setting, when api.bicep leaves out one the schema needs in Azure.
    expect(() => loadSettings(env)).not.toThrow();
    expect(() => loadSettings({ ...env, Secrets__operationKey: undefined })).toThrow(/Secrets__operationKey/);
  });

  it("writes the distributor's client id only with its owning provider, and fails a deployment given one of them", () => {
    // config.ts refuses Distributor__clientId without Distributor__providerId (and the reverse).
    const block = /var distributorSettings = ([\s\S]*?)\n\n/.exec(api)?.[1] ?? '';
    expect(block).toMatch(/empty\(distributorClientId\) && empty\(distributorProviderId\)\s*\?\s*\{\}/);
    const both = block.slice(
      block.indexOf('!empty(distributorClientId) && !empty(distributorProviderId)'),
      block.indexOf('fail('),
    );
    expect(both).toMatch(/Distributor__clientId:/);
    expect(both).toMatch(/Distributor__providerId:/);
    expect(block).toMatch(/:\s*fail\('/);
    // Nowhere else: neither can be written on its own.
    expect(api.match(/Distributor__(clientId|providerId):/g)).toHaveLength(2);
  });

  it("grants the app's identity the built-in roles its calls need", () => {
    // Built-in role ids: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
    const needed = {
      'Storage Table Data Contributor': '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
      'Storage Blob Data Owner': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
      'Storage Queue Data Contributor': '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
      'Azure Service Bus Data Owner': '090c5cfd-751d-490a-894a-3ce6f1109419',
      'Key Vault Secrets User': '4633458b-17de-408a-b874-0445c86b69e6',
      'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb',
    };
    const declared = new Map<string, string>();
    for (const m of rbac.matchAll(/^\s+(\w+): '([0-9a-f-]{36})'/gm)) declared.set(m[2] ?? '', m[1] ?? '');
    for (const [role, id] of Object.entries(needed)) {
      const variable = declared.get(id);
      expect(variable, role).toBeDefined();
      // Declared and used in a roleDefinitionId, not merely listed.
      expect(rbac, role).toMatch(new RegExp(`roles\\.${variable ?? '-'}\\b`));
    }
  });
});
