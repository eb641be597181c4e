/**
 * The plans' limits in each API process: every plan in memory (a handful of rows), read
 * again from the catalog every `refreshMs` (the change-poll interval,
 * `SILO_TENANT_CHANGE_POLL_MS`), and at once after a change made in this process. A
 * request finds its tenant's limits with one map lookup: no catalog query per request.
 *
 * How changes arrive: `silo plans set` (or the platform API in another process) is seen by
 * every API process at its next refresh, so within one poll interval; `silo tenants
 * set-plan` moves the tenant row's `updated_at`, which the change watcher reports within
 * one poll interval too (the tenant record, and with it its plan name, is read again).
 * With polling off (`SILO_TENANT_CHANGE_POLL_MS=0`) the plans are read again when older
 * than the tenant cache TTL (`SILO_TENANT_CACHE_TTL_MS`), on the next request that looks.
 */
import type { Logger } from 'pino';
import { pickLimits, type Catalog, type PlanLimits } from '../catalog/index.js';

/** Limits of a plan nobody defined (cannot happen with the catalog's foreign key): unlimited. */
const UNLIMITED: PlanLimits = Object.freeze({ maxUsers: null, maxContacts: null, maxAttachmentBytes: null, requestsPerMinute: null });

/** Every plan's limits, kept current (see the module comment). */
export class PlanLimitsCache {
  private plans = new Map<string, PlanLimits>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param refreshMs how often the plans are read again, ms (0: only when older than `ttlMs`, on a lookup)
   * @param ttlMs age after which a lookup reads them again when `refreshMs` is 0, ms
   */
  constructor(
    private readonly catalog: Catalog,
    private readonly refreshMs: number,
    private readonly ttlMs: number,
    private readonly log?: Logger,
  ) {}

  /** Reads the plans once (a failure is logged; the next refresh tries again), then refreshes every `refreshMs`. */
  async start(): Promise<void> {
    await this.refresh();
    if (this.refreshMs > 0 && !this.timer) {
      this.timer = setInterval(() => void this.refresh(), this.refreshMs);
      this.timer.unref();
    }
  }

  /** Reads every plan now (concurrent calls share one read). Never throws: a failed read keeps the plans known. */
  refresh(): Promise<void> {
    this.loading ??= (async () => {
      try {
        const list = await this.catalog.plans.list();
        this.plans = new Map(list.map((p) => [p.name, Object.freeze({ ...pickLimits(p) })]));
        this.loadedAt = Date.now();
      } catch (err) {
        this.log?.warn({ err }, 'could not read the plans; keeping the limits known so far');
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  /**
   * The limits of plan `name` (synchronous: a map lookup). A name not known yet (a plan
   * added since the last refresh) reads the plans again in the background and is
   * unlimited until then.
   */
  limitsOf(name: string): PlanLimits {
    if (this.refreshMs <= 0 && Date.now() - this.loadedAt > this.ttlMs) void this.refresh();
    const limits = this.plans.get(name);
    if (limits) return limits;
    void this.refresh();
    return UNLIMITED;
  }

  /** The limits of plan `name`, reading the plans first when the name is not known yet. */
  async limitsOfFresh(name: string): Promise<PlanLimits> {
    if (!this.plans.has(name)) await this.refresh();
    return this.limitsOf(name);
  }

  /** Stops refreshing. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
