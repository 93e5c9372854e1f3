// Module hooks for running the TypeScript layer worker from source (under vitest, where
// convert-image.ts itself is TypeScript): workspace packages resolve through their `source`
// export condition, `./x.js` falls back to `./x.ts`, and .ts files are transpiled with esbuild
// (as vitest does). The built app never uses this file: its worker is dist/convert/layer-worker.js.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

let esbuild;

export async function resolve(specifier, context, nextResolve) {
  const conditions = context.conditions.includes('source') ? context.conditions : ['source', ...context.conditions];
  const ctx = { ...context, conditions };
  try {
    return await nextResolve(specifier, ctx);
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && specifier.endsWith('.js') && (specifier.startsWith('.') || specifier.startsWith('file:'))) {
      return nextResolve(`${specifier.slice(0, -3)}.ts`, ctx);
    }
    throw err;
  }
}

export async function load(url, context, nextLoad) {
  if (url.startsWith('file:') && url.endsWith('.ts')) {
    esbuild ??= await import('esbuild');
    const file = fileURLToPath(url);
    const out = await esbuild.transform(await readFile(file, 'utf8'), { loader: 'ts', format: 'esm', target: 'node20', sourcemap: 'inline', sourcefile: file });
    return { format: 'module', source: out.code, shortCircuit: true };
  }
  return nextLoad(url, context);
}
