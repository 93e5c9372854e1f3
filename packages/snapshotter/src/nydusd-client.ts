/**
 * Client of nydusd's HTTP API (HTTP/1.1 on the daemon's unix socket), as nydus-snapshotter uses
 * it: daemon state, per-image mounts in a shared daemon, metrics. Works with nydusd-ts and nydusd.
 */
import http from 'node:http';
import { NydusError } from '@nydus-ts/core';

export type NydusdState = 'INIT' | 'READY' | 'RUNNING' | 'STOPPED' | 'UNKNOWN';

export interface NydusdInfo {
  id?: string;
  state: NydusdState;
  version?: Record<string, string>;
}

/** Body of `POST /api/v1/mount` (nydusd's MountCmd). */
export interface NydusdMountRequest {
  /** Bootstrap path. */
  source: string;
  fs_type: 'rafs';
  /** The nydusd config, as a JSON string. */
  config: string;
  prefetch_files?: string[];
}

export interface NydusdClientOptions {
  /** Per-request timeout in ms (default 10 s). */
  timeoutMs?: number;
}

interface Reply {
  status: number;
  body: string;
}

export class NydusdClient {
  readonly apiSocket: string;
  readonly #timeoutMs: number;

  constructor(apiSocket: string, options: NydusdClientOptions = {}) {
    this.apiSocket = apiSocket;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  #request(method: string, path: string, body?: unknown): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        {
          socketPath: this.apiSocket,
          host: 'unix',
          path,
          method,
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
          timeout: this.#timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new NydusError('UNAVAILABLE', `nydusd API ${this.apiSocket}: ${method} ${path} timed out after ${this.#timeoutMs} ms`)));
      req.on('error', (err) =>
        reject(err instanceof NydusError ? err : new NydusError('UNAVAILABLE', `nydusd API ${this.apiSocket}: ${method} ${path}: ${(err as Error).message}`, { cause: err })),
      );
      req.end(payload);
    });
  }

  async #call(method: string, path: string, body?: unknown): Promise<unknown> {
    const reply = await this.#request(method, path, body);
    if (reply.status === 200 || reply.status === 204) return reply.body ? (JSON.parse(reply.body) as unknown) : undefined;
    let message = reply.body;
    try {
      const parsed = JSON.parse(reply.body) as { code?: string; message?: string };
      message = parsed.message ?? message;
    } catch {
      // not JSON: keep the text
    }
    const code = reply.status === 404 ? 'NOT_FOUND' : reply.status === 400 ? 'INVALID_ARGUMENT' : 'UNAVAILABLE';
    throw new NydusError(code, `nydusd API ${method} ${path}: HTTP ${reply.status}: ${message.slice(0, 1000)}`);
  }

  async daemonInfo(): Promise<NydusdInfo> {
    return (await this.#call('GET', '/api/v1/daemon')) as NydusdInfo;
  }

  /** Adds an image at `/<id>` of a shared daemon (appears at `<mountpoint>/<id>`). */
  async mount(mountpoint: string, request: NydusdMountRequest): Promise<void> {
    await this.#call('POST', `/api/v1/mount?mountpoint=${encodeURIComponent(mountpoint).replace(/%2F/g, '/')}`, request);
  }

  async umount(mountpoint: string): Promise<void> {
    await this.#call('DELETE', `/api/v1/mount?mountpoint=${encodeURIComponent(mountpoint).replace(/%2F/g, '/')}`);
  }

  /** Backend counters (`read_count`, `read_errors`, `read_amount_total`). */
  async backendMetrics(id?: string): Promise<Record<string, unknown>> {
    return (await this.#call('GET', `/api/v1/metrics/backend${id ? `?id=${encodeURIComponent(id)}` : ''}`)) as Record<string, unknown>;
  }

  async blobcacheMetrics(id?: string): Promise<Record<string, unknown>> {
    return (await this.#call('GET', `/api/v1/metrics/blobcache${id ? `?id=${encodeURIComponent(id)}` : ''}`)) as Record<string, unknown>;
  }

  async fsMetrics(id?: string): Promise<Record<string, unknown>> {
    return (await this.#call('GET', `/api/v1/metrics${id ? `?id=${encodeURIComponent(id)}` : ''}`)) as Record<string, unknown>;
  }
}
