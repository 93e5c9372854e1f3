import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError, isNydusError } from '@nydus-ts/core';
import { RegistryConnectionError, RegistryProtocolError, RegistryResponseError } from './errors.js';

/** How failed registry requests are retried. */
export interface RetryOptions {
  /** Tries per request, the first included (default 5). */
  attempts?: number;
  /** First backoff delay in ms (default 200); doubles each try, with jitter. */
  baseDelayMs?: number;
  /** Longest wait between tries, also caps `Retry-After` (default 10 000 ms). */
  maxDelayMs?: number;
}

export type ResolvedRetryOptions = Required<RetryOptions>;

export function resolveRetryOptions(options: RetryOptions = {}): ResolvedRetryOptions {
  return {
    attempts: Math.max(1, options.attempts ?? 5),
    baseDelayMs: Math.max(0, options.baseDelayMs ?? 200),
    maxDelayMs: Math.max(0, options.maxDelayMs ?? 10_000),
  };
}

/** HTTP statuses worth another try: 408, 429 and 5xx except 501/505. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/** True for failures that may go away: broken connections, short bodies, 5xx, 429. Never for other 4xx. */
export function isRetryableError(err: unknown): boolean {
  if (err instanceof RegistryResponseError) return isRetryableStatus(err.status);
  if (err instanceof RegistryConnectionError) return true;
  if (err instanceof RegistryProtocolError) return err.retryable;
  if (isNydusError(err, 'DATA_LOSS')) return true; // a corrupted transfer; a fresh one may be fine
  if (isNydusError(err)) return false;
  const code = (err as { code?: string } | undefined)?.code;
  return typeof code === 'string' && /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|ECONNABORTED|EAI_AGAIN|UND_ERR_SOCKET|UND_ERR_CLOSED|UND_ERR_CONNECT_TIMEOUT|UND_ERR_HEADERS_TIMEOUT|UND_ERR_BODY_TIMEOUT|UND_ERR_REQ_CONTENT_LENGTH_MISMATCH|UND_ERR_RES_CONTENT_LENGTH_MISMATCH)$/.test(code);
}

/** Seconds from a `Retry-After` header (delta-seconds or HTTP date). */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

/** Delay before try number `attempt` (1 = first retry): exponential with ±25 % jitter, or Retry-After. */
export function backoffDelay(options: ResolvedRetryOptions, attempt: number, retryAfterSeconds?: number): number {
  if (retryAfterSeconds !== undefined) return Math.min(retryAfterSeconds * 1000, options.maxDelayMs);
  const base = Math.min(options.baseDelayMs * 2 ** (attempt - 1), options.maxDelayMs);
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

export async function sleepWithSignal(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    throw new CancelledError('operation cancelled', { cause: signal?.reason ?? err });
  }
}

/**
 * Runs `fn` until it succeeds, fails with a non-retryable error or runs out of tries.
 * `onRetry` sees each retried failure.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: ResolvedRetryOptions,
  hooks: { signal?: AbortSignal; onRetry?: (err: unknown, attempt: number, delayMs: number) => void; retryable?: (err: unknown) => boolean } = {},
): Promise<T> {
  const retryable = hooks.retryable ?? isRetryableError;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (hooks.signal?.aborted) throw new CancelledError('operation cancelled', { cause: hooks.signal.reason });
      if (attempt >= options.attempts || !retryable(err)) throw err;
      const delay = backoffDelay(options, attempt, err instanceof RegistryResponseError ? err.retryAfterSeconds : undefined);
      hooks.onRetry?.(err, attempt, delay);
      await sleepWithSignal(delay, hooks.signal);
    }
  }
}
