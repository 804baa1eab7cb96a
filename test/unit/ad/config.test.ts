import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig, resolveAgentConfig, type AgentConfigFile } from '../../../agent/config.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../../shared/relay-protocol/index.js';

const signing = generateSigningKeyPair();
const site = generateSiteKeyPair();

function base(): AgentConfigFile {
  return {
    siteId: 'contoso-hq',
    serviceBus: {
      fullyQualifiedNamespace: 'ns.servicebus.windows.net',
      sasKeyName: 'agent-contoso-hq',
      sasKey: { env: 'ATRIA_SAS' },
    },
    directory: {
      urls: ['ldaps://dc1.contoso.local', 'ldaps://dc2.contoso.local:636'],
      bindDn: 'CN=svc,DC=contoso,DC=local',
      password: { file: 'bind-password' },
      allowedOus: ['OU=Atria,DC=contoso,DC=local'],
    },
    cloudSigningKeys: [{ kid: 'k1', publicKeyFile: 'signing.pem' }],
    sitePrivateKey: { file: 'site-key.pem' },
  };
}

describe('agent config', () => {
  it('reads secrets from files (relative to the config) and the environment, with defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-config-'));
    writeFileSync(join(dir, 'bind-password'), 's3cret\n');
    writeFileSync(join(dir, 'signing.pem'), signing.publicKeyPem);
    writeFileSync(join(dir, 'site-key.pem'), site.privateKeyPem);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(base()));
    const config = loadAgentConfig(join(dir, 'config.json'), { ATRIA_SAS: 'sas-key-value' });
    expect(config.directory.password).toBe('s3cret');
    expect(config.serviceBus).toEqual({
      fullyQualifiedNamespace: 'ns.servicebus.windows.net',
      sasKeyName: 'agent-contoso-hq',
      sasKey: 'sas-key-value',
    });
    expect(config.cloudSigningKeys).toEqual([{ kid: 'k1', publicKeyPem: signing.publicKeyPem }]);
    expect(config.sitePrivateKeyPem).toBe(site.privateKeyPem.trim());
    expect(config.commandQueue).toBe('agent-site-contoso-hq');
    expect(config.replyQueue).toBe('agent-replies');
    expect(config.maxConcurrentCommands).toBe(4);
    expect(config.directory.allowedAttributes).toEqual([]);
  });

  it('names every invalid field at once', () => {
    const bad = {
      ...base(),
      siteId: 'Not Valid',
      directory: { ...base().directory, urls: ['ldap://dc1'], allowedOus: [] },
    };
    expect(() => resolveAgentConfig(bad, '/nowhere', {})).toThrow(
      /siteId[\s\S]*directory\.urls\.0[\s\S]*directory\.allowedOus/,
    );
  });

  it('says which environment variable is missing', () => {
    expect(() => resolveAgentConfig(base(), '/nowhere', {})).toThrow(/ATRIA_SAS/);
  });
});
