/**
 * How many requests a tenant made in a window, from the rollups (src/history/rollup.ts):
 * whole days, hours and minutes from `request_rollup`, the seconds at each end from the
 * raw rows, as the statistics read them (src/history/stats-rollup.ts). Exact, at most a
 * few small range reads whatever the traffic.
 */
import type { Knex } from 'knex';
import { GRAIN } from './rollup.js';
import { windowPieces } from './stats-rollup.js';

/**
 * Requests of tenant `tenantId` recorded in `[from, to)` (rows still in a recorder's
 * buffer are not written yet, so not counted).
 */
export async function tenantRequestCount(knex: Knex, tenantId: number, from: Date, to: Date): Promise<number> {
  if (!(from < to)) return 0;
  const pieces = windowPieces(from, to, 'day');
  const rolled = pieces.filter((p) => p.grain !== null);
  const raw = pieces.filter((p) => p.grain === null);
  const [sum, ...edges] = await Promise.all([
    rolled.length
      ? (knex('request_rollup')
          .where('tenant_id', tenantId)
          .where((w) => {
            for (const p of rolled)
              void w.orWhere((x) => void x.where('grain', GRAIN[p.grain!]).andWhere('period_start', '>=', p.from).andWhere('period_start', '<', p.to));
          })
          .sum({ n: 'requests' })
          .first() as Promise<{ n: number | string | null } | undefined>)
      : Promise.resolve(undefined),
    ...raw.map(
      (p) =>
        knex('request_history')
          .where('tenant_id', tenantId)
          .andWhere('created_at', '>=', p.from)
          .andWhere('created_at', '<', p.to)
          .count({ n: '*' })
          .first() as Promise<{ n: number | string } | undefined>,
    ),
  ]);
  return Number(sum?.n ?? 0) + edges.reduce((acc, e) => acc + Number(e?.n ?? 0), 0);
}
