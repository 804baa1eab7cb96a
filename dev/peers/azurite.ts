import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { freePort } from '../ports.js';
import { spawnPeer, stopChild } from './child.js';

// Azurite's documented well-known development account (public, not a secret).
const account = 'devstoreaccount1';
const accountKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuritePeer {
  tablePort: number;
  connectionString: string;
  stop(): Promise<void>;
}

async function waitForPort(port: number, timeoutInMs: number): Promise<void> {
  const deadline = Date.now() + timeoutInMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Azurite did not listen on ${port} within ${timeoutInMs} ms`);
}

/**
 * Starts Azurite's Table service on a free loopback port (or `tablePort`): in memory, or persisted in
 * `location` so a stop and a start on the same port and location keep every table (a restart).
 */
export async function startAzurite(
  options: { tablePort?: number; location?: string } = {},
): Promise<AzuritePeer> {
  const tablePort = options.tablePort ?? (await freePort());
  const require = createRequire(import.meta.url);
  const entry = require.resolve('azurite/dist/src/table/main.js');
  const persistence =
    options.location === undefined ? ['--inMemoryPersistence'] : ['--location', options.location];
  const child = spawnPeer(process.execPath, [
    entry,
    '--tableHost',
    '127.0.0.1',
    '--tablePort',
    String(tablePort),
    '--skipApiVersionCheck',
    '--loose',
    '--disableTelemetry',
    '--silent',
    ...persistence,
  ]);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout?.resume();
  try {
    await waitForPort(tablePort, 15_000);
  } catch (error) {
    await stopChild(child);
    throw new Error(`${(error as Error).message}\n${stderr}`, { cause: error });
  }
  return {
    tablePort,
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${account};AccountKey=${accountKey};` +
      `TableEndpoint=http://127.0.0.1:${tablePort}/${account};`,
    // Azurite saves its database (--location) only on SIGINT; SIGTERM ends it with recent writes lost.
    stop: () => stopChild(child, 10_000, options.location === undefined ? 'SIGTERM' : 'SIGINT'),
  };
}
