import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import type { IdentityGraphPeer, Seed } from './index.js';

const announced = z.object({ authorityHost: z.string(), graphBaseUrl: z.string(), adminUrl: z.string() });

/**
 * The Graph and login peer as a process of its own (`dev/peers/identity-graph/main.ts`), as Microsoft's
 * endpoints are not in the app's process: for the bench, so the app's event loop carries only the app.
 * The seed goes in a file of this run (it holds the local app's test secret), removed on stop.
 */
export async function spawnIdentityGraphPeer(options: { seed: Seed }): Promise<IdentityGraphPeer> {
  const dir = mkdtempSync(join(process.cwd(), '.local', 'graph-peer-'));
  const seedFile = join(dir, 'seed.json');
  writeFileSync(seedFile, JSON.stringify(options.seed), { mode: 0o600 });
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'dev/peers/identity-graph/main.ts', '--seed', seedFile, '--port', '0'],
    { cwd: process.cwd(), env: process.env, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      lines.close();
      resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`graph peer exited (${String(code)}) before listening`)));
  });
  const urls = announced.parse(JSON.parse(first));
  child.stdout.resume();
  return {
    port: Number(new URL(urls.authorityHost).port),
    ...urls,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
