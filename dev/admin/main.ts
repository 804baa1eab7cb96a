import { existsSync, readFileSync } from 'node:fs';
import { createTableStore } from '../../shared/adapters/tables/table-store.js';
import { ConfigError, loadSettings, type Settings } from '../../shared/config.js';
import { isAppError } from '../../shared/errors.js';
import { systemClock } from '../../shared/ports/clock.js';
import type { Store } from '../../shared/ports/store.js';
import { createCallerRegistry } from '../../shared/usecases/callers.js';
import { peersFilePath, peersFileSchema } from '../peers/run-all.js';
import { runAdmin, UsageError, usage } from './commands.js';

/**
 * `npm run admin -- …`. Storage comes from the Function App's own setting names when they are in the
 * environment (Azure: `TableStorage__tableServiceUri` with DefaultAzureCredential, or a managed identity
 * named by `TableStorage__clientId`), else from the running local stack's `.local/peers.json`.
 * Only storage is needed, so only the storage settings are read: nothing else must be configured.
 */
const storageSettings = ['TableStorage', 'TableStorage__tableServiceUri', 'TableStorage__clientId'] as const;

function storageEnvironment(): { env: Record<string, string>; where: string } {
  const env: Record<string, string> = {};
  for (const name of storageSettings) {
    const value = process.env[name];
    if (value !== undefined && value !== '') env[name] = value;
  }
  if (env.TableStorage !== undefined) return { env, where: 'TableStorage (connection string)' };
  if (env.TableStorage__tableServiceUri !== undefined)
    return { env, where: env.TableStorage__tableServiceUri };
  if (existsSync(peersFilePath)) {
    const peers = peersFileSchema.parse(JSON.parse(readFileSync(peersFilePath, 'utf8')));
    return {
      env: { TableStorage: peers.storage.connectionString },
      where: `the local stack (${peersFilePath})`,
    };
  }
  throw new UsageError(
    `no storage: start the local stack (npm start or npm run peers writes ${peersFilePath}) or set TableStorage / TableStorage__tableServiceUri`,
  );
}

/** The store as the composition root builds it; only storage, so no other SDK is loaded. */
async function storeFor(settings: Settings): Promise<Store> {
  if (settings.TableStorage !== undefined)
    return createTableStore({ connectionString: settings.TableStorage });
  const { azureCredential } = await import('../../shared/composition.js');
  return createTableStore({
    serviceUri: settings.TableStorage__tableServiceUri ?? '',
    credential: azureCredential(settings.TableStorage__clientId),
  });
}

const note = (line: string): void => void process.stderr.write(`${line}\n`);
let code = 0;
try {
  const argv = process.argv.slice(2);
  const needsStorage = argv.length > 0 && !argv.includes('--help') && !argv.includes('-h');
  if (!needsStorage) {
    note(usage);
  } else {
    const { env, where } = storageEnvironment();
    const store = await storeFor(loadSettings({ LOG_LEVEL: 'warn', ...env }));
    note(`storage: ${where}`);
    const callers = createCallerRegistry({ store, clock: systemClock });
    await runAdmin(argv, callers, { out: (line) => void process.stdout.write(`${line}\n`), note });
  }
} catch (error) {
  if (error instanceof UsageError) {
    note(`${error.message}\n\n${usage}`);
    code = 2;
  } else if (isAppError(error) || error instanceof ConfigError) {
    // AppError messages name ids and fields, never a secret.
    note(`refused: ${error.message}`);
    code = 1;
  } else {
    note(`failed: ${error instanceof Error ? error.message : String(error)}`);
    code = 1;
  }
}
process.exitCode = code;
