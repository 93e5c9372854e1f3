/**
 * One end-to-end environment under a temp dir on loopback: docker-registry behind a counting
 * proxy (every byte any client fetches is recorded), the `nydusd-ts snapshotter` process (the
 * built binary), and a private containerd 1.6 using it as the proxy snapshotter `nydus-ts`.
 * `stop()` tears everything down, also after a failure half-way.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryClient } from '@nydus-ts/registry';
import { startFaultProxy, startRegistry } from '@nydus-ts/registry/testing';
import type { FaultProxy, TestRegistry } from '@nydus-ts/registry/testing';
import { startContainerd, stopEverythingUnder, waitForSnapshotter } from '@nydus-ts/snapshotter/testing';
import type { TestContainerd } from '@nydus-ts/snapshotter/testing';
import { appBin } from '@nydus-ts/testing';

export const SNAPSHOTTER = 'nydus-ts';

export interface SnapshotterProcess {
  root: string;
  address: string;
  child: ChildProcess;
  logFile: string;
}

export interface E2eEnv {
  work: string;
  registry: TestRegistry;
  /** The registry as clients see it (`host` is what image references use). */
  proxy: FaultProxy;
  client: RegistryClient;
  containerd: TestContainerd;
  snapshotter: SnapshotterProcess;
  /** Starts the snapshotter process again (after it was stopped or killed). */
  startSnapshotter(): Promise<SnapshotterProcess>;
  /** Sends `signal` to the snapshotter and waits for it to exit; returns its exit code or signal. */
  stopSnapshotter(signal: NodeJS.Signals): Promise<number | string>;
  /** `ctr` with `--snapshotter nydus-ts` after `run` (and the address). */
  ctrRun(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export interface E2eOptions {
  daemonMode?: 'shared' | 'dedicated';
}

export async function startE2eEnv(options: E2eOptions = {}): Promise<E2eEnv> {
  const work = await mkdtemp(path.join(tmpdir(), 'nydus-e2e-'));
  const teardown: Array<() => Promise<unknown>> = [];
  const stop = async (): Promise<void> => {
    for (const t of teardown.splice(0).reverse()) await t().catch((err: unknown) => process.stderr.write(`e2e teardown: ${(err as Error).message}\n`));
  };
  teardown.push(() => rm(work, { recursive: true, force: true }));
  try {
    const registry = await startRegistry();
    teardown.push(() => registry.stop());
    const proxy = await startFaultProxy(registry.url);
    teardown.push(() => proxy.stop());
    const client = new RegistryClient({ registry: proxy.host, insecure: true });
    teardown.push(() => client.close());
    const root = path.join(work, 'snapshotter');
    const address = path.join(work, 'snapshotter.sock');
    const bin = appBin('nydusd-ts');
    // Everything started for the root (daemons outlive the snapshotter), then its mounts.
    teardown.push(() => stopEverythingUnder(work));
    let runs = 0;
    const env = { work, registry, proxy, client } as E2eEnv;
    env.startSnapshotter = async () => {
      const logFile = path.join(work, `snapshotter-${++runs}.log`);
      const log = createWriteStream(logFile);
      const args = [bin, 'snapshotter', '--root', root, '--address', address, '--daemon-mode', options.daemonMode ?? 'shared', '--log-level', 'debug'];
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr!.pipe(log);
      const deadline = Date.now() + 60_000;
      for (;;) {
        const text = await readFile(logFile, 'utf8').catch(() => '');
        if (text.includes('"snapshotter serving"')) break;
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nydusd-ts snapshotter did not start (exit ${child.exitCode}): ${text.slice(-3000)}`);
        await sleep(100);
      }
      env.snapshotter = { root, address, child, logFile };
      return env.snapshotter;
    };
    env.stopSnapshotter = async (signal) => {
      const child = env.snapshotter.child;
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode!;
      const exited = new Promise<number | string>((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
      child.kill(signal);
      return exited;
    };
    await env.startSnapshotter();
    teardown.push(() => env.stopSnapshotter('SIGTERM'));
    env.containerd = await startContainerd({ dir: path.join(work, 'containerd'), proxyPlugins: { [SNAPSHOTTER]: address } });
    teardown.push(() => env.containerd.stop());
    await waitForSnapshotter(env.containerd, SNAPSHOTTER);
    env.ctrRun = (args) => env.containerd.ctr(['run', '--snapshotter', SNAPSHOTTER, ...args], { timeoutMs: 600_000 });
    env.stop = stop;
    return env;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Bytes the registry sent for blobs whose digest is in `digests` since request number `since`. */
export function blobBytesSince(proxy: FaultProxy, since: number, digests: Iterable<string>): number {
  const wanted = new Set(digests);
  let bytes = 0;
  for (const r of proxy.requests.slice(since)) {
    const m = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(r.path);
    if (m && wanted.has(m[1]!)) bytes += r.responseBytes;
  }
  return bytes;
}
