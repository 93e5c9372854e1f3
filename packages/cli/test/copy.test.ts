import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '@nydus-ts/registry';
import { measureProcess, pushGeneratedImage, startFaultProxy, startRegistry } from '@nydus-ts/registry/testing';
import type { PushedImage, TestRegistry } from '@nydus-ts/registry/testing';
import { runNydusify } from '../src/index.js';
import type { CliIo } from '../src/index.js';
import { nydusifyBin } from './support/bin.js';

/** The built CLI (`npm run build` first; `npm test` does). */
const bin = nydusifyBin();

async function run(argv: string[], options: { tty?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = Object.assign(new PassThrough(), { isTTY: options.tty ?? false });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => err.push(b));
  const io: CliIo = { stdout, stderr, env: options.env ?? {}, cwd: process.cwd() };
  const code = await runNydusify(argv, io);
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

let src: TestRegistry;
let dst: TestRegistry;
let img: PushedImage;
let tmp: string;

beforeAll(async () => {
  [src, dst] = await Promise.all([startRegistry(), startRegistry({ auth: 'htpasswd', users: { carol: 'pw' } })]);
  const client = new RegistryClient({ registry: src.host, insecure: true });
  img = await pushGeneratedImage(client, 'cli/app', { tag: 'v1', layers: [{ size: 3_000_000 }, { size: 1_000_000, kind: 'compressible' }] });
  await client.close();
  tmp = await mkdtemp(join(tmpdir(), 'nydus-cli-copy-'));
});
afterAll(async () => {
  await Promise.all([src?.stop(), dst?.stop()]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('nydusify-ts copy (in process)', () => {
  it('rejects bad flags with exit code 2 and a message naming the flag', async () => {
    const s = `${src.host}/cli/app:v1`;
    const cases: Array<[string[], RegExp]> = [
      [['copy', '--source', s], /required option '--target <ref>'/],
      [['copy', '--source', s, '--target', 'x/y', '--platform', 'linux/amd64', '--all-platforms'], /--platform and --all-platforms cannot be used together/],
      [['copy', '--source', s, '--target', 'x/y', '--push-chunk-size', '12parsecs'], /--push-chunk-size: invalid size/],
      [['copy', '--source', s, '--target', 'x/y', '--concurrency', '0'], /--concurrency: expected a positive integer/],
      [['copy', '--source', s, '--target', 'x/y', '--source-creds', 'nocolon'], /--source-creds: expected USER:PASSWORD/],
      [['copy', '--source', s, '--target', 'x/y', '--platform', 'amd64'], /invalid platform "amd64"/],
      [['copy', '--source', 'oci:/tmp/x', '--source-insecure', '--target', 'x/y'], /apply to registries, not oci: layouts/],
      [['copy', '--source', 'Bad:Ref', '--target', 'x/y'], /invalid image reference/],
      [['copy', '--source', s, '--target', 'x/y', '--push-chunk-size', '100'], /--push-chunk-size: push chunk size 100 is outside 4 KiB to 1 GiB/],
      [['copy', '--source', s, '--target', 'x/y', '--push-chunk-size', '8GiB'], /--push-chunk-size: push chunk size 8589934592 is outside 4 KiB to 1 GiB/],
      [['copy', '--source', s, '--target', 'x/y', '--idle-timeout', '0'], /--idle-timeout: duration "0" must be at least 1 ms/],
      [['copy', '--source', s, '--target', 'x/y', '--connect-timeout', 'soon'], /--connect-timeout: invalid duration "soon"/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr, argv.join(' ')).toMatch(message);
    }
  });

  it('copies with chunked uploads and credentials, printing a summary and writing --output-json', async () => {
    const proxy = await startFaultProxy(dst.url);
    try {
      const json = join(tmp, 'summary.json');
      const r = await run(['copy', '--source', `${src.host}/cli/app:v1`, '--target', `${proxy.host}/cli/copy:v1`, '--source-insecure', '--target-insecure', '--target-creds', 'carol:pw', '--push-chunk-size', '1MiB', '--concurrency', '2', '--output-json', json]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`-> ${proxy.host}/cli/copy:v1 ${img.manifest.descriptor.digest}`);
      expect(r.stdout).toMatch(/3 blob\(s\): 3 copied \(3\.8 MiB sent\), 0 skipped, 0 mounted/);
      const summary = JSON.parse(await readFile(json, 'utf8')) as Record<string, unknown>;
      expect(summary).toMatchObject({ digest: img.manifest.descriptor.digest, pushChunkSize: 1 << 20, concurrency: 2, blobs: { total: 3, copied: 3, skipped: 0, mounted: 0 } });
      const patches = proxy.requests.filter((q) => q.method === 'PATCH');
      expect(patches.length).toBeGreaterThanOrEqual(4);
      expect(patches.every((q) => q.requestBytes <= 1 << 20)).toBe(true);
      // A second run skips every blob.
      const again = await run(['copy', '--source', `${src.host}/cli/app:v1`, '--target', `${proxy.host}/cli/copy:v1`, '--source-insecure', '--target-insecure', '--target-creds', 'carol:pw']);
      expect(again.stdout).toMatch(/0 copied \(0\.0 MiB sent\), 3 skipped/);
    } finally {
      await proxy.stop();
    }
  });

  it('reads credentials from DOCKER_CONFIG and reports wrong ones clearly', async () => {
    const cfg = join(tmp, 'docker');
    await import('node:fs/promises').then((fs) => fs.mkdir(cfg, { recursive: true }));
    await writeFile(join(cfg, 'config.json'), JSON.stringify({ auths: { [dst.host]: { auth: Buffer.from('carol:pw').toString('base64') } } }));
    const ok = await run(['copy', '--source', `${src.host}/cli/app:v1`, '--target', `${dst.host}/cli/cfg:v1`, '--source-insecure', '--target-insecure'], { env: { DOCKER_CONFIG: cfg } });
    expect(ok.code).toBe(0);
    const bad = await run(['copy', '--source', `${src.host}/cli/app:v1`, '--target', `${dst.host}/cli/bad:v1`, '--source-insecure', '--target-insecure', '--target-creds', 'carol:wrong']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: .*returned 401.*check the credentials/m);
    expect(bad.stderr).not.toContain('wrong');
  });

  it('accepts chunk sizes below 64 KiB (here 32 KiB: every PATCH at most that)', async () => {
    const proxy = await startFaultProxy(dst.url);
    try {
      const r = await run(['copy', '--source', `${src.host}/cli/app:v1`, '--target', `${proxy.host}/cli/small-chunks:v1`, '--source-insecure', '--target-insecure', '--target-creds', 'carol:pw', '--push-chunk-size', '32KiB']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const patches = proxy.requests.filter((q) => q.method === 'PATCH' && q.status === 202);
      expect(patches.length).toBeGreaterThan(100);
      expect(patches.every((q) => q.requestBytes <= 32 * 1024)).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it('--idle-timeout: a stalled source body is resumed and the copy completes', async () => {
    const proxy = await startFaultProxy(src.url, [{ method: 'GET', path: new RegExp(`/blobs/${img.layers[0]!.digest}`), action: { kind: 'stall', afterBytes: 1_000_000 } }]);
    try {
      const r = await run(['copy', '--source', `${proxy.host}/cli/app:v1`, '--target', `${dst.host}/cli/stalled:v1`, '--source-insecure', '--target-insecure', '--target-creds', 'carol:pw', '--idle-timeout', '500ms', '--connect-timeout', '5s']);
      expect(r.code, r.stderr).toBe(0);
      expect(proxy.injected).toBe(1);
      expect(proxy.requests.some((q) => q.path.includes(img.layers[0]!.digest) && q.range !== undefined && q.range !== 'bytes=0-')).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it('a network failure that persists ends in one line naming the operation, registry, blob and attempts', async () => {
    const proxy = await startFaultProxy(src.url, [{ method: 'GET', path: new RegExp(`/blobs/${img.layers[0]!.digest}`), action: { kind: 'reset', afterBytes: 0 }, times: Infinity }]);
    try {
      const r = await run(['copy', '--source', `${proxy.host}/cli/app:v1`, '--target', `${dst.host}/cli/reset:v1`, '--source-insecure', '--target-insecure', '--target-creds', 'carol:pw']);
      expect(r.code).toBe(1);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^error: fetching blob ${img.layers[0]!.digest} from ${proxy.host}/cli/app: GET .*: connection failed after \\d+ of 3000000 bytes: .* \\(gave up after 5 attempts\\)$`));
      expect(r.stderr).not.toMatch(/SocketError|\n\s+at /);
    } finally {
      await proxy.stop();
    }
  });

  it('draws per-blob and total progress on a TTY', async () => {
    const r = await run(['copy', '--source', `${src.host}/cli/app:v1`, '--target', `oci:${join(tmp, 'layout')}:v1`, '--source-insecure'], { tty: true });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/total +\[#+\] +3\.8 MiB \/ 3\.8 MiB \(3\/3 blobs\)/);
    expect(r.stderr).toContain('\x1b[');
  });
});

/** The source modules inside the loaded files of the app's bundle (from esbuild's metafile). */
async function bundledModules(urls: string[]): Promise<string[]> {
  const marker = '/apps/nydusify-ts/bundle/';
  const loaded = urls.filter((u) => u.includes(marker));
  if (loaded.length === 0) return [];
  const bundleDir = loaded[0]!.slice(0, loaded[0]!.indexOf(marker) + marker.length);
  const meta = JSON.parse(await readFile(new URL('meta.json', bundleDir), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> };
  const byFile = new Map(Object.entries(meta.outputs).map(([out, o]) => [out.slice(out.lastIndexOf('/') + 1), Object.keys(o.inputs)]));
  return loaded.flatMap((u) => (byFile.get(u.slice(u.lastIndexOf('/') + 1)) ?? []).map((input) => `/${input}`));
}

describe('nydusify-ts copy (separate process)', () => {
  it('starts copy without loading the other commands\' libraries, with the same help', async () => {
    expect(existsSync(bin), `${bin} missing: run npm run build`).toBe(true);
    // A resolve hook (in the loader thread) appends every module URL to a file.
    const log = join(tmp, 'modules.log');
    const hooks = `import { appendFileSync } from 'node:fs'; export async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(${JSON.stringify(log)}, r.url + '\\n'); return r; }`;
    const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
    const loaded = async (argv: string[]): Promise<{ stdout: string; modules: string[] }> => {
      await writeFile(log, '');
      const m = await measureProcess(process.execPath, [`--import=data:text/javascript,${encodeURIComponent(register)}`, bin, ...argv], {});
      expect(m.code, m.stderr).toBe(0);
      const urls = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
      return { stdout: m.stdout, modules: [...urls, ...(await bundledModules(urls))] };
    };
    const copy = await loaded(['copy', '--help']);
    expect(copy.modules.some((u) => u.includes('/packages/registry/'))).toBe(true);
    expect(copy.modules.filter((u) => /\/packages\/(converter|format|native)\//.test(u))).toEqual([]);
    // The full command table (any other command) does load them.
    const full = await loaded(['--help']);
    expect(full.modules.some((u) => u.includes('/packages/converter/'))).toBe(true);
    // Same help as the full program gives for copy.
    const inProcess = await run(['copy', '--help']);
    expect(inProcess.code).toBe(0);
    expect(copy.stdout.replace(/\s+/g, ' ')).toBe(inProcess.stdout.replace(/\s+/g, ' '));
    expect(full.stdout).toMatch(/^ {2}copy \[options\]/m);
  });

  it('streams ≥ 1 GiB without writing blob bytes to disk and with flat RSS', async () => {
    expect(existsSync(bin), `${bin} missing: run npm run build`).toBe(true);
    const big = 1024 * 1024 * 1024 + 12345;
    const client = new RegistryClient({ registry: src.host, insecure: true });
    const large = await pushGeneratedImage(client, 'cli/big', { tag: 'v1', layers: [{ size: big }, { size: 5_000_000 }] });
    await client.close();
    const target = await startRegistry();
    try {
      const json = join(tmp, 'big.json');
      const m = await measureProcess(process.execPath, [bin, 'copy', '--source', `${src.host}/cli/big:v1`, '--target', `${target.host}/cli/big:v1`, '--source-insecure', '--target-insecure', '--output-json', json], { node: true, env: { ...process.env, HTTP_PROXY: '', HTTPS_PROXY: '' } });
      expect(m.code, m.stderr).toBe(0);
      const summary = JSON.parse(await readFile(json, 'utf8')) as { digest: string; bytesSent: number };
      expect(summary.digest).toBe(large.manifest.descriptor.digest);
      expect(summary.bytesSent).toBeGreaterThan(big);
      // Zero-disk: only the JSON summary (< 4 KiB) may be written; blob bytes are > 1 GiB.
      expect(m.writeBytes).toBeLessThan(1024 * 1024);
      expect(m.peakRssBytes).toBeLessThanOrEqual(150 * 1024 * 1024);
      expect(m.cpuMs).toBeGreaterThan(0);
      const check = new RegistryClient({ registry: target.host, insecure: true });
      expect(await check.headBlob('cli/big', large.layers[0]!.digest)).toBe(big);
      await check.close();
      console.log(`1 GiB copy: ${(m.wallMs / 1000).toFixed(2)} s (CPU ${(m.cpuMs / 1000).toFixed(2)} s), ${m.writeBytes} bytes written, peak RSS ${(m.peakRssBytes / 2 ** 20).toFixed(1)} MiB`);
    } finally {
      await target.stop();
    }
  }, 300_000);
});
