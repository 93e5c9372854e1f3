import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../../../..');

/** Newest modification time of the .js files under `dir` (0 if none). */
function newestJs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.js')) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/**
 * The nydusify-ts binary the tests run: $NYDUSIFY_TS_BIN, or the app's bin, which runs the
 * bundle that `npm run build` makes from the packages' dist. A bundle older than some dist file
 * would test stale code (after a bare `tsc -b`): that fails here, with what to run.
 */
export function nydusifyBin(): string {
  if (process.env.NYDUSIFY_TS_BIN) return process.env.NYDUSIFY_TS_BIN;
  const app = join(root, 'apps/nydusify-ts');
  const bundle = join(app, 'bundle/main.js');
  let bundled: number;
  try {
    bundled = statSync(bundle).mtimeMs;
  } catch {
    throw new Error(`${bundle} is missing: run \`npm run build\` first`);
  }
  const dists = [join(app, 'dist'), ...readdirSync(join(root, 'packages')).map((p) => join(root, 'packages', p, 'dist'))];
  for (const dist of dists) {
    let newest: number;
    try {
      newest = newestJs(dist);
    } catch {
      continue; // a package without dist (not built, or nothing to build)
    }
    if (newest > bundled) throw new Error(`${bundle} is older than ${dist}: run \`npm run build\` to rebuild it`);
  }
  return join(app, 'bin/nydusify-ts.js');
}
