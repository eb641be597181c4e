/**
 * A backup of a tenant with 100,000 contacts streams: the process's RSS grows by less than
 * 100 MB while it runs (the dump comes from mariadb-dump's stdout through gzip into a
 * multipart upload of 5 MiB parts, two at a time), and the restore of it streams too.
 * The figures are printed as TAP comments for the issue note.
 */
import t from 'tap';
import { backupTenant } from '../src/provisioning/backup-service.js';
import { restoreTenant } from '../src/provisioning/restore-service.js';
import { makeTenant } from './fixtures/app.js';
import { setupSilo } from './fixtures/env.js';
import { setupS3 } from './fixtures/s3.js';

const CONTACTS = 100_000;
const LIMIT_MB = 100;
const s3 = await setupS3(t);
const { ctx } = await setupSilo(t, { ...s3.env, SILO_TENANT_CHANGE_POLL_MS: '0' });
const tenant = await makeTenant(ctx, 'bk-big');

await ctx.admin.withTenantDatabase(tenant, async (k) => {
  const [companyId] = await k('companies').insert({ name: 'Big Co' });
  for (let i = 0; i < CONTACTS; i += 5000) {
    const rows = Array.from({ length: 5000 }, (_, j) => ({
      company_id: j % 2 ? companyId : null,
      full_name: `Contact number ${i + j} with a reasonably long name`,
      email: `contact${i + j}@big.example.com`,
      phone: String(4_915_000_000_000 + i + j),
      job_title: 'Account executive, enterprise accounts',
    }));
    await k('contacts').insert(rows);
  }
});

/** Runs `fn` while sampling RSS every 10 ms; returns its result and the peak growth in MB over the RSS before it. */
async function measureRss<T>(fn: () => Promise<T>): Promise<{ result: T; growthMb: number; ms: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  const started = performance.now();
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { result, growthMb: (peak - base) / 2 ** 20, ms: performance.now() - started };
  } finally {
    clearInterval(timer);
  }
}

t.test(`backup of ${CONTACTS} contacts: RSS growth under ${LIMIT_MB} MB`, async (t) => {
  const { result, growthMb, ms } = await measureRss(() => backupTenant(ctx, 'bk-big', 'test'));
  t.equal(result.backup.status, 'completed');
  t.ok(result.backup.sizeBytes! > 1_000_000, `a real dump (${result.backup.sizeBytes} bytes compressed)`);
  t.comment(
    `backup: ${CONTACTS} contacts, ${(result.backup.sizeBytes! / 2 ** 20).toFixed(1)} MiB gzip, ${Math.round(ms)} ms, RSS growth ${growthMb.toFixed(1)} MB`,
  );
  t.ok(growthMb < LIMIT_MB, `RSS grew ${growthMb.toFixed(1)} MB (limit ${LIMIT_MB})`);
});

t.test(`restore of that backup: RSS growth under ${LIMIT_MB} MB, every contact back`, async (t) => {
  await ctx.admin.withTenantDatabase(tenant, (k) => k('contacts').where('id', '>', 10).delete());
  const { result, growthMb, ms } = await measureRss(() => restoreTenant(ctx, 'bk-big', 'test', { latest: true }));
  t.equal(result.tenant.status, 'active');
  t.comment(`restore: ${Math.round(ms)} ms (including the pre-restore backup), RSS growth ${growthMb.toFixed(1)} MB`);
  t.ok(growthMb < LIMIT_MB, `RSS grew ${growthMb.toFixed(1)} MB (limit ${LIMIT_MB})`);
  const n = await ctx.admin.withTenantDatabase(tenant, (k) => k('contacts').count({ n: '*' }).first());
  t.equal(Number(n?.n), CONTACTS);
});
