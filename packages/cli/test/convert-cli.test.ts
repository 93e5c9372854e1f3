// `nydusify-ts convert`: flags, JSON report, exit codes; done-when 3 (disk): the spawned CLI
// converting the node image (minbase + Node.js) writes ≤ 1.1× its output to disk (no staging).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BootstrapReader } from '@nydus-ts/format';
import { RegistryClient } from '@nydus-ts/registry';
import { measureProcess, startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { readBootstrapLayer } from '@nydus-ts/converter';
import { runNydusify } from '../src/index.js';
import type { CliIo } from '../src/index.js';
import { busyboxImage, nodeImage } from '../../converter/test/support/images.js';
import type { TestImage } from '../../converter/test/support/images.js';
import { nydusifyBin } from './support/bin.js';

/** The built CLI (`npm run build` first; `npm test` does). */
const bin = nydusifyBin();

async function run(argv: string[], cwd = process.cwd()): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = Object.assign(new PassThrough(), { isTTY: false });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => err.push(b));
  const io: CliIo = { stdout, stderr, env: {}, cwd };
  const code = await runNydusify(argv, io);
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

describe('nydusify-ts convert', () => {
  let registry: TestRegistry;
  let client: RegistryClient;
  let tmp: string;
  let busybox: TestImage;

  beforeAll(async () => {
    registry = await startRegistry();
    client = new RegistryClient({ registry: registry.host, insecure: true });
    tmp = await mkdtemp(join(tmpdir(), 'nydus-cli-convert-'));
    busybox = await busyboxImage(client, { repository: 'cli/busybox', tag: 'v1' });
  });
  afterAll(async () => {
    await client?.close();
    await registry?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('converts with every option of the issue and writes a JSON report', async () => {
    const patterns = join(tmp, 'prefetch.txt');
    await writeFile(patterns, '# hot files\n/bin/busybox\n\n/etc\n');
    const out = join(tmp, 'report.json');
    const r = await run([
      'convert', '--source', busybox.reference, '--target', `${registry.host}/cli/busybox:nydus`,
      '--source-insecure', '--target-insecure', '--compressor', 'lz4_block', '--chunk-size', '0x40000', '--digester', 'sha256',
      '--prefetch-patterns', patterns, '--concurrency', '2', '--oci', '--output-json', out,
    ]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^converted .*cli\/busybox:v1 -> .*cli\/busybox:nydus sha256:[0-9a-f]{64}/);
    expect(r.stderr).toMatch(/layer 0 [0-9a-f]{12}: .* MB in -> [0-9a-f]{12}/);
    const report = JSON.parse(await readFile(out, 'utf8')) as {
      sourceDigest: string; targetDigest: string; targetSize: number; bytesIn: number; bytesOut: number; durationMs: number; throughputMBps: number; maxRssBytes: number;
      dedup: { dictBytes: number }; options: { compressor: string; chunkSize: number; digester: string };
      manifests: Array<{ layers: Array<{ durationMs: number; bytesIn: number; bytesOut: number; blob: { digest: string } | null }> }>;
    };
    expect(report.sourceDigest).toBe(busybox.manifest.descriptor.digest);
    expect(report.targetDigest).toBe((await client.headManifest('cli/busybox', 'nydus'))?.digest);
    expect(report.options).toMatchObject({ compressor: 'lz4_block', chunkSize: 0x40000, digester: 'sha256' });
    expect(report.bytesIn).toBe(busybox.layers.reduce((a, l) => a + l.size, 0));
    expect(report.bytesOut).toBeGreaterThan(0);
    expect(report.dedup.dictBytes).toBe(0);
    expect(report.manifests[0]!.layers).toHaveLength(2);
    for (const l of report.manifests[0]!.layers) expect(l.durationMs).toBeGreaterThan(0);
    expect(report.maxRssBytes).toBeGreaterThan(0);

    // the options reached the bootstrap: chunk size, digester, compressor, prefetch table
    const m = JSON.parse((await client.getManifest('cli/busybox', 'nydus')).bytes.toString()) as { layers: Array<{ digest: `sha256:${string}`; size: number }> };
    const boot = await readBootstrapLayer(client.fetchBlob('cli/busybox', m.layers[m.layers.length - 1]!));
    const reader = await BootstrapReader.open(boot.bootstrap);
    expect(reader.chunkSize).toBe(0x40000);
    expect(reader.digester).toBe('sha256');
    expect(reader.blobs.every((b) => b.compressor === 'lz4_block')).toBe(true);
    expect(reader.compressor).toBe('lz4_block');
    expect(reader.prefetchNids.length).toBeGreaterThan(0);
  });

  it('--oci-ref: a targz-ref image (the summary gives its share of the source); check passes; copy to another registry carries the originals', async () => {
    const out = join(tmp, 'zran-report.json');
    const target = `${registry.host}/cli/busybox-zran:v1`;
    const r = await run(['convert', '--oci-ref', '--source', busybox.reference, '--target', target, '--source-insecure', '--target-insecure', '--output-json', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/oci-ref artifact [\d.]+ MB = [\d.]+% of the [\d.]+ MB source layers/);
    const report = JSON.parse(await readFile(out, 'utf8'));
    expect(report.ociRef.sourceBytes).toBe(busybox.layers.reduce((a, l) => a + l.size, 0));
    expect(report.manifests[0].layers.map((l: { ref?: { kind: string } }) => l.ref?.kind)).toContain('zran');
    expect((await run(['check', '--source', busybox.reference, '--target', target, '--source-insecure', '--target-insecure'])).code).toBe(0);
    expect((await run(['convert', '--oci-ref', '--digester', 'blake3', '--source', busybox.reference, '--target', target, '--source-insecure', '--target-insecure'])).code).toBe(2);

    const second = await startRegistry();
    try {
      const copied = `${second.host}/copied/busybox-zran:v1`;
      const c = await run(['copy', '--source', target, '--target', copied, '--source-insecure', '--target-insecure']);
      expect(c.code).toBe(0);
      const check = await run(['check', '--source', busybox.reference, '--target', copied, '--source-insecure', '--target-insecure']);
      expect(check.stdout + check.stderr).not.toMatch(/missing/);
      expect(check.code).toBe(0);
    } finally {
      await second.stop();
    }
  });

  it('usage and input errors exit 2 with a message; the tag is not created', async () => {
    const bad = await run(['convert', '--source', busybox.reference, '--target', `${registry.host}/cli/none:x`, '--compressor', 'gzip']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--compressor: "gzip" is not one of none, lz4_block, zstd');
    const size = await run(['convert', '--source', busybox.reference, '--target', `${registry.host}/cli/none:x`, '--chunk-size', '1000']);
    expect(size.code).toBe(2);
    expect(size.stderr).toMatch(/chunkSize: 1000 is not a power of two/);
    const timeout = await run(['convert', '--source', busybox.reference, '--target', `${registry.host}/cli/none:x`, '--idle-timeout', 'later']);
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toContain('--idle-timeout: invalid duration "later"');
    const keep = await run(['convert', '--source', busybox.reference, '--target', `${registry.host}/cli/none:x`, '--keep-source-manifests']);
    expect(keep.code).toBe(2);
    expect(keep.stderr).toContain('--keep-source-manifests applies to --merge-platform and --merge-manifest');
    const patterns = await run(['convert', '--source', busybox.reference, '--target', `${registry.host}/cli/none:x`, '--prefetch-patterns', join(tmp, 'absent.txt')]);
    expect(patterns.code).toBe(1);
    expect(patterns.stderr).toContain('absent.txt: no such file');
    const missing = await run(['convert', '--source', `${registry.host}/cli/absent:v1`, '--target', `${registry.host}/cli/none:x`, '--source-insecure', '--target-insecure']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: .*cli\/absent/m);
    expect(await client.headManifest('cli/none', 'x')).toBeUndefined();
  });

  it('the built CLI with --workers (layers in worker threads) and --no-workers (main thread) pushes the same image', async () => {
    const digests: string[] = [];
    for (const [tag, extra] of [['workers', ['--workers']], ['inproc', ['--no-workers']]] as const) {
      const out = join(tmp, `${tag}.json`);
      const r = await measureProcess(process.execPath, [bin, 'convert', '--source', busybox.reference, '--target', `${registry.host}/cli/busybox-w:${tag}`, '--source-insecure', '--target-insecure', '--output-json', out, ...extra], { node: true, cwd: tmp, env: { ...process.env, NYDUS_TS_CONVERT_WORKERS: '' } });
      expect(r.stderr).not.toMatch(/^error/m);
      expect(r.code).toBe(0);
      const report = JSON.parse(await readFile(out, 'utf8')) as { targetDigest: string; workers: boolean };
      expect(report.workers).toBe(tag === 'workers');
      digests.push(report.targetDigest);
    }
    expect(digests[0]).toMatch(/^sha256:/);
    expect(digests[1]).toBe(digests[0]);
  });

  it('disk: converting the node image writes ≤ 1.1× the output size (no staging of source layers), in worker threads and on the main thread', async () => {
    const node = await nodeImage(client, { repository: 'cli/node', tag: 'v1' });
    for (const mode of ['--workers', '--no-workers']) {
      const out = join(tmp, 'node.json');
      const run = await measureProcess(process.execPath, [bin, 'convert', '--source', node.reference, '--target', `${registry.host}/cli/node:nydus${mode}`, '--source-insecure', '--target-insecure', '--output-json', out, mode], { node: true, cwd: tmp });
      expect(run.stderr).not.toMatch(/^error/m);
      expect(run.code).toBe(0);
      const report = JSON.parse(await readFile(out, 'utf8')) as { bytesIn: number; bytesOut: number; workers: boolean; manifests: Array<{ bootstrap: { size: number } }> };
      expect(report.workers).toBe(mode === '--workers');
      const sourceBytes = node.layers.reduce((a, l) => a + l.size, 0);
      expect(report.bytesIn).toBe(sourceBytes);
      const output = report.bytesOut + report.manifests[0]!.bootstrap.size;
      expect(sourceBytes).toBeGreaterThan(50e6);
      // What the process wrote to storage: the JSON report at most (blobs go to the registry).
      expect(run.writeBytes).toBeLessThanOrEqual(1.1 * output);
      expect(run.writeBytes).toBeLessThan(sourceBytes / 10);
    }
  });
});
