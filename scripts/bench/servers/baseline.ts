/**
 * Routing benchmark, server `baseline`: the limit of the machine. Bare Fastify and one
 * mysql2 pool on one database: no tenancy, no authentication, no request history. Same
 * query as Silo's `GET /api/v1/contacts/:id` (`SELECT * FROM contacts WHERE id = ?`, 404
 * when missing or soft-deleted), same JSON field names.
 * Environment: PORT, BASE_DB_HOST, BASE_DB_PORT, BASE_DB_USER, BASE_DB_PASSWORD, BASE_DB_NAME, BASE_POOL (connections, default 10).
 */
import Fastify from 'fastify';
import { createPool, type RowDataPacket } from 'mysql2/promise';

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

const env = process.env;
const pool = createPool({
  host: env.BASE_DB_HOST ?? '127.0.0.1',
  port: Number(env.BASE_DB_PORT ?? 3306),
  user: env.BASE_DB_USER ?? 'root',
  password: env.BASE_DB_PASSWORD ?? '',
  database: env.BASE_DB_NAME,
  connectionLimit: Number(env.BASE_POOL ?? 10),
  charset: 'utf8mb4',
  timezone: 'Z',
});
const app = Fastify({ logger: false });
app.get('/health', () => ({ status: 'ok' }));
app.get<{ Params: { id: string } }>('/api/v1/contacts/:id', async (request, reply) => {
  const [rows] = await pool.query<Array<ContactRow & RowDataPacket>>('SELECT * FROM contacts WHERE id = ? LIMIT 1', [Number(request.params.id)]);
  const r = rows[0];
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
await app.listen({ port: Number(env.PORT ?? 3700), host: '127.0.0.1' });
const stop = () =>
  void app
    .close()
    .then(() => pool.end())
    .finally(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
