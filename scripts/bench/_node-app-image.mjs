// The node application image of the cold-start benchmark (not a benchmark itself): Debian
// minbase, this Node.js, and an application layer with real packages installed from the npm
// registry at build time (~1.1 GB of node_modules, ~255 MB gzip; with the other layers ~345 MB
// compressed, like the node:19 image of the reference tools' cold-start table). Built once and
// cached under the cache dir as tar + tar.gz with their digests.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from './_lib.mjs';

/** The application's dependencies (installed with --ignore-scripts: no post-install downloads). */
export const APP_PACKAGES = [
  'next', 'react', 'react-dom', '@swc/core', 'typescript', 'aws-sdk', 'monaco-editor', '@tensorflow/tfjs', 'three',
  'pdfjs-dist', 'webpack', '@babel/core', 'eslint', 'lodash', 'moment', 'rxjs', 'esbuild', 'prettier', 'sass',
];

/** The heavier workload: require a handful of big modules, then print one line. */
export const APP_START_JS = `const ts = require('typescript');
require('lodash'); require('moment'); require('rxjs'); require('@babel/core'); require('webpack');
console.log('ready typescript ' + ts.version);
`;

function sh(script, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${script.slice(0, 200)} failed (exit ${code})`))));
  });
}

async function sha256File(file) {
  const h = createHash('sha256');
  for await (const c of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(c);
  return `sha256:${h.digest('hex')}`;
}

/** { file, digest, size, diffId } of a cached tar / tar.gz pair (digests cached beside them). */
export async function layerFile(tar, tgz) {
  const sidecar = `${tgz}.digests.json`;
  const st = statSync(tgz);
  if (existsSync(sidecar)) {
    const d = JSON.parse(readFileSync(sidecar, 'utf8'));
    if (d.size === st.size && d.mtimeMs === st.mtimeMs) return { file: tgz, digest: d.digest, size: d.size, diffId: d.diffId };
  }
  const d = { size: st.size, mtimeMs: st.mtimeMs, digest: await sha256File(tgz), diffId: await sha256File(tar) };
  writeFileSync(sidecar, JSON.stringify(d));
  return { file: tgz, digest: d.digest, size: d.size, diffId: d.diffId };
}

/** The /app layer: package.json, the lock file of the first install, node_modules, start.js. */
export async function ensureNodeAppLayer(log = (s) => process.stderr.write(`${s}\n`)) {
  const name = 'node-app-v1';
  const tar = join(cacheDir, `${name}.tar`);
  const tgz = `${tar}.gz`;
  if (!existsSync(tgz)) {
    mkdirSync(cacheDir, { recursive: true });
    const stage = join(cacheDir, `${name}.stage`);
    rmSync(stage, { recursive: true, force: true });
    mkdirSync(join(stage, 'app'), { recursive: true });
    writeFileSync(join(stage, 'app/package.json'), JSON.stringify({ name: 'bench-app', version: '1.0.0', private: true }, null, 2));
    writeFileSync(join(stage, 'app/start.js'), APP_START_JS);
    log(`bench: npm install of ${APP_PACKAGES.length} packages for the application layer (once, cached)`);
    await sh(`npm install --ignore-scripts --no-audit --no-fund --omit=dev --loglevel=error ${APP_PACKAGES.join(' ')} >&2`, join(stage, 'app'));
    await sh(`tar --numeric-owner --owner=0 --group=0 -C ${stage} -cf ${tar}.tmp app && mv ${tar}.tmp ${tar} && gzip -6 -c ${tar} > ${tgz}.tmp && mv ${tgz}.tmp ${tgz}`);
    rmSync(stage, { recursive: true, force: true });
  }
  return { tar, tgz };
}
