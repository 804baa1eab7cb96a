import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';

/**
 * The ops console in a real browser: Debian's chromium driven by playwright-core, against the local
 * stack (host → Service Bus peer → worker → Graph peer). Seeded: one cloud-only customer with four
 * users (one disabled, one disable held by the bulk guard) and an E3 SKU with 5 seats, 3 assigned.
 * Screenshots go to .local/console-*.png.
 */
const tenantId = randomUUID();
const skuE3 = randomUUID();
const run = randomUUID().slice(0, 8);
const providerId = `prov-console-${run}`;
const seed = graphSeed({
  id: tenantId,
  displayName: 'Northwind',
  domains: [{ id: 'northwind.example', isDefault: true, authenticationType: 'Managed' }],
  skus: [{ skuId: skuE3, skuPartNumber: 'ENTERPRISEPACK', enabled: 5 }],
});

type Op = { operationId: string; state: string };

let stack: TestStack;
let key: string;
let browser: Browser;
let page: Page;
let heldId: string;
const pageErrors: string[] = [];

async function finished(operationId: string): Promise<Op> {
  return waitFor(async () => {
    const op = (await (await stack.api(`/operations/${operationId}`, { key })).json()) as Op;
    return ['succeeded', 'failed', 'compensated', 'needsLicence'].includes(op.state) ? op : undefined;
  }, `operation ${operationId}`);
}

async function post(path: string, body?: unknown): Promise<Response> {
  return stack.api(path, {
    method: 'POST',
    key,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

beforeAll(async () => {
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
    extraSettings: { Guard__minUsers: '2', Guard__maxSharePercent: '30', Guard__windowInMinutes: '60' },
  });
  key = (await stack.deps.callers.createApiKey({ providerId, name: 'console e2e' })).apiKey;
  const put = await stack.api('/customers/northwind', {
    method: 'PUT',
    key,
    body: JSON.stringify({
      displayName: 'Northwind',
      identityMode: 'cloudOnly',
      entra: { tenantId, domains: ['northwind.example'] },
      defaultUsageLocation: 'NL',
      licencePlans: [{ name: 'E3', skus: [{ skuId: skuE3 }] }],
    }),
  });
  expect(put.status).toBe(201);
  for (const [userId, name, plan] of [
    ['u-ann', 'ann', 'E3'],
    ['u-ben', 'ben', 'E3'],
    ['u-cid', 'cid', 'E3'],
    ['u-dee', 'dee', undefined],
  ] as const) {
    const answer = await post('/customers/northwind/users', {
      userId,
      userPrincipalName: `${name}@northwind.example`,
      displayName: name,
      ...(plan === undefined ? {} : { licencePlan: plan }),
    });
    expect(answer.status).toBe(202);
    expect((await finished(((await answer.json()) as Op).operationId)).state).toBe('succeeded');
  }
  // One disable is under the guard's threshold; the second (2 of 4) is held for confirmation.
  const first = await post('/customers/northwind/users/u-dee/disable');
  expect((await finished(((await first.json()) as Op).operationId)).state).toBe('succeeded');
  const second = (await (await post('/customers/northwind/users/u-cid/disable')).json()) as Op;
  expect(second.state).toBe('heldForConfirmation');
  heldId = second.operationId;
  // The licence view is built from an import of what Graph (and any source) reports.
  const imported = await post('/customers/northwind/licensing/imports');
  expect(imported.status).toBe(200);

  await mkdir('.local', { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1600 } });
  page.on('pageerror', (error) => pageErrors.push(error.message));
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

describe('ops console in a real browser (headless chromium against the local stack)', () => {
  it('is served by the Function App itself with a strict content security policy', async () => {
    const answer = await fetch(`${stack.host.url}/console`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
    expect(answer.headers.get('content-security-policy')).toContain("script-src 'self'");
    const chart = await fetch(`${stack.host.url}/console/assets/chart.umd.min.js`);
    expect(chart.status).toBe(200);
    expect(await chart.text()).toContain('Chart');
    expect((await fetch(`${stack.host.url}/console/assets/..%2Fpackage.json`)).status).toBe(404);
  });

  it('refuses a wrong key and then shows the seeded customer with its users by state', async () => {
    await page.goto(`${stack.host.url}/console`);
    await page.fill('#key', 'atr_not-a-key');
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#sign-in-error:has-text("not accepted")');

    await page.fill('#key', key);
    await page.click('#key-form button[type=submit]');
    const row = page.locator('#customers tr[data-customer="northwind"]');
    await row.waitFor();
    expect(await page.textContent('#who')).toContain(providerId);
    expect(await row.textContent()).toContain('cloudOnly');
    expect(await row.locator('td.users').textContent()).toMatch(
      /active: 3.*disabled: 1|disabled: 1.*active: 3/,
    );
    // This provider has no agent site: the section says so instead of failing.
    await page.waitForSelector('#sites:has-text("no agent sites registered")');
    // Features without data for this customer say so instead of breaking the page.
    await page.waitForSelector('#decisions:has-text("no autoscaler decisions")');
    await page.waitForSelector('#purchase-requests:has-text("no purchase requests")');
    expect(await page.textContent('#onboarding-cases')).toMatch(/no open onboarding cases|not available/);
    expect(pageErrors).toEqual([]);
    await page.screenshot({ path: '.local/console-overview.png', fullPage: true });
  });

  it('renders the licence chart from the seeded SKU: 5 seats of supply, 3 assigned', async () => {
    await page.waitForSelector('#licence-chart[data-rendered="true"]');
    // Runs in the page (DOM types are not in this project's lib, so the function is sent as source).
    const chart = await page.evaluate<{
      labels: string[];
      datasets: { label: string; data: number[] }[];
      painted: number;
    }>(`(() => {
      const canvas = document.getElementById('licence-chart');
      const found = window.Chart.getChart(canvas);
      // Something was drawn: count pixels that are not transparent.
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted += 1;
      return {
        labels: found ? found.data.labels : [],
        datasets: found ? found.data.datasets.map((d) => ({ label: d.label, data: d.data })) : [],
        painted,
      };
    })()`);
    expect(chart.labels).toEqual(['ENTERPRISEPACK']);
    const supply = chart.datasets.filter((d) => d.label.startsWith('supply: '));
    expect(supply.reduce((sum, d) => sum + (d.data[0] ?? 0), 0)).toBe(5);
    expect(chart.datasets.find((d) => d.label === 'assigned')?.data).toEqual([3]);
    expect(chart.painted).toBeGreaterThan(1000);
    await page.locator('.chart-box').screenshot({ path: '.local/console-licence-chart.png' });
  });

  it('filters operations by state and releases the held disable with its Confirm button', async () => {
    await page.selectOption('#op-state', 'heldForConfirmation');
    const held = page.locator(`#operations tr[data-operation="${heldId}"]`);
    // Only the held one is left once the filtered list has rendered (six operations exist).
    await expect.poll(() => page.locator('#operations tbody tr[data-operation]').count()).toBe(1);
    await held.waitFor();
    expect(await held.textContent()).toContain('user.disable');
    await page.screenshot({ path: '.local/console-held.png', fullPage: true });

    await held.locator('button[data-action="confirm"]').click();
    expect((await finished(heldId)).state).toBe('succeeded');
    await page.selectOption('#op-state', '');
    await page.waitForSelector(`#operations tr[data-operation="${heldId}"][data-state="succeeded"]`, {
      timeout: 15_000,
    });
    const user = (await (await stack.api('/customers/northwind/users/u-cid', { key })).json()) as {
      state: string;
    };
    expect(user.state).toBe('disabled');
    await page.screenshot({ path: '.local/console-confirmed.png', fullPage: true });
  });
});
