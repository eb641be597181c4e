/**
 * The retry schedule of failed deliveries: exponential backoff with "equal jitter" (AWS
 * Architecture Blog, "Exponential Backoff And Jitter"): before attempt n + 1 wait
 * d/2 + random(0, d/2) where d = min(max, base x 2^(n-1)), as long as that attempt starts
 * before the retry deadline (the event's time, or the redelivery request's, plus the
 * retry window: 24 h by default); past it the delivery is `failed`.
 */

/** Retry settings, ms. */
export interface RetryPolicy {
  retryBaseMs: number;
  retryMaxMs: number;
  retryWindowMs: number;
}

/**
 * When to try again after failed attempt `attempt` (1-based).
 * @param now the failure time, ms since the epoch
 * @param deadline the last time an attempt may start, ms since the epoch
 * @param random a number in [0, 1) (default Math.random)
 * @returns the next attempt's time (ms since the epoch), or null: give up
 */
export function nextAttemptAt(policy: RetryPolicy, attempt: number, now: number, deadline: number, random: () => number = Math.random): number | null {
  const d = Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** Math.min(attempt - 1, 40));
  const at = now + d / 2 + random() * (d / 2);
  return at <= deadline ? Math.round(at) : null;
}
