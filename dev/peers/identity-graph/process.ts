import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { spawnAnnouncingPeer } from '../child.js';
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
  const peer = await spawnAnnouncingPeer('dev/peers/identity-graph/main.ts', [
    '--seed',
    seedFile,
    '--port',
    '0',
  ]);
  const urls = announced.parse(peer.announced);
  return {
    port: Number(new URL(urls.authorityHost).port),
    ...urls,
    async stop() {
      await peer.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
