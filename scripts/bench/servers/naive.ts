/**
 * Routing benchmark, server `naive-n`: the common alternative to Silo's bounded pool
 * manager, as most tutorials give it: tenant from `X-Tenant`, the tenant row from the
 * catalog (cached forever), the JWT checked (same HS256 secret and `tid` rule as Silo),
 * and an unbounded `Map` of one Knex per tenant with Knex's default pool (min 2, max 10),
 * never closed. Same route and query as Silo's `GET /api/v1/contacts/:id`.
 * Environment: PORT, the Silo settings (SILO_CATALOG_URL, SILO_SECRET_KEY, SILO_JWT_SECRET).
 */
import Fastify from 'fastify';
import fastifyJwt from '@fastify/jwt';
import knexFactory, { type Knex } from 'knex';
import { loadConfig } from '../../../src/config.js';
import { openCatalog } from '../../../src/catalog/index.js';
import type { Tenant } from '../../../src/catalog/index.js';
import { decryptSecret } from '../../../src/lib/secrets.js';

/** The `contacts` columns this server answers with. */
interface ContactRow {
  id: number;
  company_id: number | null;
  full_name: string;
  email: string | null;
  phone: string | null;
  job_title: string | null;
  version: number;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const config = loadConfig();
const catalog = openCatalog(config);
const tenants = new Map<string, Promise<Tenant | undefined>>();
const knexes = new Map<number, Knex>();
const servers = new Map<number, { host: string; port: number }>();

async function knexFor(t: Tenant): Promise<Knex> {
  let k = knexes.get(t.id);
  if (!k) {
    let s = servers.get(t.databaseServerId);
    if (!s) {
      const row = await catalog.servers.get(t.databaseServerId);
      s = { host: row.host, port: row.port };
      servers.set(t.databaseServerId, s);
    }
    k = knexFactory({
      client: 'mysql2',
      connection: {
        host: s.host,
        port: s.port,
        user: t.dbUser,
        password: decryptSecret(t.dbPasswordEnc, config.secrets),
        database: t.databaseName,
        charset: 'utf8mb4',
        timezone: 'Z',
      },
    });
    knexes.set(t.id, k);
  }
  return k;
}

const app = Fastify({ logger: false });
await app.register(fastifyJwt, { secret: config.jwtSecret! });
app.get('/health', () => ({ status: 'ok' }));
app.get<{ Params: { id: string } }>('/api/v1/contacts/:id', async (request, reply) => {
  const slug = String(request.headers['x-tenant'] ?? '');
  let p = tenants.get(slug);
  if (!p) {
    p = catalog.tenants.findBySlug(slug);
    tenants.set(slug, p);
  }
  const tenant = await p;
  if (!tenant || tenant.status !== 'active') return reply.code(404).send({ code: 'TENANT_NOT_FOUND' });
  let claims: { tid?: number };
  try {
    claims = await request.jwtVerify();
  } catch {
    return reply.code(401).send({ code: 'UNAUTHORIZED' });
  }
  if (claims.tid !== tenant.id) return reply.code(401).send({ code: 'TOKEN_TENANT_MISMATCH' });
  const knex = await knexFor(tenant);
  const r = await knex<ContactRow>('contacts')
    .where({ id: Number(request.params.id) })
    .first();
  if (!r || r.deleted_at) return reply.code(404).send({ code: 'CONTACT_NOT_FOUND' });
  return {
    id: Number(r.id),
    companyId: r.company_id === null ? null : Number(r.company_id),
    fullName: r.full_name,
    email: r.email,
    phone: r.phone,
    jobTitle: r.job_title,
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at,
  };
});
await app.listen({ port: Number(process.env.PORT ?? 3700), host: '127.0.0.1' });
const stop = () => void app.close().finally(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
