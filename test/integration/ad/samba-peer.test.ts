import { readFileSync } from 'node:fs';
import { Client, EqualityFilter } from 'ldapts';
import { afterAll, describe, expect, it } from 'vitest';
import { startSambaPeer, type SambaPeer } from '../../../dev/peers/samba/index.js';

const peers: SambaPeer[] = [];

async function bound(dc: SambaPeer): Promise<Client> {
  const client = new Client({ url: dc.url, tlsOptions: { ca: [readFileSync(dc.caFile)] } });
  await client.bind(dc.bindDn, dc.password);
  return client;
}

afterAll(async () => {
  await Promise.all(peers.map((peer) => peer.stop()));
});

describe('the Samba AD DC peer', () => {
  it('serves LDAPS with a certificate for its own loopback address and the Atria OU layout', async () => {
    const dc = await startSambaPeer();
    peers.push(dc);
    expect(dc.url).toMatch(/^ldaps:\/\/127\.\d+\.\d+\.\d+:636$/);
    expect(dc.baseDn).toBe('DC=atria,DC=test');
    expect(dc.netbiosDomain).toBe('ATRIA');
    const client = await bound(dc); // TLS verification against caFile succeeded
    for (const dn of [
      dc.atriaOu,
      dc.usersOu,
      dc.groupsOu,
      `CN=Staff,${dc.groupsOu}`,
      `CN=Sales,${dc.groupsOu}`,
    ]) {
      const { searchEntries } = await client.search(dn, { scope: 'base', attributes: ['distinguishedName'] });
      expect(searchEntries[0]?.dn, dn).toBe(dn);
    }
    await client.unbind();
  });

  it('runs two DCs side by side on different addresses (LDAPS is always port 636)', async () => {
    const [a, b] = await Promise.all([startSambaPeer(), startSambaPeer()]);
    peers.push(a, b);
    expect(a.host).not.toBe(b.host);
    const [ca, cb] = await Promise.all([bound(a), bound(b)]);
    await ca.add(`OU=OnlyOnA,${a.atriaOu}`, { objectClass: 'organizationalUnit', ou: 'OnlyOnA' });
    const { searchEntries } = await cb.search(b.atriaOu, {
      filter: new EqualityFilter({ attribute: 'ou', value: 'OnlyOnA' }),
    });
    expect(searchEntries).toHaveLength(0);
    await Promise.all([ca.unbind(), cb.unbind()]);
    await expect(startSambaPeer({ ldapsPort: 1636 })).rejects.toThrow(/636/);
  });

  it('reset() restores the freshly provisioned domain in about a second', async () => {
    const dc = peers[0] as SambaPeer;
    const client = await bound(dc);
    await client.add(`OU=Scratch,${dc.atriaOu}`, { objectClass: 'organizationalUnit', ou: 'Scratch' });
    await client.unbind();
    const started = performance.now();
    await dc.reset();
    const resetInMs = performance.now() - started;
    expect(resetInMs).toBeLessThan(5000);
    const after = await bound(dc);
    const { searchEntries } = await after.search(dc.atriaOu, {
      filter: new EqualityFilter({ attribute: 'ou', value: 'Scratch' }),
    });
    expect(searchEntries).toHaveLength(0);
    await after.unbind();
  });
});
