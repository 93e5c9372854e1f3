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

/** Readable words for the network failures Node and undici report (their codes, not their stack-ish messages). */
const networkFailures: Record<string, string> = {
  UND_ERR_CONNECT_TIMEOUT: 'connect timeout: no connection established in time',
  UND_ERR_HEADERS_TIMEOUT: 'idle timeout: no response in time',
  UND_ERR_BODY_TIMEOUT: 'idle timeout: no data received in time',
  UND_ERR_SOCKET: 'connection closed by the other side',
  UND_ERR_CLOSED: 'connection closed',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'response shorter than its Content-Length',
  UND_ERR_REQ_CONTENT_LENGTH_MISMATCH: 'request body length differs from its Content-Length',
  ECONNRESET: 'connection reset',
  ECONNREFUSED: 'connection refused',
  ECONNABORTED: 'connection aborted',
  EPIPE: 'connection closed while sending',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed (temporary)',
};

/** TLS verification failures: the same answer every time, never worth a retry. */
function isCertificateError(code: unknown): boolean {
  return typeof code === 'string' && /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(VERIFY_LEAF_SIGNATURE|GET_ISSUER_CERT(_LOCALLY)?)|CERT_[A-Z_]+|ERR_TLS_CERT_ALTNAME_INVALID)$/.test(code);
}

/** One line for a network failure: its meaning and code (`connection reset (ECONNRESET)`), never a stack. */
export function describeNetworkError(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  const known = typeof code === 'string' ? networkFailures[code] : undefined;
  if (known) return `${known} (${code})`;
  if (isCertificateError(code)) return `TLS certificate rejected: ${err instanceof Error ? err.message : String(err)} (${String(code)})`;
  const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  return typeof code === 'string' && code !== '' ? `${message} (${code})` : message;
}

/** The connection to a registry failed or broke (reset, refused, TLS, timeout). */
export class RegistryConnectionError extends NydusError {
  readonly method: string;
  readonly url: string;
  /** False for failures that repeat on every try (a rejected TLS certificate). */
  readonly retryable: boolean;

  /**
   * @param what the operation and its subject, e.g. `fetching blob sha256:… from host/repo`
   * @param during when it broke, e.g. `after 700000 of 3000000 bytes` (default: before a response)
   */
  constructor(method: string, url: string, cause: unknown, details: { what?: string; during?: string } = {}) {
    const where = details.what ? `${details.what}: ` : '';
    const during = details.during ? ` ${details.during}` : '';
    super('UNAVAILABLE', `${where}${method} ${url}: connection failed${during}: ${describeNetworkError(cause)}`, { cause });
    this.name = 'RegistryConnectionError';
    this.method = method;
    this.url = url;
    this.retryable = !isCertificateError((cause as { code?: unknown } | undefined)?.code);
  }
}

/** The registry answered, but not the way the distribution spec requires (bad Range reply, short body, ...). */
export class RegistryProtocolError extends NydusError {
  readonly method: string;
  readonly url: string;
  /** True when trying again may help (a short or broken body). */
  readonly retryable: boolean;

  constructor(method: string, url: string, message: string, options: { retryable?: boolean; code?: NydusErrorCode; what?: string } = {}) {
    super(options.code ?? 'UNAVAILABLE', `${options.what ? `${options.what}: ` : ''}${method} ${url}: ${message}`);
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
