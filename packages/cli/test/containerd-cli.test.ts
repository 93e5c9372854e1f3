// `nydusd-ts snapshotter` and `nydusd-ts pull`: flag and config validation (exit 2, the problem
// named), and the snapshotter as a process behind a private containerd: an image pulled with
// `nydusd-ts pull`, a container left running, the snapshotter killed with SIGKILL and
// restarted (the container keeps running and its snapshot is still there), stopped with SIGTERM
// (exit 0, socket removed), restarted again, a new container run.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNydusdContainerd } from '@nydus-ts/cli/containerd';
import type { CliIo } from '@nydus-ts/cli/containerd';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { SnapshotsClient } from '@nydus-ts/snapshotter';
import { buildLayer, bundleTestEntry, makeBusyboxRootfs, pushImage, run, startContainerd, waitForSnapshotter } from '@nydus-ts/snapshotter/testing';
import type { PushedImage, TestContainerd } from '@nydus-ts/snapshotter/testing';

function captureIo(cwd: string): CliIo & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (b: Buffer) => (out += b));
  stderr.on('data', (b: Buffer) => (err += b));
  return { stdout, stderr, env: { HOME: cwd }, cwd, out: () => out, err: () => err };
}

let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'cli-containerd-'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('nydusd-ts snapshotter: bad input', () => {
  // A snapshotter that starts although it should not stops at once (the test then fails on its exit code).
  const hooks = {
    onSignal: (handler: (s: string) => void) => {
      setImmediate(() => handler('SIGTERM'));
      return () => undefined;
    },
    selfCommand: [process.execPath],
  };
  const cases: Array<[string, string[], Record<string, unknown> | undefined, RegExp]> = [
    ['unknown config key', [], { root: 'r', daemon: { nydusd_pth: 'x' } }, /unknown key daemon\.nydusd_pth/],
    ['bad daemon mode', ['--daemon-mode', 'multiple'], undefined, /--daemon-mode: "multiple" is not one of shared, dedicated/],
    ['bad fs driver', ['--fs-driver', 'fscache'], undefined, /--fs-driver: "fscache" is not one of fusedev, erofs/],
    ['erofs needs dedicated daemons', ['--fs-driver', 'erofs'], undefined, /--fs-driver erofs needs --daemon-mode dedicated/],
    ['bad threads', ['--threads', '0'], undefined, /--threads: expected a positive integer/],
    ['missing credentials file', ['--credentials', 'nope.json'], undefined, /--credentials .*nope\.json/],
    ['wrong type in config', [], { root: 5 }, /root must be a non-empty string/],
    ['registry host scheme', [], { remote: { registry_hosts: { 'r:5000': { scheme: 'ftp' } } } }, /scheme: "ftp" is not one of http, https/],
  ];
  for (const [name, args, config, message] of cases) {
    it(`${name}: exit 2 naming the problem`, async () => {
      const io = captureIo(work);
      const extra: string[] = [];
      if (config) {
        const file = path.join(work, `${name.replace(/\W+/g, '-')}.json`);
        await writeFile(file, JSON.stringify(config));
        extra.push('--config', file);
      }
      const code = await runNydusdContainerd(['snapshotter', '--root', path.join(work, 'never'), '--address', path.join(work, 'never.sock'), ...extra, ...args], io, hooks);
      expect(io.err()).toMatch(message);
      expect(code).toBe(2);
      expect(existsSync(path.join(work, 'never.sock'))).toBe(false);
    });
  }

  it('a nydusd config template with another backend type is refused', async () => {
    const io = captureIo(work);
    const tpl = path.join(work, 'oss.json');
    await writeFile(tpl, JSON.stringify({ device: { backend: { type: 'oss', config: {} }, cache: { type: 'blobcache' } } }));
    const code = await runNydusdContainerd(['snapshotter', '--root', path.join(work, 'never'), '--address', path.join(work, 'n.sock'), '--nydusd-config', tpl], io, hooks);
    expect(io.err()).toMatch(/device\.backend\.type must be "registry"/);
    expect(code).toBe(2);
  });

  it('refuses a --root on overlayfs', async () => {
    const base = path.join(work, 'ovl');
    for (const d of ['lower', 'upper', 'work', 'merged']) await mkdir(path.join(base, d), { recursive: true });
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work`, `${base}/merged`]);
    try {
      const io = captureIo(work);
      const code = await runNydusdContainerd(['snapshotter', '--root', path.join(base, 'merged/root'), '--address', path.join(work, 'o.sock')], io, hooks);
      expect(io.err()).toMatch(/lies on overlayfs/);
      expect(code).toBe(2);
    } finally {
      await run('umount', [`${base}/merged`]);
    }
  });

  it('pull: a reference and a snapshotter are required', async () => {
    const io = captureIo(work);
    expect(await runNydusdContainerd(['pull', 'x/y:z'], io, hooks)).toBe(2);
    expect(io.err()).toMatch(/--snapshotter is required/);
  });
});

describe('nydusd-ts snapshotter as a process', () => {
  const NAME = 'nydus-ts';
  let entry: string;
  let registry: TestRegistry;
  let containerd: TestContainerd;
  let image: PushedImage;
  let child: ChildProcess | undefined;
  let childLog = '';
  const root = (): string => path.join(work, 'proc-root');
  const sock = (): string => path.join(work, 'proc.sock');

  async function startSnapshotter(): Promise<ChildProcess> {
    childLog = '';
    const c = spawn(process.execPath, [entry, 'snapshotter', '--root', root(), '--address', sock(), '--log-level', 'debug'], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.on('data', (b: Buffer) => (childLog = (childLog + b.toString()).slice(-20000)));
    // (a killed snapshotter leaves its socket file: wait for the new one to say it serves)
    for (let i = 0; !childLog.includes('snapshotter serving'); i++) {
      if (c.exitCode !== null || i > 300) throw new Error(`snapshotter did not start: ${childLog}`);
      await sleep(100);
    }
    child = c;
    return c;
  }

  beforeAll(async () => {
    entry = await bundleTestEntry(path.join(import.meta.dirname, 'support/nydusd-containerd-entry.ts'));
    registry = await startRegistry();
    const rootfs = path.join(work, 'busybox');
    await makeBusyboxRootfs(rootfs, { 'srv/hello.txt': 'hello from the image\n' });
    image = await pushImage({ registry: registry.host, repository: 'cli/busybox', tag: 'v1', layers: [await buildLayer(rootfs, path.join(work, 'bb.tgz'))] });
    await startSnapshotter();
    containerd = await startContainerd({ dir: path.join(work, 'containerd'), proxyPlugins: { [NAME]: sock() } });
    await waitForSnapshotter(containerd, NAME);
  });

  afterAll(async () => {
    await containerd?.stop();
    child?.kill('SIGKILL');
    await registry?.stop();
    await rm(entry, { force: true });
  });

  it('pull, run, survive kill -9 and SIGTERM, run again', async () => {
    const io = captureIo(work);
    const code = await runNydusdContainerd(['pull', '--address', containerd.address, '--snapshotter', NAME, '--plain-http', image.ref], io);
    expect(io.err()).toBe('');
    expect(code).toBe(0);
    expect(io.out()).toMatch(/OCI image, 1 layers \(0 remote, 1 unpacked, 0 present\)/);

    await containerd.ctrOk(['run', '-d', '--snapshotter', NAME, image.ref, 'long-1', '/bin/sh', '-c', 'while true; do sleep 1; done']);
    const killed = new Promise((r) => child!.once('exit', r));
    child!.kill('SIGKILL');
    await killed;
    // the container runs on without the snapshotter
    expect(await containerd.ctrOk(['tasks', 'exec', '--exec-id', 'e1', 'long-1', 'cat', '/srv/hello.txt'])).toBe('hello from the image\n');

    await startSnapshotter();
    const direct = new SnapshotsClient({ address: sock() });
    const snaps = await direct.list();
    expect(snaps.filter((s) => s.kind === 'COMMITTED')).toHaveLength(1);
    expect(snaps.some((s) => s.kind === 'ACTIVE' && s.name.endsWith('/long-1'))).toBe(true);
    await direct.close();
    expect(await containerd.ctrOk(['tasks', 'exec', '--exec-id', 'e2', 'long-1', 'cat', '/srv/hello.txt'])).toBe('hello from the image\n');

    const c = child!;
    const exited = new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));
    c.kill('SIGTERM');
    const exitCode = await exited;
    expect(exitCode).toBe(0);
    expect(childLog).toMatch(/snapshotter stopping/);
    expect(existsSync(sock())).toBe(false);

    await startSnapshotter();
    await waitForSnapshotter(containerd, NAME);
    const out = await containerd.ctrOk(['run', '--rm', '--snapshotter', NAME, image.ref, 'after-restart', '/bin/cat', '/srv/hello.txt']);
    expect(out).toBe('hello from the image\n');
    await containerd.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'long-1']);
  });
});
