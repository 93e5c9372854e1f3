/**
 * Where chunk bytes come from: the nydusd backends (`registry`, `localfs`) behind one interface,
 * `readRange(blobId, offset, length)`, with nydusd's per-request timeout and retry limit and the
 * backend metrics. The cache above verifies every chunk; nothing here trusts or checks content.
 */
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError, NydusError, NotFoundError, noopLogger, type BlobBackend, type Logger } from '@nydus-ts/core';
import { LocalBlobBackend, RegistryBlobBackend } from '@nydus-ts/backend';
import { RegistryClient, RegistryResponseError, isRetryableError } from '@nydus-ts/registry';
import { Agent, ProxyAgent, type Dispatcher } from 'undici';
import { ConfigError, type BackendConfig, type LocalfsBackendConfig, type RegistryBackendConfig } from '../config/daemon-config.js';
import { BackendMetrics } from '../metrics/metrics.js';

export interface DaemonBackend extends BlobBackend {
  readonly type: 'registry' | 'localfs';
  readonly metrics: BackendMetrics;
  /**
   * The longest one `readRange` can take before it settles (tries × timeout + backoff), so a
   * filesystem operation waiting on it can answer EIO rather than time out.
   */
  readonly maxReadMs: number;
  close(): Promise<void>;
}

export interface DaemonBackendOptions {
  logger?: Logger;
  /** Longest wait between retries, also the cap on Retry-After (default 10 s). */
  maxRetryDelayMs?: number;
  /** First retry delay (default 200 ms), doubling with jitter. */
  baseRetryDelayMs?: number;
}

/** Creates the backend a configuration names. Bad or incomplete settings are a ConfigError. */
export async function createDaemonBackend(config: BackendConfig, keyPrefix: string, options: DaemonBackendOptions = {}): Promise<DaemonBackend> {
  const logger = (options.logger ?? noopLogger).child({ backend: config.type });
  if (config.type === 'localfs') return new LocalfsBackend(config, logger);
  return createRegistryBackend(config, keyPrefix, logger, options);
}

// ------------------------------------------------------------------ localfs

class LocalfsBackend implements DaemonBackend {
  readonly type = 'localfs';
  readonly metrics = new BackendMetrics('localfs');
  readonly maxReadMs = 60_000;
  private readonly dirs: LocalBlobBackend[];
  private readonly blobFile: LocalBlobBackend | undefined;
  private readonly blobFileName: string | undefined;

  constructor(config: LocalfsBackendConfig, _logger: Logger) {
    this.dirs = [config.dir, ...config.altDirs].filter((d): d is string => !!d).map((d) => new LocalBlobBackend(d));
    if (config.blobFile) {
      const slash = config.blobFile.lastIndexOf('/');
      this.blobFile = new LocalBlobBackend(slash >= 0 ? config.blobFile.slice(0, slash) || '/' : '.');
      this.blobFileName = config.blobFile.slice(slash + 1);
    }
  }

  async readRange(blobId: string, offset: number, length: number): Promise<Uint8Array> {
    const started = performance.now();
    try {
      const bytes = await this.read(blobId, offset, length);
      this.metrics.record(length, Math.round((performance.now() - started) * 1000), true);
      return bytes;
    } catch (err) {
      this.metrics.record(length, Math.round((performance.now() - started) * 1000), false);
      throw err;
    }
  }

  private async read(blobId: string, offset: number, length: number): Promise<Uint8Array> {
    if (this.blobFile) return this.blobFile.readRange(this.blobFileName!, offset, length);
    let lastError: unknown;
    for (const dir of this.dirs) {
      try {
        return await dir.readRange(blobId, offset, length);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        lastError = err;
      }
    }
    throw lastError ?? new NotFoundError(`blob ${blobId}: no localfs directory configured`);
  }

  async close(): Promise<void> {
    await Promise.all([...this.dirs, ...(this.blobFile ? [this.blobFile] : [])].map((d) => d.close()));
  }
}

// ------------------------------------------------------------------ registry

/** A request that did not finish within the configured `timeout` (retryable). */
class RequestTimeoutError extends NydusError {
  constructor(what: string, ms: number) {
    super('UNAVAILABLE', `${what}: no answer within ${ms} ms`);
    this.name = 'RequestTimeoutError';
  }
}

async function createRegistryBackend(config: RegistryBackendConfig, keyPrefix: string, logger: Logger, options: DaemonBackendOptions): Promise<DaemonBackend> {
  if (!config.host) throw new ConfigError(`${keyPrefix}.host`, 'is required for the registry backend');
  if (!config.repo) throw new ConfigError(`${keyPrefix}.repo`, 'is required for the registry backend');
  const ca = config.caCertFiles.length === 0 ? undefined : [...rootCertificates, ...(await Promise.all(config.caCertFiles.map((f, i) => readTlsFile(f, `${keyPrefix}.ca_cert_files[${i}]`))))];
  const cert = config.clientCertFile ? await readTlsFile(config.clientCertFile, `${keyPrefix}.client_cert_file`) : undefined;
  const key = config.clientKeyFile ? await readTlsFile(config.clientKeyFile, `${keyPrefix}.client_key_file`) : undefined;
  const tls = { rejectUnauthorized: !config.skipVerify, ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) };
  const timeoutMs = config.timeoutSeconds * 1000;
  const connectTimeoutMs = config.connectTimeoutSeconds * 1000;
  const headers = requestHeaders(config);

  const direct = withHeaders(new Agent({ connections: 16, keepAliveTimeout: 30_000, connect: { ...tls, timeout: connectTimeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }), headers);
  const dispatchers: Dispatcher[] = [direct];
  const client = (dispatcher: Dispatcher): RegistryClient =>
    new RegistryClient({
      registry: config.host,
      // '' detects the scheme (HTTPS first); the dispatcher, not this flag, decides TLS checks.
      insecure: config.scheme !== 'https',
      mirrors: config.mirrors.map((m) => ({ url: m.host })),
      ...(config.auth && { credentials: decodeAuth(config.auth) }),
      retry: { attempts: 1 },
      dispatcher,
      logger,
      userAgent: 'nydusd-ts',
    });
  const routes: RegistryBlobBackend[] = [];
  if (config.proxy) {
    const proxied = withHeaders(new ProxyAgent({ uri: config.proxy.url, requestTls: tls, proxyTls: { timeout: connectTimeoutMs }, connect: { timeout: connectTimeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }), headers);
    dispatchers.push(proxied);
    routes.push(new RegistryBlobBackend(client(proxied), config.repo));
    if (config.proxy.fallback) routes.push(new RegistryBlobBackend(client(direct), config.repo));
  } else {
    routes.push(new RegistryBlobBackend(client(direct), config.repo));
  }
  return new RegistryBackend(routes, dispatchers, config, timeoutMs, logger, options);
}

async function readTlsFile(file: string, key: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function decodeAuth(auth: string): { username: string; password: string } {
  const text = Buffer.from(auth, 'base64').toString('utf8');
  const i = text.indexOf(':');
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

/** Extra headers by request origin: mirror headers, and the static bearer token for the registry. */
function requestHeaders(config: RegistryBackendConfig): Map<string, Record<string, string>> | undefined {
  const byOrigin = new Map<string, Record<string, string>>();
  for (const m of config.mirrors) if (Object.keys(m.headers).length > 0) byOrigin.set(new URL(m.host).origin, m.headers);
  if (config.registryToken) {
    const auth = { authorization: `Bearer ${config.registryToken}` };
    for (const scheme of ['http', 'https']) byOrigin.set(`${scheme}://${config.host}`, auth);
  }
  return byOrigin.size === 0 ? undefined : byOrigin;
}

/** Adds headers per origin to requests that do not already carry them. */
function withHeaders(dispatcher: Dispatcher, headers: Map<string, Record<string, string>> | undefined): Dispatcher {
  if (!headers) return dispatcher;
  return dispatcher.compose((dispatch) => (opts, handler) => {
    const extra = headers.get(String(opts.origin ?? '').replace(/\/$/, ''));
    if (!extra) return dispatch(opts, handler);
    const merged: Record<string, string> = {};
    const h = opts.headers;
    if (Array.isArray(h)) for (let i = 0; i + 1 < h.length; i += 2) merged[String(h[i]).toLowerCase()] = String(h[i + 1]);
    else if (h && typeof h === 'object') for (const [k, v] of Object.entries(h as Record<string, unknown>)) if (v !== undefined) merged[k.toLowerCase()] = String(v);
    for (const [k, v] of Object.entries(extra)) if (merged[k.toLowerCase()] === undefined) merged[k.toLowerCase()] = v;
    return dispatch({ ...opts, headers: merged }, handler);
  });
}

class RegistryBackend implements DaemonBackend {
  readonly type = 'registry';
  readonly metrics = new BackendMetrics('registry');
  readonly maxReadMs: number;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly routes: RegistryBlobBackend[],
    private readonly dispatchers: Dispatcher[],
    private readonly config: RegistryBackendConfig,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
    options: DaemonBackendOptions,
  ) {
    this.attempts = config.retryLimit + 1;
    this.baseDelayMs = options.baseRetryDelayMs ?? 200;
    this.maxDelayMs = options.maxRetryDelayMs ?? 10_000;
    this.maxReadMs = this.attempts * timeoutMs * routes.length + (this.attempts - 1) * this.maxDelayMs;
  }

  async readRange(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      try {
        const bytes = await this.tryRoutes(blobId, offset, length, signal);
        this.metrics.record(length, Math.round((performance.now() - started) * 1000), true);
        return bytes;
      } catch (err) {
        this.metrics.record(length, Math.round((performance.now() - started) * 1000), false);
        if (signal?.aborted) throw new CancelledError('operation cancelled', { cause: signal.reason });
        if (attempt >= this.attempts || !(err instanceof RequestTimeoutError || isRetryableError(err))) throw err;
        const retryAfter = err instanceof RegistryResponseError ? err.retryAfterSeconds : undefined;
        const delay = retryAfter !== undefined ? Math.min(retryAfter * 1000, this.maxDelayMs) : Math.min(this.baseDelayMs * 2 ** (attempt - 1), this.maxDelayMs) * (0.75 + Math.random() * 0.5);
        this.metrics.retries++;
        this.logger.debug('retrying blob read', { blob: blobId, offset, length, attempt, delayMs: Math.round(delay), error: (err as Error).message });
        try {
          await sleep(delay, undefined, signal ? { signal } : undefined);
        } catch {
          throw new CancelledError('operation cancelled', { cause: signal?.reason });
        }
      }
    }
  }

  /** The proxy, then (with fallback) the registry itself; each under the request timeout. */
  private async tryRoutes(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    let lastError: unknown;
    for (const [i, route] of this.routes.entries()) {
      try {
        return await this.withTimeout(route, blobId, offset, length, signal);
      } catch (err) {
        lastError = err;
        if (signal?.aborted || i === this.routes.length - 1) break;
        this.logger.warn('proxy read failed, falling back to the registry', { proxy: this.config.proxy?.url, blob: blobId, error: (err as Error).message });
      }
    }
    throw lastError;
  }

  private async withTimeout(route: RegistryBlobBackend, blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const timer = new AbortController();
    const handle = setTimeout(() => timer.abort(new RequestTimeoutError(`blob ${blobId} bytes ${offset}+${length}`, this.timeoutMs)), this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timer.signal]) : timer.signal;
    try {
      return await route.readRange(blobId, offset, length, combined);
    } catch (err) {
      if (timer.signal.aborted && !signal?.aborted) throw timer.signal.reason as RequestTimeoutError;
      throw err;
    } finally {
      clearTimeout(handle);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.routes.map((r) => r.client.close()));
    await Promise.all(this.dispatchers.map((d) => d.close().catch(() => undefined)));
  }
}
