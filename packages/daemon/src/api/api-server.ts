/**
 * nydusd's HTTP API on a unix socket (spec §7.2): HTTP/1.1, JSON bodies, 200 with a body or 204
 * without one, errors as `{"code": "UNDEFINED", "message": ...}` with 400/404/500/501/503.
 * `GET /metrics` serves the same counters in Prometheus text format.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';
import { isNydusError, noopLogger, type Logger, type LogLevel } from '@nydus-ts/core';
import type { Daemon, DaemonInstance } from '../daemon.js';
import { renderPrometheus } from './prometheus.js';

export interface ApiServerOptions {
  daemon: Daemon;
  logger?: Logger;
  /** Applies `PUT /api/v1/daemon {"log_level": ...}`. */
  setLogLevel?: (level: LogLevel) => void;
  /** Package version reported by `GET /api/v1/daemon`. */
  version?: string;
  /** Called for `PUT /api/v1/daemon/exit` (after the 204 is sent). */
  onExit?: () => void;
}

/** A failed request: HTTP status and message. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY = 1 << 20;
const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

export class ApiServer {
  private readonly server: Server;
  private readonly o: ApiServerOptions;
  private readonly logger: Logger;
  private socketPath: string | undefined;
  private readonly errors: Array<{ time: string; message: string }> = [];

  constructor(options: ApiServerOptions) {
    this.o = options;
    this.logger = options.logger ?? noopLogger;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err));
    });
    this.server.keepAliveTimeout = 5_000;
  }

  /** Listens on `socketPath` (a stale socket file is replaced). */
  async listen(socketPath: string): Promise<void> {
    await rm(socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.socketPath = socketPath;
  }

  /** Stops accepting connections, ends idle ones and removes the socket. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
    if (this.socketPath) await rm(this.socketPath, { force: true });
  }

  private send(res: ServerResponse, status: number, body?: unknown, contentType = 'application/json'): void {
    if (body === undefined) {
      res.writeHead(status === 200 ? 204 : status, { 'content-length': '0' });
      res.end();
      return;
    }
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': contentType, 'content-length': String(Buffer.byteLength(text)) });
    res.end(text);
  }

  private fail(res: ServerResponse, err: unknown): void {
    let status = 500;
    if (err instanceof ApiError) status = err.status;
    else if (isNydusError(err)) {
      status = { INVALID_ARGUMENT: 400, INVALID_FORMAT: 400, ALREADY_EXISTS: 400, FAILED_PRECONDITION: 400, NOT_FOUND: 404, UNSUPPORTED: 501, UNAVAILABLE: 503 }[err.code as string] ?? 500;
    }
    const message = err instanceof Error ? err.message : String(err);
    if (status >= 500) this.logger.error('API request failed', { error: message });
    this.errors.push({ time: new Date().toISOString(), message });
    if (this.errors.length > 500) this.errors.shift();
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.send(res, status, { code: 'UNDEFINED', message });
  }

  private async body(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
    const parts: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) throw new ApiError(400, `request body larger than ${MAX_BODY} bytes`);
      parts.push(c as Buffer);
    }
    if (size === 0) return undefined;
    let v: unknown;
    try {
      v = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch (err) {
      throw new ApiError(400, `body is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ApiError(400, 'body must be a JSON object');
    return v as Record<string, unknown>;
  }

  private instanceFor(url: URL): DaemonInstance {
    const id = url.searchParams.get('id') ?? url.searchParams.get('mountpoint') ?? undefined;
    const i = this.o.daemon.find(id);
    if (!i) throw new ApiError(404, id ? `no instance ${id}` : 'no instance (give ?id=MOUNTPOINT when several images are mounted)');
    return i;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://unix');
    const method = req.method ?? 'GET';
    const route = `${method} ${url.pathname.replace(/\/+$/, '') || '/'}`;
    const daemon = this.o.daemon;
    switch (route) {
      case 'GET /api/v1/daemon':
      case 'GET /api/v2/daemon':
        return this.send(res, 200, this.daemonInfo());
      case 'PUT /api/v1/daemon':
      case 'PUT /api/v2/daemon': {
        const body = (await this.body(req)) ?? {};
        const level = body.log_level;
        if (level !== undefined) {
          if (typeof level !== 'string' || !LOG_LEVELS.includes(level.toLowerCase() as LogLevel)) throw new ApiError(400, `log_level ${JSON.stringify(level)} is not one of ${LOG_LEVELS.join(', ')}`);
          this.o.setLogLevel?.(level.toLowerCase() as LogLevel);
        }
        return this.send(res, 204);
      }
      case 'GET /api/v1/daemon/events':
        return this.send(res, 200, { max_errors: 500, total_errors: this.errors.length, max_size: MAX_BODY, total_size: this.errors.reduce((n, e) => n + e.message.length, 0), errors: this.errors.map((e) => `${e.time} ${e.message}`) });
      case 'GET /api/v1/daemon/backend':
        return this.send(res, 200, this.backendCollection());
      case 'PUT /api/v1/daemon/start':
        return this.send(res, 204);
      case 'PUT /api/v1/daemon/exit':
        this.send(res, 204);
        setImmediate(() => this.o.onExit?.());
        return;
      case 'PUT /api/v1/daemon/fuse/sendfd':
      case 'PUT /api/v1/daemon/fuse/takeover':
        throw new ApiError(501, 'FUSE session hand-over (failover) is not supported: restart the daemon instead (dead mounts are cleaned at start)');
      case 'POST /api/v1/mount':
      case 'PUT /api/v1/mount': {
        const mountpoint = url.searchParams.get('mountpoint');
        if (!mountpoint) throw new ApiError(400, 'query parameter mountpoint is required');
        const body = await this.body(req);
        if (!body) throw new ApiError(400, 'body {source, fs_type, config} is required');
        const source = body.source;
        if (typeof source !== 'string' || source === '') throw new ApiError(400, 'body.source (the bootstrap path) is required');
        const fsType = body.fs_type ?? 'rafs';
        if (fsType !== 'rafs') throw new ApiError(400, `body.fs_type ${JSON.stringify(fsType)} is not supported (rafs)`);
        const config = body.config;
        if (config !== undefined && typeof config !== 'string' && (typeof config !== 'object' || config === null)) throw new ApiError(400, 'body.config must be the configuration as a JSON string');
        const prefetch = body.prefetch_files ?? [];
        if (!Array.isArray(prefetch) || prefetch.some((p) => typeof p !== 'string')) throw new ApiError(400, 'body.prefetch_files must be an array of paths');
        if (method === 'POST') await daemon.mount(mountpoint, source, config as string | object | undefined, prefetch as string[]);
        else await daemon.remount(mountpoint, source, config as string | object | undefined, prefetch as string[]);
        return this.send(res, 204);
      }
      case 'DELETE /api/v1/mount': {
        const mountpoint = url.searchParams.get('mountpoint');
        if (!mountpoint) throw new ApiError(400, 'query parameter mountpoint is required');
        await daemon.umount(mountpoint);
        return this.send(res, 204);
      }
      case 'GET /api/v1/metrics':
        return this.send(res, 200, this.instanceFor(url).metrics.toJSON());
      case 'GET /api/v1/metrics/files': {
        const i = this.instanceFor(url);
        if (url.searchParams.get('latest') === 'true') return this.send(res, 200, i.metrics.patternJSON().map((p) => p.ino));
        return this.send(res, 200, i.metrics.filesJSON());
      }
      case 'GET /api/v1/metrics/pattern':
        return this.send(res, 200, this.instanceFor(url).metrics.patternJSON());
      case 'GET /api/v1/metrics/backend':
        return this.send(res, 200, this.instanceFor(url).backend.metrics.toJSON());
      case 'GET /api/v1/metrics/blobcache':
        return this.send(res, 200, this.instanceFor(url).image.cacheMetrics.toJSON());
      case 'GET /api/v1/metrics/inflight':
        return this.send(res, 200, { values: [] });
      case 'GET /metrics':
        return this.send(res, 200, renderPrometheus(daemon), 'text/plain; version=0.0.4; charset=utf-8');
      default:
        throw new ApiError(404, `no such API: ${method} ${url.pathname}`);
    }
  }

  daemonInfo(): Record<string, unknown> {
    const d = this.o.daemon;
    return {
      version: { package_ver: this.o.version ?? '0.1.0', git_commit: '', build_time: '', profile: 'release', rustc: `node ${process.version}` },
      id: d.id ?? null,
      supervisor: d.supervisor ?? null,
      state: d.state,
      backend_collection: this.backendCollection(),
    };
  }

  private backendCollection(): Record<string, unknown> {
    return Object.fromEntries(
      this.o.daemon.list().map((i) => [i.mountpoint, { backend_type: 'rafs', mountpoint: i.mountpoint, mounted_time: i.mountedTime.toISOString(), config: redact(i.rawConfig) ?? null }]),
    );
  }
}

/** The configuration with credentials replaced (the API never hands secrets out). */
function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, ['auth', 'registry_token', 'access_key_secret', 'encryption_key'].includes(k) && typeof v === 'string' && v !== '' ? '<redacted>' : redact(v)]),
  );
}
