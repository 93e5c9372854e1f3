/**
 * Where chunk bytes come from: the nydusd backends (`registry`, `localfs`) behind one interface,
 * `readRange(blobId, offset, length)`, with nydusd's per-request timeout and retry limit and the
 * backend metrics. The cache above verifies every chunk; nothing here trusts or checks content.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { FormatError, NydusError, NotFoundError, noopLogger, type BlobBackend, type Digest, type Logger } from '@nydus-ts/core';
import { RegistryClient, RetryBudget } from '@nydus-ts/registry';
import { Agent, ProxyAgent, type Dispatcher } from 'undici';
import { ConfigError, type BackendConfig, type LocalfsBackendConfig, type RegistryBackendConfig } from '../config/daemon-config.js';
import { BackendMetrics } from '../metrics/metrics.js';

export interface DaemonBackend extends BlobBackend {
  readonly type: 'registry' | 'localfs';
  /** `readRange` into the caller's buffer (exactly `target.byteLength` bytes at `offset`). */
  readInto(blobId: string, offset: number, target: Uint8Array, signal?: AbortSignal): Promise<void>;
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
  private readonly dirs: string[];
  private readonly blobFile: string | undefined;
  private readonly handles = new Map<string, Promise<FileHandle>>();

  constructor(config: LocalfsBackendConfig, _logger: Logger) {
    this.dirs = [config.dir, ...config.altDirs].filter((d): d is string => !!d);
    this.blobFile = config.blobFile;
  }

  /** The open blob file: `blob_file`, or the first directory holding `<blob id>`. */
  private handle(blobId: string): Promise<FileHandle> {
    let h = this.handles.get(blobId);
    if (h) return h;
    h = (async () => {
      if (this.blobFile) return open(this.blobFile, 'r');
      if (!/^[0-9a-zA-Z_.-]+$/.test(blobId) || blobId.startsWith('.')) throw new NydusError('INVALID_ARGUMENT', `blob id "${blobId}" cannot name a file`);
      for (const dir of this.dirs) {
        try {
          return await open(path.join(dir, blobId), 'r');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      throw new NotFoundError(`blob ${blobId} not found in ${this.dirs.join(', ')}`);
    })();
    this.handles.set(blobId, h);
    h.catch(() => this.handles.delete(blobId));
    return h;
  }

  async readRange(blobId: string, offset: number, length: number): Promise<Uint8Array> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(blobId, offset, out);
    return out;
  }

  async readInto(blobId: string, offset: number, target: Uint8Array): Promise<void> {
    const started = performance.now();
    const length = target.byteLength;
    try {
      const fh = await this.handle(blobId);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(target, done, length - done, offset + done);
        if (bytesRead === 0) throw new FormatError(`blob ${blobId}`, `range [${offset}, +${length}) exceeds the blob file`, { offset: offset + done });
        done += bytesRead;
      }
      this.metrics.record(length, Math.round((performance.now() - started) * 1000), true);
    } catch (err) {
      this.metrics.record(length, Math.round((performance.now() - started) * 1000), false);
      throw err;
    }
  }

  async close(): Promise<void> {
    const handles = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(handles.map(async (h) => (await h.catch(() => undefined))?.close()));
  }
}

// ------------------------------------------------------------------ registry

/** A read that did not finish within its whole budget (the registry client's retries included). */
class ReadDeadlineError extends NydusError {
  constructor(what: string, ms: number) {
    super('UNAVAILABLE', `${what}: not done within ${ms} ms`);
    this.name = 'ReadDeadlineError';
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
  const retry = { attempts: config.retryLimit + 1, baseDelayMs: options.baseRetryDelayMs ?? 200, maxDelayMs: options.maxRetryDelayMs ?? 10_000 };

  const direct = withHeaders(new Agent({ connections: 16, keepAliveTimeout: 30_000, connect: { ...tls, timeout: connectTimeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }), headers);
  const dispatchers: Dispatcher[] = [direct];
  const client = (dispatcher: Dispatcher): RegistryClient =>
    new RegistryClient({
      registry: config.host,
      // '' detects the scheme (HTTPS first); the dispatcher, not this flag, decides TLS checks.
      insecure: config.scheme !== 'https',
      mirrors: config.mirrors.map((m) => ({ url: m.host })),
      ...(config.auth && { credentials: decodeAuth(config.auth) }),
      // nydusd's retry_limit: retries after the first try, for each blob read as a whole
      // (requests and Range resumes share one budget); `timeout`: the longest silence.
      retry,
      timeouts: { connectMs: connectTimeoutMs, idleMs: timeoutMs },
      dispatcher,
      logger,
      userAgent: 'nydusd-ts',
    });
  const routes: RegistryClient[] = [];
  if (config.proxy) {
    const proxied = withHeaders(new ProxyAgent({ uri: config.proxy.url, requestTls: tls, proxyTls: { timeout: connectTimeoutMs }, connect: { timeout: connectTimeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }), headers);
    dispatchers.push(proxied);
    routes.push(client(proxied));
    if (config.proxy.fallback) routes.push(client(direct));
  } else {
    routes.push(client(direct));
  }
  // The whole read's deadline, as nydusd counts it: each try may take connect_timeout plus
  // timeout, with the backoffs between tries. (Silence alone ends a try after `timeout`; the
  // deadline also ends a body that keeps trickling.)
  let backoffs = 0;
  for (let i = 1; i < retry.attempts; i++) backoffs += Math.min(retry.baseDelayMs * 2 ** (i - 1) * 1.25, retry.maxDelayMs);
  const perRoute = retry.attempts * (connectTimeoutMs + timeoutMs) + Math.ceil(backoffs);
  return new RegistryBackend(routes, dispatchers, config, perRoute * routes.length, logger);
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

/** `abc…` → the blob's digest in the registry. */
function digestOf(blobId: string): Digest {
  if (!/^[0-9a-f]{64}$/.test(blobId)) throw new NydusError('INVALID_ARGUMENT', `blob id "${blobId}" is not a sha256 hex digest`);
  return `sha256:${blobId}`;
}

class RegistryBackend implements DaemonBackend {
  readonly type = 'registry';
  readonly metrics = new BackendMetrics('registry');

  constructor(
    private readonly routes: RegistryClient[],
    private readonly dispatchers: Dispatcher[],
    private readonly config: RegistryBackendConfig,
    readonly maxReadMs: number,
    private readonly logger: Logger,
  ) {}

  async readRange(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(blobId, offset, out, signal);
    return out;
  }

  /**
   * One ranged GET (resumed with Range after resets and stalls, retried after 5xx/429, all within
   * the retry budget), through the proxy first when one is configured.
   */
  async readInto(blobId: string, offset: number, target: Uint8Array, signal?: AbortSignal): Promise<void> {
    const digest = digestOf(blobId);
    const length = target.byteLength;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new ReadDeadlineError(`blob ${blobId} bytes ${offset}+${length}`, this.maxReadMs)), this.maxReadMs);
    const combined = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
    let lastError: unknown;
    try {
      for (const [i, client] of this.routes.entries()) {
        const budget = new RetryBudget(client.transport.retry);
        const started = performance.now();
        try {
          await this.fetch(client, digest, offset, target, combined, budget);
          this.metrics.retries += budget.failures;
          this.metrics.record(length, Math.round((performance.now() - started) * 1000), true);
          return;
        } catch (err) {
          this.metrics.retries += budget.failures;
          this.metrics.record(length, Math.round((performance.now() - started) * 1000), false);
          lastError = deadline.signal.aborted && !signal?.aborted ? deadline.signal.reason : err;
          if (combined.aborted || i === this.routes.length - 1) break;
          this.logger.warn('proxy read failed, falling back to the registry', { proxy: this.config.proxy?.url, blob: blobId, error: (err as Error).message });
        }
      }
      throw lastError;
    } finally {
      clearTimeout(timer);
    }
  }

  private async fetch(client: RegistryClient, digest: Digest, offset: number, target: Uint8Array, signal: AbortSignal, budget: RetryBudget): Promise<void> {
    const length = target.byteLength;
    let pos = 0;
    const stream = client.fetchRange(this.config.repo, digest, offset, length, { signal, retryBudget: budget, highWaterMark: Math.min(length, 256 << 10) });
    for await (const chunk of stream) {
      const c = chunk as Buffer;
      if (pos + c.length > length) {
        stream.destroy();
        throw new NydusError('DATA_LOSS', `blob ${digest}: range [${offset}, +${length}) returned more than ${length} bytes`);
      }
      target.set(c, pos);
      pos += c.length;
    }
    if (pos !== length) throw new NydusError('DATA_LOSS', `blob ${digest}: range [${offset}, +${length}) returned ${pos} bytes`);
  }

  async close(): Promise<void> {
    await Promise.all(this.routes.map((c) => c.close()));
    await Promise.all(this.dispatchers.map((d) => d.close().catch(() => undefined)));
  }
}
