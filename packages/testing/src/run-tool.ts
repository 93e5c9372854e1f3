/** Runs tools from tests without blocking the worker: a long execFileSync starves its messages to vitest. */
import { spawn } from 'node:child_process';

export interface RunToolOptions {
  /** Bytes for the tool's stdin (default: none, stdin closed). */
  input?: Uint8Array | string;
  cwd?: string;
}

/** Runs `command`; resolves with its stdout when it exits 0, else rejects with its stderr. */
export function runToolBuffer(command: string, args: string[], options: RunToolOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code ?? signal}: ${Buffer.concat(err).toString().trim()}`));
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** `runToolBuffer`, stdout as UTF-8 text. */
export async function runTool(command: string, args: string[], options: RunToolOptions = {}): Promise<string> {
  return (await runToolBuffer(command, args, options)).toString('utf8');
}
