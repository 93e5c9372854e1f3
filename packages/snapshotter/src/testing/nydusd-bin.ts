import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * How tests start nydusd-ts: `$NYDUSD_TS_BIN`, or the app's bin in this repository (which runs
 * the bundle `npm run build` makes). Returns `[node, bin]`.
 */
export function nydusdTsCommand(env: NodeJS.ProcessEnv = process.env): string[] {
  const bin = env.NYDUSD_TS_BIN ?? fileURLToPath(new URL('../../../../apps/nydusd-ts/bin/nydusd-ts.js', import.meta.url));
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run build\` first`);
  return [process.execPath, bin];
}
