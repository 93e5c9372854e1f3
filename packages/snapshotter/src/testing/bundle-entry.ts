/**
 * Bundles a TypeScript test entry (and the workspace sources it imports) into one ES module a
 * child process can run, so tests that must kill -9 a process run today's sources, not a stale
 * build. Written under node_modules/.cache so its external imports (native addons) resolve.
 * Needs esbuild (a dev dependency).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is packages/snapshotter/{src,dist}/testing/). */
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

/** `entry`: absolute path of a TypeScript file of this repository. Returns the bundle's path. */
export async function bundleTestEntry(entry: string): Promise<string> {
  const { build } = await import('esbuild');
  const outdir = path.join(repoRoot, 'node_modules/.cache/nydus-ts-tests');
  await mkdir(outdir, { recursive: true });
  const outfile = path.join(outdir, `${path.basename(entry, '.ts')}-${process.pid}.mjs`);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    conditions: ['source'],
    external: ['better-sqlite3', '@grpc/grpc-js', '@grpc/proto-loader', '@nydus-ts/native', 'zstd-napi', '@napi-rs/blake-hash', 'fs-xattr', 'fuse-native'],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'warning',
  });
  return outfile;
}
