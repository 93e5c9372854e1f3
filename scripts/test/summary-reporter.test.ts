import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

it('counts an unhandled error as a failure in the summary line, as vitest does in its exit code', async () => {
  const config = path.join(import.meta.dirname, 'fixtures/unhandled/vitest.config.ts');
  const r = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--config', config], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b));
    child.stderr.on('data', (b: Buffer) => (output += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
  expect(r.output).toMatch(/Unhandled Rejection/);
  expect(r.code).toBe(1);
  expect(r.output.trimEnd().split('\n').at(-1)).toBe('1 passed, 1 failed, 0 skipped (1 unhandled error among the failures)');
});
