import type { Dispatcher } from 'undici';
import { lazyUndici } from './undici-lazy.js';
import { NydusError, noopLogger } from '@nydus-ts/core';
import type { Logger } from '@nydus-ts/core';
import type { Credentials, CredentialsProvider } from './docker-config.js';
import { RegistryConnectionError, RegistryResponseError, redactUrl } from './errors.js';
import { readErrorBody } from './http-body.js';
import type { AuthChallenge } from './www-authenticate.js';

interface HostAuth {
  scheme: 'basic' | 'bearer';
  realm?: string;
  service?: string;
}

interface CachedToken {
  token: string;
  /** ms since epoch; refreshed a little before. */
  expiresAt: number;
}

/** Merges `repository:foo:pull` + `repository:foo:push` into `repository:foo:pull,push`, sorted. */
export function mergeScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of scopes) {
    for (const one of scope.split(' ')) {
      if (!one) continue;
      const i = one.lastIndexOf(':');
      if (i < 0) continue;
      const resource = one.slice(0, i);
      const actions = byResource.get(resource) ?? new Set<string>();
      for (const a of one.slice(i + 1).split(',')) if (a) actions.add(a);
      byResource.set(resource, actions);
    }
  }
  return [...byResource.entries()]
    .map(([resource, actions]) => `${resource}:${[...actions].sort().join(',')}`)
    .sort();
}

export interface AuthorizerOptions {
  credentials?: CredentialsProvider;
  dispatcher: Dispatcher;
  logger?: Logger;
  userAgent?: string;
  signal?: AbortSignal;
}

/**
 * Answers registry auth challenges: basic credentials, or bearer tokens fetched from the
 * challenge's realm (GET with basic credentials, or an OAuth2 refresh-token POST for identity
 * tokens). Tokens are cached per host and scope set and reused until shortly before they expire.
 */
export class Authorizer {
  readonly #options: AuthorizerOptions;
  readonly #logger: Logger;
  readonly #hosts = new Map<string, HostAuth>();
  readonly #tokens = new Map<string, Promise<CachedToken>>();
  readonly #creds = new Map<string, Promise<Credentials | undefined>>();
  /** How many tokens were fetched (tests check reuse). */
  tokensFetched = 0;

  constructor(options: AuthorizerOptions) {
    this.#options = options;
    this.#logger = options.logger ?? noopLogger;
  }

  #credentials(credHost: string): Promise<Credentials | undefined> {
    let c = this.#creds.get(credHost);
    if (!c) {
      c = this.#options.credentials ? this.#options.credentials(credHost) : Promise.resolve(undefined);
      this.#creds.set(credHost, c);
    }
    return c;
  }

  /** The `Authorization` value for a request to `host` needing `scopes`, if auth is known to be needed. */
  async authorization(host: string, credHost: string, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const auth = this.#hosts.get(host);
    if (!auth) return undefined;
    if (auth.scheme === 'basic') {
      const creds = await this.#credentials(credHost);
      if (creds && 'password' in creds) {
        return 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
      }
      return undefined;
    }
    const token = await this.#token(host, credHost, auth, mergeScopes(scopes), signal);
    return `Bearer ${token.token}`;
  }

  /**
   * Records a 401 challenge and returns the scopes to retry with, or undefined when there is
   * nothing new to try (the caller then reports the 401). A token that was just refused is
   * dropped from the cache so the retry fetches a fresh one.
   */
  async challenge(host: string, credHost: string, challenges: AuthChallenge[], scopes: string[], usedAuthorization?: string): Promise<string[] | undefined> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) {
      if (!bearer.params.realm) {
        throw new NydusError('UNAUTHENTICATED', `registry ${host}: bearer challenge without a realm`);
      }
      const next: HostAuth = { scheme: 'bearer', realm: bearer.params.realm };
      if (bearer.params.service !== undefined) next.service = bearer.params.service;
      this.#hosts.set(host, next);
      const all = mergeScopes([...scopes, ...(bearer.params.scope ? [bearer.params.scope] : [])]);
      // Drop only the token that was refused; concurrent requests may already be fetching a new one.
      if (usedAuthorization) {
        for (const key of [`${host} ${mergeScopes(scopes).join(' ')}`, `${host} ${all.join(' ')}`]) {
          const cached = this.#tokens.get(key);
          const t = await cached?.catch(() => undefined);
          if (cached && (!t || `Bearer ${t.token}` === usedAuthorization) && this.#tokens.get(key) === cached) this.#tokens.delete(key);
        }
      }
      return all;
    }
    if (basic) {
      this.#hosts.set(host, { scheme: 'basic' });
      if (usedAuthorization?.startsWith('Basic ')) return undefined; // the password itself was refused
      const creds = await this.#credentials(credHost);
      return creds !== undefined && 'password' in creds ? scopes : undefined;
    }
    return undefined;
  }

  async #token(host: string, credHost: string, auth: HostAuth, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const key = `${host} ${scopes.join(' ')}`;
    const cached = this.#tokens.get(key);
    if (cached) {
      const t = await cached.catch(() => undefined);
      if (t && t.expiresAt > Date.now()) return t;
      if (this.#tokens.get(key) === cached) this.#tokens.delete(key);
    }
    let pending = this.#tokens.get(key);
    if (!pending) {
      pending = this.#fetchToken(credHost, auth, scopes, signal);
      this.#tokens.set(key, pending);
      pending.catch(() => {
        if (this.#tokens.get(key) === pending) this.#tokens.delete(key);
      });
    }
    return pending;
  }

  async #fetchToken(credHost: string, auth: HostAuth, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const creds = await this.#credentials(credHost);
    const realm = new URL(auth.realm!);
    const headers: Record<string, string> = { 'user-agent': this.#options.userAgent ?? 'nydus-ts' };
    let method: 'GET' | 'POST' = 'GET';
    let body: string | undefined;
    if (creds && 'identityToken' in creds) {
      method = 'POST';
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'nydus-ts' });
      if (auth.service) form.set('service', auth.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      body = form.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else {
      if (auth.service) realm.searchParams.set('service', auth.service);
      for (const s of scopes) realm.searchParams.append('scope', s);
      if (creds) headers.authorization = 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    }
    this.tokensFetched++;
    this.#logger.debug('fetching registry token', { realm: redactUrl(realm), scopes });
    let res: Dispatcher.ResponseData;
    try {
      res = await lazyUndici().request(realm, { method, headers, body, dispatcher: this.#options.dispatcher, signal });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new RegistryConnectionError(method, redactUrl(realm), err);
    }
    if (res.statusCode !== 200) {
      const text = await readErrorBody(res.body);
      throw new RegistryResponseError({
        status: res.statusCode,
        method,
        url: redactUrl(realm),
        body: text,
        what: creds ? 'token request (credentials rejected?)' : 'token request (anonymous)',
      });
    }
    const json = (await res.body.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = json.token ?? json.access_token;
    if (!token) {
      throw new NydusError('UNAUTHENTICATED', `token server ${redactUrl(realm)} returned no token`);
    }
    const lifetime = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : 60;
    return { token, expiresAt: Date.now() + Math.max(lifetime - 10, lifetime / 2) * 1000 };
  }
}
