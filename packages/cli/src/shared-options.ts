import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
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

/** Writes a JSON report through a temporary name, so a reader never sees half of it. */
export async function writeJsonFile(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
