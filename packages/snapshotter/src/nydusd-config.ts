/**
 * The nydusd (v1) config written for one image: the template (defaults, or the one the
 * snapshotter was given) with the registry backend filled in from the image reference and the
 * credentials, and the blob cache pointed at the snapshotter's cache dir (nydus-snapshotter's
 * SupplementDaemonConfig). Spec nydus-format.md §7.1.
 */
import { InvalidArgumentError } from '@nydus-ts/core';
import { parseReference, registryEndpointHost } from '@nydus-ts/registry';
import type { Credentials } from '@nydus-ts/registry';

/** nydusd v1 config as JSON (only the parts this module touches are typed). */
export interface NydusdConfigV1 {
  device: {
    backend: { type: string; config: Record<string, unknown> };
    cache: { type: string; config?: Record<string, unknown>; [k: string]: unknown };
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/**
 * Our default template: as nydus-snapshotter's fusedev one, but without prefetch (lazy by
 * default) and with on-demand reads widened to 256 KiB of a blob instead of 1 MiB: measured on the
 * cold-start benchmark at 3 MB/s (docs/containerd.md), 1 MiB fetches neighbours a workload never
 * reads and makes it wait for them.
 */
export function defaultNydusdConfig(): NydusdConfigV1 {
  return {
    device: {
      backend: { type: 'registry', config: { timeout: 30, connect_timeout: 10, retry_limit: 2 } },
      cache: { type: 'blobcache', config: {} },
    },
    mode: 'direct',
    digest_validate: false,
    iostats_files: false,
    enable_xattr: true,
    amplify_io: 256 << 10,
    fs_prefetch: { enable: false, threads_count: 4, merging_size: 1048576, prefetch_all: false },
  };
}

/** Checks that a nydusd config template has the v1 shape this snapshotter fills in. */
export function validateNydusdConfigTemplate(value: unknown, source: string): NydusdConfigV1 {
  const v = value as Partial<NydusdConfigV1> | null;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError(`${source}: a nydusd config must be a JSON object`);
  if (typeof v.device !== 'object' || v.device === null) throw new InvalidArgumentError(`${source}: missing "device" (a nydusd v1 config)`);
  const backend = v.device.backend as { type?: unknown; config?: unknown } | undefined;
  if (backend !== undefined && backend.type !== undefined && backend.type !== 'registry') {
    throw new InvalidArgumentError(`${source}: device.backend.type must be "registry" (got ${JSON.stringify(backend.type)}): the snapshotter fills in the image's registry`);
  }
  const cacheType = (v.device.cache as { type?: unknown } | undefined)?.type;
  if (cacheType !== undefined && cacheType !== 'blobcache' && cacheType !== 'filecache') {
    throw new InvalidArgumentError(`${source}: device.cache.type must be "blobcache" or "filecache" (got ${JSON.stringify(cacheType)})`);
  }
  return v as NydusdConfigV1;
}

/** How the snapshotter reaches one registry host. */
export interface RegistryHostConfig {
  /** Default: `http` for loopback hosts (localhost, 127.0.0.0/8, ::1), else `https`. */
  scheme?: 'http' | 'https';
  skipVerify?: boolean;
}

export function isLoopbackRegistry(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

export interface BuildNydusdConfigOptions {
  template: NydusdConfigV1;
  imageRef: string;
  credentials: Credentials | undefined;
  cacheDir: string;
  host?: RegistryHostConfig;
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

export function buildNydusdConfig(options: BuildNydusdConfigOptions): NydusdConfigV1 {
  const ref = parseReference(options.imageRef);
  const config = clone(options.template);
  const backendConfig: Record<string, unknown> = { ...(config.device.backend?.config ?? {}) };
  backendConfig.scheme = options.host?.scheme ?? (isLoopbackRegistry(ref.registry) ? 'http' : 'https');
  backendConfig.host = registryEndpointHost(ref.registry);
  backendConfig.repo = ref.repository;
  if (options.host?.skipVerify !== undefined) backendConfig.skip_verify = options.host.skipVerify;
  const creds = options.credentials;
  if (creds && 'password' in creds) {
    backendConfig.auth = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
  } else if (creds && 'identityToken' in creds) {
    backendConfig.registry_token = creds.identityToken;
  }
  config.device.backend = { type: 'registry', config: backendConfig };
  const cache = config.device.cache ?? { type: 'blobcache' };
  config.device.cache = { ...cache, type: cache.type || 'blobcache', config: { ...(cache.config ?? {}), work_dir: options.cacheDir } };
  return config;
}
