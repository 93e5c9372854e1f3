// Floor of the zran conversion (run by zran.mjs; not a benchmark itself): what any converter of
// these gzip layers into zran references must at least do on this machine, minus the tar
// parsing, the file tree and the bootstraps: fetch each layer from the registry (sha256-verified),
// inflate it with block-boundary checkpoints (the converter's own inflate loop, on the thread
// pool), and sha256 every inflated piece as a chunk placed in the zran index (≤ 1 MiB each, as
// inflated, so no copy), which copies the windows of the contexts it opens. All layers at once.
// With `fetch`, only the first step: each layer fetched (sha256-verified) and discarded.
// Usage: node _zran-floor.mjs REGISTRY REPO TAG [fetch]
import { createHash } from 'node:crypto';
import { inflateWithCheckpoints } from '@nydus-ts/image';
import { ZranIndexBuilder } from '@nydus-ts/format';
import { RegistryClient } from '@nydus-ts/registry';

const [registry, repo, tag, mode] = process.argv.slice(2);
if (!tag) throw new Error('usage: _zran-floor.mjs REGISTRY REPO TAG');
const client = new RegistryClient({ registry, insecure: true });

async function floor(layer) {
  if (mode === 'fetch') {
    let bytes = 0;
    for await (const piece of client.fetchBlob(repo, layer)) bytes += piece.length;
    return { bytes, contexts: 0 };
  }
  const index = new ZranIndexBuilder();
  let at = 0;
  for await (const piece of inflateWithCheckpoints(client.fetchBlob(repo, layer), index)) {
    createHash('sha256').update(piece).digest();
    index.place(at, at + piece.length);
    at += piece.length;
  }
  return { bytes: at, contexts: index.contextCount };
}

const manifest = JSON.parse(Buffer.from((await client.getManifest(repo, tag)).bytes).toString('utf8'));
const results = await Promise.all(manifest.layers.map(floor));
await client.close();
process.stderr.write(`zran floor: ${results.map((r) => `${r.bytes} bytes, ${r.contexts} contexts`).join('; ')}\n`);
