import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNydusify, type CliIo } from '../src/index.js';
import { writeTarEntries } from '@nydus-ts/image';
import type { LayerEntry } from '@nydus-ts/format';
import { promisify } from 'node:util';
import { nydusifyBin } from './support/bin.js';

/** A tool's stdout (run asynchronously: a long synchronous run starves this worker's messages to vitest). */
const runTool = async (command: string, args: string[]): Promise<string> => (await promisify(execFile)(command, args, { encoding: 'utf8' })).stdout;

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => err.push(b));
  const io: CliIo = { stdout, stderr, env: {}, cwd: process.cwd() };
  const code = await runNydusify(argv, io);
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

/** A tar holding one entry whose name is `name`, written byte by byte (GNU tar refuses `..`). */
function tarWithName(name: string | Buffer, typeflag = '0'): Buffer {
  const h = Buffer.alloc(512);
  if (typeof name === 'string') h.write(name, 0);
  else name.copy(h, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write('00000000004\0', 124);
  h.write('00000000000\0', 136);
  h.fill(0x20, 148, 156);
  h.write(typeflag, 156, 'latin1');
  h.write('ustar\x0000', 257, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const body = Buffer.alloc(512);
  body.write('evil');
  return Buffer.concat([h, body, Buffer.alloc(1024)]);
}

describe('nydusify-ts image', () => {
  let work: string;
  let src: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydus-cli-image-'));
    src = path.join(work, 'src');
    await mkdir(path.join(src, 'etc'), { recursive: true });
    await writeFile(path.join(src, 'etc/hello'), 'hello\n');
    await writeFile(path.join(src, 'big'), Buffer.alloc(3 << 20, 'x'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('creates, inspects, checks and unpacks', async () => {
    const boot = path.join(work, 'ok/boot');
    const blobs = path.join(work, 'ok/blobs');
    const json = path.join(work, 'ok/create.json');
    const created = await run('image', 'create', '--type', 'dir-rafs', src, '--bootstrap', boot, '--blob-dir', blobs, '--compressor', 'lz4_block', '--chunk-size', '64KiB', '--output-json', json);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const summary = JSON.parse(await readFile(json, 'utf8'));
    expect(await readdir(blobs)).toEqual([summary.blob.id]);
    expect(summary.stats.dedupChunks).toBeGreaterThan(0); // 3 MiB of one byte: 48 equal chunks

    const inspected = await run('image', 'inspect', '--json', boot);
    expect(inspected.code).toBe(0);
    const r = JSON.parse(inspected.stdout);
    expect(r.superblock.chunkSize).toBe(0x10000);
    expect(r.superblock.compressor).toBe('lz4_block');
    expect(r.blobs[0].id).toBe(summary.blob.id);
    expect(r.tree.map((n: { path: string }) => n.path)).toEqual(['/', '/big', '/etc', '/etc/hello']);

    const text = await run('image', 'inspect', boot);
    expect(text.stdout).toMatch(/Superblock:[\s\S]*Blobs \(1\):[\s\S]*Tree:/);

    const checked = await run('image', 'check', boot, '--blob-dir', blobs);
    expect(checked.code).toBe(0);
    expect(checked.stdout).toContain(`blob ${summary.blob.id}: sha256 of the file is its id, ToC sections image.blob, blob.meta, blob.meta.header, blob.digest verified, `);
    expect(checked.stdout).toMatch(/verified \d+ chunks/);
    // A flipped byte in the blob's ToC: the check fails (exit 1, DATA_LOSS) and names the blob.
    const blobFile = path.join(blobs, summary.blob.id);
    const original = await readFile(blobFile);
    const flipped = Buffer.from(original);
    flipped[flipped.length - 512 - 100] ^= 0x40;
    await writeFile(blobFile, flipped);
    const failed = await run('image', 'check', boot, '--blob-dir', blobs);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain(summary.blob.id);
    await writeFile(blobFile, original);

    const tar = path.join(work, 'ok/out.tar');
    expect((await run('image', 'unpack', '--bootstrap', boot, '--blob-dir', blobs, '--output', tar)).code).toBe(0);
    const listing = (await runTool('tar', ['-tf', tar])).trim().split('\n').sort();
    expect(listing).toEqual(['big', 'etc/', 'etc/hello']);
  });

  it('the binary runs image commands through its own entry, with the same output as the full table', async () => {
    // `nydusify-ts image ...` loads @nydus-ts/cli/image (no registry client, no conversion code).
    const bin = nydusifyBin();
    const tarFile = path.join(work, 'bin/src.tar');
    await mkdir(path.dirname(tarFile), { recursive: true });
    await runTool('tar', ['-C', src, '-cf', tarFile, '.']);
    const args = (dir: string) => ['image', 'create', '--type', 'tar-rafs', tarFile, '--bootstrap', path.join(dir, 'boot'), '--blob-dir', path.join(dir, 'blobs'), '--compressor', 'lz4_block'];
    const viaBin = path.join(work, 'bin/a');
    const out = await runTool(process.execPath, [bin, ...args(viaBin)]);
    expect(out).toMatch(/^bootstrap: /);
    const inProcess = path.join(work, 'bin/b');
    expect((await run(...args(inProcess))).code).toBe(0);
    expect(await readFile(path.join(viaBin, 'boot'))).toEqual(await readFile(path.join(inProcess, 'boot')));
    expect(await readdir(path.join(viaBin, 'blobs'))).toEqual(await readdir(path.join(inProcess, 'blobs')));
    // Other commands still come from the full table.
    expect(await runTool(process.execPath, [bin, '--help'])).toMatch(/convert/);
  });

  it('rejects bad flags with exit code 2 and a message naming the flag', async () => {
    const boot = path.join(work, 'bad/boot');
    const blobs = path.join(work, 'bad/blobs');
    const badCompressor = await run('image', 'create', src, '--bootstrap', boot, '--blob-dir', blobs, '--compressor', 'gzip');
    expect(badCompressor.code).toBe(2);
    expect(badCompressor.stderr).toMatch(/--compressor.*gzip/);
    const badChunk = await run('image', 'create', src, '--bootstrap', boot, '--blob-dir', blobs, '--chunk-size', '12345');
    expect(badChunk.code).toBe(2);
    expect(badChunk.stderr).toMatch(/chunk.?size/i);
    const missing = await run('image', 'create', src, '--blob-dir', blobs);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--bootstrap/);
    const badType = await run('image', 'create', '--type', 'zip-rafs', src, '--bootstrap', boot, '--blob-dir', blobs);
    expect(badType.code).toBe(2);
    const noSource = await run('image', 'create', path.join(work, 'nope'), '--bootstrap', boot, '--blob-dir', blobs);
    expect(noSource.code).toBe(1);
    expect(noSource.stderr).toMatch(/no such file/);
    // nothing half-written
    await expect(readdir(path.join(work, 'bad'))).rejects.toThrow();
  });

  it('rejects bad files with a message naming the problem', async () => {
    const junk = path.join(work, 'junk.boot');
    await writeFile(junk, Buffer.alloc(8192, 7));
    const inspected = await run('image', 'inspect', junk);
    expect(inspected.code).toBe(2);
    expect(inspected.stderr).toMatch(/s_magic/);

    const evil = path.join(work, 'evil.tar');
    await writeFile(evil, tarWithName('a/../../etc/passwd'));
    const boot = path.join(work, 'evil/boot');
    const blobs = path.join(work, 'evil/blobs');
    const created = await run('image', 'create', '--type', 'tar-rafs', evil, '--bootstrap', boot, '--blob-dir', blobs);
    expect(created.code).toBe(2);
    expect(created.stderr).toMatch(/a\/\.\.\/\.\.\/etc\/passwd/);
    // A name that is not UTF-8 is shown with its bytes as \xNN, not as U+FFFD.
    const evilBytes = path.join(work, 'evil-bytes.tar');
    await writeFile(evilBytes, tarWithName(Buffer.from('b\xff/../../x', 'latin1')));
    const refusedBytes = await run('image', 'create', '--type', 'tar-rafs', evilBytes, '--bootstrap', path.join(work, 'evil-bytes/boot'), '--blob-dir', path.join(work, 'evil-bytes/blobs'));
    expect(refusedBytes.code).toBe(2);
    expect(refusedBytes.stderr).toContain('b\\xff/../../x');
    expect(refusedBytes.stderr).not.toContain('\ufffd');
    // no blob, no temp file and no bootstrap left behind
    expect((await readdir(blobs).catch(() => [])).length).toBe(0);
    await expect(readFile(boot)).rejects.toThrow();

    // An entry type no tar format defines is bad input like any other (exit 2), naming the entry.
    const weird = path.join(work, 'weird.tar');
    await writeFile(weird, tarWithName('odd-entry', 'Z'));
    const refused = await run('image', 'create', '--type', 'tar-rafs', weird, '--bootstrap', path.join(work, 'weird/boot'), '--blob-dir', path.join(work, 'weird/blobs'));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/odd-entry.*unknown entry type "Z"/);
  });

  it('refuses to build nesting deeper than inspect, check and unpack read (exit 2, nothing written)', async () => {
    const deep = path.join(work, 'deep.tar');
    const entry: LayerEntry = { path: `${'level/'.repeat(2100)}file`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 };
    const parts: Uint8Array[] = [];
    for await (const bytes of writeTarEntries((async function* () { yield entry; })())) parts.push(bytes);
    await writeFile(deep, Buffer.concat(parts));
    const boot = path.join(work, 'deep/boot');
    const blobs = path.join(work, 'deep/blobs');
    const created = await run('image', 'create', '--type', 'tar-rafs', deep, '--bootstrap', boot, '--blob-dir', blobs);
    expect(created.code).toBe(2);
    expect(created.stderr).toMatch(/deeper than the 2048 levels/);
    expect((await readdir(blobs).catch(() => [])).length).toBe(0);
    await expect(readFile(boot)).rejects.toThrow();
  });

  it('leaves its own temporary files out of a dir-rafs image whose outputs lie inside the source', async () => {
    const tree = path.join(work, 'self');
    await mkdir(path.join(tree, 'etc'), { recursive: true });
    await writeFile(path.join(tree, 'etc/hello'), 'hello\n');
    await writeFile(path.join(tree, 'data'), Buffer.alloc(1 << 20, 'self '));
    const created = await run('image', 'create', tree, '--bootstrap', path.join(tree, 'layer.boot'), '--blob-dir', path.join(tree, 'blobs'));
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const inspected = JSON.parse((await run('image', 'inspect', '--json', path.join(tree, 'layer.boot'))).stdout);
    // blobs/ was made before the walk (and is empty then); the temporary blob and bootstrap are not in the image.
    expect(inspected.tree.map((n: { path: string }) => n.path)).toEqual(['/', '/blobs', '/data', '/etc', '/etc/hello']);
  });

  it('escapes control characters of names in the tree it prints', async () => {
    const tarFile = path.join(work, 'control.tar');
    await writeFile(tarFile, tarWithName('evil\x1b[2J\nfile\tname\\x'));
    const boot = path.join(work, 'control/boot');
    const created = await run('image', 'create', '--type', 'tar-rafs', tarFile, '--bootstrap', boot, '--blob-dir', path.join(work, 'control/blobs'));
    expect(created.code, created.stderr).toBe(0);
    const text = (await run('image', 'inspect', boot)).stdout;
    expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    expect(text).toContain('/evil\\x1b[2J\\nfile\\tname\\\\x');
    // --json keeps the name itself (JSON escapes it).
    expect(JSON.parse((await run('image', 'inspect', '--json', boot)).stdout).tree[1].path).toBe('/evil\x1b[2J\nfile\tname\\x');
  });

  it('shows bytes of names that are not UTF-8 as \\xNN, apart from a real U+FFFD', async () => {
    const dir = path.join(work, 'bytes-src');
    await mkdir(dir);
    await writeFile(Buffer.concat([Buffer.from(`${dir}/`), Buffer.from('n\xff', 'latin1')]), 'ff');
    await writeFile(path.join(dir, 'n\ufffd'), 'real');
    const boot = path.join(work, 'bytes/boot');
    const created = await run('image', 'create', dir, '--bootstrap', boot, '--blob-dir', path.join(work, 'bytes/blobs'));
    expect(created.code, created.stderr).toBe(0);
    const text = (await run('image', 'inspect', boot)).stdout;
    expect(text).toContain(' /n\\xff chunks 1\n');
    expect(text).toContain(' /n\ufffd chunks 1\n');
    const json = JSON.parse((await run('image', 'inspect', '--json', boot)).stdout) as { tree: Array<{ path: string }> };
    // Byte order: EF BF BD (U+FFFD) before FF; JSON carries the escaped byte as \udcff.
    expect(json.tree.map((n) => n.path)).toEqual(['/', '/n\ufffd', '/n\udcff']);
  });
});
