#!/usr/bin/env node
// Bundles the built app (dist/main.js and the workspace modules it imports) into bundle/, which
// bin/nydusd-ts.js runs: a few files instead of dozens of ES modules resolved one by one at every
// start (the containerd snapshotter starts a daemon per image). Packages with native addons stay
// external and load from node_modules.
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const app = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(app, 'bundle');

await rm(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: { main: path.join(app, 'dist/main.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
  // (the snapshotter's SQLite addon, and gRPC with the .proto files it loads at run time, too)
  external: ['@nydus-ts/native', 'zstd-napi', '@napi-rs/blake-hash', 'fs-xattr', 'fuse-native', 'better-sqlite3', '@grpc/grpc-js', '@grpc/proto-loader'],
  // CommonJS dependencies (commander) call require() for Node built-ins.
  banner: { js: "import { createRequire as __nydusCreateRequire } from 'node:module';\nconst require = __nydusCreateRequire(import.meta.url);" },
});
await writeFile(path.join(outdir, 'meta.json'), JSON.stringify(result.metafile));
