import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface MeasuredRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** `write_bytes` of /proc/<pid>/io: bytes the process caused to be written to storage. */
  writeBytes: number;
  /** Peak resident set size (VmHWM), bytes. */
  peakRssBytes: number;
  wallMs: number;
}

export interface MeasureOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * The command is `node`: read /proc/self/io and VmHWM in the child's own `exit` handler (via
   * `--import`), which sees the final values. Other commands are sampled every 10 ms.
   */
  node?: boolean;
}

function parseProc(io: string, status: string): { writeBytes: number; peakRssBytes: number } {
  const wb = /^write_bytes:\s+(\d+)/m.exec(io);
  const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  return { writeBytes: wb ? Number(wb[1]) : 0, peakRssBytes: hwm ? Number(hwm[1]) * 1024 : 0 };
}

const exitHook = [
  "import { readFileSync, writeFileSync } from 'node:fs';",
  "process.on('exit', () => { try { const io = readFileSync('/proc/self/io', 'utf8'); const st = readFileSync('/proc/self/status', 'utf8');",
  'writeFileSync(process.env.NYDUS_TS_PROC_REPORT, io + "\\n----\\n" + st); } catch {} });',
].join('\n');

/** Runs a command and reports its written bytes (/proc/<pid>/io) and peak RSS. */
export async function measureProcess(command: string, args: string[], options: MeasureOptions = {}): Promise<MeasuredRun> {
  const dir = await mkdtemp(join(tmpdir(), 'nydus-measure-'));
  const report = join(dir, 'proc-report');
  const env = { ...(options.env ?? process.env), NYDUS_TS_PROC_REPORT: report };
  const fullArgs = options.node ? [`--import=data:text/javascript,${encodeURIComponent(exitHook)}`, ...args] : args;
  const started = process.hrtime.bigint();
  const child = spawn(command, fullArgs, { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let sampled = { writeBytes: 0, peakRssBytes: 0 };
  const sample = (): void => {
    try {
      const s = parseProc(readFileSync(`/proc/${child.pid}/io`, 'utf8'), readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      sampled = { writeBytes: Math.max(sampled.writeBytes, s.writeBytes), peakRssBytes: Math.max(sampled.peakRssBytes, s.peakRssBytes) };
    } catch {
      // exited between samples
    }
  };
  const timer = setInterval(sample, 10);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  }).finally(() => clearInterval(timer));
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  let final = sampled;
  if (options.node) {
    try {
      const [io, status] = (await readFile(report, 'utf8')).split('\n----\n');
      const r = parseProc(io ?? '', status ?? '');
      final = { writeBytes: Math.max(r.writeBytes, sampled.writeBytes), peakRssBytes: Math.max(r.peakRssBytes, sampled.peakRssBytes) };
    } catch {
      // the child died before its exit hook ran; keep the samples
    }
  }
  await rm(dir, { recursive: true, force: true });
  return { code, stdout, stderr, wallMs, ...final };
}
