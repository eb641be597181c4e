/**
 * The client address behind a proxy: with `SILO_TRUST_PROXY=1` the address the one
 * proxy in front appended to `X-Forwarded-For` is the client, never the left-most value
 * the client wrote itself. So a client rotating spoofed left-most values is still held
 * at the login limit, and the request history and the request log record the address
 * the proxy saw. With a proxy list only the listed proxies are believed; with `0` the
 * socket's peer is the client whatever the header says. The configuration refuses
 * "trust every hop" (`true`) and malformed lists.
 */
import { randomInt } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import t from 'tap';
import { ConfigError, loadConfig, type Config } from '../src/config.js';
import type { SiloContext } from '../src/context.js';
import { buildApp } from '../src/http/app.js';
import { loggerOptions } from '../src/lib/logger.js';
import { makeTenant, platformLogin, TEST_JWT_SECRET } from './fixtures/app.js';
import { setupSilo } from './fixtures/env.js';

/** What "the proxy" appended: the address it accepted the connection from. */
const CLIENT = '203.0.113.7';
/** The proxy's own address: the API's socket peer. */
const PROXY = '10.0.0.1';
const LOGIN_LIMIT = 5;

const { ctx } = await setupSilo(t, {
  SILO_JWT_SECRET: TEST_JWT_SECRET,
  SILO_TRUST_PROXY: '1',
  SILO_LOGIN_RATE_LIMIT: String(LOGIN_LIMIT),
  SILO_HISTORY_FLUSH_MS: '100000',
});
await makeTenant(ctx, 'proxied');

const lines: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
    cb();
  },
});

/** An app over `ctx` with `trustProxy` replaced, plus a test route that echoes `request.ip`. */
async function appWith(trustProxy: Config['trustProxy'], logger = pino({ level: 'silent' })): Promise<FastifyInstance> {
  const c: SiloContext = { ...ctx, config: { ...ctx.config, trustProxy } };
  const app = await buildApp({ ctx: c, logger });
  app.get('/test/ip', (request) => ({ ip: request.ip }));
  await app.ready();
  t.teardown(() => app.close());
  return app;
}

const app = await appWith(ctx.config.trustProxy, pino(loggerOptions('info', false), sink));

const randomIp = () => `${randomInt(1, 224)}.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
/** `X-Forwarded-For` as the proxy forwards it: whatever the client sent, then the address it saw. */
const forwarded = (seen = CLIENT) => `${randomIp()}, ${seen}`;

const badLogin = (xff: string) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    remoteAddress: PROXY,
    headers: { 'x-tenant': 'proxied', 'x-forwarded-for': xff },
    payload: { email: 'admin@proxied.test', password: 'not the password at all' },
  });

t.test('config: SILO_TRUST_PROXY is off, a hop count, or proxy addresses/CIDRs; nothing else', (t) => {
  t.equal(loadConfig({}).trustProxy, false, 'off by default');
  t.equal(loadConfig({ SILO_TRUST_PROXY: '0' }).trustProxy, false);
  t.equal(loadConfig({ SILO_TRUST_PROXY: '1' }).trustProxy, 1);
  t.same(loadConfig({ SILO_TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1' }).trustProxy, ['10.0.0.0/8', '127.0.0.1', '::1']);
  for (const bad of ['true', 'yes', 'all', '10.0.0.0/33', '10.0.0.1,foo', '10.0.0.0/8/1', '999.1.1.1', '10.0.0.0/x', ',', '1.5', '-1', '::1/129']) {
    let caught: unknown;
    try {
      loadConfig({ SILO_TRUST_PROXY: bad });
    } catch (err) {
      caught = err;
    }
    t.ok(
      caught instanceof ConfigError && caught.variable === 'SILO_TRUST_PROXY',
      `${JSON.stringify(bad)} is refused with a ConfigError naming SILO_TRUST_PROXY`,
    );
    t.match((caught as Error | undefined)?.message, /^invalid configuration: SILO_TRUST_PROXY: /);
  }
  t.end();
});

t.test('behind one trusted hop, rotating spoofed left-most X-Forwarded-For values does not escape the login limit', async (t) => {
  const statuses: number[] = [];
  for (let i = 0; i < LOGIN_LIMIT + 5; i++) statuses.push((await badLogin(forwarded())).statusCode);
  t.same(statuses.slice(0, LOGIN_LIMIT), Array(LOGIN_LIMIT).fill(401), 'wrong passwords answer 401 up to the limit');
  t.same(statuses.slice(LOGIN_LIMIT), Array(5).fill(429), 'then 429, whatever the left-most value');
  const other = await badLogin(forwarded('198.51.100.20'));
  t.equal(other.statusCode, 401, 'another client behind the same proxy has its own budget');
});

t.test('behind one trusted hop, the platform login limit holds the same way', async (t) => {
  await platformLogin(app, ctx, 'operator');
  const statuses: number[] = [];
  for (let i = 0; i < LOGIN_LIMIT + 3; i++) {
    const res = await app.inject({
      method: 'POST',
      url: '/platform/v1/auth/login',
      remoteAddress: PROXY,
      headers: { 'x-forwarded-for': forwarded('198.51.100.30') },
      payload: { email: 'operator@silo.test', password: 'not the password at all' },
    });
    statuses.push(res.statusCode);
  }
  t.same(statuses.slice(LOGIN_LIMIT), Array(3).fill(429), 'past the limit: 429');
});

t.test('the request history row and the request log line record the address the proxy appended', async (t) => {
  const res = await badLogin(forwarded('198.51.100.40'));
  const reqId = res.headers['x-request-id'];
  await app.historyRecorder!.flush(true);
  const rows: Array<{ ip: string }> = await ctx.catalog.knex('request_history').where({ request_id: reqId }).select('ip');
  t.same(
    rows.map((r) => r.ip),
    ['198.51.100.40'],
    'history ip',
  );
  const logged = lines.filter((l) => l.reqId === reqId && l.msg === 'incoming request');
  t.equal(logged.length, 1);
  t.equal((logged[0]?.req as { remoteAddress?: string } | undefined)?.remoteAddress, '198.51.100.40', 'log remoteAddress');
  const all = await ctx.catalog.knex('request_history').where('path', '/api/v1/auth/login').select('ip');
  t.ok(all.length >= LOGIN_LIMIT + 5, 'every login attempt is recorded');
  t.ok(
    all.every((r: { ip: string }) => r.ip === CLIENT || r.ip.startsWith('198.51.100.')),
    'no spoofed left-most value in the history',
  );
});

t.test('with a proxy list, only the listed proxies are believed', async (t) => {
  const listed = await appWith(['10.0.0.0/8', '192.0.2.1']);
  const ip = async (remoteAddress: string, xff?: string) =>
    (await listed.inject({ url: '/test/ip', remoteAddress, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } })).json<{ ip: string }>().ip;
  t.equal(await ip('10.1.2.3', `6.6.6.6, ${CLIENT}`), CLIENT, 'a listed proxy: the address it appended');
  t.equal(await ip('10.1.2.3', `6.6.6.6, ${CLIENT}, 10.9.9.9`), CLIENT, 'two listed proxies: the address the outer one appended');
  t.equal(await ip('192.0.2.1', `6.6.6.6, ${CLIENT}`), CLIENT, 'a listed single address');
  t.equal(await ip('198.51.100.9', CLIENT), '198.51.100.9', 'a peer not listed: its own address, the header ignored');
  t.equal(await ip('198.51.100.9', '10.0.0.5'), '198.51.100.9', 'even when the header names a listed address');
  t.equal(await ip('10.1.2.3'), '10.1.2.3', 'a listed proxy without the header: itself');
});

t.test('with 0, the socket address is the client whatever the header says', async (t) => {
  const off = await appWith(false);
  for (const xff of [CLIENT, `6.6.6.6, ${CLIENT}`, '10.0.0.1']) {
    const res = await off.inject({ url: '/test/ip', remoteAddress: '198.51.100.77', headers: { 'x-forwarded-for': xff } });
    t.equal(res.json<{ ip: string }>().ip, '198.51.100.77', xff);
  }
  const zero = loadConfig({ SILO_TRUST_PROXY: '0' }).trustProxy;
  t.equal(zero, false, 'SILO_TRUST_PROXY=0 is off');
});
