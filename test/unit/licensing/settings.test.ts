import { describe, expect, it } from 'vitest';
import { ConfigError, loadSettings } from '../../../shared/config.js';

describe('licensing settings', () => {
  it('a distributor connector needs its id, secret and owning provider together, and its secret is never echoed', () => {
    const secret = 'pax8-Secret-Value!';
    let caught: unknown;
    try {
      loadSettings({
        TableStorage: 'UseDevelopmentStorage=true',
        Distributor__clientSecret: secret,
        Distributor__baseUrl: 'http://api.pax8.example',
        PartnerCenter__providerId: 'prov-blue',
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).problems.map((p) => p.setting).sort()).toEqual(
      [
        'Distributor__baseUrl',
        'Distributor__clientId',
        'Distributor__providerId',
        'PartnerCenter__clientId',
      ].sort(),
    );
    expect((caught as Error).message).not.toContain(secret);
  });

  it('defaults to Pax8 at its public address with no connector', () => {
    const settings = loadSettings({ TableStorage: 'UseDevelopmentStorage=true' });
    expect(settings).toMatchObject({
      Distributor__name: 'Pax8',
      Distributor__baseUrl: 'https://api.pax8.com',
    });
    expect(settings.Distributor__clientId).toBeUndefined();
    expect(settings.PartnerCenter__providerId).toBeUndefined();
  });
});
