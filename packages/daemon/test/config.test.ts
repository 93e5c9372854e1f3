// Issue 11, done-when 7 (config): nydusd's documented example configs are accepted as they are;
// each wrong key or type in a table of bad configs gets a clear error naming the key; the
// nydusd-ts binary exits 2 on them without mounting anything.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, createDaemonBackend, parseDaemonConfig } from '../src/index.js';
import { readMountTable } from '../src/index.js';
import { runNydusdToExit } from './support/nydusd-process.js';

// nydusd's docs/nydusd.md "Run Nydusd Daemon" (localfs).
const DOCS_LOCALFS = `{
  "device": {
    "backend": {
      "type": "localfs",
      "config": {
        "dir": "/var/lib/nydus/blobs"
      }
    },
    "cache": {
      "type": "blobcache",
      "config": {
        "work_dir": "/var/lib/nydus/cache"
      }
    }
  },
  "mode": "direct",
  "digest_validate": false,
  "iostats_files": false,
  "enable_xattr": true
}`;

// nydus misc/configs/nydusd-config.json (registry; host and repo come from the snapshotter).
const MISC_REGISTRY = `{
  "device": {
    "backend": {
      "type": "registry",
      "config": {
        "timeout": 5,
        "connect_timeout": 5,
        "retry_limit": 2,
        "skip_verify": false,
        "ca_cert_files": ["/etc/ssl/certs/my-ca.pem"],
        "client_cert_file": "/etc/ssl/certs/client.pem",
        "client_key_file": "/etc/ssl/private/client-key.pem"
      }
    },
    "cache": {
      "type": "blobcache",
      "config": {
        "work_dir": "/var/lib/nydus/cache"
      }
    }
  },
  "mode": "direct",
  "digest_validate": false,
  "iostats_files": false,
  "enable_xattr": true,
  "fs_prefetch": {
    "enable": true,
    "threads_count": 8,
    "merging_size": 1048576,
    "prefetch_all": true
  }
}`;

// The registry backend of docs/nydusd.md with auth and the mirrors section, as the snapshotter
// fills it in (spec §7.1: every key it writes).
const REGISTRY_AUTH_MIRRORS = `{
  "device": {
    "id": "/8f6a3c",
    "backend": {
      "type": "registry",
      "config": {
        "scheme": "https",
        "host": "my-registry:5000",
        "repo": "test/repo",
        "auth": "${Buffer.from('user:secret').toString('base64')}",
        "registry_token": "",
        "skip_verify": false,
        "ca_cert_files": [],
        "timeout": 5,
        "connect_timeout": 5,
        "retry_limit": 2,
        "blob_url_scheme": "",
        "blob_redirected_host": "",
        "mirrors": [
          {
            "host": "http://dragonfly1.io:65001",
            "headers": { "X-Dragonfly-Registry": "https://index.docker.io" },
            "ping_url": "http://127.0.0.1:40901/server/ping",
            "health_check_interval": 5,
            "failure_limit": 5
          },
          { "host": "http://dragonfly2.io:65001", "headers": { "X-Dragonfly-Registry": "https://index.docker.io" } }
        ]
      }
    },
    "cache": { "type": "blobcache", "compressed": false, "validate": false, "config": { "work_dir": "/var/lib/nydus/cache", "disable_indexed_map": false } }
  },
  "mode": "direct",
  "digest_validate": false,
  "iostats_files": false,
  "enable_xattr": true,
  "access_pattern": false,
  "latest_read_files": false,
  "amplify_io": 1048576,
  "fs_prefetch": { "enable": true, "prefetch_all": true, "threads_count": 8, "merging_size": 1048576, "bandwidth_rate": 0 }
}`;

// nydus-snapshotter misc/snapshotter/nydusd-config.fusedev.json and -localfs.json.
const SNAPSHOTTER_FUSEDEV = `{
  "device": {
    "backend": { "type": "registry", "config": { "scheme": "https", "timeout": 5, "connect_timeout": 5, "retry_limit": 2 } },
    "cache": { "type": "blobcache", "config": { "work_dir": "/var/lib/nydus/cache" } }
  },
  "mode": "direct",
  "digest_validate": false,
  "iostats_files": false,
  "enable_xattr": true,
  "fs_prefetch": { "enable": true, "threads_count": 2, "prefetch_all": true }
}`;
const SNAPSHOTTER_LOCALFS = `{
    "device": {
      "backend": { "type": "localfs", "config": { "dir": "/tmp/" } },
      "cache": { "type": "blobcache", "config": { "work_dir": "/var/lib/nydus/cache" } }
    },
    "mode": "direct",
    "digest_validate": false,
    "iostats_files": false,
    "enable_xattr": true,
    "fs_prefetch": { "enable": true, "threads_count": 2 }
  }
  `;

// The v2 form (nydus misc/configs/nydusd-config-v2.toml's layout, as JSON, without cache encryption).
const V2 = `{
  "version": 2,
  "id": "my_id",
  "backend": {
    "type": "registry",
    "registry": {
      "scheme": "https",
      "host": "my.registry.com",
      "repo": "nydus",
      "auth": "${Buffer.from('u:p').toString('base64')}",
      "skip_verify": true,
      "timeout": 10,
      "connect_timeout": 10,
      "retry_limit": 5,
      "registry_token": "bear_token",
      "proxy": { "url": "http://localhost:6789", "ping_url": "http://localhost:6789/ping", "fallback": true, "check_interval": 5, "use_http": false }
    },
    "localfs": { "blob_file": "/tmp/nydus.blob.data", "dir": "/tmp", "alt_dirs": ["/var/nydus/cache"] }
  },
  "cache": {
    "type": "filecache",
    "compressed": true,
    "validate": true,
    "filecache": { "work_dir": "." },
    "fscache": { "work_dir": "." },
    "prefetch": { "enable": true, "threads": 8, "batch_size": 1000000, "bandwidth_limit": 10000000 }
  },
  "rafs": {
    "mode": "direct",
    "batch_size": 1000000,
    "validate": true,
    "enable_xattr": true,
    "iostats_files": false,
    "access_pattern": false,
    "latest_read_files": false,
    "prefetch": { "enable": true, "threads": 8, "batch_size": 1000000, "bandwidth_limit": 10000000, "prefetch_all": true }
  }
}`;

describe('nydusd configuration', () => {
  it('accepts the documented examples as they are', () => {
    const localfs = parseDaemonConfig(DOCS_LOCALFS);
    expect(localfs.config.backend).toEqual({ type: 'localfs', dir: '/var/lib/nydus/blobs', altDirs: [] });
    expect(localfs.config.cache).toEqual({ type: 'blobcache', workDir: '/var/lib/nydus/cache' });
    expect(localfs.warnings).toEqual(['digest_validate: false ignored: every chunk is always verified']);

    const misc = parseDaemonConfig(MISC_REGISTRY).config;
    expect(misc.backend).toMatchObject({ type: 'registry', host: '', caCertFiles: ['/etc/ssl/certs/my-ca.pem'], clientCertFile: '/etc/ssl/certs/client.pem', retryLimit: 2 });
    expect(misc.prefetch).toEqual({ enable: true, threads: 8, batchSize: 1048576, bandwidthLimit: 0, prefetchAll: true });

    const auth = parseDaemonConfig(REGISTRY_AUTH_MIRRORS);
    expect(auth.warnings.filter((w) => w.startsWith('unknown'))).toEqual([]);
    expect(auth.config.id).toBe('/8f6a3c');
    expect(auth.config.backend).toMatchObject({ scheme: 'https', host: 'my-registry:5000', repo: 'test/repo', timeoutSeconds: 5, connectTimeoutSeconds: 5, retryLimit: 2 });
    expect(auth.config.backend.type === 'registry' && auth.config.backend.mirrors).toEqual([
      { host: 'http://dragonfly1.io:65001', headers: { 'X-Dragonfly-Registry': 'https://index.docker.io' } },
      { host: 'http://dragonfly2.io:65001', headers: { 'X-Dragonfly-Registry': 'https://index.docker.io' } },
    ]);

    expect(parseDaemonConfig(SNAPSHOTTER_FUSEDEV).config.prefetch).toMatchObject({ enable: true, threads: 2, prefetchAll: true });
    expect(parseDaemonConfig(SNAPSHOTTER_LOCALFS).config.backend).toMatchObject({ type: 'localfs', dir: '/tmp/' });

    const v2 = parseDaemonConfig(V2);
    expect(v2.config).toMatchObject({ version: 2, id: 'my_id', amplifyIo: 1000000, enableXattr: true });
    expect(v2.config.backend).toMatchObject({ type: 'registry', host: 'my.registry.com', repo: 'nydus', skipVerify: true, registryToken: 'bear_token', proxy: { url: 'http://localhost:6789', fallback: true } });
    expect(v2.config.cache).toEqual({ type: 'filecache', workDir: '.' });
    expect(v2.config.prefetch).toEqual({ enable: true, threads: 8, batchSize: 1000000, bandwidthLimit: 10000000, prefetchAll: true });
    expect(v2.warnings).toEqual(['cache.compressed: true ignored: the cache stores uncompressed, verified chunks']);
  });

  it('warns about unknown keys (snapshotter extras such as warmup) and names them', () => {
    const { warnings } = parseDaemonConfig({ ...JSON.parse(DOCS_LOCALFS), warmup: 1, id_mapping: [1, 2] });
    expect(warnings).toContain('unknown key warmup ignored');
    expect(warnings).toContain('unknown key id_mapping ignored');
  });

  const base = (): Record<string, any> => JSON.parse(REGISTRY_AUTH_MIRRORS);
  const bad: Array<[string, (c: Record<string, any>) => unknown, string, RegExp]> = [
    ['not JSON', () => '{"device": ', '(root)', /not valid JSON/],
    ['not an object', () => '[1, 2]', '(root)', /expected an object/],
    ['missing device', (c) => ({ mode: c.mode }), 'device', /is required/],
    ['backend type oss', (c) => ((c.device.backend.type = 'oss'), c), 'device.backend.type', /"oss" is not supported/],
    ['backend type s3', (c) => ((c.device.backend.type = 's3'), c), 'device.backend.type', /"s3" is not supported/],
    ['unknown backend type', (c) => ((c.device.backend.type = 'ftp'), c), 'device.backend.type', /"ftp" is not a backend type/],
    ['backend type not a string', (c) => ((c.device.backend.type = 7), c), 'device.backend.type', /expected a string, got number 7/],
    ['missing backend config', (c) => (delete c.device.backend.config, c), 'device.backend.config', /is required/],
    ['timeout is a string', (c) => ((c.device.backend.config.timeout = '5'), c), 'device.backend.config.timeout', /expected an integer, got "5"/],
    ['negative retry_limit', (c) => ((c.device.backend.config.retry_limit = -1), c), 'device.backend.config.retry_limit', /-1 is out of range/],
    ['skip_verify not a bool', (c) => ((c.device.backend.config.skip_verify = 'yes'), c), 'device.backend.config.skip_verify', /expected true or false/],
    ['bad scheme', (c) => ((c.device.backend.config.scheme = 'ftp'), c), 'device.backend.config.scheme', /"ftp" is not http or https/],
    ['host with a path', (c) => ((c.device.backend.config.host = 'reg.io/x'), c), 'device.backend.config.host', /is not host\[:port\]/],
    ['repo with a tag', (c) => ((c.device.backend.config.repo = 'library/node:20'), c), 'device.backend.config.repo', /is not a repository name/],
    ['auth not base64 user:pass', (c) => ((c.device.backend.config.auth = 'nocolon'), c), 'device.backend.config.auth', /not base64 of "user:password"/],
    ['mirror without host', (c) => (delete c.device.backend.config.mirrors[0].host, c), 'device.backend.config.mirrors[0].host', /is required/],
    ['mirror host not a URL', (c) => ((c.device.backend.config.mirrors[1].host = 'dragonfly:65001'), c), 'device.backend.config.mirrors[1].host', /not a URL/],
    ['mirrors not an array', (c) => ((c.device.backend.config.mirrors = {}), c), 'device.backend.config.mirrors', /expected an array/],
    ['proxy url not a URL', (c) => ((c.device.backend.config.proxy = { url: 'p2p proxy' }), delete c.device.backend.config.mirrors, c), 'device.backend.config.proxy.url', /not a URL/],
    ['proxy and mirrors', (c) => ((c.device.backend.config.proxy = { url: 'http://127.0.0.1:65001' }), c), 'device.backend.config.mirrors', /together with proxy/],
    ['blob redirection', (c) => ((c.device.backend.config.blob_redirected_host = 'cdn.example.com'), c), 'device.backend.config.blob_redirected_host', /not supported/],
    ['missing cache', (c) => (delete c.device.cache, c), 'device.cache', /is required/],
    ['cache type fscache', (c) => ((c.device.cache.type = 'fscache'), c), 'device.cache.type', /"fscache" is not supported/],
    ['dummy cache', (c) => ((c.device.cache.type = 'dummycache'), c), 'device.cache.type', /without a cache is not supported/],
    ['missing work_dir', (c) => (delete c.device.cache.config.work_dir, c), 'device.cache.config.work_dir', /is required/],
    ['cache encryption', (c) => ((c.device.cache.enable_encryption = true), c), 'device.cache.enable_encryption', /not supported/],
    ['bad mode', (c) => ((c.mode = 'lazy'), c), 'mode', /"lazy" is not a mode/],
    ['enable_xattr not a bool', (c) => ((c.enable_xattr = 1), c), 'enable_xattr', /expected true or false/],
    ['amplify_io too large', (c) => ((c.amplify_io = 2 ** 30), c), 'amplify_io', /out of range/],
    ['fs_prefetch not an object', (c) => ((c.fs_prefetch = true), c), 'fs_prefetch', /expected an object/],
    ['threads_count 0', (c) => ((c.fs_prefetch.threads_count = 0), c), 'fs_prefetch.threads_count', /out of range/],
    ['unknown version', (c) => ((c.version = 3), c), 'version', /3 is not supported/],
    ['v2 without the backend section', () => ({ version: 2, backend: { type: 'registry' }, cache: { type: 'filecache', filecache: { work_dir: '/c' } } }), 'backend.registry', /is required/],
    ['v2 localfs without dir', () => ({ version: 2, backend: { type: 'localfs', localfs: {} }, cache: { type: 'filecache', filecache: { work_dir: '/c' } } }), 'backend.localfs.dir', /is required/],
    ['v2 filecache without its section', () => ({ version: 2, backend: { type: 'localfs', localfs: { dir: '/b' } }, cache: { type: 'filecache' } }), 'cache.filecache', /is required/],
    ['v2 rafs.mode', () => ({ version: 2, backend: { type: 'localfs', localfs: { dir: '/b' } }, cache: { type: 'filecache', filecache: { work_dir: '/c' } }, rafs: { mode: 7 } }), 'rafs.mode', /expected a string/],
  ];
  for (const [name, make, key, message] of bad) {
    it(`refuses: ${name} (names ${key})`, () => {
      const input = make(base());
      let error: unknown;
      try {
        parseDaemonConfig(typeof input === 'string' ? input : JSON.stringify(input));
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).key).toBe(key);
      expect((error as ConfigError).code).toBe('INVALID_ARGUMENT');
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message.startsWith(`config: ${key}: `)).toBe(true);
    });
  }

  it('a registry backend without host or repo is refused when it is created, naming the key', async () => {
    const { config } = parseDaemonConfig(SNAPSHOTTER_FUSEDEV);
    const err = await createDaemonBackend(config.backend, 'device.backend.config').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe('device.backend.config.host');
  });
});

describe('nydusd-ts refuses bad configs and flags with exit code 2, mounting nothing', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-config-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('bad config, missing bootstrap, bad flags', async () => {
    const mnt = path.join(work, 'mnt');
    await mkdir(mnt);
    const cfg = path.join(work, 'bad.json');
    const c = JSON.parse(DOCS_LOCALFS);
    c.device.backend.type = 'oss';
    await writeFile(cfg, JSON.stringify(c));
    const fixture = path.resolve(import.meta.dirname, '../../../testdata/nydus-upstream/rafs-v6-2.2.boot');
    const cases: Array<[string[], RegExp]> = [
      [['--config', cfg, '--bootstrap', fixture, '--mountpoint', mnt], /config: device\.backend\.type: "oss" is not supported/],
      [['--config', path.join(work, 'missing.json'), '--bootstrap', fixture, '--mountpoint', mnt], /--config .*missing\.json: no such file/],
      [['--bootstrap', fixture, '--mountpoint', mnt], /--bootstrap needs --config/],
      [['--config', cfg, '--mountpoint', mnt, '--mode', 'nbd'], /--mode: "nbd" is not one of fuse, erofs/],
      [['--mountpoint', mnt, '--log-level', 'loud'], /--log-level: "loud" is not one of/],
      [['--mountpoint', mnt, '--upgrade'], /--upgrade .* is not supported/],
      [['--mountpoint', mnt, '--no-such-flag'], /unknown option/],
    ];
    for (const [args, message] of cases) {
      const r = await runNydusdToExit(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    expect((await readMountTable()).some((m) => m.mountpoint === mnt)).toBe(false);
  });
});

