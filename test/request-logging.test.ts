/**
 * Every log line of a tenant request carries the request id and the tenant slug, and
 * no line carries a password or token.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { buildApp } from '../src/http/app.js';
import { loggerOptions } from '../src/lib/logger.js';
import { makeTenant, PASSWORD, setupApp } from './fixtures/app.js';

const { ctx } = await setupApp(t);
await makeTenant(ctx, 'logged');
const lines: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
    cb();
  },
});
const app = await buildApp({ ctx, logger: pino(loggerOptions('debug', false), sink) });
await app.ready();
t.teardown(() => app.close());

t.test('request log lines carry reqId and tenant; secrets never appear', async (t) => {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'logged' },
    payload: { email: 'admin@logged.test', password: PASSWORD },
  });
  t.equal(res.statusCode, 200);
  const bad = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'logged' },
    payload: { email: 'admin@logged.test', password: 'wrong password here' },
  });
  t.equal(bad.statusCode, 401);
  const reqId = bad.headers['x-request-id'];
  const mine = lines.filter((l) => l.reqId === reqId);
  t.ok(mine.length >= 2, 'several lines for the request');
  const afterIdentify = mine.filter((l) => l.msg !== 'incoming request');
  t.ok(afterIdentify.length > 0 && afterIdentify.every((l) => l.tenant === 'logged'), 'each line after identification names the tenant');
  t.ok(
    mine.some((l) => l.msg === 'failed login'),
    'the failed login is logged',
  );
  const all = JSON.stringify(lines);
  for (const secret of [PASSWORD, 'wrong password here', res.json().accessToken, res.json().refreshToken]) t.notOk(all.includes(secret), 'no secret in logs');
});
