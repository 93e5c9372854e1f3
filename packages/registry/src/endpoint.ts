import { InvalidArgumentError } from '@nydus-ts/core';
import type { Credentials, CredentialsProvider } from './docker-config.js';

/** A host tried before the origin for pulls (a pull-through cache or a P2P distributor such as Dragonfly). */
export interface MirrorOptions {
  /** Base URL, e.g. `http://127.0.0.1:65001`; requests go to `<url>/v2/...?ns=<registry>`. */
  url: string;
  /** Skip TLS verification for this mirror. */
  insecure?: boolean;
}

/** An HTTP(S) proxy for registry requests. */
export interface ProxyOptions {
  /** Proxy URL for plain-HTTP registries. */
  http?: string;
  /** Proxy URL for HTTPS registries. */
  https?: string;
  /** Hosts reached directly, comma-separated as in `NO_PROXY` (`127.0.0.1,.internal`). */
  noProxy?: string;
}

/**
 * How to reach one registry: its TLS policy, credentials, mirrors, proxy and CA. Libraries take
 * it as it is; reading flags, `~/.docker/config.json` or proxy variables into one is the
 * application's job (packages/cli does it for the binaries).
 */
export interface RegistryEndpoint {
  /**
   * The registry this applies to (`docker.io`, `127.0.0.1:5000`). Optional where an image
   * reference names the registry; when given there, it must be the same registry.
   */
  host?: string;
  /**
   * Allow plain HTTP and unverified TLS: HTTPS (without certificate checks) is tried first and
   * HTTP used if the host does not speak TLS. Default: HTTPS only, certificates verified.
   */
  insecure?: boolean;
  /** Fixed credentials for this registry, or a lookup (e.g. {@link dockerConfigCredentials}). Default: anonymous. */
  credentials?: Credentials | CredentialsProvider;
  /** Mirrors tried in order before the origin for manifest and blob reads. */
  mirrors?: Array<string | MirrorOptions>;
  /** A proxy URL for every request, or per scheme with exceptions. Default: direct connections. */
  proxy?: string | ProxyOptions;
  /** CA certificates (PEM) trusted for this registry besides Node's built-in ones. */
  ca?: string | Buffer | Array<string | Buffer>;
}

/**
 * The endpoint settings for `registry` (the host an image reference names): checks that an
 * endpoint's own `host`, if it has one, is that registry. `option` names the option in errors.
 */
export function endpointFor(registry: string, endpoint: RegistryEndpoint | undefined, option: string): Omit<RegistryEndpoint, 'host'> {
  if (!endpoint) return {};
  const { host, ...rest } = endpoint;
  if (host !== undefined && host.toLowerCase() !== registry.toLowerCase()) {
    throw new InvalidArgumentError(`${option}.host is "${host}" but the image reference names registry "${registry}"`);
  }
  return rest;
}
