/**
 * `nydusd-ts snapshotter` configuration: defaults, then the `--config` JSON file (keys named as in
 * nydus-snapshotter's config.toml), then flags; validated once into the library's options.
 */
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError } from '@nydus-ts/core';
import type { LogLevel } from '@nydus-ts/core';
import type { DaemonMode, NydusdConfigV1, RegistryHostConfig } from '@nydus-ts/snapshotter';
import { parseChoice, parsePositiveInt } from '../parse.js';

/** The flags of `nydusd-ts snapshotter`, as commander hands them over. */
export interface SnapshotterFlags {
  address?: string;
  root?: string;
  config?: string;
  daemonMode?: string;
  nydusdConfig?: string;
  nydusdPath?: string;
  fsDriver?: string;
  threads?: string;
  credentials?: string;
  logLevel?: string;
}

export type FsDriver = 'fusedev' | 'erofs';

export interface SnapshotterSettings {
  address: string;
  root: string;
  daemonMode: DaemonMode;
  /** Executable and leading arguments of nydusd-ts. */
  nydusdCommand: string[];
  fsDriver: FsDriver;
  threads: number | undefined;
  daemonLogLevel: string;
  nydusdConfig: NydusdConfigV1 | undefined;
  /** A docker-config-format file, else docker's own config. */
  credentialsFile: string | undefined;
  registryHosts: Record<string, RegistryHostConfig>;
  logLevel: LogLevel;
}

const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];
const DAEMON_MODES: readonly DaemonMode[] = ['shared', 'dedicated'];
const FS_DRIVERS: readonly FsDriver[] = ['fusedev', 'erofs'];

export const DEFAULT_ADDRESS = '/run/nydus-ts-snapshotter/snapshotter.sock';
export const DEFAULT_ROOT = '/var/lib/nydus-ts-snapshotter';

/** The `--config` file's shape. */
interface ConfigFile {
  address?: string;
  root?: string;
  daemon_mode?: string;
  log_level?: string;
  daemon?: { nydusd_path?: string; nydusd_config?: string; fs_driver?: string; threads_number?: number; log_level?: string };
  remote?: { credentials_file?: string; registry_hosts?: Record<string, { scheme?: string; skip_verify?: boolean }> };
}

const allowedKeys: Record<string, readonly string[]> = {
  '': ['address', 'root', 'daemon_mode', 'log_level', 'daemon', 'remote'],
  daemon: ['nydusd_path', 'nydusd_config', 'fs_driver', 'threads_number', 'log_level'],
  remote: ['credentials_file', 'registry_hosts'],
};

function checkObject(value: unknown, where: string, file: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError(`${file}: ${where || 'the file'} must be a JSON object`);
  }
  const keys = allowedKeys[where];
  if (keys) {
    for (const k of Object.keys(value)) {
      if (!keys.includes(k)) throw new InvalidArgumentError(`${file}: unknown key ${where ? `${where}.` : ''}${k} (known: ${keys.join(', ')})`);
    }
  }
  return value as Record<string, unknown>;
}

function str(value: unknown, key: string, file: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw new InvalidArgumentError(`${file}: ${key} must be a non-empty string`);
  return value;
}

async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new InvalidArgumentError(`${what} ${file}: invalid JSON (${(err as Error).message})`, { cause: err });
  }
}

/**
 * The environment and Node flags that nydusd-ts's bin sets in its shebang (apps/nydusd-ts/bin,
 * docs/nydusd.md § Memory). A daemon started as `node nydusd-ts.js` skips the shebang, so the
 * snapshotter passes them itself; a test keeps the two in step.
 */
export const NYDUSD_NODE_ENV = ['MALLOC_ARENA_MAX=2'] as const;
export const NYDUSD_NODE_FLAGS = ['--max-semi-space-size=1'] as const;

/** How to run a JavaScript nydusd-ts with this Node, with the bin's memory settings. */
export function nodeNydusdCommand(script: string): string[] {
  return ['/usr/bin/env', ...NYDUSD_NODE_ENV, process.execPath, ...NYDUSD_NODE_FLAGS, script];
}

/** How to run a nydusd-ts given as a path: a `.js`/`.mjs` file runs with this Node. */
export function nydusdCommandFor(binPath: string): string[] {
  return /\.(c|m)?js$/.test(binPath) ? nodeNydusdCommand(binPath) : [binPath];
}

export async function resolveSnapshotterSettings(flags: SnapshotterFlags, cwd: string, selfCommand: string[]): Promise<SnapshotterSettings> {
  let file: ConfigFile = {};
  const configFile = flags.config && path.resolve(cwd, flags.config);
  if (configFile) {
    const raw = checkObject(await readJson(configFile, '--config'), '', configFile);
    if (raw.daemon !== undefined) checkObject(raw.daemon, 'daemon', configFile);
    if (raw.remote !== undefined) checkObject(raw.remote, 'remote', configFile);
    file = raw as ConfigFile;
  }
  const cf = configFile ?? '';
  const rel = (p: string | undefined): string | undefined => (p === undefined ? undefined : path.resolve(configFile ? path.dirname(configFile) : cwd, p));
  // Every value of the file is checked, also those a flag overrides.
  const fromFile = {
    address: str(file.address, 'address', cf),
    root: str(file.root, 'root', cf),
    daemonMode: str(file.daemon_mode, 'daemon_mode', cf),
    fsDriver: str(file.daemon?.fs_driver, 'daemon.fs_driver', cf),
    logLevel: str(file.log_level, 'log_level', cf),
    daemonLogLevel: str(file.daemon?.log_level, 'daemon.log_level', cf),
    nydusdPath: rel(str(file.daemon?.nydusd_path, 'daemon.nydusd_path', cf)),
    nydusdConfig: rel(str(file.daemon?.nydusd_config, 'daemon.nydusd_config', cf)),
    credentials: rel(str(file.remote?.credentials_file, 'remote.credentials_file', cf)),
  };
  const threadsNumber = file.daemon?.threads_number;
  if (threadsNumber !== undefined && (!Number.isInteger(threadsNumber) || threadsNumber < 1)) {
    throw new InvalidArgumentError(`${cf}: daemon.threads_number must be a positive integer`);
  }
  const address = flags.address ?? fromFile.address ?? DEFAULT_ADDRESS;
  const root = flags.root ?? fromFile.root ?? DEFAULT_ROOT;
  const daemonMode = parseChoice(flags.daemonMode ?? fromFile.daemonMode ?? 'shared', flags.daemonMode ? '--daemon-mode' : 'daemon_mode', DAEMON_MODES);
  const fsDriver = parseChoice(flags.fsDriver ?? fromFile.fsDriver ?? 'fusedev', flags.fsDriver ? '--fs-driver' : 'daemon.fs_driver', FS_DRIVERS);
  const logLevel = parseChoice(flags.logLevel ?? fromFile.logLevel ?? 'info', flags.logLevel ? '--log-level' : 'log_level', LOG_LEVELS);
  const daemonLogLevel = parseChoice(fromFile.daemonLogLevel ?? logLevel, 'daemon.log_level', LOG_LEVELS);
  if (fsDriver === 'erofs' && daemonMode !== 'dedicated') {
    throw new InvalidArgumentError('--fs-driver erofs needs --daemon-mode dedicated (nydusd-ts serves erofs mode for one image per daemon)');
  }
  const threads = flags.threads !== undefined ? parsePositiveInt(flags.threads, '--threads') : threadsNumber;
  const nydusdPath = flags.nydusdPath ? path.resolve(cwd, flags.nydusdPath) : fromFile.nydusdPath;
  const nydusdCommand = nydusdPath ? nydusdCommandFor(nydusdPath) : selfCommand;
  if (nydusdPath) {
    await access(nydusdPath).catch((err: unknown) => {
      throw new InvalidArgumentError(`nydusd-ts path ${nydusdPath}: ${(err as Error).message}`);
    });
  }
  const nydusdConfigFile = flags.nydusdConfig ? path.resolve(cwd, flags.nydusdConfig) : fromFile.nydusdConfig;
  let nydusdConfig: NydusdConfigV1 | undefined;
  if (nydusdConfigFile) {
    const { validateNydusdConfigTemplate } = await import('@nydus-ts/snapshotter');
    nydusdConfig = validateNydusdConfigTemplate(await readJson(nydusdConfigFile, '--nydusd-config'), nydusdConfigFile);
  }
  const credentialsFile = flags.credentials ? path.resolve(cwd, flags.credentials) : fromFile.credentials;
  if (credentialsFile) await readJson(credentialsFile, '--credentials'); // present and valid JSON now, not at the first pull
  const registryHosts: Record<string, RegistryHostConfig> = {};
  const hosts = file.remote?.registry_hosts;
  if (hosts !== undefined) {
    for (const [host, h] of Object.entries(checkObject(hosts, 'remote.registry_hosts', cf))) {
      const entry = checkObject(h, `remote.registry_hosts.${host}`, cf) as { scheme?: unknown; skip_verify?: unknown };
      const cfg: RegistryHostConfig = {};
      if (entry.scheme !== undefined) cfg.scheme = parseChoice(String(entry.scheme), `remote.registry_hosts.${host}.scheme`, ['http', 'https'] as const);
      if (entry.skip_verify !== undefined) {
        if (typeof entry.skip_verify !== 'boolean') throw new InvalidArgumentError(`${cf}: remote.registry_hosts.${host}.skip_verify must be true or false`);
        cfg.skipVerify = entry.skip_verify;
      }
      registryHosts[host] = cfg;
    }
  }
  return {
    address: path.resolve(cwd, address),
    root: path.resolve(cwd, root),
    daemonMode,
    nydusdCommand,
    fsDriver,
    threads,
    daemonLogLevel,
    nydusdConfig,
    credentialsFile,
    registryHosts,
    logLevel,
  };
}
