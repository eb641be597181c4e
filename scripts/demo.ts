/**
 * The demo (`npm run demo`): migrates the catalog, provisions two demo tenants (acme,
 * globex; re-running reuses them) with an admin each and a platform operator, starts
 * the API, and prints working curl lines. Seeds the plans `free` and `pro` (kept as they
 * are when they exist already) and puts globex on `free`. Needs a MySQL/MariaDB at SILO_TENANT_DB_URL
 * (default 127.0.0.1:3306, root, no password). Without SILO_S3_BUCKET it starts a local
 * S3 (s3rver, objects kept in .silo/s3) for backups and attachments. Runs with
 * NODE_ENV=development unless set, so the development key encrypts secrets when
 * SILO_SECRET_KEY is unset. Self-service signup is on (SILO_SIGNUP_ENABLED=1) with two
 * pending tenants (SILO_PENDING_TENANTS=2) unless set otherwise.
 */
import { mkdirSync } from 'node:fs';
import { startDevS3 } from './dev-s3.js';
import { migrateCatalog } from '../src/catalog/db.js';
import { DEFAULT_SERVER_NAME } from '../src/catalog/servers.js';
import { DEV_JWT_SECRET, loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { createLogger } from '../src/lib/logger.js';
import { repairTenant } from '../src/provisioning/repair-service.js';
import { createTenant } from '../src/provisioning/tenants-service.js';
import { addPlatformUser } from '../src/provisioning/users-service.js';
import { addPlan, setTenantPlan } from '../src/provisioning/plans-service.js';
import { startServer } from '../src/http/server.js';

/** Demo accounts: for local use only. */
const DEMO_PASSWORD = 'demo-password-123';
const TENANTS = [
  { slug: 'acme', name: 'Acme Inc', adminEmail: 'admin@acme.test' },
  { slug: 'globex', name: 'Globex Corporation', adminEmail: 'admin@globex.test' },
];
const OPERATOR = 'operator@silo.test';
/** Demo plans (binary sizes: 10 MiB, 5 GiB). */
const PLANS = [
  { name: 'free', maxUsers: 3, maxContacts: 100, maxAttachmentBytes: 10 * 2 ** 20, requestsPerMinute: 60 },
  { name: 'pro', maxUsers: 50, maxContacts: 100_000, maxAttachmentBytes: 5 * 2 ** 30, requestsPerMinute: 6_000 },
];

let devS3: Awaited<ReturnType<typeof startDevS3>> | undefined;
if (!process.env.SILO_S3_BUCKET) {
  mkdirSync('.silo/s3', { recursive: true });
  devS3 = await startDevS3({ directory: '.silo/s3', bucket: 'silo-demo' });
  Object.assign(process.env, devS3.env);
}
// The demo is a local development run: without SILO_SECRET_KEY it uses the development
// key, which only NODE_ENV=development allows (set here unless the caller chose otherwise).
process.env.NODE_ENV ??= 'development';
// Self-service signup is on in the demo, with two tenants kept provisioned ahead for it.
process.env.SILO_SIGNUP_ENABLED ??= '1';
process.env.SILO_PENDING_TENANTS ??= '2';
const config = loadConfig();
config.jwtSecret ??= DEV_JWT_SECRET;
const log = createLogger(config.logLevel ?? 'info');
const out = (line = '') => process.stdout.write(`${line}\n`);

await migrateCatalog(config);
const ctx = createContext(config, log);
try {
  await ctx.catalog.servers.upsert(DEFAULT_SERVER_NAME, config.tenantDb);
  for (const p of PLANS) {
    if (await ctx.catalog.plans.find(p.name)) continue;
    await addPlan(ctx, p);
    out(`added plan ${p.name}`);
  }
  for (const t of TENANTS) {
    const existing = await ctx.catalog.tenants.findBySlug(t.slug);
    if (!existing) {
      await createTenant(ctx, { ...t, adminPassword: DEMO_PASSWORD }, 'demo');
      out(`created tenant ${t.slug}`);
    } else if (existing.status !== 'active') {
      const r = await repairTenant(ctx, t.slug, 'demo');
      out(`repaired tenant ${t.slug}: ${r.outcome}, ${r.status}`);
    } else {
      out(`reusing tenant ${t.slug}`);
    }
  }
  const globex = await ctx.catalog.tenants.findBySlug('globex');
  if (globex?.plan === 'standard') await setTenantPlan(ctx, 'globex', 'free', 'demo');
  await addPlatformUser(ctx, { email: OPERATOR, role: 'operator', password: DEMO_PASSWORD }).catch(() => undefined);
} finally {
  await ctx.close();
}

const { url } = await startServer(config);
const port = new URL(url).port;
const base = `http://localhost:${port}`;
out();
out(`Silo API is up on ${base} (Swagger UI: ${base}/docs, OpenAPI: ${base}/docs/json, metrics: ${base}/metrics)`);
out(`Demo tenant admins: admin@acme.test, admin@globex.test; operator: ${OPERATOR}; password for all: ${DEMO_PASSWORD}`);
out();
out('# sign in to acme (X-Tenant header) and keep the access token');
out(
  `TOKEN=$(curl -s -X POST ${base}/api/v1/auth/login -H 'X-Tenant: acme' -H 'content-type: application/json' -d '{"email":"admin@acme.test","password":"${DEMO_PASSWORD}"}' | sed -E 's/.*"accessToken":"([^"]+)".*/\\1/')`,
);
out('# who am I (tenant by X-Tenant header, by ?tenant=, by subdomain)');
out(`curl -s ${base}/api/v1/auth/me -H 'X-Tenant: acme' -H "Authorization: Bearer $TOKEN"`);
out(`curl -s '${base}/api/v1/users?tenant=acme' -H "Authorization: Bearer $TOKEN"`);
out(`curl -s http://acme.localhost:${port}/api/v1/auth/me -H "Authorization: Bearer $TOKEN"`);
out('# the same token on another tenant is refused (401 TOKEN_TENANT_MISMATCH)');
out(`curl -s ${base}/api/v1/auth/me -H 'X-Tenant: globex' -H "Authorization: Bearer $TOKEN"`);
out(
  config.mail.smtpUrl
    ? '# invite a colleague (the mail goes through SILO_SMTP_URL)'
    : '# invite a colleague: SILO_SMTP_URL is unset, so the mail (its link and token) is printed in the log below ("mail not sent")',
);
out(
  `curl -s -X POST ${base}/api/v1/invitations -H 'X-Tenant: acme' -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"email":"colleague@acme.test","role":"staff"}'`,
);
out('# accept with the token of that link: the colleague is signed in (201, token pair)');
out(
  `curl -s -X POST ${base}/api/v1/invitations/accept -H 'X-Tenant: acme' -H 'content-type: application/json' -d '{"token":"<token>","password":"${DEMO_PASSWORD}","fullName":"A Colleague"}'`,
);
out('# platform API as an operator');
out(
  `PTOKEN=$(curl -s -X POST ${base}/platform/v1/auth/login -H 'content-type: application/json' -d '{"email":"${OPERATOR}","password":"${DEMO_PASSWORD}"}' | sed -E 's/.*"accessToken":"([^"]+)".*/\\1/')`,
);
out(`curl -s ${base}/platform/v1/tenants -H "Authorization: Bearer $PTOKEN"`);
out('# plans, and what globex (on free) uses of its plan');
out(`curl -s ${base}/platform/v1/plans -H "Authorization: Bearer $PTOKEN"`);
out(`curl -s ${base}/platform/v1/tenants/globex/usage -H "Authorization: Bearer $PTOKEN"`);
out(`curl -s ${base}/api/v1/usage -H 'X-Tenant: acme' -H "Authorization: Bearer $TOKEN"`);
out('# back up acme to S3 (202 + operation), then list its backups');
out(`curl -s -X POST ${base}/platform/v1/tenants/acme/backups -H "Authorization: Bearer $PTOKEN"`);
out(`curl -s ${base}/platform/v1/tenants/acme/backups -H "Authorization: Bearer $PTOKEN"`);
out('# self-service signup: a new tenant and its admin, signed in at once (the verification link is in the server log)');
out(
  `curl -s -X POST ${base}/platform/v1/signup -H 'content-type: application/json' -d '{"slug":"initech","name":"Initech","email":"bill@initech.test","password":"violet-tractor-orbit-91","fullName":"Bill Lumbergh"}'`,
);
if (devS3) out(`# local S3 for this demo: ${devS3.endpoint}, bucket ${devS3.bucket}, objects in .silo/s3 (SILO_S3_BUCKET unset)`);
out();
out('Press Ctrl-C to stop.');
