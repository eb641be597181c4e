/**
 * Every log line of a tenant request carries the request id and the tenant slug, and
 * no line carries a password or token.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { buildApp } from '../src/http/app.js';
import { loggerOptions } from '../src/lib/logger.js';
import { lazyChildLoggerFactory } from '../src/http/request-logger.js';
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

t.test('a request logger builds its pino child only for a line it writes, with every binding given before', async (t) => {
  const written: Array<Record<string, unknown>> = [];
  const out = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) written.push(JSON.parse(l));
      cb();
    },
  });
  const parent = pino(loggerOptions('warn', false), out);
  let children = 0;
  const child = parent.child.bind(parent);
  (parent as unknown as { child: unknown }).child = (b: pino.Bindings, o?: pino.ChildLoggerOptions) => {
    children++;
    return child(b, o);
  };
  const log = lazyChildLoggerFactory(parent, { reqId: 'r-1' }, {}) as unknown as pino.Logger;
  log.setBindings({ tenant: 'acme' });
  log.info({ password: 'hunter2 hunter2' }, 'not written at warn');
  t.equal(children, 0, 'nothing written: no child built');
  t.equal(log.isLevelEnabled('info'), false);
  t.equal(log.isLevelEnabled('error'), true);
  log.warn({ user: { password: 'hunter2 hunter2' } }, 'written');
  await new Promise((r) => setImmediate(r));
  t.equal(children, 1, 'the child is built for the first line written');
  t.equal(written.length, 1);
  t.match(written[0], { level: 40, reqId: 'r-1', tenant: 'acme', msg: 'written' });
  t.notOk(JSON.stringify(written).includes('hunter2'), 'redaction applies as before');
  const routeLevel = lazyChildLoggerFactory(parent, { reqId: 'r-2' }, { level: 'debug' }) as unknown as pino.Logger;
  routeLevel.debug('a route-level debug line');
  await new Promise((r) => setImmediate(r));
  t.match(written[1], { level: 20, reqId: 'r-2', msg: 'a route-level debug line' });
});
