import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType } from '@nydus-ts/core';
import type { ImageManifest } from '@nydus-ts/core';
import { convertImage } from '@nydus-ts/converter';
import { writeTarEntries } from '@nydus-ts/image';
import type { CheckReport } from '@nydus-ts/converter';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { runNydusify } from '../src/index.js';
import type { CliIo } from '../src/index.js';
import { parseCheckFlags } from '../src/commands/check.js';

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => err.push(b));
  const io: CliIo = { stdout, stderr, env, cwd: process.cwd() };
  const code = await runNydusify(argv, io);
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

let registry: TestRegistry;
let client: RegistryClient;
let tmp: string;
let source: string;
let target: string;

beforeAll(async () => {
  registry = await startRegistry({ auth: 'htpasswd', users: { dora: 'pw' } });
  client = new RegistryClient({ registry: registry.host, insecure: true, credentials: { username: 'dora', password: 'pw' } });
  // Generated layers are plain byte streams, not tars: build a real one with the converter's writer.
  const parts: Uint8Array[] = [];
  const entries = (async function* () {
    yield { path: 'data', type: 'directory' as const, mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 };
    const body = Buffer.alloc(300_000, 'cli check test ');
    yield { path: 'data/file', type: 'file' as const, mode: 0o640, uid: 7, gid: 8, mtime: 0, size: body.length, content: (async function* () { yield body; })() };
    yield { path: 'data/link', type: 'symlink' as const, mode: 0o777, uid: 0, gid: 0, mtime: 0, size: 0, linkTarget: 'file' };
  })();
  for await (const c of writeTarEntries(entries)) parts.push(c);
  const layer = Buffer.concat(parts);
  const up = await client.createUpload('cli/src');
  up.end(layer);
  const { digest, size } = await up.commit({ size: layer.length });
  const config = Buffer.from(JSON.stringify({ architecture: hostArch(), os: 'linux', rootfs: { type: 'layers', diff_ids: [digest] } }));
  const cup = await client.createUpload('cli/src');
  cup.end(config);
  const c = await cup.commit({ size: config.length });
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: c.digest, size: c.size }, layers: [{ mediaType: MediaType.OciLayer, digest, size }] };
  await client.putManifest('cli/src', 'v1', Buffer.from(JSON.stringify(manifest)), MediaType.OciManifest);
  source = `${registry.host}/cli/src:v1`;
  target = `${registry.host}/cli/src:nydus`;
  const dora = { username: 'dora', password: 'pw' };
  await convertImage({ source, target, sourceRegistry: { insecure: true, credentials: dora }, targetRegistry: { insecure: true, credentials: dora } });
  tmp = await mkdtemp(join(tmpdir(), 'nydus-cli-check-'));
});

afterAll(async () => {
  await client?.close();
  await registry?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function hostArch(): string {
  return ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
}

describe('nydusify-ts check', () => {
  it('parses flags into options and rejects bad ones with exit code 2', async () => {
    const o = parseCheckFlags({ source: 'oci-archive:/x.tar:v1', target: 'localhost:5000/a:b', targetInsecure: true, targetCreds: 'u:p', platform: 'linux/arm64', concurrency: '3' }, { DOCKER_CONFIG: '/nonexistent-docker-config' });
    expect(o).toMatchObject({ source: 'oci-archive:/x.tar:v1', target: 'localhost:5000/a:b', targetRegistry: { insecure: true }, concurrency: 3, platform: { os: 'linux', architecture: 'arm64' } });
    expect(o.sourceRegistry).toBeUndefined(); // an archive source has no registry
    // --target-creds for the target's registry; any other host (a mirror) asks docker's config (none here)
    const credentials = o.targetRegistry?.credentials as (host: string) => Promise<unknown>;
    expect(await credentials('localhost:5000')).toEqual({ username: 'u', password: 'p' });
    expect(await credentials('mirror.example:5000')).toBeUndefined();
    expect(parseCheckFlags({ source: 'a/b:c', target: 'localhost:5000/a:b', connectTimeout: '2.5', idleTimeout: '1m' }).timeouts).toEqual({ connectMs: 2500, idleMs: 60_000 });
    const cases: Array<[string[], RegExp]> = [
      [['check', '--source', source], /required option '--target <ref>'/],
      [['check', '--target', target], /required option '--source <ref>'/],
      [['check', '--source', source, '--target', 'oci:/tmp/x'], /must be in a registry/],
      [['check', '--source', 'oci:/tmp/x', '--source-insecure', '--target', target], /apply to registries/],
      [['check', '--source', source, '--target', target, '--platform', 'amd64'], /invalid platform "amd64"/],
      [['check', '--source', source, '--target', target, '--concurrency', '0'], /--concurrency: expected a positive integer/],
      [['check', '--source', source, '--target', target, '--target-creds', 'nocolon'], /--target-creds: expected USER:PASSWORD/],
      [['check', '--source', source, '--target', target, '--idle-timeout', '-1'], /--idle-timeout: invalid duration "-1"/],
      [['check', '--source', source, '--target', target, '--connect-timeout', '0ms'], /--connect-timeout: duration "0ms" must be at least 1 ms/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it('exits 0 on a converted image and writes the JSON report', async () => {
    const json = join(tmp, 'ok.json');
    const r = await run(['check', '--source', source, '--target', target, '--source-insecure', '--target-insecure', '--source-creds', 'dora:pw', '--target-creds', 'dora:pw', '--output-json', json]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^OK: .*cli\/src:nydus \(sha256:[0-9a-f]{64}\) matches .*cli\/src:v1/);
    const report = JSON.parse(await readFile(json, 'utf8')) as CheckReport;
    expect(report.ok).toBe(true);
    expect(report.differences).toEqual([]);
    expect(report.counts.filesRead).toBe(1);
    expect(report.counts.bytesRead).toBe(300_000);
  });

  it('exits 1 and prints every difference when the image is tampered with', async () => {
    const m = JSON.parse((await client.getManifest('cli/src', 'nydus')).bytes.toString()) as ImageManifest;
    delete m.layers[0]!.annotations!['containerd.io/snapshot/nydus-blob'];
    await client.putManifest('cli/src', 'tampered', Buffer.from(JSON.stringify(m)), m.mediaType ?? MediaType.OciManifest);
    const json = join(tmp, 'bad.json');
    const r = await run(['check', '--source', source, '--target', `${registry.host}/cli/src:tampered`, '--source-insecure', '--target-insecure', '-J', json], { DOCKER_CONFIG: join(tmp, 'none') });
    // Without credentials the registry refuses: exit 1 with the registry's error, no report.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: .*401|error: .*unauthorized|error: .*authentication/i);
    const r2 = await run(['check', '--source', source, '--target', `${registry.host}/cli/src:tampered`, '--source-insecure', '--target-insecure', '--source-creds', 'dora:pw', '--target-creds', 'dora:pw', '-J', json]);
    expect(r2.code).toBe(1);
    expect(r2.stdout.split('\n')[0]).toBe('manifest: layer 0 lacks annotation containerd.io/snapshot/nydus-blob');
    expect(r2.stdout).toMatch(/FAILED: 1 difference\(s\)/);
    expect(r2.stderr).toMatch(/error: check found 1 difference\(s\)/);
    expect((JSON.parse(await readFile(json, 'utf8')) as CheckReport).differences).toEqual(['manifest: layer 0 lacks annotation containerd.io/snapshot/nydus-blob']);
  });
});
