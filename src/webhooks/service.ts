/**
 * Webhooks of a tenant (over the tenant's Knex): CRUD with optimistic locking, the signing
 * secret (shown once, at create and rotation; stored encrypted under SILO_SECRET_KEY when
 * a key is configured), the delivery log and redelivery. No Fastify in here.
 */
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { z } from 'zod';
import { ConflictError, NotFoundError, ValidationError } from '../lib/errors.js';
import type { SecretKeyring } from '../lib/secrets.js';
import { pageOffset } from '../lib/validation.js';
import { assertVersion } from '../crm/common.js';
import { eventsOf } from './emit.js';
import { webhookEventTypeSchema, type WebhookEventType } from './event-types.js';
import { targetProblem, type Resolver } from './url-guard.js';

const events = z
  .array(webhookEventTypeSchema)
  .min(1)
  .max(64)
  .refine((a) => new Set(a).size === a.length, 'events must not repeat a type');
const url = z.string().max(2048).describe('http(s) URL; loopback, private and link-local addresses are refused');
export const createWebhookBody = z.strictObject({ url, events, active: z.boolean().optional().describe('default: true') });
export const updateWebhookBody = z.strictObject({
  url: url.optional(),
  events: events.optional(),
  active: z.boolean().optional(),
  version: z.number().int().positive().optional(),
});

/** A webhook as the API shows it (never with its secret). */
export interface Webhook {
  id: number;
  url: string;
  events: WebhookEventType[];
  active: boolean;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** One delivery attempt as the delivery log shows it. */
export interface Delivery {
  id: number;
  eventId: string;
  eventType: string;
  attempt: number;
  status: 'pending' | 'succeeded' | 'retrying' | 'failed';
  statusCode: number | null;
  error: string | null;
  latencyMs: number | null;
  /** When the attempt is (or was) due. */
  scheduledAt: Date;
  /** When it was made (null while pending). */
  attemptedAt: Date | null;
}

interface WebhookRow {
  id: number;
  url: string;
  events: unknown;
  active: number | boolean;
  secret_enc: string;
  version: number;
  created_at: Date;
  updated_at: Date;
}

const toWebhook = (r: WebhookRow): Webhook => ({
  id: Number(r.id),
  url: r.url,
  events: eventsOf(r.events) as WebhookEventType[],
  active: Boolean(r.active),
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** A new signing secret: `whsec_` + 32 random bytes, base64url. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

const PLAIN = 'plain.';
/** The stored form of a secret: encrypted with the keyring when a key is available, else marked plain. */
export function sealWebhookSecret(secret: string, secrets: SecretKeyring): string {
  return secrets.available ? secrets.encrypt(secret) : `${PLAIN}${secret}`;
}
/** The secret of a stored form. @throws SiloError `SECRET_UNREADABLE`, or the keyring's "no key" error */
export function openWebhookSecret(stored: string, secrets: SecretKeyring): string {
  return stored.startsWith(PLAIN) ? stored.slice(PLAIN.length) : secrets.decrypt(stored);
}

/** Options of {@link createWebhooksService}. */
export interface WebhooksServiceOptions {
  secrets: SecretKeyring;
  /** `SILO_WEBHOOK_ALLOW_PRIVATE`. */
  allowPrivate: boolean;
  /** Retry window of a redelivery, ms. */
  retryWindowMs: number;
  resolver?: Resolver;
}

/** The webhooks service over a tenant's Knex. */
export function createWebhooksService(knex: Knex, opts: WebhooksServiceOptions) {
  const load = async (db: Knex | Knex.Transaction, id: number, lock = false): Promise<WebhookRow> => {
    const q = db<WebhookRow>('webhooks').where({ id }).first();
    const row = await (lock ? q.forUpdate() : q);
    if (!row) throw new NotFoundError(`webhook ${id} not found`, 'WEBHOOK_NOT_FOUND');
    return row;
  };
  const checkUrl = async (value: string) => {
    const problem = await targetProblem(value, { allowPrivate: opts.allowPrivate, resolver: opts.resolver });
    if (problem) throw new ValidationError(`url ${problem}`, { fields: [{ path: 'body.url', message: problem }] }, 'WEBHOOK_URL_REFUSED');
  };

  return {
    /** A page of webhooks, oldest first. @throws ValidationError `PAGE_TOO_DEEP` */
    async list(p: { page: number; pageSize: number }): Promise<{ data: Webhook[]; total: number }> {
      const [rows, count] = await Promise.all([
        knex<WebhookRow>('webhooks').orderBy('id').limit(p.pageSize).offset(pageOffset(p.page, p.pageSize)),
        knex('webhooks').count({ n: '*' }).first(),
      ]);
      return { data: rows.map(toWebhook), total: Number(count?.n ?? 0) };
    },

    /** @throws NotFoundError `WEBHOOK_NOT_FOUND` */
    get: async (id: number): Promise<Webhook> => toWebhook(await load(knex, id)),

    /**
     * Creates a webhook with a new secret.
     * @returns the webhook and its secret (the only time it is shown)
     * @throws ValidationError `WEBHOOK_URL_REFUSED`; the keyring's error when a stored secret cannot be sealed
     */
    async create(input: z.output<typeof createWebhookBody>): Promise<{ webhook: Webhook; secret: string }> {
      await checkUrl(input.url);
      const secret = generateWebhookSecret();
      const [id] = await knex('webhooks').insert({
        url: input.url,
        events: JSON.stringify(input.events),
        active: input.active ?? true,
        secret_enc: sealWebhookSecret(secret, opts.secrets),
      });
      return { webhook: toWebhook(await load(knex, Number(id))), secret };
    },

    /** @throws NotFoundError; SiloError 428 `VERSION_REQUIRED`; ConflictError `VERSION_CONFLICT`; ValidationError `WEBHOOK_URL_REFUSED` */
    async update(id: number, input: z.output<typeof updateWebhookBody>, version: number | undefined): Promise<Webhook> {
      if (input.url !== undefined) await checkUrl(input.url);
      return knex.transaction(async (trx) => {
        const before = await load(trx, id, true);
        assertVersion(version ?? input.version, before.version, 'webhook');
        const patch: Record<string, unknown> = { version: before.version + 1 };
        if (input.url !== undefined) patch.url = input.url;
        if (input.events !== undefined) patch.events = JSON.stringify(input.events);
        if (input.active !== undefined) patch.active = input.active;
        await trx('webhooks').where({ id }).update(patch);
        return toWebhook(await load(trx, id));
      });
    },

    /** Deletes the webhook and its delivery log. @throws NotFoundError */
    async remove(id: number): Promise<void> {
      const n = await knex('webhooks').where({ id }).delete();
      if (!n) throw new NotFoundError(`webhook ${id} not found`, 'WEBHOOK_NOT_FOUND');
    },

    /** A new secret (the old one stops signing at once). @returns the webhook and its new secret @throws NotFoundError */
    async rotateSecret(id: number): Promise<{ webhook: Webhook; secret: string }> {
      const secret = generateWebhookSecret();
      return knex.transaction(async (trx) => {
        const before = await load(trx, id, true);
        await trx('webhooks')
          .where({ id })
          .update({ secret_enc: sealWebhookSecret(secret, opts.secrets), version: before.version + 1 });
        return { webhook: toWebhook(await load(trx, id)), secret };
      });
    },

    /** The webhook's delivery attempts, newest first. @throws NotFoundError; ValidationError `PAGE_TOO_DEEP` */
    async deliveries(id: number, p: { page: number; pageSize: number }): Promise<{ data: Delivery[]; total: number }> {
      await load(knex, id);
      const base = knex('webhook_deliveries as d').where('d.webhook_id', id);
      const [rows, count] = await Promise.all([
        base
          .clone()
          .join('webhook_events as e', 'e.id', 'd.event_id')
          .orderBy('d.id', 'desc')
          .limit(p.pageSize)
          .offset(pageOffset(p.page, p.pageSize))
          .select('d.*', 'e.public_id', 'e.type'),
        base.clone().count({ n: '*' }).first(),
      ]);
      return { data: (rows as DeliveryRow[]).map(toDelivery), total: Number(count?.n ?? 0) };
    },

    /**
     * Schedules a new attempt of a delivery's event to the webhook, due now (retried like
     * any failed attempt for the retry window from now).
     * @throws NotFoundError `WEBHOOK_NOT_FOUND`, `DELIVERY_NOT_FOUND`; ConflictError `DELIVERY_PENDING` while an attempt of that event is pending
     */
    async redeliver(id: number, deliveryId: number): Promise<Delivery> {
      return knex.transaction(async (trx) => {
        await trx('webhooks')
          .where({ id })
          .forShare()
          .first('id')
          .then((r: unknown) => {
            if (!r) throw new NotFoundError(`webhook ${id} not found`, 'WEBHOOK_NOT_FOUND');
          });
        const d = await trx<DeliveryRow>('webhook_deliveries').where({ id: deliveryId, webhook_id: id }).first();
        if (!d) throw new NotFoundError(`delivery ${deliveryId} of webhook ${id} not found`, 'DELIVERY_NOT_FOUND');
        const attempts = await trx('webhook_deliveries').where({ webhook_id: id, event_id: d.event_id }).forUpdate().select('attempt', 'status');
        if (attempts.some((a: { status: string }) => a.status === 'pending'))
          throw new ConflictError('an attempt of this event is already pending', 'DELIVERY_PENDING');
        const now = new Date();
        const [newId] = await trx('webhook_deliveries').insert({
          webhook_id: id,
          event_id: d.event_id,
          attempt: Math.max(...attempts.map((a: { attempt: number }) => a.attempt)) + 1,
          status: 'pending',
          next_attempt_at: now,
          retry_until: new Date(now.getTime() + opts.retryWindowMs),
        });
        const row: unknown = await trx('webhook_deliveries as d')
          .join('webhook_events as e', 'e.id', 'd.event_id')
          .where('d.id', newId)
          .first('d.*', 'e.public_id', 'e.type');
        return toDelivery(row as DeliveryRow);
      });
    },

    /** Active webhooks of the tenant (what the catalog's `webhook_tenants` records). */
    async activeCount(): Promise<number> {
      const r = await knex('webhooks').where({ active: true }).count({ n: '*' }).first();
      return Number(r?.n ?? 0);
    },
  };
}

/** A `webhook_deliveries` row joined with its event's public id and type. */
export interface DeliveryRow {
  id: number;
  webhook_id: number;
  event_id: number;
  attempt: number;
  status: Delivery['status'];
  next_attempt_at: Date;
  retry_until: Date | null;
  locked_until: Date | null;
  lease_token: string | null;
  attempted_at: Date | null;
  status_code: number | null;
  error: string | null;
  latency_ms: number | null;
  public_id: string;
  type: string;
}

const toDelivery = (r: DeliveryRow): Delivery => ({
  id: Number(r.id),
  eventId: r.public_id,
  eventType: r.type,
  attempt: r.attempt,
  status: r.status,
  statusCode: r.status_code,
  error: r.error,
  latencyMs: r.latency_ms,
  scheduledAt: r.next_attempt_at,
  attemptedAt: r.attempted_at,
});
