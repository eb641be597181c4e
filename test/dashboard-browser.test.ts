/**
 * The support dashboard (`GET /platform/dashboard`) in a real browser: Debian's
 * Chromium driven by playwright-core against the app listening on a free port. A
 * support user signs in, picks a tenant and a window, and the totals, chart points, top
 * routes and recent errors shown must equal what the stats and history APIs return for
 * the exact window the page used. Screenshot: test/artifacts/dashboard.png.
 *
 * Chromium must be at /usr/bin/chromium (`apt-get install -y chromium`; .ci/run installs
 * it): without it the browser test fails, it does not skip.
 */
import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { login, makeTenant, PASSWORD, platformLogin, setupApp } from './fixtures/app.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));

const { app, ctx } = await setupApp(t, { SILO_HISTORY_FLUSH_MS: '50' });
await app.listen({ port: 0, host: '127.0.0.1' });
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

type Stats = {
  totals: { requests: number; clientErrors: number; serverErrors: number; errorRate: number };
  latency: Record<'mean' | 'p50' | 'p95' | 'p99' | 'max', number | null>;
  byRoute: Array<{ route: string | null; count: number; errorRate: number; p95: number | null }>;
  series: Array<{ start: string; count: number; errors: number; p95: number | null }>;
};

t.test('the page loads without auth, under a nonce-only CSP, and stays out of OpenAPI', async (t) => {
  const res = await app.inject('/platform/dashboard');
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8/);
  const csp = String(res.headers['content-security-policy']);
  const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
  t.ok(nonce, 'script-src carries a nonce');
  t.match(csp, /default-src 'none'/);
  t.match(csp, /connect-src 'self'/);
  t.notMatch(csp, /unsafe-inline|unsafe-eval|https?:|\*/, 'no inline escape hatch, no other origin');
  t.ok(res.body.includes(`<script nonce="${nonce}">`) && res.body.includes(`<style nonce="${nonce}">`), 'inline script and style carry the nonce');
  t.notMatch(res.body, /<script[^>]+src=|<link[^>]+stylesheet|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'nothing loads from elsewhere');
  const again = await app.inject('/platform/dashboard');
  t.not(String(again.headers['content-security-policy']), csp, 'a fresh nonce per response');
  const doc = (await app.inject('/docs/json')).json<{ paths: Record<string, unknown> }>();
  t.notOk(
    Object.keys(doc.paths).some((p) => p.includes('dashboard')),
    'not in the OpenAPI document',
  );
});

t.test('a support user sees the same totals, chart points, top routes and errors as the API', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`Chromium not found at ${CHROMIUM}: install it with "apt-get update && apt-get install -y chromium" (.ci/run does this before npm test)`);
    return;
  }
  // Traffic: dash-a gets 200s, 404s (unknown ids) and 401s (no token); dash-b some noise.
  await makeTenant(ctx, 'dash-a');
  await makeTenant(ctx, 'dash-b');
  const ptoken = await platformLogin(app, ctx, 'support');
  const a = await login(app, 'dash-a');
  const b = await login(app, 'dash-b');
  const call = async (slug: string, url: string, token: string | undefined, status: number) => {
    const res = await app.inject({ url, headers: { 'x-tenant': slug, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
    t.equal(res.statusCode, status, `${slug} ${url}`);
  };
  for (let i = 0; i < 6; i++) await call('dash-a', '/api/v1/auth/me', a.accessToken, 200);
  for (let i = 0; i < 2; i++) await call('dash-a', '/api/v1/companies', a.accessToken, 200);
  for (let i = 0; i < 3; i++) await call('dash-a', `/api/v1/companies/${990_000 + i}`, a.accessToken, 404);
  await call('dash-a', '/api/v1/contacts/990000', a.accessToken, 404);
  for (let i = 0; i < 2; i++) await call('dash-a', '/api/v1/companies', undefined, 401);
  for (let i = 0; i < 2; i++) await call('dash-b', '/api/v1/auth/me', b.accessToken, 200);
  await call('dash-b', '/api/v1/companies/990000', b.accessToken, 404);
  await app.historyRecorder!.flush(true);

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.setDefaultTimeout(15_000);
  const problems: string[] = [];
  const foreign: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // The deliberate wrong-password attempt logs its 401; anything else (CSP refusals included) is a fault.
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(`${base}/`) && !r.url().startsWith('data:')) foreign.push(r.url());
  });

  await page.goto(`${base}/platform/dashboard`);
  await page.waitForSelector('#login-form');
  await page.fill('#login-email', 'support@silo.test');
  await page.fill('#login-password', 'wrong password');
  await page.click('#login-submit');
  await page.waitForSelector('#login-error:not(:empty)');
  t.equal(await page.textContent('#login-error'), 'Email or password is wrong.', 'a wrong password is refused on the form');

  await page.fill('#login-password', PASSWORD);
  await page.click('#login-submit');
  await page.waitForSelector('#dashboard[data-state="ready"]');
  t.ok(await page.evaluate("sessionStorage.getItem('silo.platform.token')"), 'the token is kept in sessionStorage');
  t.ok(await page.locator('#tenant option[value="dash-a"]').count(), 'tenants are listed');
  await page.selectOption('#tenant', 'dash-a');
  await page.selectOption('#window', '1h');
  const dash = page.locator('#dashboard[data-state="ready"][data-tenant="dash-a"][data-window="1h"]');
  await dash.waitFor();
  const from = (await dash.getAttribute('data-from'))!;
  const to = (await dash.getAttribute('data-to'))!;
  t.equal(new Date(to).getTime() - new Date(from).getTime(), 3_600_000, 'the page asked for the last hour');

  const q = new URLSearchParams({ from, to, tenant: 'dash-a' });
  const get = async <T>(url: string) => {
    const res = await app.inject({ url, headers: { authorization: `Bearer ${ptoken}` } });
    t.equal(res.statusCode, 200, url);
    return res.json<T>();
  };
  const stats = await get<Stats>(`/platform/v1/history/stats?${q.toString()}`);
  t.match(stats.totals, { requests: 15, clientErrors: 6, serverErrors: 0 }, 'the API counts only dash-a traffic');

  const shown = async (id: string) => {
    const value = await page.getAttribute(`#${id}`, 'data-value');
    const text = (await page.textContent(`#${id}`))!.replace(/,/g, '');
    t.equal(text, value, `#${id} shows its value`);
    return Number(value);
  };
  t.equal(await shown('total-requests'), stats.totals.requests, 'requests');
  t.equal(await shown('total-4xx'), stats.totals.clientErrors, '4xx');
  t.equal(await shown('total-5xx'), stats.totals.serverErrors, '5xx');
  t.equal(Number(await page.getAttribute('#error-rate', 'data-value')), stats.totals.errorRate, 'error rate');
  t.equal(Number(await page.getAttribute('#latency-p95', 'data-value')), stats.latency.p95, 'p95');
  t.match(await page.textContent('#latency-p95'), /ms$/);

  const bars = await page.$$eval('svg#chart-requests rect[data-count]', (rs) =>
    rs.map((r) => ({ count: Number(r.getAttribute('data-count')), errors: Number(r.getAttribute('data-errors')) })),
  );
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  t.equal(bars.length, stats.series.length, 'one bar per bucket');
  t.equal(sum(bars.map((b) => b.count)), sum(stats.series.map((p) => p.count)), 'bar counts add up to the series');
  t.equal(sum(bars.map((b) => b.count)), stats.totals.requests, '... and to the total');
  t.equal(sum(bars.map((b) => b.errors)), sum(stats.series.map((p) => p.errors)), 'bar errors add up to the series');
  t.same(
    bars.map((b) => b.count),
    stats.series.map((p) => p.count),
    'bucket by bucket',
  );
  const dots = await page.$$eval('svg#chart-latency circle[data-p95]', (cs) => cs.map((c) => Number(c.getAttribute('data-p95'))));
  t.same(
    dots,
    stats.series.filter((p) => p.p95 !== null).map((p) => p.p95),
    'one latency point per non-empty bucket, at its p95',
  );

  const firstRoute = page.locator('table#top-routes tbody tr').first();
  t.equal(await firstRoute.locator('td').nth(0).textContent(), stats.byRoute[0]!.route, 'top route');
  t.equal(await firstRoute.locator('td').nth(1).textContent(), String(stats.byRoute[0]!.count), 'its count');
  t.match(stats.byRoute[0], { route: '/api/v1/auth/me', count: 6 });
  t.equal(await page.locator('table#top-routes tbody tr').count(), stats.byRoute.length, 'every route row');

  const errors = await get<{ data: Array<{ id: number; status: number }>; total: number }>(`/platform/v1/history?${q.toString()}&statusClass=4xx&pageSize=100`);
  const ids = await page.$$eval('table#recent-errors tbody tr[data-id]', (rs) => rs.map((r) => Number(r.getAttribute('data-id'))));
  t.same(ids, errors.data.map((e) => e.id).slice(0, 20), 'recent errors, newest first');
  await page.click('table#recent-errors tbody tr:first-child a.details-link');
  await page.locator(`#details[data-state="ready"][data-id="${ids[0]}"]`).waitFor();
  t.equal(await page.textContent('#details [data-field="id"]'), String(ids[0]), 'the details panel shows the row');
  t.equal(await page.textContent('#details [data-field="status"]'), String(errors.data[0]!.status));
  t.equal(await page.textContent('#details [data-field="tenantSlug"]'), 'dash-a');

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });

  await reloadKeepsSession(t, page);
  t.same(problems, [], 'no script errors and no CSP refusals');
  t.same(foreign, [], 'nothing requested from another origin');
});

/** A reload keeps the session (sessionStorage); signing out forgets the token. */
async function reloadKeepsSession(t: Test, page: Page) {
  await page.reload();
  await page.waitForSelector('#dashboard[data-state="ready"]');
  t.ok(await page.isHidden('#login-view'), 'still signed in after a reload');
  await page.click('#sign-out');
  await page.waitForSelector('#login-view:not([hidden])');
  t.equal(await page.evaluate("sessionStorage.getItem('silo.platform.token')"), null, 'signing out forgets the token');
}
