import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { settingsFromPeers, type PeersFile } from '../peers/run-all.js';

/**
 * Local settings as the Functions host would see them: `local.settings.json` Values (or the sample),
 * overlaid with the running peers' endpoints and credentials, overlaid with the real environment.
 */
const localSettingsSchema = z.object({ Values: z.record(z.string(), z.string()).default({}) });

export function localEnvironment(peers: PeersFile | undefined): Record<string, string | undefined> {
  const file = ['local.settings.json', 'local.settings.sample.json']
    .map((f) => join(process.cwd(), f))
    .find((f) => existsSync(f));
  const values =
    file === undefined ? {} : localSettingsSchema.parse(JSON.parse(readFileSync(file, 'utf8'))).Values;
  return { ...values, ...(peers === undefined ? {} : settingsFromPeers(peers)), ...process.env };
}
