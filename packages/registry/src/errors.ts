import { NydusError } from '@nydus-ts/core';
import type { NydusErrorCode } from '@nydus-ts/core';

/** The most of a registry's error body an error keeps. */
export const maxErrorBodyBytes = 64 * 1024;

/** One entry of the distribution spec's `{"errors": [...]}` body. */
export interface RegistryErrorDetail {
  code: string;
  message?: string;
  detail?: unknown;
}

function codeForStatus(status: number): NydusErrorCode {
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'PERMISSION_DENIED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'ALREADY_EXISTS';
  if (status === 429) return 'RESOURCE_EXHAUSTED';
  if (status === 416) return 'FAILED_PRECONDITION';
  if (status >= 500) return 'UNAVAILABLE';
  if (status === 400 || status === 405 || status === 413 || status === 415) return 'FAILED_PRECONDITION';
  return 'INTERNAL';
}

function parseErrorBody(body: string): RegistryErrorDetail[] {
  try {
    const parsed = JSON.parse(body) as { errors?: unknown };
    if (!Array.isArray(parsed.errors)) return [];
    return parsed.errors
      .filter((e): e is RegistryErrorDetail => typeof e === 'object' && e !== null && typeof (e as RegistryErrorDetail).code === 'string')
      .map((e) => ({ code: e.code, message: e.message, detail: e.detail }));
  } catch {
    return [];
  }
}

/**
 * A registry (or token server) answered with an unexpected HTTP status. Carries the method, the
 * URL with credentials and upload state removed, and at most 64 KiB of the response body.
 */
export class RegistryResponseError extends NydusError {
  readonly status: number;
  readonly method: string;
  /** Request URL without userinfo; query values other than well-known ones are redacted. */
  readonly url: string;
  /** Up to 64 KiB of the response body, decoded as UTF-8. */
  readonly body: string;
  /** Parsed `errors` of a distribution-spec error body (empty if none). */
  readonly errors: RegistryErrorDetail[];
  /** Seconds from `Retry-After`, when the registry sent one. */
  readonly retryAfterSeconds: number | undefined;

  constructor(details: {
    status: number;
    method: string;
    url: string;
    body?: string;
    what?: string;
    retryAfterSeconds?: number;
  }) {
    const body = details.body ?? '';
    const errors = parseErrorBody(body);
    const summary = errors.length > 0
      ? errors.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; ')
      : body.trim().slice(0, 200);
    const what = details.what ? `${details.what}: ` : '';
    const hint = details.status === 401
      ? ' (authentication failed: check the credentials for this registry)'
      : details.status === 403
        ? ' (access denied for these credentials)'
        : '';
    super(
      codeForStatus(details.status),
      `${what}${details.method} ${details.url} returned ${details.status}${summary ? ` (${summary})` : ''}${hint}`,
    );
    this.name = 'RegistryResponseError';
    this.status = details.status;
    this.method = details.method;
    this.url = details.url;
    this.body = body;
    this.errors = errors;
    this.retryAfterSeconds = details.retryAfterSeconds;
  }
}

/** The connection to a registry failed or broke (reset, refused, TLS, timeout). */
export class RegistryConnectionError extends NydusError {
  readonly method: string;
  readonly url: string;

  constructor(method: string, url: string, cause: unknown) {
    const reason = cause instanceof Error ? ((cause as { code?: string }).code ?? cause.message) : String(cause);
    super('UNAVAILABLE', `${method} ${url}: connection failed (${reason})`, { cause });
    this.name = 'RegistryConnectionError';
    this.method = method;
    this.url = url;
  }
}

/** The registry answered, but not the way the distribution spec requires (bad Range reply, short body, ...). */
export class RegistryProtocolError extends NydusError {
  readonly method: string;
  readonly url: string;
  /** True when trying again may help (a short or broken body). */
  readonly retryable: boolean;

  constructor(method: string, url: string, message: string, options: { retryable?: boolean; code?: NydusErrorCode } = {}) {
    super(options.code ?? 'UNAVAILABLE', `${method} ${url}: ${message}`);
    this.name = 'RegistryProtocolError';
    this.method = method;
    this.url = url;
    this.retryable = options.retryable ?? false;
  }
}

const keptQueryKeys = new Set(['digest', 'mount', 'from', 'ns', 'n', 'last', 'service', 'scope']);

/** A URL fit for errors and logs: no userinfo, opaque query values (upload state, signatures) redacted. */
export function redactUrl(url: string | URL): string {
  let u: URL;
  try {
    u = new URL(url.toString());
  } catch {
    return '<invalid url>';
  }
  u.username = '';
  u.password = '';
  for (const key of [...u.searchParams.keys()]) {
    if (!keptQueryKeys.has(key)) u.searchParams.set(key, 'REDACTED');
  }
  return u.toString();
}
