/** Running tools from tests without blocking the event loop. */
import { spawn } from 'node:child_process';
import type { SpawnOptions } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions extends Pick<SpawnOptions, 'cwd' | 'env'> {
  /** Kill the process after this many ms (default 5 min). */
  timeoutMs?: number;
  /** Text written to stdin. */
  input?: string;
}

/** Runs a command to completion and returns its exit code and output (never throws for a non-zero exit). */
export function runCommand(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    if (options.input !== undefined) {
      child.stdin!.on('error', () => undefined); // a child that exits without reading its input
      child.stdin!.end(options.input);
    }
  });
}

/** Runs a command and returns its stdout; a non-zero exit throws with the command and its stderr. */
export async function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const r = await runCommand(cmd, args, options);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}: ${r.stderr.slice(-4000) || r.stdout.slice(-2000)}`);
  return r.stdout;
}
