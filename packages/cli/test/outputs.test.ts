/**
 * The binary's promises about its outputs, with real signals, a really full file system and real
 * symlinks: output paths are checked before anything starts; a failed or interrupted run leaves
 * nothing behind (no temporary file, no partial blob, no directory it made); system errors are
 * one line naming the path and the errno.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFill } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nydusifyBin } from './support/bin.js';

interface Run {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Runs still going: killed after each test, so that a failing test leaves no process behind. */
const running = new Set<ChildProcess>();

function start(args: string[], cwd: string): Run {
  const child = spawn(process.execPath, [nydusifyBin(), ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.on('exit', () => running.delete(child));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b));
  child.stderr!.on('data', (b: Buffer) => (stderr += b));
  const done = new Promise<Awaited<Run['done']>>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

const run = (args: string[], cwd: string) => start(args, cwd).done;

afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every path under `dir` (relative), or [] when it does not exist. */
async function listAll(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.sort();
}

/** Waits until a file whose name starts with `prefix` in `dir` has at least `bytes` bytes. */
async function waitForTempFile(dir: string, prefix: string, bytes: number, run: Run): Promise<string> {
  for (let i = 0; i < 6000; i++) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.startsWith(prefix)) continue;
      const size = (await stat(path.join(dir, name)).catch(() => undefined))?.size ?? 0;
      if (size >= bytes) return name;
    }
    if (run.child.exitCode !== null) throw new Error(`the run ended before its temporary file grew: ${(await run.done).stderr}`);
    await sleep(10);
  }
  throw new Error(`no ${prefix}* file of ${bytes} bytes in ${dir}`);
}

function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at /);
  return lines[0]!;
}

describe('nydusify-ts image outputs', () => {
  let work: string;
  let src: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydus-outputs-'));
    src = path.join(work, 'src');
    await mkdir(path.join(src, 'etc'), { recursive: true });
    await writeFile(path.join(src, 'etc/hello'), 'hello\n');
    // Incompressible data, so that builds and unpacks take long enough to be interrupted.
    const data = Buffer.allocUnsafe(64 << 20);
    await promisify(randomFill)(data);
    await writeFile(path.join(src, 'big'), data);
    const built = await run(['image', 'create', src, '--bootstrap', 'image/boot', '--blob-dir', 'image/blobs', '--compressor', 'lz4_block'], work);
    expect(built.code, built.stderr).toBe(0);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('refuses a directory as --output or --bootstrap before starting, and creates nothing (not even beside /)', async () => {
    const dir = path.join(work, 'refuse');
    await mkdir(path.join(dir, 'existing'), { recursive: true });
    const unpack = await run(['image', 'unpack', '--bootstrap', 'image/boot', '--blob-dir', 'image/blobs', '--output', path.join(dir, 'existing')], work);
    expect(unpack.code).toBe(2);
    expect(oneLine(unpack.stderr)).toMatch(/existing: is a directory/);
    const create = await run(['image', 'create', src, '--bootstrap', path.join(dir, 'existing'), '--blob-dir', path.join(dir, 'blobs')], work);
    expect(create.code).toBe(2);
    expect(oneLine(create.stderr)).toMatch(/existing: is a directory/);
    expect(await listAll(dir)).toEqual(['existing']);
    // An output directory whose parent is / used to leave the temporary tar in /.
    for (const output of ['/tmp', '/']) {
      const r = start(['image', 'unpack', '--bootstrap', 'image/boot', '--blob-dir', 'image/blobs', '--output', output], work);
      const pid = r.child.pid!;
      const { code, stderr } = await r.done;
      expect(code, output).toBe(2);
      expect(oneLine(stderr)).toMatch(/is a directory/);
      expect((await readdir('/')).filter((n) => n.includes(`-${pid}-`))).toEqual([]);
    }
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`removes the partial blob, the bootstrap and the directories it made on ${signal} during image create`, async () => {
      const out = path.join(work, `create-${signal}`);
      const r = start(['image', 'create', src, '--bootstrap', path.join(out, 'boot/layer.boot'), '--blob-dir', path.join(out, 'blobs')], work);
      await waitForTempFile(path.join(out, 'blobs'), '.blob-', 2 << 20, r);
      r.child.kill(signal);
      const { code, stderr } = await r.done;
      expect(code).toBe(signal === 'SIGINT' ? 130 : 143);
      expect(oneLine(stderr)).toBe(`error: interrupted by ${signal}`);
      await expect(stat(out)).rejects.toThrow(/ENOENT/);
    });
  }

  it('removes the partial tar on SIGTERM during image unpack', async () => {
    const out = path.join(work, 'unpack-signal');
    await mkdir(out);
    const r = start(['image', 'unpack', '--bootstrap', 'image/boot', '--blob-dir', 'image/blobs', '--output', path.join(out, 'rootfs.tar')], work);
    await waitForTempFile(out, '.rootfs.tar-', 1 << 20, r);
    r.child.kill('SIGTERM');
    const { code, stderr } = await r.done;
    expect(code).toBe(143);
    expect(oneLine(stderr)).toBe('error: interrupted by SIGTERM');
    expect(await listAll(out)).toEqual([]);
  });

  it('reports a missing --output-json directory before building anything', async () => {
    const out = path.join(work, 'json');
    const r = await run(['image', 'create', src, '--bootstrap', path.join(out, 'boot'), '--blob-dir', path.join(out, 'blobs'), '--output-json', path.join(work, 'elsewhere/no/r.json')], work);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toBe(`error: --output-json ${path.join(work, 'elsewhere')}: no such directory (ENOENT)`);
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
    // Beside the bootstrap, in a directory the run makes, it is fine.
    const ok = await run(['image', 'create', path.join(src, 'etc'), '--bootstrap', path.join(out, 'boot'), '--blob-dir', path.join(out, 'blobs'), '--output-json', path.join(out, 'r.json')], work);
    expect(ok.code, ok.stderr).toBe(0);
    expect((await stat(path.join(out, 'r.json'))).isFile()).toBe(true);
  });

  it('names a dangling symlink or a file in the way of an output, with its errno', async () => {
    const dir = path.join(work, 'links');
    await mkdir(dir);
    await symlink(path.join(work, 'nowhere'), path.join(dir, 'dangling'));
    await writeFile(path.join(dir, 'file'), 'x');
    const dangling = await run(['image', 'create', src, '--bootstrap', path.join(dir, 'dangling/sub/boot'), '--blob-dir', path.join(dir, 'blobs')], work);
    expect(dangling.code).toBe(1);
    expect(oneLine(dangling.stderr)).toBe(`error: bootstrap ${path.join(dir, 'dangling')}: dangling symbolic link to ${path.join(work, 'nowhere')} (ENOENT)`);
    const notDir = await run(['image', 'unpack', '--bootstrap', 'image/boot', '--blob-dir', 'image/blobs', '--output', path.join(dir, 'file/sub/out.tar')], work);
    expect(notDir.code).toBe(1);
    expect(oneLine(notDir.stderr)).toBe(`error: output ${path.join(dir, 'file')}: not a directory (ENOTDIR)`);
    const blobDirUnderFile = await run(['image', 'create', src, '--bootstrap', path.join(dir, 'boot'), '--blob-dir', path.join(dir, 'file/blobs')], work);
    expect(blobDirUnderFile.code).toBe(1);
    expect(oneLine(blobDirUnderFile.stderr)).toMatch(/file: not a directory \(ENOTDIR\)$/);
    expect(await listAll(dir)).toEqual(['dangling', 'file']);
  });

  it('reads inputs with errors of one line: a directory as bootstrap or pattern file (errno), control characters in a tar escaped', async () => {
    const dir = path.join(work, 'inputs');
    await mkdir(dir);
    for (const args of [
      ['image', 'inspect', dir],
      ['image', 'check', dir],
      ['image', 'merge', dir, '--bootstrap', path.join(dir, 'merged/boot')],
      ['image', 'create', path.join(src, 'etc'), '--bootstrap', path.join(dir, 'c/boot'), '--blob-dir', path.join(dir, 'c'), '--prefetch-patterns', dir],
    ]) {
      const r = await run(args, work);
      expect(r.code, args.join(' ')).toBe(1);
      expect(oneLine(r.stderr)).toMatch(new RegExp(`^error: (bootstrap|--prefetch-patterns) ${dir}: illegal operation on a directory \\(EISDIR\\)$`));
    }
    // Not a tar: its first "name" holds newlines and an escape sequence, which must neither break
    // the message in lines nor reach the terminal.
    const notTar = path.join(dir, 'not.tar');
    await writeFile(notTar, Buffer.concat([Buffer.from('root:x:0:0\nbin:x:1:1\x1b[2J\n'), Buffer.alloc(1024, 'y')]));
    const r = await run(['image', 'create', notTar, '--type', 'tar-rafs', '--bootstrap', path.join(dir, 't/boot'), '--blob-dir', path.join(dir, 't')], work);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/entry "root:x:0:0\\x0abin:x:1:1\\x1b\[2J\\x0ay+" \(header at offset 0\): invalid octal digit 0x79 in "y+"$/);
    expect(await listAll(dir)).toEqual(['not.tar']);
  });

  it('fails at once for a --blob-dir the kernel refuses to create (/proc), instead of spinning', async () => {
    // Node's recursive mkdir retries ENOENT forever under /proc, at 100% CPU.
    const out = path.join(work, 'proc');
    const started = start(['image', 'create', path.join(src, 'etc'), '--bootstrap', path.join(out, 'boot'), '--blob-dir', '/proc/nydus-ts-blobs'], work);
    let timer: NodeJS.Timeout | undefined;
    const tooLong = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('still running after 60 s (spinning in mkdir?)')), 60_000)));
    const r = await Promise.race([started.done, tooLong]).finally(() => clearTimeout(timer));
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toBe('error: creating directory /proc/nydus-ts-blobs: no such file or directory (ENOENT)');
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
  });
});

describe('nydusify-ts image on a full file system (tmpfs)', () => {
  let work: string;
  let full: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydus-enospc-'));
    full = path.join(work, 'full');
    await mkdir(path.join(work, 'src'));
    const data = Buffer.allocUnsafe(6 << 20);
    await promisify(randomFill)(data);
    await writeFile(path.join(work, 'src/data'), data);
    await mkdir(full);
    const mount = await run_(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'nydus-enospc', full]);
    expect(mount, 'mount tmpfs').toBe(0);
    const built = await run(['image', 'create', path.join(work, 'src'), '--bootstrap', 'image/boot', '--blob-dir', 'image/blobs', '--compressor', 'none'], work);
    expect(built.code, built.stderr).toBe(0);
  });
  afterAll(async () => {
    await run_(['umount', full]);
    await rm(work, { recursive: true, force: true });
  });

  it('ENOSPC while creating: one line naming the file and the errno, exit 1, the file system left empty', async () => {
    const r = await run(['image', 'create', path.join(work, 'src'), '--bootstrap', path.join(full, 'o/boot'), '--blob-dir', path.join(full, 'o/blobs'), '--compressor', 'none'], work);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`^error: writing ${full}/o/blobs/\\.blob-\\d+-[0-9a-f]+: no space left on device \\(ENOSPC\\)$`));
    expect(await listAll(full)).toEqual([]);
  });

  it('ENOSPC while unpacking: one line naming the file and the errno, exit 1, the file system left empty', async () => {
    const r = await run(['image', 'unpack', '--bootstrap', 'image/boot', '--blob-dir', 'image/blobs', '--output', path.join(full, 'x/rootfs.tar')], work);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`^error: writing ${full}/x/\\.rootfs\\.tar-\\d+-[0-9a-f]+: no space left on device \\(ENOSPC\\)$`));
    expect(await listAll(full)).toEqual([]);
  });
});

describe('nydusify-ts copy into an OCI layout', () => {
  let work: string;
  let full: string;
  let layer: Buffer;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydus-layout-out-'));
    layer = Buffer.allocUnsafe(3 << 20);
    await promisify(randomFill)(layer);
    full = path.join(work, 'full');
    await mkdir(full);
    expect(await run_(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'nydus-layout-enospc', full]), 'mount tmpfs').toBe(0);
  });
  afterAll(async () => {
    await run_(['umount', full]);
    await rm(work, { recursive: true, force: true });
  });

  /** An OCI layout at `dir` holding one image `t` whose layer is `layer` (the file written by `writeLayer`). */
  async function sourceLayout(dir: string, writeLayer: (file: string) => Promise<void>): Promise<void> {
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const blobs = path.join(dir, 'blobs/sha256');
    await mkdir(blobs, { recursive: true });
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${sha(layer)}`] } }));
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha(config)}`, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha(layer)}`, size: layer.length }],
    }));
    await writeFile(path.join(blobs, sha(config)), config);
    await writeFile(path.join(blobs, sha(manifest)), manifest);
    await writeLayer(path.join(blobs, sha(layer)));
    await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const index = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha(manifest)}`, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 't' } }] };
    await writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
  }

  it('fails at once for a layout the kernel refuses to create (/proc), instead of spinning', async () => {
    const src = path.join(work, 'src-proc');
    await sourceLayout(src, (file) => writeFile(file, layer));
    const started = start(['copy', '--source', `oci:${src}:t`, '--target', 'oci:/proc/nydus-ts-layout:t'], work);
    let timer: NodeJS.Timeout | undefined;
    const tooLong = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('still running after 60 s (spinning in mkdir?)')), 60_000)));
    const r = await Promise.race([started.done, tooLong]).finally(() => clearTimeout(timer));
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toBe('error: creating directory /proc/nydus-ts-layout: no such file or directory (ENOENT)');
  });

  it('ENOSPC: one line naming the file and the errno, exit 1, the layout it started removed', async () => {
    const src = path.join(work, 'src-enospc');
    await sourceLayout(src, (file) => writeFile(file, layer));
    const r = await run(['copy', '--source', `oci:${src}:t`, '--target', `oci:${full}/lay:t`], work);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`^error: writing ${full}/lay/blobs/sha256/[0-9a-f]{64}\\.tmp-[0-9a-f]+: no space left on device \\(ENOSPC\\)$`));
    expect(await listAll(full)).toEqual([]);
  });

  it('removes the layout it started on SIGINT, mid-blob', async () => {
    // The source layer is a FIFO fed by this test: the copy stalls after 2 MiB (of which the
    // verifying stream holds the last piece back), deterministically.
    const src = path.join(work, 'src-fifo');
    let feeder: ReturnType<typeof createWriteStream> | undefined;
    await sourceLayout(src, async (file) => {
      expect(await run_(['mkfifo', file])).toBe(0);
      feeder = createWriteStream(file);
      feeder.on('error', () => {}); // EPIPE once the copy is gone
      feeder.write(layer.subarray(0, 2 << 20));
    });
    const out = path.join(work, 'new/target');
    const r = start(['copy', '--source', `oci:${src}:t`, '--target', `oci:${out}:t`], work);
    try {
      const blobs = path.join(out, 'blobs/sha256');
      const partial = await waitForTempFile(blobs, '', 1 << 20, r);
      expect(partial).toMatch(/\.tmp-/);
      r.child.kill('SIGINT');
      // The run removes its partial blob at once. Its read of the FIFO, which never returns, would
      // then hold the process's exit (libuv joins its threads): end it, as EOF.
      for (let i = 0; i < 6000 && (await stat(path.join(blobs, partial)).then(() => true, () => false)); i++) await sleep(10);
      feeder?.end();
      const { code, stderr } = await r.done;
      expect(code).toBe(130);
      expect(oneLine(stderr)).toBe('error: interrupted by SIGINT');
      await expect(stat(path.join(work, 'new'))).rejects.toThrow(/ENOENT/);
    } finally {
      feeder?.destroy();
    }
  });
});

/** Runs a system tool; resolves with its exit code. */
function run_(argv: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', resolve);
  });
}
