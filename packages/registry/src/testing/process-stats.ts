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
  /**
   * CPU time (user + system), ms. For `node`, from the child's own `process.cpuUsage()`;
   * otherwise the growth of this process's reaped-children times (`cutime`+`cstime`, 10 ms
   * ticks), so it is only right when no other child of this process exits meanwhile.
   */
  cpuMs: number;
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
  "process.on('exit', () => { try { const io = readFileSync('/proc/self/io', 'utf8'); const st = readFileSync('/proc/self/status', 'utf8'); const cpu = process.cpuUsage();",
  'writeFileSync(process.env.NYDUS_TS_PROC_REPORT, io + "\\n----\\n" + st + "\\n----\\n" + (cpu.user + cpu.system) / 1000); } catch {} });',
].join('\n');

/** utime+stime of this process's reaped children, ms (Linux USER_HZ is 100). */
function childrenCpuMs(): number {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[13]) + Number(fields[14])) * 10;
  } catch {
    return 0;
  }
}

/** Runs a command and reports its written bytes (/proc/<pid>/io) and peak RSS. */
export async function measureProcess(command: string, args: string[], options: MeasureOptions = {}): Promise<MeasuredRun> {
  const dir = await mkdtemp(join(tmpdir(), 'nydus-measure-'));
  const report = join(dir, 'proc-report');
  const env = { ...(options.env ?? process.env), NYDUS_TS_PROC_REPORT: report };
  const fullArgs = options.node ? [`--import=data:text/javascript,${encodeURIComponent(exitHook)}`, ...args] : args;
  const childrenCpuBefore = childrenCpuMs();
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
  let cpuMs = childrenCpuMs() - childrenCpuBefore;
  if (options.node) {
    try {
      const [io, status, cpu] = (await readFile(report, 'utf8')).split('\n----\n');
      const r = parseProc(io ?? '', status ?? '');
      final = { writeBytes: Math.max(r.writeBytes, sampled.writeBytes), peakRssBytes: Math.max(r.peakRssBytes, sampled.peakRssBytes) };
      if (cpu !== undefined && Number.isFinite(Number(cpu))) cpuMs = Number(cpu);
    } catch {
      // the child died before its exit hook ran; keep the samples
    }
  }
  await rm(dir, { recursive: true, force: true });
  return { code, stdout, stderr, wallMs, cpuMs, ...final };
}
