import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../../..');

/**
 * The bin script of an app of this repository (`nydusify-ts`, `nydusd-ts`), which runs the
 * bundle `npm run build` makes from the packages' dist. A bundle older than any module it was
 * made from (its esbuild metafile lists them) would test stale code, e.g. after a bare
 * `tsc -b`: that fails here, with what to run.
 */
export function appBin(app: 'nydusify-ts' | 'nydusd-ts'): string {
  const dir = join(root, 'apps', app);
  const bundle = join(dir, 'bundle/main.js');
  let bundled: number;
  let inputs: string[];
  try {
    bundled = statSync(bundle).mtimeMs;
    inputs = Object.keys((JSON.parse(readFileSync(join(dir, 'bundle/meta.json'), 'utf8')) as { inputs: Record<string, unknown> }).inputs);
  } catch {
    throw new Error(`${bundle} is missing: run \`npm run build\` first`);
  }
  for (const input of inputs) {
    const file = resolve(dir, input);
    let mtime: number;
    try {
      mtime = statSync(file).mtimeMs;
    } catch {
      throw new Error(`${bundle} was made from ${file}, which is gone: run \`npm run build\``);
    }
    if (mtime > bundled) throw new Error(`${bundle} is older than ${file}: run \`npm run build\` to rebuild it`);
  }
  return join(dir, 'bin', `${app}.js`);
}
