/**
 * nydusd's JSON configuration, accepted unchanged in both forms (spec §7.1): the legacy v1 form
 * (`device.backend`, `device.cache`, `mode`, `fs_prefetch`, ...) and the v2 form (`version: 2`,
 * `backend`, `cache`, `rafs`). Both are validated into one {@link DaemonConfig}. Wrong types,
 * missing required keys and values this daemon does not implement are a {@link ConfigError}
 * naming the key and the value; unknown keys are returned as warnings.
 */
import { InvalidArgumentError } from '@nydus-ts/core';

export interface RegistryProxyConfig {
  /** A forward HTTP proxy URL (e.g. a Dragonfly dfdaemon): `http://host:port`. */
  url: string;
  /** Go straight to the registry when the proxy fails. */
  fallback: boolean;
}

export interface RegistryMirrorConfig {
  /** Mirror base URL with scheme, e.g. `http://127.0.0.1:65001`. */
  host: string;
  /** Extra request headers for this mirror (e.g. `X-Dragonfly-Registry`). */
  headers: Record<string, string>;
}

export interface RegistryBackendConfig {
  type: 'registry';
  /** `https`, `http`, or '' to detect (HTTPS first, then plain HTTP). */
  scheme: '' | 'http' | 'https';
  /** `host[:port]`; checked when the backend is created (the snapshotter fills it in). */
  host: string;
  /** Repository without tag, e.g. `library/node`. */
  repo: string;
  /** base64 of `user:password`. */
  auth?: string;
  /** A bearer token sent as is. */
  registryToken?: string;
  skipVerify: boolean;
  caCertFiles: string[];
  clientCertFile?: string;
  clientKeyFile?: string;
  /** Per-request timeout (seconds): a request not finished by then fails and may be retried. */
  timeoutSeconds: number;
  connectTimeoutSeconds: number;
  /** Retries after a failed request (0: one try). */
  retryLimit: number;
  proxy?: RegistryProxyConfig;
  mirrors: RegistryMirrorConfig[];
}

export interface LocalfsBackendConfig {
  type: 'localfs';
  /** Directory holding blob files named by blob id. */
  dir?: string;
  /** One blob file used for every blob id (single-blob images). */
  blobFile?: string;
  /** More directories searched after `dir`. */
  altDirs: string[];
}

export type BackendConfig = RegistryBackendConfig | LocalfsBackendConfig;

export interface CacheConfig {
  /** `blobcache`/`filecache`: the persistent chunk cache under `workDir`. */
  type: 'blobcache' | 'filecache';
  workDir: string;
}

export interface PrefetchConfig {
  enable: boolean;
  /** Concurrent prefetch requests. */
  threads: number;
  /** Largest merged prefetch request, bytes. */
  batchSize: number;
  /** Bytes per second, 0 = unlimited. */
  bandwidthLimit: number;
  /** Prefetch every chunk of every blob, not only the bootstrap's prefetch table. */
  prefetchAll: boolean;
}

export interface DaemonConfig {
  /** The form it was written in. */
  version: 1 | 2;
  id?: string;
  backend: BackendConfig;
  cache: CacheConfig;
  /** v1 `amplify_io` / v2 `rafs.batch_size`: on-demand reads are widened to this many bytes of a blob. */
  amplifyIo: number;
  enableXattr: boolean;
  iostatsFiles: boolean;
  accessPattern: boolean;
  latestReadFiles: boolean;
  prefetch: PrefetchConfig;
}

export interface ParsedDaemonConfig {
  config: DaemonConfig;
  /** Unknown keys and accepted-but-ignored settings, one sentence each. */
  warnings: string[];
}

/** A configuration value is missing, mistyped or not implemented; `key` is its dotted path. */
export class ConfigError extends InvalidArgumentError {
  readonly key: string;
  constructor(key: string, message: string) {
    super(`config: ${key}: ${message}`);
    this.name = 'ConfigError';
    this.key = key;
  }
}

/** Largest `amplify_io` / `batch_size` nydusd accepts (256 MiB). */
const MAX_BATCH_SIZE = 0x1000_0000;
/** Default prefetch batch (merged request) size. */
const DEFAULT_BATCH_SIZE = 1 << 20;
/** nydusd's default `amplify_io` (its code says 128 KiB; its docs say 1 MiB). */
const DEFAULT_AMPLIFY_IO = 128 << 10;

type Json = Record<string, unknown>;

/**
 * One JSON object being validated: typed getters that record which keys were read, so that the
 * rest can be reported as unknown.
 */
class Section {
  private readonly seen = new Set<string>();

  constructor(
    readonly path: string,
    private readonly value: Json,
    private readonly warnings: string[],
  ) {}

  static of(path: string, value: unknown, warnings: string[]): Section {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ConfigError(path || '(root)', `expected an object, got ${describe(value)}`);
    }
    return new Section(path, value as Json, warnings);
  }

  key(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  has(name: string): boolean {
    return this.value[name] !== undefined && this.value[name] !== null;
  }

  raw(name: string): unknown {
    this.seen.add(name);
    return this.value[name];
  }

  /** Marks keys as known without reading them (accepted and ignored). */
  accept(...names: string[]): void {
    for (const n of names) this.seen.add(n);
  }

  /** A nested object that is not a key of this section (e.g. an array element). */
  child(path: string, value: unknown): Section {
    return Section.of(path, value, this.warnings);
  }

  keys(): string[] {
    return Object.keys(this.value);
  }

  section(name: string): Section | undefined {
    const v = this.raw(name);
    if (v === undefined || v === null) return undefined;
    return Section.of(this.key(name), v, this.warnings);
  }

  requiredSection(name: string): Section {
    const s = this.section(name);
    if (!s) throw new ConfigError(this.key(name), 'is required');
    return s;
  }

  string(name: string): string | undefined {
    const v = this.raw(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw new ConfigError(this.key(name), `expected a string, got ${describe(v)}`);
    return v;
  }

  requiredString(name: string): string {
    const v = this.string(name);
    if (v === undefined || v === '') throw new ConfigError(this.key(name), 'is required');
    return v;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError(this.key(name), `expected true or false, got ${describe(v)}`);
    return v;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const v = this.raw(name);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ConfigError(this.key(name), `expected an integer, got ${describe(v)}`);
    if (v < min || v > max) throw new ConfigError(this.key(name), `${v} is out of range ${min}..${max}`);
    return v;
  }

  stringArray(name: string): string[] {
    const v = this.raw(name);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ConfigError(this.key(name), `expected an array of strings, got ${describe(v)}`);
    return v as string[];
  }

  array(name: string): unknown[] {
    const v = this.raw(name);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new ConfigError(this.key(name), `expected an array, got ${describe(v)}`);
    return v;
  }

  /** Warns about every key not read or accepted. Call after reading the section. */
  finish(): void {
    for (const k of Object.keys(this.value)) {
      if (!this.seen.has(k)) this.warnings.push(`unknown key ${this.key(k)} ignored`);
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/**
 * Parses and validates a nydusd configuration (JSON text or an already parsed object), v1 or v2
 * form. Throws ConfigError; returns the config and the warnings to log.
 */
export function parseDaemonConfig(input: string | object): ParsedDaemonConfig {
  let json: unknown = input;
  if (typeof input === 'string') {
    try {
      json = JSON.parse(input);
    } catch (err) {
      throw new ConfigError('(root)', `not valid JSON: ${(err as Error).message}`);
    }
  }
  const warnings: string[] = [];
  const root = Section.of('', json, warnings);
  const version = root.raw('version');
  let config: DaemonConfig;
  if (version === 2) config = parseV2(root, warnings);
  else if (version === undefined || version === null || version === 1) config = parseV1(root, warnings);
  else throw new ConfigError('version', `${describe(version)} is not supported (1 or 2)`);
  root.finish();
  return { config, warnings };
}

// ------------------------------------------------------------------ v1

function parseV1(root: Section, warnings: string[]): DaemonConfig {
  const device = root.requiredSection('device');
  const id = device.string('id');
  const backendSection = device.requiredSection('backend');
  const backend = parseBackend(backendSection.requiredString('type'), backendSection.key('type'), backendSection.requiredSection('config'));
  backendSection.finish();
  const cache = parseCacheV1(device.section('cache'), warnings);
  device.finish();

  const mode = root.string('mode');
  checkMode(mode, 'mode', warnings);
  if (root.has('digest_validate') && root.bool('digest_validate', false) === false) {
    warnings.push('digest_validate: false ignored: every chunk is always verified');
  }
  root.accept('digest_validate');
  const prefetch = parsePrefetchV1(root.section('fs_prefetch'));
  const config: DaemonConfig = {
    version: 1,
    backend,
    cache,
    amplifyIo: root.int('amplify_io', DEFAULT_AMPLIFY_IO, 0, MAX_BATCH_SIZE),
    enableXattr: root.bool('enable_xattr', true),
    iostatsFiles: root.bool('iostats_files', false),
    accessPattern: root.bool('access_pattern', false),
    latestReadFiles: root.bool('latest_read_files', false),
    prefetch,
  };
  if (id !== undefined) config.id = id;
  return config;
}

function parseCacheV1(cache: Section | undefined, warnings: string[]): CacheConfig {
  if (!cache) throw new ConfigError('device.cache', 'is required (type blobcache with config.work_dir)');
  const type = cache.string('type') ?? '';
  const conf = cache.section('config');
  const result = parseCache(type, cache.key('type'), conf, cache.key('config'));
  checkCacheFlags(cache, warnings);
  cache.finish();
  conf?.finish();
  return result;
}

function parsePrefetchV1(s: Section | undefined): PrefetchConfig {
  const p: PrefetchConfig = { enable: false, threads: 8, batchSize: DEFAULT_BATCH_SIZE, bandwidthLimit: 0, prefetchAll: false };
  if (!s) return p;
  p.enable = s.bool('enable', false);
  p.threads = s.int('threads_count', 8, 1, 1024);
  p.batchSize = s.int('merging_size', DEFAULT_BATCH_SIZE, 0, MAX_BATCH_SIZE) || DEFAULT_BATCH_SIZE;
  p.bandwidthLimit = s.int('bandwidth_rate', 0, 0, Number.MAX_SAFE_INTEGER);
  p.prefetchAll = s.bool('prefetch_all', false);
  s.finish();
  return p;
}

// ------------------------------------------------------------------ v2

function parseV2(root: Section, warnings: string[]): DaemonConfig {
  const id = root.string('id');
  const backendSection = root.requiredSection('backend');
  const type = backendSection.requiredString('type');
  const conf = backendSection.section(type);
  if (!conf) throw new ConfigError(backendSection.key(type), `is required for backend type "${type}"`);
  const backend = parseBackend(type, backendSection.key('type'), conf);
  // Sections of other backend types may sit next to the chosen one (nydusd's samples do that).
  for (const other of ['registry', 'localfs', 'oss', 's3', 'localdisk', 'http-proxy']) if (other !== type) backendSection.accept(other);
  backendSection.finish();

  const cacheSection = root.section('cache');
  if (!cacheSection) throw new ConfigError('cache', 'is required (type filecache with filecache.work_dir)');
  const cacheType = cacheSection.string('type') ?? '';
  const cacheConf = cacheSection.section(cacheType === 'blobcache' ? 'filecache' : cacheType);
  const cache = parseCache(cacheType, cacheSection.key('type'), cacheConf, cacheSection.key('filecache'));
  checkCacheFlags(cacheSection, warnings);
  cacheSection.accept('fscache', 'filecache');
  const cachePrefetch = parsePrefetchV2(cacheSection.section('prefetch'));
  cacheSection.finish();
  cacheConf?.finish();

  const rafs = root.section('rafs');
  let amplifyIo = DEFAULT_AMPLIFY_IO;
  let enableXattr = true;
  let iostatsFiles = false;
  let accessPattern = false;
  let latestReadFiles = false;
  let prefetch = cachePrefetch;
  if (rafs) {
    checkMode(rafs.string('mode'), rafs.key('mode'), warnings);
    amplifyIo = rafs.int('batch_size', DEFAULT_AMPLIFY_IO, 0, MAX_BATCH_SIZE);
    rafs.accept('validate', 'user_io_batch_size');
    enableXattr = rafs.bool('enable_xattr', true);
    iostatsFiles = rafs.bool('iostats_files', false);
    accessPattern = rafs.bool('access_pattern', false);
    latestReadFiles = rafs.bool('latest_read_files', false);
    const rp = rafs.section('prefetch');
    if (rp) prefetch = parsePrefetchV2(rp);
    rafs.finish();
  }
  root.accept('overlay', 'external_backends', 'metadata_path');
  const config: DaemonConfig = { version: 2, backend, cache, amplifyIo, enableXattr, iostatsFiles, accessPattern, latestReadFiles, prefetch };
  if (id !== undefined) config.id = id;
  return config;
}

function parsePrefetchV2(s: Section | undefined): PrefetchConfig {
  const p: PrefetchConfig = { enable: false, threads: 8, batchSize: DEFAULT_BATCH_SIZE, bandwidthLimit: 0, prefetchAll: false };
  if (!s) return p;
  p.enable = s.bool('enable', false);
  p.threads = s.int('threads', 8, 1, 1024);
  p.batchSize = s.int('batch_size', DEFAULT_BATCH_SIZE, 0, MAX_BATCH_SIZE) || DEFAULT_BATCH_SIZE;
  p.bandwidthLimit = s.int('bandwidth_limit', 0, 0, Number.MAX_SAFE_INTEGER);
  p.prefetchAll = s.bool('prefetch_all', false);
  s.accept('stream_prefetch');
  s.finish();
  return p;
}

// ------------------------------------------------------------------ shared

function checkMode(mode: string | undefined, key: string, warnings: string[]): void {
  if (mode === undefined || mode === '' || mode === 'direct') return;
  if (mode === 'cached') {
    warnings.push(`${key}: "cached" is a RAFS v5 mode; RAFS v6 is always read in "direct" mode`);
    return;
  }
  throw new ConfigError(key, `${describe(mode)} is not a mode (direct or cached)`);
}

function checkCacheFlags(cache: Section, warnings: string[]): void {
  if (cache.bool('compressed', false)) warnings.push(`${cache.key('compressed')}: true ignored: the cache stores uncompressed, verified chunks`);
  cache.bool('validate', false); // chunks are always verified before they are cached
  for (const k of ['enable_encryption', 'enable_convergent_encryption']) {
    if (cache.bool(k, false)) throw new ConfigError(cache.key(k), 'true is not supported (cache encryption is not implemented)');
  }
  cache.accept('encryption_key');
}

function parseCache(type: string, typeKey: string, conf: Section | undefined, confKey: string): CacheConfig {
  if (type === 'blobcache' || type === 'filecache') {
    if (!conf) throw new ConfigError(confKey, `is required for cache type "${type}" (it holds work_dir)`);
    const workDir = conf.requiredString('work_dir');
    conf.accept('disable_indexed_map');
    return { type, workDir };
  }
  if (type === '' || type === 'dummycache') {
    throw new ConfigError(typeKey, `${describe(type)}: a daemon without a cache is not supported (use blobcache with a work_dir)`);
  }
  if (type === 'fscache') throw new ConfigError(typeKey, '"fscache" is not supported (this daemon serves FUSE, or kernel EROFS over FUSE in erofs mode)');
  throw new ConfigError(typeKey, `${describe(type)} is not a cache type (blobcache or filecache)`);
}

const SUPPORTED_BACKENDS = ['registry', 'localfs'];

function parseBackend(type: string, typeKey: string, conf: Section): BackendConfig {
  let backend: BackendConfig;
  if (type === 'registry') backend = parseRegistry(conf);
  else if (type === 'localfs') backend = parseLocalfs(conf);
  else if (['oss', 's3', 'localdisk', 'http-proxy'].includes(type)) {
    throw new ConfigError(typeKey, `"${type}" is not supported (supported: ${SUPPORTED_BACKENDS.join(', ')})`);
  } else {
    throw new ConfigError(typeKey, `${describe(type)} is not a backend type (supported: ${SUPPORTED_BACKENDS.join(', ')})`);
  }
  conf.finish();
  return backend;
}

function parseLocalfs(c: Section): LocalfsBackendConfig {
  const dir = c.string('dir');
  const blobFile = c.string('blob_file');
  if (!dir && !blobFile) throw new ConfigError(c.key('dir'), 'is required (or blob_file)');
  c.accept('readahead', 'readahead_sec');
  const b: LocalfsBackendConfig = { type: 'localfs', altDirs: c.stringArray('alt_dirs') };
  if (dir) b.dir = dir;
  if (blobFile) b.blobFile = blobFile;
  return b;
}

function parseRegistry(c: Section): RegistryBackendConfig {
  const scheme = c.string('scheme') ?? '';
  if (scheme !== '' && scheme !== 'http' && scheme !== 'https') throw new ConfigError(c.key('scheme'), `${describe(scheme)} is not http or https`);
  const host = c.string('host') ?? '';
  if (host !== '' && !/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$/.test(host)) {
    throw new ConfigError(c.key('host'), `${describe(host)} is not host[:port]`);
  }
  const repo = c.string('repo') ?? '';
  if (repo !== '' && !/^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/.test(repo)) {
    throw new ConfigError(c.key('repo'), `${describe(repo)} is not a repository name (e.g. library/node, no tag)`);
  }
  const b: RegistryBackendConfig = {
    type: 'registry',
    scheme,
    host,
    repo,
    skipVerify: c.bool('skip_verify', false),
    caCertFiles: c.stringArray('ca_cert_files'),
    timeoutSeconds: c.int('timeout', 5, 1, 3600),
    connectTimeoutSeconds: c.int('connect_timeout', 5, 1, 3600),
    retryLimit: c.int('retry_limit', 0, 0, 100),
    mirrors: [],
  };
  const auth = c.string('auth');
  if (auth) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    if (!/^[A-Za-z0-9+/=\s]+$/.test(auth) || decoded.indexOf(':') <= 0) {
      throw new ConfigError(c.key('auth'), 'is not base64 of "user:password"');
    }
    b.auth = auth;
  }
  const token = c.string('registry_token');
  if (token) b.registryToken = token;
  const cert = c.string('client_cert_file');
  const key = c.string('client_key_file');
  if ((cert && !key) || (!cert && key)) throw new ConfigError(c.key(cert ? 'client_key_file' : 'client_cert_file'), 'is required with ' + (cert ? 'client_cert_file' : 'client_key_file'));
  if (cert) b.clientCertFile = cert;
  if (key) b.clientKeyFile = key;
  for (const k of ['blob_url_scheme', 'blob_redirected_host']) {
    const v = c.string(k);
    if (v) throw new ConfigError(c.key(k), `${describe(v)} is not supported (blob redirection is not implemented)`);
  }
  c.accept('disable_head');
  const proxy = c.section('proxy');
  if (proxy) {
    const url = proxy.string('url') ?? '';
    if (url !== '') {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw new ConfigError(proxy.key('url'), `${describe(url)} is not a URL (e.g. http://127.0.0.1:65001)`);
      }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ConfigError(proxy.key('url'), `${describe(url)}: only http and https proxies are supported`);
      b.proxy = { url, fallback: proxy.bool('fallback', true) };
    } else {
      proxy.bool('fallback', true);
    }
    proxy.accept('ping_url', 'check_interval', 'use_http');
    proxy.finish();
  }
  c.array('mirrors').forEach((m, i) => {
    const s = c.child(`${c.key('mirrors')}[${i}]`, m);
    const host = s.requiredString('host');
    try {
      const u = new URL(host);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    } catch {
      throw new ConfigError(s.key('host'), `${describe(host)} is not a URL with http or https scheme (e.g. http://127.0.0.1:65001)`);
    }
    const headersSection = s.section('headers');
    const headers: Record<string, string> = {};
    if (headersSection) {
      for (const name of headersSection.keys()) {
        const v = headersSection.string(name);
        if (v !== undefined) headers[name] = v;
      }
    }
    s.accept('auth_through', 'ping_url', 'health_check_interval', 'failure_limit');
    s.finish();
    b.mirrors.push({ host, headers });
  });
  if (b.proxy && b.mirrors.length > 0) throw new ConfigError(c.key('mirrors'), 'cannot be used together with proxy (as in nydusd)');
  return b;
}
