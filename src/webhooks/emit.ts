/**
 * The transactional outbox: {@link emitEvent} writes an event in the caller's transaction,
 * next to the change it reports, so a change that rolls back emits nothing.
 *
 * Fan-out happens at write time: the event row is written once (`webhook_events`) and one
 * pending delivery per active webhook subscribed to its type (`webhook_deliveries`), in the
 * same transaction. Why at write time: the receivers of an event are the subscribers at
 * the moment of the change (a webhook made later does not get older events, one deleted
 * before the commit gets none); each (event, webhook) is then an independent unit of work
 * with its own lease and retry schedule; and a tenant without a subscriber to a type
 * writes nothing at all for it (one indexed read of its active webhooks). The webhooks
 * are read `FOR SHARE`, so a concurrent delete or change of one waits for this commit
 * (no delivery references a webhook deleted meanwhile) and the lock order is always
 * webhook row before delivery rows (as the dispatcher and a webhook delete take them).
 *
 * After the commit, {@link webhookCommits} tells this process's dispatchers which tenant
 * database has new deliveries, so they are sent at once rather than at the next sweep.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Knex } from 'knex';
import type { WebhookEventType } from './event-types.js';

/** Process-wide: `committed` carries the database name of a tenant whose commit wrote deliveries. */
export const webhookCommits = new EventEmitter<{ committed: [databaseName: string] }>();
webhookCommits.setMaxListeners(0);

/** A resource as the API shows it, or a function that loads it (called only when a webhook subscribes). */
export type EventResource = object | (() => Promise<object>);

/**
 * Emits `type` about `resource` in `trx`: writes the event and one pending delivery per
 * active webhook subscribed to `type`; writes nothing when none is. The resource is
 * serialized with `JSON.stringify` (dates become ISO 8601 strings), as the API shows it.
 * @param trx the transaction of the change (the event commits or rolls back with it)
 * @param resource the resource, or a loader for it (so a tenant without subscribers pays no read)
 * @throws the MySQL error of the read or the inserts (the caller's transaction then rolls back)
 */
export async function emitEvent(trx: Knex.Transaction, type: WebhookEventType, resource: EventResource): Promise<void> {
  const read: unknown = await trx('webhooks').where({ active: true }).forShare().select('id', 'events', trx.raw('DATABASE() AS db'));
  const rows = read as Array<{ id: number; events: unknown; db: string }>;
  const subscribed = rows.filter((r) => eventsOf(r.events).includes(type));
  if (!subscribed.length) return;
  const data: object = typeof resource === 'function' ? await (resource as () => Promise<object>)() : resource;
  const now = new Date();
  const [eventId] = await trx('webhook_events').insert({ public_id: randomUUID(), type, data: JSON.stringify(data), occurred_at: now });
  await trx('webhook_deliveries').insert(subscribed.map((w) => ({ webhook_id: w.id, event_id: eventId, attempt: 1, status: 'pending', next_attempt_at: now })));
  const db = subscribed[0]!.db;
  // A hint only: the dispatcher looks for due rows and finds none if an outer transaction rolled back.
  void trx.executionPromise?.then(
    () => webhookCommits.emit('committed', db),
    () => undefined,
  );
}

/** The subscribed types of a `webhooks.events` value (JSON text or, from some drivers, parsed). */
export function eventsOf(value: unknown): string[] {
  const parsed: unknown = typeof value === 'string' ? JSON.parse(value) : value;
  return Array.isArray(parsed) ? parsed.map(String) : [];
}
