import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { peersFileSchema } from '../../../dev/peers/run-all.js';

function listening(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url.replace(/^(sb|ldaps):/, 'http:'));
  return new Promise((resolve) => {
    const socket = connect(Number(port || 636), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('npm run peers', () => {
  it('starts every peer, describes them in peers.json, and SIGTERM stops them all without orphans', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'atria-peers-')), 'peers.json');
    const child = spawn(process.execPath, ['node_modules/tsx/dist/cli.mjs', 'dev/peers/run.ts'], {
      env: { ...process.env, ATRIA_PEERS_FILE: file },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 90_000;
    while (!output.includes('Ctrl-C stops every peer') && Date.now() < deadline && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(output).toContain('Ctrl-C stops every peer');
    expect(existsSync(file)).toBe(true);
    const peers = peersFileSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    expect(peers.distributor?.baseUrl).toMatch(/^https:\/\/127\.0\.0\.1:/);
    const tableEndpoint = /TableEndpoint=(http:\/\/[^;]+)/.exec(peers.storage.connectionString)?.[1] ?? '';
    const serviceBus = /Endpoint=(sb:\/\/[^;]+)/.exec(peers.serviceBus.connectionString)?.[1] ?? '';
    const endpoints = [
      tableEndpoint,
      serviceBus,
      peers.graph.baseUrl,
      peers.partnerCenter.baseUrl,
      ...(peers.distributor === undefined ? [] : [peers.distributor.baseUrl]),
      ...('url' in peers.ad ? [peers.ad.url] : []),
    ];
    for (const endpoint of endpoints) expect(await listening(endpoint), endpoint).toBe(true);

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const endpoint of endpoints) expect(await listening(endpoint), `${endpoint} after stop`).toBe(false);
  }, 120_000);
});
