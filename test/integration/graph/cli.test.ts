import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { spawnPeer, stopChild } from '../../../dev/peers/child.js';
import { freePort } from '../../../dev/ports.js';

describe('npm run peer:graph (dev/peers/identity-graph/main.ts)', () => {
  it('prints its endpoints as one JSON line, serves the demo seed and stops on SIGTERM', async () => {
    const port = await freePort();
    const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
    const child = spawnPeer(
      tsx,
      [
        'dev/peers/identity-graph/main.ts',
        '--port',
        String(port),
        '--seed',
        'dev/peers/identity-graph/demo-seed.json',
      ],
      {
        env: process.env,
      },
    );
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('peer did not print its endpoints')), 20_000);
        createInterface({ input: child.stdout! }).once('line', (text) => {
          clearTimeout(timer);
          resolve(text);
        });
        child.once('exit', (code) => reject(new Error(`peer exited early with ${String(code)}`)));
      });
      const endpoints = JSON.parse(line) as Record<string, string>;
      expect(endpoints).toEqual({
        authorityHost: `https://127.0.0.1:${port}`,
        graphBaseUrl: `https://127.0.0.1:${port}/v1.0`,
        adminUrl: `https://127.0.0.1:${port}/_admin`,
      });
      const contoso = await fetch(`${endpoints['adminUrl']}/tenants/0b7c6d5e-4f3a-4b2c-8d1e-9f0a1b2c3d4e`);
      const body = (await contoso.json()) as {
        displayName: string;
        domains: { id: string; authenticationType: string }[];
        skus: unknown[];
      };
      expect(body.displayName).toBe('Contoso');
      expect(body.domains.map((d) => `${d.id}:${d.authenticationType}`)).toEqual([
        'contoso.onmicrosoft.com:Managed',
        'contoso.example:Managed',
        'fed.contoso.example:Federated',
      ]);
      expect(body.skus).toHaveLength(2);
    } finally {
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await stopChild(child);
      expect(await exited).toBe(0);
    }
  });
});
