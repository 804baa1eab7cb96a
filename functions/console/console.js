// The ops console: plain browser JavaScript (no build step), served by the Function App with Chart.js.
// It calls the same JSON API as any caller, with the provider's API key from this tab's sessionStorage,
// or (Azure) an Entra access token got by the authorization code flow with PKCE (RFC 7636), as MSAL.js
// does for a single-page app: the code is redeemed from this page, cross-origin, with no client secret.
// Every section loads on its own: a feature whose data does not exist (yet) says so and the rest works.
'use strict';

(function () {
  const base = new URL('.', window.location.href); // …/api/
  const keyName = 'atria-console-key';
  const tokenName = 'atria-console-token';
  const pkceName = 'atria-console-pkce';
  const $ = (id) => document.getElementById(id);
  const operationStates = [
    'heldForConfirmation',
    'queued',
    'running',
    'waitingForAgent',
    'retryScheduled',
    'needsLicence',
    'compensating',
    'succeeded',
    'failed',
    'compensated',
    'compensationFailed',
    'cancelled',
  ];
  // What the API allows (README "The API"): confirm a held one; cancel queued/held/parked; retry a finished failure.
  const canConfirm = new Set(['heldForConfirmation']);
  const canCancel = new Set([
    'queued',
    'heldForConfirmation',
    'waitingForAgent',
    'retryScheduled',
    'needsLicence',
  ]);
  const canRetry = new Set(['failed', 'compensated', 'cancelled']);
  let chart;

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.code = problem && problem.code;
    }
  }

  async function api(path, init) {
    const token = sessionStorage.getItem(tokenName);
    const headers = token
      ? { authorization: `Bearer ${token}` }
      : { 'x-functions-key': sessionStorage.getItem(keyName) || '' };
    if (init && init.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(new URL(path.replace(/^\//, ''), base), { ...init, headers });
    const text = await response.text();
    const body = text === '' ? undefined : JSON.parse(text);
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  /** Every page of a list (`{ value, nextLink }`), up to a bound so a huge tenant cannot freeze the tab. */
  async function all(path, maxPages = 20) {
    const items = [];
    let next = path;
    for (let page = 0; next !== undefined && page < maxPages; page += 1) {
      const answer = await api(next);
      items.push(...(answer.value || []));
      next = answer.nextLink === undefined ? undefined : answer.nextLink.replace(/^\/api\//, '');
    }
    return items;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'onclick') node.addEventListener('click', value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child ?? ''));
    return node;
  }

  function fill(tbody, rows, columns, empty) {
    tbody.replaceChildren();
    if (rows.length === 0) tbody.append(el('tr', {}, el('td', { colspan: columns, class: 'muted' }, empty)));
    else tbody.append(...rows);
  }

  /** Runs one section; a failure shows in that section only. Features not deployed yet answer 404. */
  async function section(target, work) {
    try {
      await work();
    } catch (error) {
      const text =
        error instanceof ApiError && (error.status === 404 || error.status === 501)
          ? 'not available for this customer or deployment'
          : `could not load: ${error.message}`;
      if (target.tagName === 'TBODY') fill(target, [], 20, text);
      else target.replaceChildren(el('li', { class: 'muted' }, text));
    }
  }

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : '—');

  // ---------- sign-in ----------

  const base64url = (bytes) =>
    btoa(String.fromCharCode(...new Uint8Array(bytes)))
      .replace(/\+/g, '-')
      .replace(/\//g, '_')
      .replace(/=+$/, '');
  const pageUrl = () => new URL('console', base).toString();

  /** Leaves for the authority's sign-in page with a fresh verifier (kept in this tab) and its S256 challenge. */
  async function signInWithEntra(entra) {
    const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
    const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
    sessionStorage.setItem(pkceName, JSON.stringify({ verifier, state, entra }));
    const target = new URL(`${entra.authority}/oauth2/v2.0/authorize`);
    for (const [name, value] of Object.entries({
      client_id: entra.clientId,
      response_type: 'code',
      redirect_uri: pageUrl(),
      scope: `openid profile ${entra.scope}`,
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    }))
      target.searchParams.set(name, value);
    window.location.assign(target.toString());
  }

  /** Back from the sign-in page with ?code&state: redeem the code (state checked, verifier used once). */
  async function finishEntraSignIn() {
    const params = new URLSearchParams(window.location.search);
    const code = params.get('code');
    if (code === null && params.get('error') === null) return;
    window.history.replaceState(null, '', pageUrl());
    const pending = JSON.parse(sessionStorage.getItem(pkceName) || 'null');
    sessionStorage.removeItem(pkceName);
    if (params.get('error') !== null) throw new Error(params.get('error_description') || params.get('error'));
    if (pending === null || pending.state !== params.get('state')) throw new Error('sign-in state mismatch');
    const response = await fetch(`${pending.entra.authority}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: pending.entra.clientId,
        grant_type: 'authorization_code',
        code,
        redirect_uri: pageUrl(),
        code_verifier: pending.verifier,
        scope: pending.entra.scope,
      }).toString(),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error_description || answer.error || `HTTP ${response.status}`);
    sessionStorage.removeItem(keyName);
    sessionStorage.setItem(tokenName, answer.access_token);
  }

  async function start() {
    const key = sessionStorage.getItem(keyName) || sessionStorage.getItem(tokenName);
    if (!key) return showSignIn('');
    try {
      const me = await api('whoami');
      $('who').textContent =
        `provider ${me.providerId}${me.customerIds ? ` (customers ${me.customerIds.join(', ')})` : ''}`;
    } catch (error) {
      const signedIn = sessionStorage.getItem(tokenName) !== null;
      sessionStorage.removeItem(keyName);
      sessionStorage.removeItem(tokenName);
      return showSignIn(
        error.status === 401 || error.status === 403
          ? signedIn
            ? `That account is not accepted: ${error.message}`
            : 'That key is not accepted.'
          : error.message,
      );
    }
    $('sign-in').hidden = true;
    $('app').hidden = false;
    $('sign-out').hidden = false;
    await loadOverview();
  }

  function showSignIn(message) {
    $('sign-in').hidden = false;
    $('app').hidden = true;
    $('sign-out').hidden = true;
    $('sign-in-error').textContent = message;
  }

  // ---------- overview: customers, sites ----------

  async function loadOverview() {
    let customers = [];
    await section($('customers').tBodies[0], async () => {
      customers = await all('customers?limit=500');
      const rows = [];
      for (const customer of customers) {
        const counts = {};
        try {
          for (const user of await all(
            `customers/${encodeURIComponent(customer.customerId)}/users?limit=500`,
          ))
            counts[user.state] = (counts[user.state] || 0) + 1;
        } catch {
          counts.unknown = 0;
        }
        const summary =
          Object.entries(counts)
            .map(([state, n]) => `${state}: ${n}`)
            .join(', ') || 'no users';
        rows.push(
          el(
            'tr',
            { 'data-customer': customer.customerId },
            el('td', {}, `${customer.displayName || ''} (${customer.customerId})`),
            el('td', {}, customer.identityMode),
            el('td', {}, (customer.ad && customer.ad.siteId) || '—'),
            el('td', { class: 'users' }, summary),
          ),
        );
      }
      fill($('customers').tBodies[0], rows, 4, 'no customers yet');
    });
    const select = $('customer');
    select.replaceChildren(...customers.map((c) => el('option', { value: c.customerId }, c.customerId)));
    await section($('sites').tBodies[0], loadSites);
    if (customers.length > 0) await loadCustomer();
  }

  async function loadSites() {
    const report = await api('health/details');
    $('dependencies').textContent = report.dependencies
      .filter((d) => d.name !== 'agentSites')
      .map((d) => `${d.name}: ${d.state}`)
      .join(' · ');
    const sites = report.dependencies.find((d) => d.name === 'agentSites');
    const list = (sites && sites.info && sites.info.sites) || [];
    const rows = [];
    for (const site of list) {
      // Several agents per site report each their own heartbeat; older sites have one, unnamed.
      const agents = Array.isArray(site.agents) && site.agents.length > 0 ? site.agents : [site];
      for (const agent of agents) {
        rows.push(
          el(
            'tr',
            {},
            el('td', {}, site.siteId),
            el('td', {}, agent.agentId || '—'),
            el(
              'td',
              { class: `state-${agent.state}` },
              // During a key rotation: whether this agent already signs with the next key.
              agent.signedWithNextKey === undefined
                ? agent.state
                : `${agent.state} · ${agent.signedWithNextKey ? 'next key ✓' : 'next key pending'}`,
            ),
            el('td', {}, when(agent.lastHeartbeatAt)),
            el('td', {}, agent.agentVersion || '—'),
            el('td', {}, (agent.dcsReachable || []).join(', ') || 'none'),
            el('td', {}, agent.queueLag ?? '—'),
            el('td', {}, agent.lastError || ''),
          ),
        );
      }
    }
    fill($('sites').tBodies[0], rows, 8, 'no agent sites registered');
  }

  // ---------- one customer: operations, licences, renewals, purchase requests ----------

  async function loadCustomer() {
    const customerId = $('customer').value;
    if (!customerId) return;
    const id = encodeURIComponent(customerId);
    await Promise.all([
      section($('operations').tBodies[0], () => loadOperations(id)),
      section($('licence-notes'), () => loadLicensing(id)),
      section($('renewals'), () => loadRenewals(id)),
      section($('decisions').tBodies[0], () => loadDecisions(id)),
      section($('onboarding-cases'), () => loadOnboardingCases(id)),
      section($('purchase-requests').tBodies[0], () => loadPurchaseRequests(id)),
    ]);
  }

  async function act(path, button) {
    button.disabled = true;
    try {
      await api(path, { method: 'POST', body: '{}' });
      $('app-error').textContent = '';
    } catch (error) {
      $('app-error').textContent = `${path}: ${error.message}`;
    }
    await loadCustomer();
  }

  async function loadOperations(id) {
    const wanted = $('op-state').value;
    const operations = (await all(`customers/${id}/operations?limit=100`, 5)).filter(
      (op) => wanted === '' || op.state === wanted,
    );
    const rows = operations.map((op) => {
      const opId = encodeURIComponent(op.operationId);
      const buttons = [];
      if (canConfirm.has(op.state))
        buttons.push(
          el(
            'button',
            {
              type: 'button',
              'data-action': 'confirm',
              onclick: (e) => act(`operations/${opId}/confirm`, e.target),
            },
            'Confirm',
          ),
        );
      if (canCancel.has(op.state))
        buttons.push(
          el(
            'button',
            {
              type: 'button',
              'data-action': 'cancel',
              onclick: (e) => act(`operations/${opId}/cancel`, e.target),
            },
            'Cancel',
          ),
        );
      if (canRetry.has(op.state) && !op.retriedBy)
        buttons.push(
          el(
            'button',
            {
              type: 'button',
              'data-action': 'retry',
              onclick: (e) => act(`operations/${opId}/retry`, e.target),
            },
            'Retry',
          ),
        );
      const steps = op.steps.map((s) => {
        const took =
          s.startedAt && s.finishedAt ? ` ${Date.parse(s.finishedAt) - Date.parse(s.startedAt)} ms` : '';
        return `${s.name}: ${s.state} (${s.attempts})${took}${s.error ? ` — ${s.error.code}` : ''}`;
      });
      return el(
        'tr',
        { 'data-operation': op.operationId, 'data-state': op.state },
        el('td', {}, when(op.createdAt)),
        el('td', {}, op.kind),
        el('td', {}, op.userId),
        el('td', { class: `state-${op.state} op-state` }, op.state),
        el('td', {}, el('ul', {}, ...steps.map((s) => el('li', {}, s)))),
        el('td', {}, op.error ? `${op.error.code}: ${op.error.message}` : ''),
        el('td', {}, ...buttons),
      );
    });
    fill($('operations').tBodies[0], rows, 7, wanted ? `no operations in state ${wanted}` : 'no operations');
  }

  const sourceColours = {
    partnerCenter: '#0969da',
    distributor: '#8250df',
    enterpriseAgreement: '#1a7f37',
    thirdParty: '#bf8700',
    unlabelled: '#8c959f',
  };

  async function loadLicensing(id) {
    const view = await api(`customers/${id}/licensing`);
    const skus = view.skus || [];
    const sources = [...new Set(skus.flatMap((s) => Object.keys(s.supply || {})))].filter((source) =>
      skus.some((s) => (s.supply[source] || 0) > 0),
    );
    const labels = skus.map((s) => s.skuPartNumber || s.skuId);
    const datasets = [
      ...sources.map((source) => ({
        label: `supply: ${source}`,
        data: skus.map((s) => s.supply[source] || 0),
        backgroundColor: sourceColours[source] || '#57606a',
        stack: 'supply',
      })),
      { label: 'assigned', data: skus.map((s) => s.assigned), backgroundColor: '#cf222e', stack: 'assigned' },
      {
        label: 'waiting for a seat',
        data: skus.map((s) => s.waitingForSeat || 0),
        backgroundColor: '#fd8c73',
        stack: 'assigned',
      },
    ];
    if (chart) chart.destroy();
    const canvas = $('licence-chart');
    canvas.dataset.skus = String(skus.length);
    chart = new window.Chart(canvas, {
      type: 'bar',
      data: { labels, datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: 'seats' } },
        },
      },
    });
    canvas.dataset.rendered = 'true';
    const notes = skus.map((s) => el('li', {}, `${s.skuPartNumber || s.skuId}: ${s.explanation || ''}`));
    $('licence-notes').replaceChildren(
      ...(notes.length ? notes : [el('li', {}, 'no licences known yet (run an import)')]),
    );
  }

  async function loadRenewals(id) {
    const answer = await api(`customers/${id}/licensing/renewals?days=90`);
    const items = answer.value || answer.renewals || [];
    $('renewals').replaceChildren(
      ...(items.length
        ? items.map((r) =>
            el(
              'li',
              { class: r.alert ? 'state-needsLicence' : '' },
              `${r.endsOn} · ${r.sourceName} · ${r.skuId || ''} · ${r.seats} seats · ${r.what}${r.alert ? ` — ${r.alert}` : ''}`,
            ),
          )
        : [el('li', { class: 'muted' }, 'no renewals in the next 90 days')]),
    );
  }

  async function loadDecisions(id) {
    const answer = await api(`customers/${id}/licensing/decisions?limit=50`);
    const rows = (answer.value || []).map((d) =>
      el(
        'tr',
        { 'data-decision': d.decisionId },
        el('td', {}, when(d.at)),
        el('td', {}, d.skuId),
        el('td', {}, `${d.kind}: ${d.from} → ${d.to}`),
        el('td', {}, `${d.status} / ${d.state}`),
        el('td', {}, `${d.reason}${d.lastError ? ` — ${d.lastError.code}` : ''}`),
        el(
          'td',
          {},
          ...(d.status === 'pendingApproval' && d.state === 'planned'
            ? [
                el(
                  'button',
                  {
                    type: 'button',
                    'data-action': 'approve-decision',
                    onclick: (e) =>
                      act(
                        `customers/${id}/licensing/decisions/${encodeURIComponent(d.decisionId)}/approve`,
                        e.target,
                      ),
                  },
                  'Approve',
                ),
              ]
            : []),
        ),
      ),
    );
    fill($('decisions').tBodies[0], rows, 6, 'no autoscaler decisions');
  }

  async function loadOnboardingCases(id) {
    const answer = await api(`customers/${id}/onboarding/cases`);
    const items = answer.value || [];
    // Resolving a case needs a choice per case: done through the API (POST …/cases/{id}/resolve).
    $('onboarding-cases').replaceChildren(
      ...(items.length
        ? items.map((c) =>
            el(
              'li',
              {},
              `${c.caseId || c.id}: ${c.kind || c.type || ''} ${c.state || ''} ${c.summary || c.reason || ''}`,
            ),
          )
        : [el('li', { class: 'muted' }, 'no open onboarding cases')]),
    );
  }

  async function loadPurchaseRequests(id) {
    const answer = await api(`customers/${id}/purchase-requests`);
    const items = answer.value || [];
    const rows = items.map((r) => {
      const rid = encodeURIComponent(r.requestId);
      const pending = r.state === 'pending';
      return el(
        'tr',
        { 'data-request': r.requestId },
        el('td', {}, when(r.requestedAt)),
        el('td', {}, `${r.skuPartNumber} (${r.sourceName})`),
        el('td', {}, `${r.currentQuantity} → ${r.targetQuantity}`),
        el('td', {}, `${r.reason}${r.forWhom.length ? ` (for ${r.forWhom.join(', ')})` : ''}`),
        el('td', {}, r.state),
        el(
          'td',
          {},
          ...(pending
            ? [
                el(
                  'button',
                  {
                    type: 'button',
                    'data-action': 'approve',
                    onclick: (e) => act(`customers/${id}/purchase-requests/${rid}/approve`, e.target),
                  },
                  'Approve',
                ),
                el(
                  'button',
                  {
                    type: 'button',
                    'data-action': 'reject',
                    onclick: (e) => act(`customers/${id}/purchase-requests/${rid}/reject`, e.target),
                  },
                  'Reject',
                ),
              ]
            : []),
        ),
      );
    });
    fill($('purchase-requests').tBodies[0], rows, 6, 'no purchase requests');
  }

  // ---------- wiring ----------

  document.addEventListener('DOMContentLoaded', () => {
    $('op-state').append(...operationStates.map((s) => el('option', { value: s }, s)));
    $('key-form').addEventListener('submit', (event) => {
      event.preventDefault();
      sessionStorage.setItem(keyName, $('key').value.trim());
      $('key').value = '';
      void start();
    });
    $('sign-out').addEventListener('click', () => {
      sessionStorage.removeItem(keyName);
      sessionStorage.removeItem(tokenName);
      showSignIn('');
    });
    $('customer').addEventListener('change', () => void loadCustomer());
    $('op-state').addEventListener('change', () => void loadCustomer());
    $('refresh').addEventListener('click', () => void loadOverview());
    void (async () => {
      // Entra sign-in is offered only where the deployment configured it; the API key always works.
      const config = await fetch(new URL('console/config', base))
        .then((r) => (r.ok ? r.json() : { entra: null }))
        .catch(() => ({ entra: null }));
      if (config.entra) {
        $('entra-sign-in').hidden = false;
        $('entra-sign-in').addEventListener('click', () => void signInWithEntra(config.entra));
      }
      try {
        await finishEntraSignIn();
      } catch (error) {
        return showSignIn(`Sign-in failed: ${error.message}`);
      }
      await start();
    })();
  });
})();
