import { parseArgs } from 'node:util';
import type { ApiKeySummary, CallerRegistry } from '../../shared/usecases/callers.js';

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

function keyLine(key: ApiKeySummary): string {
  const state = key.revokedAt === undefined ? 'active' : `revoked ${key.revokedAt}`;
  return [
    key.keyId,
    JSON.stringify(key.name),
    scope(key.customerIds),
    `created ${key.createdAt}`,
    state,
  ].join('  ');
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
      const customerIds = values.customers
        ?.split(',')
        .map((id) => id.trim())
        .filter((id) => id !== '');
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
      if (values.json === true) io.out(JSON.stringify(keys));
      else for (const key of keys) io.out(keyLine(key));
      if (keys.length === 0) io.note('no keys for this provider');
      return;
    }
    case 'keys revoke': {
      const [keyId, ...extra] = rest;
      if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0] ?? ''}`);
      const key = await callers.revokeApiKey(required(keyId, 'keys revoke <keyId>'));
      io.note(`revoked key ${key.keyId} of provider ${key.providerId} at ${key.revokedAt ?? ''}`);
      io.out(key.keyId);
      return;
    }
    default:
      throw new UsageError(`unknown command: ${command}`);
  }
}
