// The packages as a user gets them: `npm pack` each library a consumer needs, install the
// tarballs into a temporary project outside the workspace (the native addon builds there as on
// any machine), compile a small TypeScript program against their published types and run it.
// It imports packages by name only (no deep imports): reads a bootstrap and lists it, builds a
// one-file image, and copies an image between two loopback registries with the registry package
// alone. Needs the packages built (`npm test` builds first).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BootstrapReader } from '@nydus-ts/format';
import { runTool } from '@nydus-ts/testing';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const packed = ['core', 'native', 'format', 'registry'];
const fixture = path.join(root, 'testdata/nydus-upstream/rafs-v6-2.2.boot');

const program = `import { readFile } from 'node:fs/promises';
import { BootstrapReader, RafsFileReader, buildLayer } from '@nydus-ts/format';
import type { BlobSink, LayerEntry } from '@nydus-ts/format';
import { RegistryClient, copyImage } from '@nydus-ts/registry';
import { pushGeneratedImage, startRegistry } from '@nydus-ts/registry/testing';
import { isNydusError } from '@nydus-ts/core';

// 1. A bootstrap read and listed.
const bootstrap = await BootstrapReader.open(await readFile(process.argv[2]!));
const listing: string[] = [];
for (const entry of bootstrap.walk()) listing.push(\`\${entry.inode.type} \${entry.path}\`);

// 2. A one-file image built in memory and read back.
const text = Buffer.from('packed and installed\\n');
async function* entries(): AsyncGenerator<LayerEntry> {
  yield { path: '', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 };
  yield { path: 'file.txt', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: text.length, content: (async function* () { yield text; })() };
}
const pieces: Uint8Array[] = [];
const sink: BlobSink = { write: async (bytes) => void pieces.push(bytes) };
const layer = await buildLayer(entries(), sink);
const blob = Buffer.concat(pieces);
const built = await BootstrapReader.open(layer.bootstrap);
const files = new RafsFileReader(built, { readRange: async (_id, offset, length) => blob.subarray(offset, offset + length) });
const content = Buffer.from(await files.read(built.lookup('/file.txt')!, 0, text.length)).toString();

// 3. An image copied between two loopback registries.
const [a, b] = await Promise.all([startRegistry(), startRegistry()]);
let copied: { source: string; target: string };
try {
  const client = new RegistryClient({ registry: a.host, insecure: true });
  const image = await pushGeneratedImage(client, 'packed/app', { tag: 'v1', layers: [{ size: 50_000 }] });
  await client.close();
  const result = await copyImage({ source: \`\${a.host}/packed/app:v1\`, target: \`\${b.host}/packed/app:v1\`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
  copied = { source: image.manifest.descriptor.digest, target: result.digest };
} finally {
  await Promise.all([a.stop(), b.stop()]);
}
const refused = await BootstrapReader.open(Buffer.alloc(10)).then(() => false, (err: unknown) => isNydusError(err));
console.log(JSON.stringify({ listing, blobId: layer.blob?.id, content, copied, refused }));
`;

let work: string;

beforeAll(async () => {
  for (const name of packed) {
    if (!existsSync(path.join(root, 'packages', name, 'dist/index.js'))) throw new Error(`packages/${name} is not built: run \`npm run build\` first`);
  }
  work = await mkdtemp(path.join(tmpdir(), 'nydus-packed-'));
  const tarballs: Record<string, string> = {};
  for (const name of packed) {
    const out = await runTool('npm', ['pack', '--silent', '--pack-destination', work], { cwd: path.join(root, 'packages', name) });
    tarballs[`@nydus-ts/${name}`] = `file:${path.join(work, out.trim().split('\n').pop()!)}`;
  }
  const app = path.join(work, 'app');
  await mkdir(app);
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: tarballs }, null, 2));
  await writeFile(path.join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'dist', rootDir: '.',
      skipLibCheck: true, types: ['node'], typeRoots: [path.join(root, 'node_modules/@types')],
    },
    include: ['main.ts'],
  }, null, 2));
  await writeFile(path.join(app, 'main.ts'), program);
  // The npm cache holds the third-party dependencies the workspace installed.
  await runTool('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: app });
  await runTool(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', app]);
}, 900_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('packed packages in a project of their own', () => {
  it('installs only files of the package (no sources or tests) and builds the native addon there', async () => {
    const installed = path.join(work, 'app/node_modules/@nydus-ts');
    expect(existsSync(path.join(installed, 'native/build/Release/nydus_native.node'))).toBe(true);
    for (const name of packed) {
      expect(existsSync(path.join(installed, name, 'dist/index.d.ts'))).toBe(true);
      expect(existsSync(path.join(installed, name, 'README.md'))).toBe(true);
      expect(existsSync(path.join(installed, name, 'test'))).toBe(false);
      expect(existsSync(path.join(installed, name, 'src'))).toBe(false);
    }
  });

  it('compiles against the published types and runs: lists a bootstrap, builds an image, copies between registries', async () => {
    const out = await runTool(process.execPath, [path.join(work, 'app/dist/main.js'), fixture], { cwd: path.join(work, 'app') });
    const result = JSON.parse(out.trim().split('\n').pop()!) as { listing: string[]; blobId: string; content: string; copied: { source: string; target: string }; refused: boolean };
    const expected = await BootstrapReader.open(await readFile(fixture));
    expect(result.listing).toEqual([...expected.walk()].map((e) => `${e.inode.type} ${e.path}`));
    expect(result.listing.length).toBeGreaterThan(1);
    expect(result.blobId).toMatch(/^[0-9a-f]{64}$/);
    expect(result.content).toBe('packed and installed\n');
    expect(result.copied.target).toBe(result.copied.source);
    expect(result.refused).toBe(true);
  }, 300_000);
});
