import type { TestProject } from 'vitest/node';
import { startAzurite, type AzuritePeer } from '../../dev/peers/azurite.js';

declare module 'vitest' {
  export interface ProvidedContext {
    storageConnectionString: string;
  }
}

let azurite: AzuritePeer | undefined;

/** Peers shared by every integration file: Azurite (in memory). Files start the rest themselves. */
export async function setup(project: TestProject): Promise<void> {
  azurite = await startAzurite();
  project.provide('storageConnectionString', azurite.connectionString);
}

export async function teardown(): Promise<void> {
  await azurite?.stop();
}
