import { createRequire } from 'node:module';
import type * as Undici from 'undici';

/** The parts of undici the registry code uses. */
export interface UndiciSubset {
  Agent: typeof Undici.Agent;
  EnvHttpProxyAgent: typeof Undici.EnvHttpProxyAgent;
  interceptors: { redirect: typeof Undici.interceptors.redirect };
  request: typeof Undici.request;
}

let undici: UndiciSubset | undefined;

/**
 * undici, loaded on first use and only the modules the registry needs. `require('undici')` loads
 * all of it (fetch, websockets, caches, mocks: 110 files, ~150-230 ms), which every copy/convert
 * would pay at start-up; the dispatcher, the request API, Agent and the redirect interceptor are
 * 33 files (~50 ms). The proxy agent is loaded only when a proxy is configured.
 */
export function lazyUndici(): UndiciSubset {
  if (undici) return undici;
  const req = createRequire(import.meta.url);
  // Same wiring as undici's index.js: the request API lives on Dispatcher.prototype.
  const Dispatcher = req('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
  const api = req('undici/lib/api/index.js') as { request: (this: Undici.Dispatcher, opts: object) => Promise<Undici.Dispatcher.ResponseData> };
  Object.assign(Dispatcher.prototype, api);
  const Agent = req('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
  const redirect = req('undici/lib/interceptor/redirect.js') as typeof Undici.interceptors.redirect;
  const request = ((url: string | URL, opts: Undici.Dispatcher.RequestOptions & { dispatcher?: Undici.Dispatcher }) => {
    // Without a dispatcher the global one is meant: only the full package knows it.
    if (!opts.dispatcher) return (req('undici') as typeof Undici).request(url, opts);
    const u = typeof url === 'string' ? new URL(url) : url;
    return api.request.call(opts.dispatcher, {
      ...opts,
      origin: u.origin,
      path: u.search ? `${u.pathname}${u.search}` : u.pathname,
      method: opts.method || (opts.body ? 'PUT' : 'GET'),
    });
  }) as unknown as typeof Undici.request;
  undici = {
    Agent,
    get EnvHttpProxyAgent() {
      return req('undici/lib/dispatcher/env-http-proxy-agent.js') as typeof Undici.EnvHttpProxyAgent;
    },
    interceptors: { redirect },
    request,
  };
  return undici;
}
