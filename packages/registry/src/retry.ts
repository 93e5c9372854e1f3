import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError, InvalidArgumentError, NydusError, isNydusError } from '@nydus-ts/core';
import { RegistryConnectionError, RegistryProtocolError, RegistryResponseError } from './errors.js';

/** How failed registry requests are retried. */
export interface RetryOptions {
  /**
   * Tries in a row, the first included (default 5), for one request or, when it shares a
   * {@link RetryBudget}, for everything one blob transfer does (its GETs, resumes and uploads
   * together; a body that broke after new bytes starts a new row). 1: no retry at all.
   */
  attempts?: number;
  /** First backoff delay in ms (default 200); doubles each try, with jitter. */
  baseDelayMs?: number;
  /** Longest wait between tries, also caps `Retry-After` (default 10 000 ms). */
  maxDelayMs?: number;
}

export type ResolvedRetryOptions = Required<RetryOptions>;

export function resolveRetryOptions(options: RetryOptions = {}): ResolvedRetryOptions {
  const attempts = options.attempts ?? 5;
  if (!Number.isSafeInteger(attempts) || attempts < 1) throw new InvalidArgumentError(`retry attempts must be a positive integer, got ${attempts}`);
  for (const key of ['baseDelayMs', 'maxDelayMs'] as const) {
    const v = options[key];
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new InvalidArgumentError(`retry ${key} must be a non-negative number of milliseconds, got ${v}`);
  }
  return {
    attempts,
    baseDelayMs: options.baseDelayMs ?? 200,
    maxDelayMs: options.maxDelayMs ?? 10_000,
  };
}

/** How long a registry may take before a request counts as failed (and is retried or resumed). */
export interface TimeoutOptions {
  /** TCP connect plus TLS handshake, in ms (default 30 000). */
  connectMs?: number;
  /**
   * Longest time without receiving a byte while one is awaited, in ms (default 60 000): the
   * response headers after a request is sent, each part of a body the reader is ready for, and a
   * request body the registry stops taking. A body the reader is not asking for never times out.
   */
  idleMs?: number;
}

export type ResolvedTimeoutOptions = Required<TimeoutOptions>;

export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

export function resolveTimeoutOptions(options: TimeoutOptions = {}): ResolvedTimeoutOptions {
  const check = (value: number | undefined, name: string, fallback: number): number => {
    if (value === undefined) return fallback;
    if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError(`${name} timeout must be a positive whole number of milliseconds, got ${value}`);
    return value;
  };
  return { connectMs: check(options.connectMs, 'connect', DEFAULT_CONNECT_TIMEOUT_MS), idleMs: check(options.idleMs, 'idle', DEFAULT_IDLE_TIMEOUT_MS) };
}

/** HTTP statuses worth another try: 408, 429 and 5xx except 501/505. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/** True for failures that may go away: broken connections, short bodies, 5xx, 429. Never for other 4xx. */
export function isRetryableError(err: unknown): boolean {
  if (err instanceof RetryExhaustedError) return false; // retried already: never again by an outer loop
  if (err instanceof RegistryResponseError) return isRetryableStatus(err.status);
  if (err instanceof RegistryConnectionError) return err.retryable;
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
 * A failure retried until the budget ran out: the last error's code and message, plus how many
 * attempts were made. Never retried again by an enclosing loop.
 */
export class RetryExhaustedError extends NydusError {
  /** Tries made in all (each failed). */
  readonly attempts: number;
  readonly lastError: unknown;

  constructor(lastError: unknown, attempts: number) {
    const code = isNydusError(lastError) ? lastError.code : 'UNAVAILABLE';
    const message = lastError instanceof Error ? lastError.message : String(lastError);
    super(code, `${message} (gave up after ${attempts} attempt${attempts === 1 ? '' : 's'})`, { cause: lastError });
    this.name = 'RetryExhaustedError';
    this.attempts = attempts;
    this.lastError = lastError;
  }
}

/**
 * The tries one operation may spend, shared by everything it does: for a blob transfer, every
 * request, every `Range` resume and every fresh start draw from the same budget, so retries never
 * multiply. At most `attempts` failures in a row; a body that broke after bringing new bytes
 * starts the count afresh (see {@link fail}), so a long transfer that keeps moving is never cut
 * short, while fresh starts (which re-read what was read before) always count.
 */
export class RetryBudget {
  readonly options: ResolvedRetryOptions;
  #inRow = 0;
  #failures = 0;
  readonly #givenUp = new WeakSet<object>();

  constructor(options: RetryOptions | ResolvedRetryOptions = {}) {
    this.options = resolveRetryOptions(options);
  }

  /** Failed tries so far. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Records a failed try: the delay in ms before the next one, or throws what to give up with
   * (the error itself when it is not worth retrying, a {@link RetryExhaustedError} when the
   * budget is spent after more than one try, the error itself when one try was all it allowed).
   * `progressed`: the try brought new bytes before it failed (a body resumed from further on),
   * so it is the first failure of a new row.
   */
  fail(err: unknown, options: { retryable?: (err: unknown) => boolean; progressed?: boolean } = {}): number {
    // Given up on already (the same error passed on by an inner step): the same answer.
    if (typeof err === 'object' && err !== null && this.#givenUp.has(err)) throw err;
    if (!(options.retryable ?? isRetryableError)(err)) throw err;
    this.#failures++;
    this.#inRow = options.progressed ? 1 : this.#inRow + 1;
    if (this.#inRow >= this.options.attempts) {
      // With a single try allowed nothing was retried: the error goes on as it is, and a
      // caller with a retry loop of its own may still retry it.
      const final = this.#failures > 1 ? new RetryExhaustedError(err, this.#failures) : err;
      if (typeof final === 'object' && final !== null) this.#givenUp.add(final);
      throw final;
    }
    return backoffDelay(this.options, this.#inRow, err instanceof RegistryResponseError ? err.retryAfterSeconds : undefined);
  }
}

/**
 * Runs `fn` until it succeeds, fails with an error not worth retrying, or the budget (a fresh
 * one from `options`, or `hooks.budget` shared with other work) is spent. `onRetry` sees each
 * retried failure.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions | ResolvedRetryOptions,
  hooks: { signal?: AbortSignal; budget?: RetryBudget; onRetry?: (err: unknown, attempt: number, delayMs: number) => void; retryable?: (err: unknown) => boolean } = {},
): Promise<T> {
  const budget = hooks.budget ?? new RetryBudget(options);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (hooks.signal?.aborted) throw new CancelledError('operation cancelled', { cause: hooks.signal.reason });
      const delay = budget.fail(err, hooks.retryable ? { retryable: hooks.retryable } : {});
      hooks.onRetry?.(err, attempt, delay);
      await sleepWithSignal(delay, hooks.signal);
    }
  }
}
