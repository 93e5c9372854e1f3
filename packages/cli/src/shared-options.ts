import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileSystemError } from '@nydus-ts/core';
import { checkOutputFile } from '@nydus-ts/core/files';
import type { Command } from 'commander';

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
