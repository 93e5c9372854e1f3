import { describe, expect, it } from 'vitest';
import { isNydusError } from '@nydus-ts/core';
import { RegistryClient, RegistryConnectionError, RetryBudget, RetryExhaustedError, isRetryableError, withRetry } from '../src/index.js';
import { startFaultProxy, startRegistry } from '../src/testing/index.js';

const reset = (): RegistryConnectionError => new RegistryConnectionError('GET', 'http://127.0.0.1:1/v2/', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), { what: 'fetching blob sha256:ab from 127.0.0.1:1/a' });

describe('RetryBudget', () => {
  it('allows `attempts` failures in a row without progress, then gives up naming them', () => {
    const budget = new RetryBudget({ attempts: 3, baseDelayMs: 0 });
    expect(budget.fail(reset())).toBeGreaterThanOrEqual(0);
    budget.fail(reset());
    budget.fail(reset(), { progressed: true }); // a body that brought new bytes: a new row starts
    budget.fail(reset());
    const last = reset();
    let thrown: unknown;
    try {
      budget.fail(last);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(RetryExhaustedError);
    expect((thrown as RetryExhaustedError).attempts).toBe(5);
    expect((thrown as RetryExhaustedError).lastError).toBe(last);
    expect(isNydusError(thrown, 'UNAVAILABLE')).toBe(true);
    expect((thrown as Error).message).toBe(`${last.message} (gave up after 5 attempts)`);
    // Passed on by an inner step and seen again by an outer one: not counted twice, not retried.
    expect(() => budget.fail(thrown)).toThrow(thrown as Error);
    expect(budget.failures).toBe(5);
    expect(isRetryableError(thrown)).toBe(false);
  });

  it('with one try allowed, the failure goes on unwrapped (still retryable for a caller with its own loop)', async () => {
    const err = reset();
    expect(() => new RetryBudget({ attempts: 1 }).fail(err)).toThrow(err);
    expect(isRetryableError(err)).toBe(true);
    let calls = 0;
    await expect(withRetry(async () => {
      calls++;
      throw err;
    }, { attempts: 1 })).rejects.toBe(err);
    expect(calls).toBe(1);
  });

  it('a client with retry.attempts 1 makes one request and reports the raw status (the daemon retries on its own)', async () => {
    const registry = await startRegistry();
    const proxy = await startFaultProxy(registry.url, [{ method: 'GET', path: /\/manifests\//, action: { kind: 'status', status: 503 }, times: Infinity }]);
    const client = new RegistryClient({ registry: proxy.host, insecure: true, retry: { attempts: 1 } });
    try {
      const err = await client.getManifest('a/b', 'v1').catch((e: unknown) => e);
      expect(isRetryableError(err)).toBe(true);
      expect((err as { status?: number }).status).toBe(503);
      expect(proxy.requests.filter((q) => q.path.includes('/manifests/'))).toHaveLength(1);
    } finally {
      await client.close();
      await proxy.stop();
      await registry.stop();
    }
  });

  it('refuses nonsensical retry options', () => {
    for (const retry of [{ attempts: 0 }, { attempts: 1.5 }, { baseDelayMs: -1 }, { maxDelayMs: Number.NaN }]) {
      expect(() => new RetryBudget(retry)).toThrow(/retry/);
    }
  });
});
