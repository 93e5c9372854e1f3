import { Agent, request as httpRequest, createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What to do to a matching request. */
export type FaultAction =
  /** Answer with this status without forwarding (e.g. 500, 429 with Retry-After). */
  | { kind: 'status'; status: number; retryAfter?: number }
  /** Forward, send `afterBytes` of the response body, then reset the TCP connection. */
  | { kind: 'reset'; afterBytes: number }
  /** Forward, send `afterBytes` of the body as a clean chunked response that simply ends early. */
  | { kind: 'truncate'; afterBytes: number }
  /** Forward, flipping one byte of the response body at `atByte` (default: the middle). */
  | { kind: 'corrupt'; atByte?: number }
  /**
   * A registry that stops answering. Without `afterBytes`: the request is read but never
   * answered (no status line). With it: forward, send the headers and `afterBytes` of the
   * body, then nothing more while the connection stays open.
   */
  | { kind: 'stall'; afterBytes?: number }
  /** Forward, but stop reading the request body after `afterBytes` (a registry that stops taking an upload). */
  | { kind: 'stall-upload'; afterBytes: number }
  /** Forward, and reset the connection once `afterBytes` (> 0) of the request body have arrived (an upload cut off). */
  | { kind: 'reset-upload'; afterBytes: number }
  /** Forward, let the registry act on the request, then reset the connection instead of answering (a lost reply). */
  | { kind: 'drop-reply' };

export interface FaultRule {
  method?: string;
  /** Matched against the request path (with query). */
  path?: RegExp;
  /** Only requests that declare a non-empty body with Content-Length (e.g. a monolithic blob PUT, not a commit). */
  withBody?: boolean;
  action: FaultAction;
  /** How many matching requests to affect (default 1; Infinity for all). */
  times?: number;
  /**
   * Hold a matching request (nothing read, nothing answered, nothing forwarded) until this
   * settles, then act on it: to make one request wait for another (see {@link FaultProxy.nextRequest}).
   */
  hold?: PromiseLike<unknown>;
}

export interface ProxyRequestRecord {
  method: string;
  path: string;
  status: number;
  /** Request body bytes forwarded to the upstream. */
  requestBytes: number;
  /** Response body bytes sent to the client. */
  responseBytes: number;
  /** The request's Range header, if any. */
  range?: string;
  fault?: FaultAction['kind'];
  /** `performance.now()` when the request's headers arrived, and when its response closed (this process's clock). */
  startedAt: number;
  endedAt?: number;
}

/** Which requests {@link FaultProxy.nextRequest} waits for. */
export interface RequestMatch {
  method?: string;
  /** Matched against the request path (with query). */
  path?: RegExp;
}

export interface FaultProxy {
  /** `127.0.0.1:PORT`. */
  host: string;
  url: string;
  /** Every request seen, in order of completion. */
  requests: ProxyRequestRecord[];
  /** Requests received whose response has not closed yet, in order of arrival. */
  readonly inFlight: readonly ProxyRequestRecord[];
  /** Resolves with the first matching request in flight now or arriving later, as it arrives. */
  nextRequest(match: RequestMatch): Promise<ProxyRequestRecord>;
  /** Replaces the rules; counts (and {@link injected}) restart. */
  setRules(rules: FaultRule[]): void;
  /** Faults injected since the rules were last set. */
  readonly injected: number;
  stop(): Promise<void>;
}

/**
 * An HTTP proxy on 127.0.0.1 (port 0) in front of `upstream` (a registry URL) that injects
 * faults: statuses, connection resets mid-body, truncated bodies, corrupted bytes, and registries
 * that stop answering or stop reading an upload. The Host
 * header is passed through so the registry's Location URLs keep pointing at the proxy.
 */
export async function startFaultProxy(upstream: string, rules: FaultRule[] = []): Promise<FaultProxy> {
  const target = new URL(upstream);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  let active = rules.map((r) => ({ ...r, left: r.times ?? 1 }));
  let injected = 0;
  const requests: ProxyRequestRecord[] = [];
  const inFlight: ProxyRequestRecord[] = [];
  const waiting: Array<{ match: RequestMatch; resolve: (r: ProxyRequestRecord) => void }> = [];
  const sockets = new Set<Socket>();
  const matches = (m: RequestMatch, r: ProxyRequestRecord): boolean => (!m.method || m.method === r.method) && (!m.path || m.path.test(r.path));

  const pick = (req: IncomingMessage): FaultRule | undefined => {
    for (const r of active) {
      if (r.left <= 0) continue;
      if (r.method && r.method !== req.method) continue;
      if (r.path && !r.path.test(req.url ?? '')) continue;
      if (r.withBody && !(Number(req.headers['content-length'] ?? 0) > 0)) continue;
      r.left--;
      injected++;
      return r;
    }
    return undefined;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const rule = pick(req);
    const record: ProxyRequestRecord = { method: req.method ?? '', path: req.url ?? '', status: 0, requestBytes: 0, responseBytes: 0, startedAt: performance.now() };
    if (rule) record.fault = rule.action.kind;
    if (typeof req.headers.range === 'string') record.range = req.headers.range;
    inFlight.push(record);
    res.on('close', () => {
      record.endedAt = performance.now();
      inFlight.splice(inFlight.indexOf(record), 1);
      requests.push(record);
    });
    for (let i = 0; i < waiting.length; i++) {
      if (!matches(waiting[i]!.match, record)) continue;
      waiting[i]!.resolve(record);
      waiting.splice(i--, 1);
    }
    if (rule?.hold) {
      const act = (): void => {
        if (!res.destroyed) serve(req, res, record, rule.action);
      };
      Promise.resolve(rule.hold).then(act, act);
      return;
    }
    serve(req, res, record, rule?.action);
  };

  const serve = (req: IncomingMessage, res: ServerResponse, record: ProxyRequestRecord, action: FaultAction | undefined): void => {
    if (action?.kind === 'stall' && action.afterBytes === undefined) {
      req.resume(); // read, never answered: the client's timeout ends it
      return;
    }
    if (action?.kind === 'status') {
      req.resume();
      record.status = action.status;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (action.retryAfter !== undefined) headers['retry-after'] = String(action.retryAfter);
      res.writeHead(action.status, headers).end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `injected ${action.status}` }] }));
      return;
    }
    const up = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent },
      (upRes) => {
        record.status = upRes.statusCode ?? 0;
        if (action?.kind === 'drop-reply') {
          upRes.resume();
          (res.socket as Socket | null)?.resetAndDestroy();
          return;
        }
        const headers = { ...upRes.headers };
        const body = action && (action.kind === 'reset' || action.kind === 'truncate' || action.kind === 'stall') && req.method !== 'HEAD';
        if (body && action.kind === 'truncate') {
          delete headers['content-length'];
          headers['transfer-encoding'] = 'chunked';
        }
        res.writeHead(upRes.statusCode ?? 502, headers);
        let sent = 0;
        upRes.on('data', (chunk: Buffer) => {
          if (res.destroyed) return;
          let out = chunk;
          if (action?.kind === 'corrupt') {
            const at = action.atByte ?? Math.floor(Number(upRes.headers['content-length'] ?? 2) / 2);
            if (at >= sent && at < sent + chunk.length) {
              out = Buffer.from(chunk);
              out[at - sent] = out[at - sent]! ^ 0xff;
            }
          } else if (body && (action.kind === 'reset' || action.kind === 'truncate' || action.kind === 'stall') && sent + chunk.length > action.afterBytes!) {
            out = chunk.subarray(0, Math.max(0, action.afterBytes! - sent));
            sent += out.length;
            record.responseBytes = sent;
            upRes.destroy();
            if (action.kind === 'reset') {
              res.write(out, () => (res.socket as Socket | null)?.resetAndDestroy());
            } else if (action.kind === 'truncate') {
              res.end(out);
            } else {
              res.write(out); // and then silence, the connection left open
            }
            return;
          }
          sent += out.length;
          record.responseBytes = sent;
          if (!res.write(out)) {
            upRes.pause();
            res.once('drain', () => upRes.resume());
          }
        });
        upRes.on('end', () => {
          if (!res.writableEnded && !res.destroyed) res.end();
        });
        upRes.on('error', () => res.destroy());
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(up);
    let uploadStalled = false;
    req.on('data', (chunk: Buffer) => {
      record.requestBytes += chunk.length;
      if (action?.kind === 'stall-upload' && !uploadStalled && record.requestBytes >= action.afterBytes) {
        uploadStalled = true;
        req.unpipe(up);
        req.pause(); // the socket is no longer read: the client's writes back up
      } else if (action?.kind === 'reset-upload' && !uploadStalled && record.requestBytes >= action.afterBytes) {
        uploadStalled = true;
        req.unpipe(up);
        up.destroy();
        req.socket.resetAndDestroy();
      }
    });
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
  };

  const server = createServer(handle);
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    setRules(next) {
      active = next.map((r) => ({ ...r, left: r.times ?? 1 }));
      injected = 0;
    },
    get injected() {
      return injected;
    },
    inFlight,
    nextRequest(match) {
      const now = inFlight.find((r) => matches(match, r));
      if (now) return Promise.resolve(now);
      return new Promise((resolve) => waiting.push({ match, resolve }));
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
