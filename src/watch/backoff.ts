// When a failed target is tried again. Pure: the watch loop owns the timers.

export interface RetryPolicy {
  /** Delay before the first retry of a retryable failure. */
  minMs: number
  /** The longest delay, and the delay of every retry after a failure that is not retryable. */
  maxMs: number
}

export const DEFAULT_RETRY: RetryPolicy = {minMs: 1000, maxMs: 60_000}

/**
 * The delay before attempt number `step + 1` after `step` consecutive failures (step >= 1).
 * A retryable failure (network, timeout, a lock held by another publisher) doubles from `minMs`
 * up to `maxMs`; any other failure (a missing root, a permission, a safety limit) needs someone
 * to fix something, so it is retried only every `maxMs` instead of hammering the slave.
 */
export function retryDelay(step: number, retryable: boolean, policy: RetryPolicy): number {
  if (!retryable) return policy.maxMs
  const exponent = Math.max(0, step - 1)
  // 2 ** 31 is already far beyond any sane maxMs; bounding the exponent keeps it finite.
  return Math.min(policy.maxMs, policy.minMs * 2 ** Math.min(exponent, 31))
}
