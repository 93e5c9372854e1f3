import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileSystemError } from '@nydus-ts/core';
import { checkOutputFile } from '@nydus-ts/core/files';
import type { Command } from 'commander';
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS } from '@nydus-ts/registry';
import type { TimeoutOptions } from '@nydus-ts/registry';
import { parseDuration } from './parse.js';

/**
 * The per-side registry flags that copy, convert and check share, as nydusify names them:
 * `--source-insecure`, `--target-insecure`, `--source-creds`, `--target-creds`.
 */
export function addRegistrySideOptions(command: Command): Command {
  return command
    .option('--source-insecure', 'allow plain HTTP and unverified TLS for the source registry')
    .option('--target-insecure', 'allow plain HTTP and unverified TLS for the target registry')
    .option('--source-creds <user:pass>', 'credentials for the source registry (default: docker config)')
    .option('--target-creds <user:pass>', 'credentials for the target registry (default: docker config)');
}

/**
 * Checks `--output-json FILE` before a command starts: FILE must not be a directory, and its
 * directory must exist, unless it is one that the run makes for its other outputs (`madeDirs`,
 * e.g. the bootstrap's directory) or lies on the way to one.
 */
export async function checkOutputJson(file: string | undefined, madeDirs: readonly string[] = []): Promise<void> {
  if (file === undefined) return;
  const dir = path.dirname(path.resolve(file));
  const madeByRun = madeDirs.some((d) => {
    const rel = path.relative(dir, path.resolve(d));
    return !rel.startsWith('..') && !path.isAbsolute(rel);
  });
  await checkOutputFile(file, '--output-json', { createParents: madeByRun });
}

/** The timeout flags of every command that talks to registries. */
export interface TimeoutFlags {
  connectTimeout?: string;
  idleTimeout?: string;
}

/** `--connect-timeout` and `--idle-timeout` (copy, convert, check). */
export function addTimeoutOptions(command: Command): Command {
  return command
    .option('--connect-timeout <duration>', `longest wait for a registry connection (TCP and TLS), e.g. 10s (default ${DEFAULT_CONNECT_TIMEOUT_MS / 1000}s)`)
    .option('--idle-timeout <duration>', `longest wait for the next byte from a registry, or for it to take the next byte of an upload; then the request is retried or resumed (default ${DEFAULT_IDLE_TIMEOUT_MS / 1000}s)`);
}

/** The library's timeout options from the flags (only those given). */
export function parseTimeoutFlags(flags: TimeoutFlags): TimeoutOptions | undefined {
  const timeouts: TimeoutOptions = {};
  if (flags.connectTimeout !== undefined) timeouts.connectMs = parseDuration(flags.connectTimeout, '--connect-timeout');
  if (flags.idleTimeout !== undefined) timeouts.idleMs = parseDuration(flags.idleTimeout, '--idle-timeout');
  return Object.keys(timeouts).length > 0 ? timeouts : undefined;
}

/** Writes a JSON report through a temporary name, so a reader never sees half of it. */
export async function writeJsonFile(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw fileSystemError(err, file, 'writing --output-json');
  }
}
