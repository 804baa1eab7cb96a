import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig, type AgentConfigFile } from '../../../agent/config.js';
import { formatRotation, promoteKeys, rotateKeys } from '../../../agent/keys.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../../shared/relay-protocol/index.js';

/** `agent keys rotate|promote` on an installed config: files, modes, what is kept and what is deleted. */
function installed(): { file: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'agent-keys-'));
  writeFileSync(join(dir, 'site-key.pem'), generateSiteKeyPair().privateKeyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'agent-signing-key.pem'), generateSigningKeyPair().privateKeyPem, { mode: 0o600 });
  const config: AgentConfigFile = {
    siteId: 'contoso-hq',
    serviceBus: { connectionString: 'Endpoint=sb://example/;SharedAccessKeyName=k;SharedAccessKey=v' },
    directory: {
      urls: ['ldaps://dc1.contoso.local'],
      bindDn: 'CN=svc,DC=contoso,DC=local',
      password: 'secret',
      allowedOus: ['OU=Atria,DC=contoso,DC=local'],
    },
    cloudSigningKeys: [{ kid: 'atria-1', publicKeyPem: generateSigningKeyPair().publicKeyPem }],
    sitePrivateKey: { file: 'site-key.pem' },
    agentSigningKey: { file: 'agent-signing-key.pem' },
  };
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  return { file, dir };
}

describe('agent key rotation on the machine', () => {
  it('writes the next keys 0600 beside the config, names them in it, and prints only public keys', () => {
    const { file, dir } = installed();
    const rotation = rotateKeys(file, new Date('2026-12-01T12:00:00Z'));
    expect(rotation.generated).toBe(true);
    const raw = JSON.parse(readFileSync(file, 'utf8')) as AgentConfigFile;
    expect(raw.nextSitePrivateKey).toEqual({ file: 'site-20261201T120000Z.key' });
    expect(raw.nextAgentSigningKey).toEqual({ file: 'agent-20261201T120000Z.key' });
    expect(statSync(join(dir, 'site-20261201T120000Z.key')).mode & 0o777).toBe(0o600);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const printed = formatRotation(rotation);
    expect(printed).toContain(rotation.agentPublicKeyPem.trim());
    expect(printed).not.toMatch(/PRIVATE KEY/);
    expect(printed).toContain('/api/sites/contoso-hq/key-rotation');
    // Again while pending: the same next keys, nothing new generated.
    expect(rotateKeys(file)).toMatchObject({ generated: false, publicKeyPem: rotation.publicKeyPem });
  });

  it('promotes the next keys, deletes the old signing key, keeps the old site key until the next rotation', () => {
    const { file, dir } = installed();
    const before = loadAgentConfig(file);
    rotateKeys(file, new Date('2026-12-01T12:00:00Z'));
    const { promoted, removedFiles } = promoteKeys(file);
    expect(promoted).toBe(true);
    expect(removedFiles).toEqual([join(dir, 'agent-signing-key.pem')]);
    const after = loadAgentConfig(file);
    expect(after.nextSitePrivateKeyPem).toBeUndefined();
    expect(after.previousSitePrivateKeyPem).toBe(before.sitePrivateKeyPem);
    expect(after.sitePrivateKeyPem).not.toBe(before.sitePrivateKeyPem);
    expect(promoteKeys(file)).toEqual({ promoted: false, removedFiles: [] });

    // The next rotation retires the previous site key for good.
    rotateKeys(file, new Date('2026-12-02T12:00:00Z'));
    expect(existsSync(join(dir, 'site-key.pem'))).toBe(false);
    expect(loadAgentConfig(file).previousSitePrivateKeyPem).toBeUndefined();
    expect(existsSync(join(dir, 'site-20261201T120000Z.key'))).toBe(true); // still the current one
  });
});
