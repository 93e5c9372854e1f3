// File names and symlink targets that are not valid UTF-8 (issue 9): bytes end to end. A
// directory walk, GNU tar, the builder, the reader, the kernel mount, merge, unpack and check
// all see exactly the bytes the source had; two names differing only in such a byte stay two.
import { execFile } from 'node:child_process';
import { linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { MediaType } from '@nydus-ts/core';
import { BootstrapReader, RafsFileReader, encodeFsName } from '@nydus-ts/format';
import { LocalBlobBackend } from '@nydus-ts/backend';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConvertedImage, convertImage } from '../src/index.js';
import { createImage, mergeImage, unpackImage } from '@nydus-ts/image';
import { hostLinuxPlatform, pushRawImage } from './support/images.js';
import { MountScope } from '@nydus-ts/testing';

const run = promisify(execFile);

/** Bytes of a name written as latin1 (`'n\xff'` is the two bytes 6e ff). */
const B = (latin1: string): Buffer => Buffer.from(latin1, 'latin1');

/** A node of a tree listed by bytes; keys are relative byte paths as latin1 strings. */
interface ByteNode {
  type: 'file' | 'dir' | 'symlink';
  content?: string;
  target?: string;
  ino?: number;
}

/** Lists a host directory by bytes (names and link targets never decoded). */
function hostTree(root: string): Map<string, ByteNode> {
  const out = new Map<string, ByteNode>();
  const visit = (dir: Buffer, rel: string): void => {
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      const abs = Buffer.concat([dir, B('/'), name]);
      const key = rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`;
      const st = lstatSync(abs);
      if (st.isDirectory()) {
        out.set(key, { type: 'dir' });
        visit(abs, key);
      } else if (st.isSymbolicLink()) out.set(key, { type: 'symlink', target: readlinkSync(abs, { encoding: 'buffer' }).toString('latin1') });
      else out.set(key, { type: 'file', content: readFileSync(abs).toString('latin1'), ino: st.ino });
    }
  };
  visit(Buffer.from(root), '');
  return out;
}

/** The same listing of a bootstrap (paths through encodeFsName, contents through its blobs). */
async function imageTree(bootstrap: string, blobDir: string): Promise<Map<string, ByteNode>> {
  const reader = await BootstrapReader.open(await readFile(bootstrap));
  const files = new RafsFileReader(reader, new LocalBlobBackend(blobDir));
  const out = new Map<string, ByteNode>();
  for (const { path: p, nid, inode } of reader.walk()) {
    if (p === '/') continue;
    const key = encodeFsName(p.slice(1)).toString('latin1');
    // readdir's raw bytes agree with the decoded path.
    const parent = reader.lookup(p.slice(0, p.lastIndexOf('/')) || '/')!;
    const last = key.slice(key.lastIndexOf('/') + 1);
    const dirent = reader.readdir(parent).find((d) => d.nid === nid && Buffer.from(d.nameBytes).toString('latin1') === last);
    expect(dirent, key).toBeDefined();
    expect(encodeFsName(dirent!.name)).toEqual(Buffer.from(dirent!.nameBytes));
    if (inode.type === 'directory') out.set(key, { type: 'dir' });
    else if (inode.type === 'symlink') out.set(key, { type: 'symlink', target: Buffer.from(reader.readlinkBytes(nid)).toString('latin1') });
    else {
      const parts: Uint8Array[] = [];
      for await (const piece of files.stream(nid)) parts.push(piece);
      out.set(key, { type: 'file', content: Buffer.concat(parts).toString('latin1'), ino: nid });
    }
  }
  return out;
}

/** Files that are hardlinks of each other get the same `ino` on both sides: compare groups, not numbers. */
function withoutInodes(tree: Map<string, ByteNode>): { nodes: Map<string, ByteNode>; groups: string[][] } {
  const byIno = new Map<number, string[]>();
  const nodes = new Map<string, ByteNode>();
  for (const [k, { ino, ...rest }] of tree) {
    nodes.set(k, rest);
    if (ino !== undefined) byIno.set(ino, [...(byIno.get(ino) ?? []), k]);
  }
  return { nodes, groups: [...byIno.values()].filter((g) => g.length > 1).map((g) => g.sort()) };
}

let work: string;
let src: string;
const mounts = new MountScope();

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'nydus-names-'));
  src = path.join(work, 'src');
  const at = (name: string): Buffer => Buffer.concat([Buffer.from(src), B('/'), B(name)]);
  mkdirSync(src);
  writeFileSync(at('n\xff'), 'ff');
  writeFileSync(at('n\xfe'), 'fe');
  // Valid UTF-8 that holds U+FFFD itself must not meet an escaped byte.
  writeFileSync(at('n\xef\xbf\xbd'), 'real U+FFFD');
  writeFileSync(at('\xc3\xbcml\xc3\xa4ut'), 'valid UTF-8');
  mkdirSync(at('lib\xff'));
  for (let i = 0; i < 20; i++) writeFileSync(at(`lib\xff/f${String(i).padStart(2, '0')}\xe9`), `file ${i}`);
  symlinkSync(B('t\xfc/x\x80'), at('link\xfd'));
  linkSync(at('n\xff'), at('hard\xfb'));
});

afterAll(async () => {
  await mounts.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('names that are not UTF-8', () => {
  it('image create of a directory keeps every name and link target byte for byte (reader and kernel mount)', async () => {
    const source = hostTree(src);
    expect(source.size).toBe(27);
    const bootstrap = path.join(work, 'dir.boot');
    const blobDir = path.join(work, 'dir-blobs');
    const built = await createImage({ type: 'dir-rafs', source: src, bootstrap, blobDir, compressor: 'none' });
    expect(withoutInodes(await imageTree(bootstrap, blobDir))).toEqual(withoutInodes(source));
    const mnt = await mounts.mountErofs(bootstrap, { blobs: [built.blob!.path] });
    expect(withoutInodes(hostTree(mnt.mountpoint))).toEqual(withoutInodes(source));
    await mnt.unmount();
  });

  it('image create of a GNU tar of it does too; unpack writes a tar GNU tar extracts to the same bytes', async () => {
    const tar = path.join(work, 'gnu.tar');
    await run('tar', ['--format=gnu', '-cf', tar, '-C', src, '.']);
    const bootstrap = path.join(work, 'tar.boot');
    const blobDir = path.join(work, 'tar-blobs');
    await createImage({ type: 'tar-rafs', source: tar, bootstrap, blobDir });
    const source = withoutInodes(hostTree(src));
    expect(withoutInodes(await imageTree(bootstrap, blobDir))).toEqual(source);

    const unpacked = path.join(work, 'unpacked.tar');
    await unpackImage({ bootstrap, blobDir, output: unpacked });
    const out = path.join(work, 'extracted');
    mkdirSync(out);
    await run('tar', ['-xf', unpacked, '-C', out]);
    expect(withoutInodes(hostTree(out))).toEqual(source);
  });

  it('merge applies whiteouts by bytes: .wh.n\\xff removes n\\xff, not n\\xfe', async () => {
    const upper = path.join(work, 'upper');
    mkdirSync(upper);
    mkdirSync(Buffer.concat([Buffer.from(upper), B('/lib\xff')]));
    writeFileSync(Buffer.concat([Buffer.from(upper), B('/.wh.n\xff')]), '');
    writeFileSync(Buffer.concat([Buffer.from(upper), B('/lib\xff/.wh.f00\xe9')]), '');
    const upperTar = path.join(work, 'upper.tar');
    await run('tar', ['-cf', upperTar, '-C', upper, '.']);
    const blobDir = path.join(work, 'merge-blobs');
    await createImage({ type: 'dir-rafs', source: src, bootstrap: path.join(work, 'lower.boot'), blobDir });
    await createImage({ type: 'tar-rafs', source: upperTar, bootstrap: path.join(work, 'upper.boot'), blobDir });
    const merged = path.join(work, 'merged.boot');
    await mergeImage({ sources: [path.join(work, 'lower.boot'), path.join(work, 'upper.boot')], bootstrap: merged });
    const keys = [...(await imageTree(merged, blobDir)).keys()];
    expect(keys).toContain('n\xfe');
    expect(keys).not.toContain('n\xff');
    expect(keys).toContain('hard\xfb');
    expect(keys).toContain('lib\xff/f01\xe9');
    expect(keys).not.toContain('lib\xff/f00\xe9');
    expect(keys.filter((k) => k.includes('.wh.'))).toEqual([]);
  });
});

describe('check compares names as bytes', () => {
  let registry: TestRegistry;
  let client: RegistryClient;

  beforeAll(async () => {
    registry = await startRegistry();
    client = new RegistryClient({ registry: registry.host, insecure: true });
  });
  afterAll(async () => {
    await client?.close();
    await registry?.stop();
  });

  async function pushTarOf(dir: string, repository: string): Promise<string> {
    const tar = path.join(work, `${repository.replace('/', '-')}.tar`);
    await run('tar', ['-cf', tar, '-C', dir, '.']);
    const img = await pushRawImage(client, repository, 'v1', [{ bytes: gzipSync(await readFile(tar)), mediaType: MediaType.OciLayerGzip }]);
    return img.reference;
  }

  it('passes on a converted image with such names, and reports a name that differs in one such byte', async () => {
    const source = await pushTarOf(src, 'names/a');
    await convertImage({ source, target: `${registry.host}/names/a:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const options = { target: `${registry.host}/names/a:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, platform: hostLinuxPlatform() };
    const same = await checkConvertedImage({ ...options, source });
    expect(same.differences).toEqual([]);

    // The same tree with one name's last byte changed (n\xff → n\xfd): a different image.
    const other = path.join(work, 'other');
    await run('cp', ['-a', src, other]);
    renameSync(Buffer.concat([Buffer.from(other), B('/n\xff')]), Buffer.concat([Buffer.from(other), B('/n\xfd')]));
    const differs = await checkConvertedImage({ ...options, source: await pushTarOf(other, 'names/b') });
    expect(differs.ok).toBe(false);
    expect(differs.differences).toEqual(expect.arrayContaining(['/n\\xfd: missing from target (source has a file)', '/n\\xff: not in source (target has a file)']));
  });
});
