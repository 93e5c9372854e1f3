#!/usr/bin/env node
// Bundles the built app (dist/main.js and the modules it imports from the workspace packages)
// into bundle/, which bin/nydusify-ts.js runs: one file per entry and a few shared chunks
// instead of ~120 ES modules, each resolved and loaded on its own (~60 ms less start-up for
// every command). Packages with native addons stay external and load from node_modules.
// The layer worker is an entry of its own: the converter starts it from next to the module
// that spawns it (`new URL('./layer-worker.js', import.meta.url)`), which is bundle/ here.
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const app = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(app, 'bundle');
const converterDist = path.resolve(app, '../../packages/converter/dist');

await rm(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: {
    main: path.join(app, 'dist/main.js'),
    'layer-worker': path.join(converterDist, 'convert/layer-worker.js'),
  },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
  // Native addons are loaded relative to their own package directory.
  external: ['@nydus-ts/native', '@napi-rs/blake-hash', 'fs-xattr', 'fuse-native'],
  // CommonJS dependencies (commander) call require() for Node built-ins.
  banner: { js: "import { createRequire as __nydusCreateRequire } from 'node:module';\nconst require = __nydusCreateRequire(import.meta.url);" },
});
// Which source modules each output file holds (tests check what a command loads).
await writeFile(path.join(outdir, 'meta.json'), JSON.stringify(result.metafile));
