/**
 * The webhook dispatcher of one API process: sends the due deliveries of tenant outboxes.
 *
 * Work is found three ways, so that thousands of tenants cost nothing while idle:
 * - a kick right after a commit that wrote deliveries (src/webhooks/emit.ts signals the
 *   tenant database's name in this process), and after a redelivery or a webhook change;
 * - a timer per tenant at the earliest retry this process scheduled;
 * - a slow sweep (`SILO_WEBHOOK_SWEEP_MS`) over the tenants the catalog lists in
 *   `webhook_tenants` (those with active webhooks): retries scheduled by a process that
 *   died, deliveries written by the CLI or another process.
 *
 * Exactly one process sends each attempt: a worker claims one due `pending` row with
 * `SELECT ... FOR UPDATE SKIP LOCKED` and leases it (`locked_until` = now + timeout + 30 s,
 * a random `lease_token`) in a short transaction, posts outside any transaction, then
 * records the outcome only if its lease token is still on the row (a lease that ran out,
 * e.g. a process frozen past it, was taken over and is not recorded twice). A process that
 * dies mid-attempt leaves its lease to expire; the row is then claimed again. So delivery
 * is at least once; receivers deduplicate by `Silo-Event-Id`.
 * At most `SILO_WEBHOOK_CONCURRENCY` attempts run at once in a process (p-limit), at most
 * 4 per tenant. `stop()` ends the timers and waits for the attempts in flight (each bounded
 * by the attempt timeout); no new attempt starts.
 */
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import pLimit, { type LimitFunction } from 'p-limit';
import type { Logger } from 'pino';
import type { Catalog, Tenant } from '../catalog/index.js';
import { toTenant, type TenantRow } from '../catalog/tenants.js';
import { createWebhookTenantsRepository } from '../catalog/webhook-tenants.js';
import type { WebhooksConfig } from '../config.js';
import type { SecretKeyring } from '../lib/secrets.js';
import type { TenantConnections } from '../tenancy/connections.js';
import { deliver, type AttemptResult } from './deliver.js';
import { webhookCommits } from './emit.js';
import { nextAttemptAt } from './schedule.js';
import { openWebhookSecret } from './service.js';
import type { Resolver } from './url-guard.js';

/** Options of {@link WebhookDispatcher}. */
export interface DispatcherOptions {
  catalog: Catalog;
  connections: TenantConnections;
  config: WebhooksConfig;
  secrets: SecretKeyring;
  log: Logger;
  /** DNS resolver of deliveries (tests). */
  resolver?: Resolver;
  /** The clock, ms since the epoch (tests). */
  now?: () => number;
  random?: () => number;
}

const PER_TENANT_WORKERS = 4;
const LEASE_MARGIN_MS = 30_000;
const TENANT_CACHE_MS = 10_000;

/** What an attempt needs: the delivery, its event and its webhook. */
interface AttemptRow {
  id: number;
  attempt: number;
  retry_until: Date | null;
  webhook_id: number;
  public_id: string;
  type: string;
  data: unknown;
  occurred_at: Date;
  url: string;
  secret_enc: string;
}

interface Claimed {
  id: number;
  token: string;
}

/** The dispatcher (one per API process, started by the app). */
export class WebhookDispatcher {
  private readonly limit: LimitFunction;
  private readonly running = new Map<number, Promise<void>>();
  private readonly again = new Set<number>();
  private readonly wakeups = new Map<number, { at: number; timer: NodeJS.Timeout }>();
  private readonly byDatabase = new Map<string, { tenant: Tenant | undefined; at: number }>();
  private readonly tenantsRepo;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private closed = false;
  private started = false;
  private readonly now: () => number;
  private readonly onCommit = (db: string) => void this.kickDatabase(db);

  constructor(private readonly o: DispatcherOptions) {
    this.limit = pLimit(o.config.concurrency);
    this.tenantsRepo = createWebhookTenantsRepository(o.catalog.knex);
    this.now = o.now ?? Date.now;
  }

  /** Starts listening for commits and the sweep. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    webhookCommits.on('committed', this.onCommit);
    this.scheduleSweep();
  }

  /** Stops: no new attempt starts; resolves once the attempts in flight are recorded. */
  async stop(): Promise<void> {
    this.closed = true;
    webhookCommits.off('committed', this.onCommit);
    clearTimeout(this.sweepTimer);
    for (const w of this.wakeups.values()) clearTimeout(w.timer);
    this.wakeups.clear();
    await this.sweeping;
    await this.idle();
  }

  /** Resolves once no tenant is being dispatched (also those kicked while waiting). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running.values()]);
  }

  /** Records the tenant's active webhook count in the catalog (the sweep's list). */
  noteActiveWebhooks(tenantId: number, activeWebhooks: number): Promise<void> {
    return this.tenantsRepo.set(tenantId, activeWebhooks);
  }

  /** One sweep now: dispatches every tenant with active webhooks. Resolves when they are done. */
  async sweep(): Promise<void> {
    const tenants = await this.tenantsRepo.activeTenants();
    for (const t of tenants) this.kick(t);
    await this.idle();
  }

  private scheduleSweep(): void {
    if (!this.o.config.sweepMs || this.closed) return;
    this.sweepTimer = setTimeout(() => {
      this.sweeping = this.sweep()
        .catch((err: unknown) => this.o.log.warn({ err }, 'webhook sweep failed'))
        .finally(() => {
          this.sweeping = undefined;
          this.scheduleSweep();
        });
    }, this.o.config.sweepMs);
    this.sweepTimer.unref();
  }

  /** Dispatches the tenant whose database committed new deliveries (in this catalog; others are ignored). */
  private async kickDatabase(databaseName: string): Promise<void> {
    if (this.closed) return;
    try {
      let cached = this.byDatabase.get(databaseName);
      if (!cached || this.now() - cached.at > TENANT_CACHE_MS) {
        const row = (await this.o.catalog.knex('tenants').where({ database_name: databaseName, status: 'active' }).first()) as TenantRow | undefined;
        cached = { tenant: row && toTenant(row), at: this.now() };
        this.byDatabase.set(databaseName, cached);
        if (this.byDatabase.size > 10_000) this.byDatabase.delete(this.byDatabase.keys().next().value!);
      }
      if (cached.tenant) this.kick(cached.tenant);
    } catch (err) {
      this.o.log.warn({ err }, 'webhook kick failed');
    }
  }

  /** Sends the tenant's due deliveries now (again after the current run if one is running). */
  kick(tenant: Tenant): void {
    if (this.closed) return;
    if (this.running.has(tenant.id)) {
      this.again.add(tenant.id);
      return;
    }
    const run = this.drain(tenant)
      .catch((err: unknown) => this.o.log.warn({ err, tenant: tenant.slug }, 'webhook dispatch failed'))
      .finally(() => {
        this.running.delete(tenant.id);
        if (this.again.delete(tenant.id)) this.kick(tenant);
      });
    this.running.set(tenant.id, run);
  }

  private async drain(tenant: Tenant): Promise<void> {
    const lease = await this.o.connections.acquire(tenant);
    try {
      const worker = async () => {
        while (!this.closed && (await this.limit(() => this.one(lease.knex, tenant)))) {
          /* next */
        }
      };
      await Promise.all(Array.from({ length: Math.min(PER_TENANT_WORKERS, this.o.config.concurrency) }, worker));
    } finally {
      lease.release();
    }
  }

  /** Wakes the tenant at `at` (ms) unless an earlier wake-up is set. */
  private wakeAt(tenant: Tenant, at: number): void {
    if (this.closed) return;
    const current = this.wakeups.get(tenant.id);
    if (current && current.at <= at) return;
    if (current) clearTimeout(current.timer);
    const timer = setTimeout(
      () => {
        this.wakeups.delete(tenant.id);
        this.kick(tenant);
      },
      Math.max(0, at - this.now()),
    );
    timer.unref();
    this.wakeups.set(tenant.id, { at, timer });
  }

  /** Claims, sends and records one due attempt. @returns false when none was due */
  private async one(knex: Knex, tenant: Tenant): Promise<boolean> {
    if (this.closed) return false;
    const claimed = await this.claim(knex);
    if (!claimed) return false;
    const row: AttemptRow | undefined = await knex<AttemptRow>('webhook_deliveries as d')
      .join('webhook_events as e', 'e.id', 'd.event_id')
      .join('webhooks as w', 'w.id', 'd.webhook_id')
      .where('d.id', claimed.id)
      .first('d.id', 'd.attempt', 'd.retry_until', 'd.webhook_id', 'e.public_id', 'e.type', 'e.data', 'e.occurred_at', 'w.url', 'w.secret_enc');
    // Deleted with its webhook meanwhile.
    if (!row) return true;
    const attemptedAt = this.now();
    let result: AttemptResult;
    let secret: string | undefined;
    try {
      secret = openWebhookSecret(row.secret_enc, this.o.secrets);
    } catch {
      result = { ok: false, statusCode: null, error: 'the signing secret cannot be read with the configured SILO_SECRET_KEY', latencyMs: 0 };
    }
    if (secret !== undefined) {
      const data: unknown = typeof row.data === 'string' ? JSON.parse(row.data) : row.data;
      const body = JSON.stringify({ id: row.public_id, type: row.type, time: new Date(row.occurred_at).toISOString(), data });
      result = await deliver({
        url: row.url,
        secret,
        eventId: row.public_id,
        body,
        timeoutMs: this.o.config.timeoutMs,
        allowPrivate: this.o.config.allowPrivate,
        resolver: this.o.resolver,
        timestamp: Math.floor(attemptedAt / 1000),
      });
    }
    const deadline = row.retry_until ? new Date(row.retry_until).getTime() : new Date(row.occurred_at).getTime() + this.o.config.retryWindowMs;
    const next = result!.ok ? null : nextAttemptAt(this.o.config, row.attempt, this.now(), deadline, this.o.random);
    await this.record(knex, claimed, row, result!, attemptedAt, next);
    if (next !== null) this.wakeAt(tenant, next);
    return true;
  }

  private claim(knex: Knex): Promise<Claimed | undefined> {
    const now = new Date(this.now());
    const token = randomBytes(16).toString('hex');
    return knex.transaction(async (trx) => {
      // A plain read: the claim below locks delivery rows only (webhooks are never locked by a claim).
      const activeIds: unknown = await trx('webhooks').where({ active: true }).pluck('id');
      const active = activeIds as number[];
      if (!active.length) return undefined;
      const dueRow: unknown = await trx('webhook_deliveries')
        .where('status', 'pending')
        .where('next_attempt_at', '<=', now)
        .whereIn('webhook_id', active)
        .where((q) => void q.whereNull('locked_until').orWhere('locked_until', '<', now))
        .orderBy('next_attempt_at')
        .orderBy('id')
        .limit(1)
        .forUpdate()
        .skipLocked()
        .first('id');
      const due = dueRow as { id: number } | undefined;
      if (!due) return undefined;
      await trx('webhook_deliveries')
        .where({ id: due.id })
        .update({ locked_until: new Date(now.getTime() + this.o.config.timeoutMs + LEASE_MARGIN_MS), lease_token: token });
      return { id: Number(due.id), token };
    });
  }

  private async record(
    knex: Knex,
    claimed: Claimed,
    row: { attempt: number; webhook_id: number; retry_until: Date | null },
    r: AttemptResult,
    attemptedAt: number,
    next: number | null,
  ): Promise<void> {
    await knex.transaction(async (trx) => {
      // Webhook row before delivery rows, as emitEvent and a webhook delete lock them.
      if (!(await trx('webhooks').where({ id: row.webhook_id }).forShare().first('id'))) return;
      const mineRow: unknown = await trx('webhook_deliveries').where({ id: claimed.id, lease_token: claimed.token }).forUpdate().first('event_id');
      const mine = mineRow as { event_id: number } | undefined;
      if (!mine) return;
      await trx('webhook_deliveries')
        .where({ id: claimed.id })
        .update({
          status: r.ok ? 'succeeded' : next === null ? 'failed' : 'retrying',
          status_code: r.statusCode,
          error: r.error?.slice(0, 500) ?? null,
          latency_ms: r.latencyMs,
          attempted_at: new Date(attemptedAt),
          locked_until: null,
          lease_token: null,
        });
      if (next !== null)
        await trx('webhook_deliveries').insert({
          webhook_id: row.webhook_id,
          event_id: mine.event_id,
          attempt: row.attempt + 1,
          status: 'pending',
          next_attempt_at: new Date(next),
          retry_until: row.retry_until,
        });
    });
  }
}
