/**
 * Runs `nydusd-ts` as a separate process, as the snapshotter does (a FUSE server must not share
 * an event loop or thread pool with the test that reads its mount), and talks to its API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { appBin } from '@nydus-ts/testing';

export interface ApiReply {
  status: number;
  body: string;
  json: unknown;
}

/** One HTTP request over the daemon's unix socket. */
export function apiRequest(socketPath: string, method: string, path: string, body?: unknown): Promise<ApiReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = request({ socketPath, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body: text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

export interface NydusdProcess {
  child: ChildProcess;
  pid: number;
  mountpoint: string;
  apisock: string;
  api(method: string, path: string, body?: unknown): Promise<ApiReply>;
  /** Everything the daemon wrote to stderr so far (JSON log lines). */
  logs(): string;
  /** Sends `signal` and waits for the exit; resolves with the exit code (null when killed). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartNydusdOptions {
  mountpoint: string;
  apisock: string;
  /** Further flags (--config, --bootstrap, --mode ...). */
  args: string[];
  /** Wait for RUNNING at most this long (default 60 s). */
  timeoutMs?: number;
}

/** Starts the daemon and waits until its API says RUNNING (rejects with its stderr if it exits first). */
export async function startNydusd(options: StartNydusdOptions): Promise<NydusdProcess> {
  const child = spawn(process.execPath, [appBin('nydusd-ts'), '--mountpoint', options.mountpoint, '--apisock', options.apisock, ...options.args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const proc: NydusdProcess = {
    child,
    pid: child.pid!,
    mountpoint: options.mountpoint,
    apisock: options.apisock,
    api: (method, path, body) => apiRequest(options.apisock, method, path, body),
    logs: () => stderr,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return (await exited).code;
    },
  };
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let exit: { code: number | null } | undefined;
  void exited.then((e) => (exit = e));
  while (Date.now() < deadline) {
    if (exit) throw new Error(`nydusd-ts exited with ${exit.code} before RUNNING:\n${stderr}`);
    const reply = await proc.api('GET', '/api/v1/daemon').catch(() => undefined);
    if (reply?.status === 200 && (reply.json as { state?: string }).state === 'RUNNING') return proc;
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`nydusd-ts not RUNNING within ${options.timeoutMs ?? 60_000} ms:\n${stderr}`);
}

/** Runs nydusd-ts to completion (for start-up failures): exit code and stderr. */
export function runNydusdToExit(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [appBin('nydusd-ts'), ...args], { timeout: timeoutMs, encoding: 'utf8' }, (err, _stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr });
    });
  });
}

/** `fusermount -uz` / `umount -l`, ignoring "not mounted". */
export function forceUnmount(mountpoint: string): Promise<void> {
  return new Promise((resolve) => {
    execFile('fusermount', ['-uz', mountpoint], () => execFile('umount', ['-l', mountpoint], () => resolve()));
  });
}

/** Daemons started by a test file: `cleanup()` stops them and clears their mountpoints. */
export class DaemonScope {
  private readonly procs: NydusdProcess[] = [];
  private readonly mounts = new Set<string>();

  async start(options: StartNydusdOptions): Promise<NydusdProcess> {
    this.mounts.add(options.mountpoint);
    const p = await startNydusd(options);
    this.procs.push(p);
    return p;
  }

  /** Also clears this path at cleanup (e.g. an erofs-mode device dir). */
  track(mountpoint: string): void {
    this.mounts.add(mountpoint);
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs.splice(0)) {
      const timer = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
      await p.stop('SIGTERM');
      clearTimeout(timer);
    }
    for (const m of this.mounts) await forceUnmount(m);
  }
}
