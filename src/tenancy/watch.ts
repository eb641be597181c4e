/**
 * Cross-process tenant changes: a lifecycle action run by the CLI or another API
 * process updates the tenant's catalog row (`updated_at`, DATETIME(3), set by MySQL).
 * Every API process polls for rows changed since its last look (one indexed-range query
 * per interval, whatever the load), forgets them in its tenant cache, and closes the
 * pools of tenants that are no longer active. So a migration started from the CLI turns
 * that tenant's answers into 503 within one interval.
 */
import type { Logger } from 'pino';
import type { Catalog } from '../catalog/index.js';

/** Polls `tenants.updated_at`; `onChange` gets each changed tenant's slug, id and status. */
export class TenantChangeWatcher {
  private timer: NodeJS.Timeout | undefined;
  private since: Date | undefined;
  /** Changes already reported in the overlap window: tenant id -> its `updated_at` (ms) and status. */
  private readonly reported = new Map<number, { at: number; status: string }>();
  private running = false;

  constructor(
    private readonly catalog: Catalog,
    private readonly intervalMs: number,
    private readonly onChange: (t: { id: number; slug: string; status: string }) => void | Promise<void>,
    private readonly log?: Logger,
  ) {}

  /** Starts polling (the first poll only sets the starting point). */
  start(): void {
    if (this.timer || this.intervalMs <= 0) return;
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
    void this.poll();
  }

  /** One poll. Exposed for tests. */
  async poll(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      if (!this.since) {
        const [rows] = (await this.catalog.knex.raw('SELECT CURRENT_TIMESTAMP(3) AS now')) as [Array<{ now: Date | string }>];
        this.since = new Date(rows[0]!.now);
        return;
      }
      // 1 s of overlap: rows updated in the same instant as the last look are seen again, never
      // missed; a change already reported is not reported again (else the most recently changed
      // tenants would leave the API's tenant cache at every poll).
      const from = new Date(this.since.getTime() - 1000);
      const changed: Array<{ id: number; slug: string; status: string; updated_at: Date }> = await this.catalog
        .knex('tenants')
        .where('updated_at', '>=', from)
        .select('id', 'slug', 'status', 'updated_at');
      for (const [id, r] of this.reported) if (r.at < from.getTime()) this.reported.delete(id);
      for (const t of changed) {
        if (t.updated_at > this.since) this.since = t.updated_at;
        const seen = this.reported.get(t.id);
        if (seen && seen.at === t.updated_at.getTime() && seen.status === t.status) continue;
        await this.onChange(t);
        this.reported.set(t.id, { at: t.updated_at.getTime(), status: t.status });
      }
    } catch (err) {
      this.log?.debug({ err }, 'tenant change poll failed; retrying next interval');
    } finally {
      this.running = false;
    }
  }

  /** Stops polling. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
