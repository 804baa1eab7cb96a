import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { spawnPeer, stopChild } from '../../../dev/peers/child.js';
import { freePort } from '../../../dev/ports.js';
import { Pax8Distributor } from '../../../shared/adapters/distributor/pax8.js';

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const demoSeed = z
  .object({ apps: z.array(z.object({ clientId: z.string(), clientSecret: z.string() })) })
  .parse(JSON.parse(readFileSync('dev/peers/distributor/demo-seed.json', 'utf8')));

describe('npm run peer:distributor -- --port <n> --seed <file>', () => {
  it('prints {"baseUrl"} as one JSON line, serves the seed, and SIGTERM frees the port', async () => {
    const port = await freePort();
    const child = spawnPeer(
      'npm',
      [
        'run',
        'peer:distributor',
        '--',
        '--port',
        String(port),
        '--seed',
        'dev/peers/distributor/demo-seed.json',
      ],
      { env: process.env },
    );
    try {
      // npm prints its own "> script" banner first; the peer's line is the one JSON line.
      const jsonLines: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('peer did not print its baseUrl')), 30_000);
        createInterface({ input: child.stdout! }).on('line', (text) => {
          if (!text.startsWith('{')) return;
          jsonLines.push(text);
          clearTimeout(timer);
          resolve();
        });
        child.once('exit', (code) => reject(new Error(`peer exited early with ${String(code)}`)));
      });
      expect(jsonLines).toHaveLength(1);
      expect(JSON.parse(jsonLines[0] ?? '')).toEqual({ baseUrl: `https://127.0.0.1:${port}` });

      const [demoApp] = demoSeed.apps;
      if (demoApp === undefined) throw new Error('demo seed has no app');
      const distributor = new Pax8Distributor({ ...demoApp, baseUrl: `https://127.0.0.1:${port}` });
      const companies = await distributor.listCompanies();
      expect(companies.map((company) => company.name)).toEqual(['Contoso', 'Fabrikam']);
      const [contoso] = companies;
      const subscriptions = await distributor.listSubscriptions(contoso?.id ?? '');
      expect(subscriptions.map((s) => [s.productName, s.quantity, s.status])).toEqual([
        ['Exchange Online (Plan 1)', 15, 'active'],
      ]);

      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
      const deadline = Date.now() + 5000;
      while ((await listening(port)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await listening(port)).toBe(false);
    } finally {
      await stopChild(child);
    }
  }, 60_000);
});
