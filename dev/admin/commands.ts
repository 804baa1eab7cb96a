import { parseArgs } from 'node:util';
import { callerAppRole } from '../../shared/adapters/entra-auth/token-verifier.js';
import type { CallerRegistry, CredentialSummary } from '../../shared/usecases/callers.js';

/**
 * The operators' commands behind `npm run admin -- …`: providers and their API keys. Output that a
 * script reads goes to stdout (the new key alone on the last line); what a human reads goes to stderr.
 */
export const usage = `usage: npm run admin -- <command>

  providers add <providerId> [--name <text>]     register a service provider (safe to repeat)
  providers list [--json]
  keys create --provider <providerId> [--customers <id1,id2>] [--name <text>]
                                                 issue an API key; printed once, only its hash is stored
  keys list --provider <providerId> [--json]     key ids, names, customer scopes, created, revoked
  keys revoke <keyId>                            the next request with that key is 401
  apps add <appId> --provider <providerId> [--customers <id1,id2>] [--name <text>]
                                                 map an Entra application (client id) to a provider
  apps list --provider <providerId> [--json]
  apps revoke <appId>                            its next token is refused (403)

Storage: TableStorage (connection string) or TableStorage__tableServiceUri (+ TableStorage__clientId)
from the environment, as the Function App reads them; otherwise the local stack's .local/peers.json.`;

export class UsageError extends Error {}

export interface AdminOutput {
  /** For scripts: the key, JSON. */
  out(line: string): void;
  /** For humans: what happened. */
  note(line: string): void;
}

function scope(customerIds: string[] | undefined): string {
  return customerIds === undefined ? 'all customers' : `customers ${customerIds.join(',')}`;
}

function credentialLine(credential: CredentialSummary): string {
  const state = credential.revokedAt === undefined ? 'active' : `revoked ${credential.revokedAt}`;
  return [
    credential.id,
    JSON.stringify(credential.name),
    scope(credential.customerIds),
    `created ${credential.createdAt}`,
    state,
  ].join('  ');
}

function printList(io: AdminOutput, list: CredentialSummary[], json: boolean, none: string): void {
  if (json) io.out(JSON.stringify(list));
  else for (const credential of list) io.out(credentialLine(credential));
  if (list.length === 0) io.note(none);
}

function splitIds(value: string | undefined): string[] | undefined {
  return value
    ?.split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
}

const options = {
  provider: { type: 'string' },
  customers: { type: 'string' },
  name: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function runAdmin(argv: string[], callers: CallerRegistry, io: AdminOutput): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  const [group, verb, ...rest] = positionals;
  const required = (value: string | undefined, what: string): string => {
    if (value === undefined || value === '') throw new UsageError(`${what} is required`);
    return value;
  };
  const noMore = (): void => {
    if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0] ?? ''}`);
  };

  if (values.help === true || group === undefined) {
    io.note(usage);
    return;
  }
  const command = `${group} ${verb ?? ''}`.trim();
  switch (command) {
    case 'providers add': {
      const [providerId, ...extra] = rest;
      if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0] ?? ''}`);
      const { provider, created } = await callers.providers.add({
        providerId: required(providerId, 'providers add <providerId>'),
        ...(values.name === undefined ? {} : { name: values.name }),
      });
      io.note(
        created
          ? `added provider ${provider.providerId} (${JSON.stringify(provider.name)})`
          : `provider ${provider.providerId} already exists (${JSON.stringify(provider.name)}, created ${provider.createdAt}); unchanged`,
      );
      io.out(values.json === true ? JSON.stringify(provider) : provider.providerId);
      return;
    }
    case 'providers list': {
      noMore();
      const providers = await callers.providers.list();
      if (values.json === true) io.out(JSON.stringify(providers));
      else
        for (const p of providers)
          io.out(`${p.providerId}  ${JSON.stringify(p.name)}  created ${p.createdAt}`);
      if (providers.length === 0) io.note('no providers yet: npm run admin -- providers add <providerId>');
      return;
    }
    case 'keys create': {
      noMore();
      const customerIds = splitIds(values.customers);
      const providerId = required(values.provider, '--provider');
      const { keyId, apiKey } = await callers.issueApiKey({
        providerId,
        ...(customerIds === undefined ? {} : { customerIds }),
        name: values.name ?? `key for ${providerId}`,
      });
      io.note(`created key ${keyId} for provider ${providerId} (${scope(customerIds)}).`);
      io.note('It is shown once, below; only its hash is stored. Send it as x-functions-key.');
      io.out(apiKey);
      return;
    }
    case 'keys list': {
      noMore();
      const keys = await callers.listApiKeys(required(values.provider, '--provider'));
      printList(io, keys, values.json === true, 'no keys for this provider');
      return;
    }
    case 'keys revoke': {
      const [keyId, ...extra] = rest;
      if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0] ?? ''}`);
      const key = await callers.revokeApiKey(required(keyId, 'keys revoke <keyId>'));
      io.note(`revoked key ${key.id} of provider ${key.providerId} at ${key.revokedAt ?? ''}`);
      io.out(key.id);
      return;
    }
    case 'apps add': {
      const [appId, ...extra] = rest;
      if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0] ?? ''}`);
      const customerIds = splitIds(values.customers);
      const providerId = required(values.provider, '--provider');
      const app = await callers.addEntraApp({
        appId: required(appId, 'apps add <appId>'),
        providerId,
        ...(customerIds === undefined ? {} : { customerIds }),
        name: values.name ?? `app for ${providerId}`,
      });
      io.note(
        `application ${app.id} calls as provider ${app.providerId} (${scope(app.customerIds)}); its tokens need the ${callerAppRole} app role`,
      );
      io.out(app.id);
      return;
    }
    case 'apps list': {
      noMore();
      const apps = await callers.listEntraApps(required(values.provider, '--provider'));
      printList(io, apps, values.json === true, 'no Entra applications for this provider');
      return;
    }
    case 'apps revoke': {
      const [appId, ...extra] = rest;
      if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0] ?? ''}`);
      const app = await callers.revokeEntraApp(required(appId, 'apps revoke <appId>'));
      io.note(`revoked application ${app.id} of provider ${app.providerId} at ${app.revokedAt ?? ''}`);
      io.out(app.id);
      return;
    }
    default:
      throw new UsageError(`unknown command: ${command}`);
  }
}
