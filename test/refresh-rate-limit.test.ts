/**
 * `/api/v1/auth/refresh` is rate limited like sign-in: at most SILO_REFRESH_RATE_LIMIT
 * attempts a minute per tenant and client IP (429 `RATE_LIMITED` problem+json past it),
 * so refresh tokens cannot be guessed at speed; another tenant or IP keeps its own budget.
 */
import t from 'tap';
import { makeTenant, setupApp } from './fixtures/app.js';
import { isProblem } from './fixtures/problem.js';

const LIMIT = 5;
const { app, ctx } = await setupApp(t, { SILO_REFRESH_RATE_LIMIT: String(LIMIT) });
await makeTenant(ctx, 'refresh-a');
await makeTenant(ctx, 'refresh-b');

const refresh = (slug: string, ip = '10.0.0.1') =>
  app.inject({ method: 'POST', url: '/api/v1/auth/refresh', headers: { 'x-tenant': slug }, remoteAddress: ip, payload: { refreshToken: 'guess-0123456789' } });

t.test('past SILO_REFRESH_RATE_LIMIT attempts a minute per tenant and IP, refresh answers 429', async (t) => {
  for (let i = 0; i < LIMIT; i++) t.equal((await refresh('refresh-a')).statusCode, 401, `attempt ${i + 1} is judged (401)`);
  isProblem(t, await refresh('refresh-a'), 429, 'RATE_LIMITED');
  t.equal((await refresh('refresh-b')).statusCode, 401, 'another tenant, same IP: its own budget');
  t.equal((await refresh('refresh-a', '10.0.0.2')).statusCode, 401, 'same tenant, another IP: its own budget');
});
