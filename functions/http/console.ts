import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { AppError } from '../../shared/errors.js';
import { httpFunction } from './endpoint.js';

/**
 * The ops console: one static page and its assets, served by this Function App (no second server).
 * The page holds no data and no credential: it asks for the provider's API key (kept in the tab's
 * sessionStorage) and calls the same JSON API with it, so it sees exactly what that key may see.
 *
 * Packaging: the page lives in `functions/console/` (plain HTML/JS/CSS, no build step). `npm run build`
 * copies it to `dist/functions/console/`, beside the compiled `dist/functions/http/console.js`, so the
 * same relative path works from source (tsx) and from the deployed package. Chart.js is a production
 * dependency; its UMD build is read from node_modules (which the Functions deployment ships).
 */
const consoleDir = fileURLToPath(new URL('../console/', import.meta.url));
const chartJsPath = join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js');

const assets: Record<string, { path: string; type: string }> = {
  'console.js': { path: join(consoleDir, 'console.js'), type: 'text/javascript; charset=utf-8' },
  'console.css': { path: join(consoleDir, 'console.css'), type: 'text/css; charset=utf-8' },
  'chart.umd.min.js': { path: chartJsPath, type: 'text/javascript; charset=utf-8' },
};

/**
 * Everything comes from this origin; no inline script, no framing (the page handles a credential). With
 * Entra sign-in the script also redeems its code at the authority's token endpoint (connect-src).
 */
function securityHeadersFor(authorityOrigin?: string): Record<string, string> {
  const connect = authorityOrigin === undefined ? "'self'" : `'self' ${authorityOrigin}`;
  return {
    'content-security-policy': `default-src 'none'; script-src 'self'; style-src 'self'; connect-src ${connect}; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
}
const securityHeaders = securityHeadersFor();

/** Where the console signs engineers in, when it is configured to (Console__entraClientId and scope). */
function entraSignIn(settings: {
  Auth__entraAuthorityHost: string;
  Auth__entraTenantId?: string | undefined;
  Console__entraClientId?: string | undefined;
  Console__entraScope?: string | undefined;
}): { authority: string; clientId: string; scope: string } | undefined {
  const {
    Auth__entraTenantId: tenant,
    Console__entraClientId: clientId,
    Console__entraScope: scope,
  } = settings;
  if (tenant === undefined || clientId === undefined || scope === undefined) return undefined;
  return { authority: `${settings.Auth__entraAuthorityHost.replace(/\/$/, '')}/${tenant}`, clientId, scope };
}

const cache = new Map<string, string>();
async function load(path: string): Promise<string> {
  const hit = cache.get(path);
  if (hit !== undefined) return hit;
  const text = await readFile(path, 'utf8');
  cache.set(path, text);
  return text;
}

export const consolePage = httpFunction({
  name: 'console',
  route: 'console',
  method: 'GET',
  summary: 'The ops console (HTML); it asks for an API key and calls this API with it',
  tags: ['console'],
  auth: 'anonymous',
  responses: { 200: { description: 'The page' } },
  async handle({ deps }) {
    const entra = entraSignIn(deps.settings);
    return {
      status: 200,
      text: await load(join(consoleDir, 'index.html')),
      headers: {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-cache',
        ...securityHeadersFor(entra === undefined ? undefined : new URL(entra.authority).origin),
      },
    };
  },
});

export const consoleConfig = httpFunction({
  name: 'console-config',
  route: 'console/config',
  method: 'GET',
  summary:
    "How the console signs engineers in: Entra (authorization code + PKCE, the authority, the console's client id and scope) or null for API keys only",
  tags: ['console'],
  auth: 'anonymous',
  responses: {
    200: {
      description: 'The sign-in configuration (public values only)',
      schema: z.object({
        entra: z.object({ authority: z.string(), clientId: z.string(), scope: z.string() }).nullable(),
      }),
    },
  },
  handle({ deps }) {
    return Promise.resolve({
      status: 200,
      body: { entra: entraSignIn(deps.settings) ?? null },
      headers: { 'cache-control': 'no-cache' },
    });
  },
});

export const consoleAsset = httpFunction({
  name: 'console-asset',
  route: 'console/assets/{file}',
  method: 'GET',
  summary: "The console's scripts and styles (a fixed list; anything else is 404)",
  tags: ['console'],
  auth: 'anonymous',
  params: z.object({ file: z.string().min(1).max(64) }),
  responses: { 200: { description: 'The asset' }, 404: { description: 'Not one of the assets' } },
  async handle({ params: { file } }) {
    const asset = Object.hasOwn(assets, file) ? assets[file] : undefined;
    if (asset === undefined) throw new AppError('NotFound', `console asset ${file} not found`);
    return {
      status: 200,
      text: await load(asset.path),
      headers: { 'content-type': asset.type, 'cache-control': 'no-cache', ...securityHeaders },
    };
  },
});

export const consoleFunctions = [consolePage, consoleConfig, consoleAsset];
