/**
 * The one registry of webhook event types. Routes validate subscriptions against it and the
 * OpenAPI document lists it (`WebhookEventType`). Types of resources other engineers are
 * adding (leads, tasks, notes) are reserved here: subscribing to them works now, and their
 * services emit them with `emitEvent` (src/webhooks/emit.ts) once they exist.
 */
import { z } from 'zod';

const lifecycle = <R extends string>(resource: R) => [`${resource}.created`, `${resource}.updated`, `${resource}.deleted`, `${resource}.restored`] as const;

/** Every event type, in documentation order. */
export const WEBHOOK_EVENT_TYPES = [
  ...lifecycle('company'),
  ...lifecycle('contact'),
  ...lifecycle('deal'),
  'deal.won',
  'deal.lost',
  ...lifecycle('lead'),
  'lead.converted',
  ...lifecycle('task'),
  ...lifecycle('note'),
] as const;

/** An event type, e.g. `company.created`. */
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** The zod schema of an event type (an enum: the OpenAPI document lists every value). */
export const webhookEventTypeSchema = z.enum(WEBHOOK_EVENT_TYPES).meta({ id: 'WebhookEventType' });

const known = new Set<string>(WEBHOOK_EVENT_TYPES);
/** True when `type` is in the registry. */
export function isWebhookEventType(type: string): type is WebhookEventType {
  return known.has(type);
}
