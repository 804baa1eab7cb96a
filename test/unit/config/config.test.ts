import { describe, expect, it } from 'vitest';
import { ConfigError, loadSettings } from '../../../shared/config.js';

describe('configuration', () => {
  it('fails fast naming every bad setting, and never their values', () => {
    const secret = 'Sup3r-Secret-Value!';
    let caught: unknown;
    try {
      loadSettings({
        Graph__clientId: 'not-a-guid',
        Graph__baseUrl: 'http://graph.example', // Graph must be https
        PartnerCenter__clientSecret: secret,
        LOG_LEVEL: 'chatty',
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const problems = (caught as ConfigError).problems.map((p) => p.setting).sort();
    expect(problems).toEqual(
      [
        'Graph__baseUrl',
        'Graph__clientId',
        'Graph__clientSecret',
        'LOG_LEVEL',
        'PartnerCenter__clientId',
        'PartnerCenter__tenantId',
        'TableStorage',
      ].sort(),
    );
    expect((caught as Error).message).not.toContain(secret);
  });

  it('accepts the identity-based Azure shape with defaults filled in', () => {
    const settings = loadSettings({
      ATRIA_ENVIRONMENT: 'azure',
      TableStorage__tableServiceUri: 'https://acct.table.core.windows.net',
      ServiceBusConnection__fullyQualifiedNamespace: 'atria.servicebus.windows.net',
      Auth__entraTenantId: '11111111-2222-3333-4444-555555555555',
      Secrets__operationKey: Buffer.alloc(32, 1).toString('base64'),
    });
    expect(settings.Graph__baseUrl).toBe('https://graph.microsoft.com/v1.0');
    expect(settings.Guard__maxSharePercent).toBe(10);
  });

  it('requires Entra caller auth in Azure', () => {
    expect(() =>
      loadSettings({ ATRIA_ENVIRONMENT: 'azure', TableStorage: 'UseDevelopmentStorage=true' }),
    ).toThrow(/Auth__entraTenantId/);
  });
});
