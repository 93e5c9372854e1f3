import type { Readable } from 'node:stream';
import { lazyUndici } from './undici-lazy.js';
import type { Dispatcher } from 'undici';
import { CancelledError, InvalidArgumentError, noopLogger } from '@nydus-ts/core';
import type { Logger } from '@nydus-ts/core';
import { Authorizer } from './authorizer.js';
import type { CredentialsProvider } from './docker-config.js';
import type { RegistryEndpoint } from './endpoint.js';
import { rootCertificates } from 'node:tls';
import { RegistryConnectionError, RegistryResponseError, redactUrl } from './errors.js';
import { discardBody, readErrorBody } from './http-body.js';
import { registryEndpointHost } from './reference.js';
import { RetryBudget, isRetryableStatus, parseRetryAfter, resolveRetryOptions, resolveTimeoutOptions, withRetry } from './retry.js';
import type { ResolvedRetryOptions, ResolvedTimeoutOptions, RetryOptions, TimeoutOptions } from './retry.js';
import { parseWwwAuthenticate } from './www-authenticate.js';

/** A registry endpoint (TLS policy, credentials, mirrors, proxy, CA) plus connection settings. */
export interface RegistryTransportOptions extends Omit<RegistryEndpoint, 'host'> {
  /** Registry name as in references: `docker.io`, `127.0.0.1:5000`. */
  registry: string;
  /** Keep-alive connections per origin (default 8). */
  maxConnections?: number;
  /** Retries of failed requests: tries, backoff (see {@link RetryOptions}). */
  retry?: RetryOptions;
  /**
   * Connect and idle timeouts of every request, token requests included (defaults 30 s and
   * 60 s). A request that times out fails like a reset: it is retried, or a body resumed.
   * With `dispatcher` given, the connect timeout is that dispatcher's own.
   */
  timeouts?: TimeoutOptions;
  logger?: Logger;
  userAgent?: string;
  /** Use this undici dispatcher instead of building one. */
  dispatcher?: Dispatcher;
}

/** One place requests can go: a mirror or the origin registry. */
export interface Endpoint {
  /** `host[:port]` used for auth state and credential lookup. */
  host: string;
  mirror: boolean;
  insecure: boolean;
  /** Fixed scheme+host (+ path prefix) or undefined until probed (insecure origin). */
  base?: string;
}

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface RegistryRequest {
  method: HttpMethod;
  /** `/v2/...` on the chosen endpoint, or an absolute URL (upload locations) on the origin. */
  path: string | URL;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** A Readable body is sent once: such a request is neither retried nor re-authenticated. */
  body?: Buffer | string | Readable;
  /** Token scopes, e.g. `repository:library/alpine:pull`. */
  scopes: string[];
  /** Reads may be served by mirrors. */
  pull?: boolean;
  /** Statuses that count as success. */
  expect: number[];
  /** Describes the operation in errors, e.g. `blob sha256:… of library/alpine`. */
  what: string;
  signal?: AbortSignal;
  /** Override retry count for this request; 1: no retry, the failure passed on as it is (a probe, a step of an outer retry). */
  attempts?: number;
  /**
   * Tries shared with the rest of an operation (a blob transfer): this request's retries draw
   * from it instead of from a budget of their own. Ignored for mirrors, which get two tries.
   */
  retryBudget?: RetryBudget;
}

export interface RegistryReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Always consume or destroy it. */
  body: Readable;
  /** The URL that answered (after mirrors), for resolving relative `Location`s. */
  url: URL;
  endpoint: Endpoint;
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function proxySettings(proxy: RegistryEndpoint['proxy']): { http?: string; https?: string; noProxy?: string } {
  if (proxy === undefined) return {};
  const p = typeof proxy === 'string' ? { http: proxy, https: proxy } : proxy;
  for (const url of [p.http, p.https]) {
    if (url === undefined) continue;
    try {
      new URL(url);
    } catch {
      throw new InvalidArgumentError(`proxy "${url}" is not a URL (expected e.g. http://127.0.0.1:3128)`);
    }
  }
  return p;
}

function createDispatcher(options: RegistryTransportOptions, timeouts: ResolvedTimeoutOptions, insecure: boolean): Dispatcher {
  const connections = options.maxConnections ?? 8;
  // Nothing is verified when insecure, so no CA store either: an empty `ca` keeps Node from
  // building its root certificate store (~30-40 ms of CPU on the first TLS connection, which
  // the HTTPS probe of a plain-HTTP registry would otherwise pay).
  const extraCa = options.ca === undefined ? [] : Array.isArray(options.ca) ? options.ca : [options.ca];
  const tls = insecure ? { rejectUnauthorized: false, ca: [] } : extraCa.length > 0 ? { ca: [...rootCertificates, ...extraCa] } : {};
  const connect = { ...tls, timeout: timeouts.connectMs };
  const idle = { headersTimeout: timeouts.idleMs, bodyTimeout: timeouts.idleMs };
  const proxy = proxySettings(options.proxy);
  const { Agent, EnvHttpProxyAgent, interceptors } = lazyUndici();
  const base: Dispatcher = proxy.http || proxy.https
    ? new EnvHttpProxyAgent({
        // Empty rather than undefined: undici would read the proxy variables for a missing one.
        httpProxy: proxy.http ?? '',
        httpsProxy: proxy.https ?? '',
        noProxy: proxy.noProxy ?? '',
        connections,
        connect,
        requestTls: tls,
        proxyTls: { timeout: timeouts.connectMs },
        ...idle,
      })
    : new Agent({ connections, keepAliveTimeout: 30_000, connect, ...idle });
  return base.compose(interceptors.redirect({ maxRedirections: 5 }));
}

/**
 * HTTP to one registry (and its mirrors): endpoint choice, keep-alive pools, proxy variables,
 * auth challenges and retries with backoff. Knows nothing of manifests or blobs.
 */
export class RegistryTransport {
  readonly registry: string;
  readonly logger: Logger;
  readonly retry: ResolvedRetryOptions;
  readonly timeouts: ResolvedTimeoutOptions;
  readonly authorizer: Authorizer;
  readonly #options: RegistryTransportOptions;
  readonly #origin: Endpoint;
  readonly #mirrors: Endpoint[];
  readonly #dispatchers = new Map<boolean, Dispatcher>();
  readonly #ownDispatchers: Dispatcher[] = [];
  #originProbe: Promise<string> | undefined;

  constructor(options: RegistryTransportOptions) {
    if (!options.registry || /[/\s]/.test(options.registry)) {
      throw new InvalidArgumentError(`registry host "${options.registry}" is invalid`);
    }
    if (options.maxConnections !== undefined && !(Number.isInteger(options.maxConnections) && options.maxConnections > 0)) {
      throw new InvalidArgumentError(`maxConnections must be a positive integer, got ${options.maxConnections}`);
    }
    this.#options = options;
    this.registry = options.registry;
    this.logger = (options.logger ?? noopLogger).child({ registry: options.registry });
    this.retry = resolveRetryOptions(options.retry);
    this.timeouts = resolveTimeoutOptions(options.timeouts);
    const endpointHost = registryEndpointHost(options.registry);
    this.#origin = { host: endpointHost, mirror: false, insecure: options.insecure ?? false };
    if (!this.#origin.insecure) this.#origin.base = `https://${endpointHost}`;
    this.#mirrors = (options.mirrors ?? []).map((m) => {
      const mirror = typeof m === 'string' ? { url: m } : m;
      let url: URL;
      try {
        url = new URL(mirror.url);
      } catch {
        throw new InvalidArgumentError(`mirror "${mirror.url}" is not a URL (expected e.g. http://127.0.0.1:65001)`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new InvalidArgumentError(`mirror "${mirror.url}": only http and https are supported`);
      }
      return { host: url.host, mirror: true, insecure: mirror.insecure ?? false, base: `${url.origin}${url.pathname.replace(/\/+$/, '')}` };
    });
    const creds = options.credentials;
    const provider: CredentialsProvider | undefined =
      typeof creds === 'function' ? creds : creds ? async (host) => (host === endpointHost || host === options.registry ? creds : undefined) : undefined;
    this.authorizer = new Authorizer({
      credentials: provider ? (host) => provider(host === endpointHost ? options.registry : host) : undefined,
      dispatcher: this.dispatcher(options.insecure ?? false),
      logger: this.logger,
      userAgent: options.userAgent,
    } as ConstructorParameters<typeof Authorizer>[0]);
  }

  dispatcher(insecure: boolean): Dispatcher {
    if (this.#options.dispatcher) return this.#options.dispatcher;
    let d = this.#dispatchers.get(insecure);
    if (!d) {
      d = createDispatcher(this.#options, this.timeouts, insecure);
      this.#dispatchers.set(insecure, d);
      this.#ownDispatchers.push(d);
    }
    return d;
  }

  /** Closes the connection pools this transport created. */
  async close(): Promise<void> {
    await Promise.all(this.#ownDispatchers.map((d) => d.close().catch(() => undefined)));
  }

  /** The origin's base URL; for insecure registries probes HTTPS, then falls back to HTTP. */
  async originBase(signal?: AbortSignal): Promise<string> {
    if (this.#origin.base) return this.#origin.base;
    this.#originProbe ??= (async () => {
      const host = this.#origin.host;
      try {
        const res = await lazyUndici().request(`https://${host}/v2/`, { method: 'GET', dispatcher: this.dispatcher(true), signal, headersTimeout: this.timeouts.idleMs, bodyTimeout: this.timeouts.idleMs });
        await res.body.dump();
        this.#origin.base = `https://${host}`;
      } catch (err) {
        if (signal?.aborted) throw new CancelledError('operation cancelled', { cause: signal.reason });
        this.logger.debug('HTTPS probe failed, using plain HTTP', { host, reason: (err as { code?: string }).code ?? String(err) });
        this.#origin.base = `http://${host}`;
      }
      return this.#origin.base;
    })();
    try {
      return await this.#originProbe;
    } catch (err) {
      this.#originProbe = undefined;
      throw err;
    }
  }

  /**
   * `GET /v2/` on the origin: settles the scheme of an insecure registry and records its auth
   * challenge, so that later requests carry credentials (or fetch a token) at once instead of
   * each learning it from a 401 first. One attempt; callers use it to warm up a registry while
   * they wait for something else, so failures are left to the requests that follow.
   */
  async ping(signal?: AbortSignal): Promise<void> {
    const url = new URL(`${await this.originBase(signal)}/v2/`);
    let res: Dispatcher.ResponseData;
    try {
      res = await lazyUndici().request(url, { method: 'GET', headers: { 'user-agent': this.#options.userAgent ?? 'nydus-ts' }, dispatcher: this.dispatcher(this.#origin.insecure), signal, headersTimeout: this.timeouts.idleMs, bodyTimeout: this.timeouts.idleMs });
    } catch (err) {
      if (signal?.aborted) throw new CancelledError('operation cancelled', { cause: signal.reason });
      throw new RegistryConnectionError('GET', redactUrl(url), err, { what: `ping of ${this.registry}` });
    }
    await discardBody(res.body);
    if (res.statusCode === 401) {
      const challenges = parseWwwAuthenticate(header(res.headers, 'www-authenticate') ?? '');
      await this.authorizer.challenge(this.#origin.host, this.registry, challenges, []);
    }
  }

  /** Sends a request: mirrors first for pulls, auth on 401, retries for resets/5xx/429. */
  async request(req: RegistryRequest): Promise<RegistryReply> {
    const endpoints = req.pull && typeof req.path === 'string' ? [...this.#mirrors, this.#origin] : [this.#origin];
    let lastError: unknown;
    for (const endpoint of endpoints) {
      try {
        return await this.#requestEndpoint(endpoint, req);
      } catch (err) {
        if (!endpoint.mirror || req.signal?.aborted) throw err;
        lastError = err;
        this.logger.debug('mirror failed, trying next', { mirror: endpoint.base, what: req.what, error: String(err) });
      }
    }
    throw lastError;
  }

  async #url(endpoint: Endpoint, req: RegistryRequest): Promise<URL> {
    let url: URL;
    if (typeof req.path === 'string') {
      const base = endpoint.mirror ? endpoint.base! : await this.originBase(req.signal);
      url = new URL(base + req.path);
      if (endpoint.mirror) url.searchParams.set('ns', this.registry);
    } else {
      url = new URL(req.path.toString());
    }
    for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, v);
    return url;
  }

  async #requestEndpoint(endpoint: Endpoint, req: RegistryRequest): Promise<RegistryReply> {
    const url = await this.#url(endpoint, req);
    const streamBody = req.body !== undefined && typeof req.body !== 'string' && !Buffer.isBuffer(req.body);
    const credHost = endpoint.mirror ? endpoint.host : this.registry;
    let scopes = req.scopes;
    // One retry to answer the first challenge, one more if the token we then sent was refused.
    let authRetries = 0;
    const dispatcher = this.dispatcher(endpoint.insecure);
    const once = async (): Promise<RegistryReply> => {
      for (;;) {
        const headers: Record<string, string> = { 'user-agent': this.#options.userAgent ?? 'nydus-ts', ...req.headers };
        const authorization = await this.authorizer.authorization(endpoint.host, credHost, scopes, req.signal);
        if (authorization) headers.authorization = authorization;
        let res: Dispatcher.ResponseData;
        try {
          res = await lazyUndici().request(url, { method: req.method, headers, body: req.body, dispatcher, signal: req.signal, headersTimeout: this.timeouts.idleMs, bodyTimeout: this.timeouts.idleMs });
        } catch (err) {
          if (req.signal?.aborted) throw new CancelledError('operation cancelled', { cause: req.signal.reason });
          throw new RegistryConnectionError(req.method, redactUrl(url), err, { what: req.what });
        }
        const status = res.statusCode;
        if (req.expect.includes(status)) {
          return { status, headers: res.headers, body: res.body, url, endpoint };
        }
        if (status === 401 && !streamBody && (authRetries === 0 || (authRetries === 1 && authorization !== undefined))) {
          const challenges = parseWwwAuthenticate(header(res.headers, 'www-authenticate') ?? '');
          const body = req.method === 'HEAD' ? '' : await readErrorBody(res.body);
          if (req.method === 'HEAD') await res.body.dump();
          const next = await this.authorizer.challenge(endpoint.host, credHost, challenges, scopes, authorization);
          if (next) {
            authRetries++;
            scopes = next;
            continue;
          }
          throw new RegistryResponseError({ status, method: req.method, url: redactUrl(url), body, what: req.what });
        }
        const body = req.method === 'HEAD' ? '' : await readErrorBody(res.body);
        if (req.method === 'HEAD') await res.body.dump();
        const retryAfter = isRetryableStatus(status) ? parseRetryAfter(res.headers['retry-after']) : undefined;
        const details: ConstructorParameters<typeof RegistryResponseError>[0] = { status, method: req.method, url: redactUrl(url), body, what: req.what };
        if (retryAfter !== undefined) details.retryAfterSeconds = retryAfter;
        throw new RegistryResponseError(details);
      }
    };
    // A streamed body is sent once, as is a request asked for one attempt: the failure goes to
    // the caller as it is, whose retry (if any) counts it.
    if (streamBody || req.attempts === 1) return once();
    const attempts = req.attempts ?? (endpoint.mirror ? Math.min(2, this.retry.attempts) : this.retry.attempts);
    // A shared budget spans the whole operation (its other requests, resumes and restarts).
    const budget = req.retryBudget && !endpoint.mirror && req.attempts === undefined ? req.retryBudget : new RetryBudget({ ...this.retry, attempts });
    return withRetry(
      once,
      this.retry,
      {
        budget,
        signal: req.signal,
        onRetry: (err, attempt, delayMs) =>
          this.logger.debug('retrying registry request', { what: req.what, attempt, delayMs, error: err instanceof Error ? err.message : String(err) }),
      },
    );
  }
}
