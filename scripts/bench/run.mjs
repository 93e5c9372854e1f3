#!/usr/bin/env node
// Runs every benchmark script in this folder (each prints one Markdown section on stdout) and
// writes docs/benchmarks.md with the command, date and machine. `npm run bench` calls this.
// Pass names to run a subset: `node scripts/bench/run.mjs build copy`.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const only = process.argv.slice(2);
const scripts = readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== 'run.mjs' && !f.startsWith('_'))
  .filter((f) => only.length === 0 || only.includes(f.replace(/\.mjs$/, '')))
  .sort();

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const machine = `${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, Node ${process.version}`;
const marker = (name) => `<!-- bench:${name} -->`;
const fresh = new Map();
let failed = 0;
for (const script of scripts) {
  const name = script.replace(/\.mjs$/, '');
  process.stderr.write(`bench: running ${script}\n`);
  const started = Date.now();
  const r = spawnSync(process.execPath, [path.join(here, script)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
  const secs = ((Date.now() - started) / 1000).toFixed(0);
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  if (r.status !== 0) {
    failed++;
    fresh.set(name, `## ${name}\n\nFAILED (exit ${r.status}) after ${secs} s on ${when} UTC; see the run's stderr.`);
  } else {
    fresh.set(name, r.stdout.toString().trim() + `\n\n_(scripts/bench/${script}: ${secs} s, run ${when} UTC)_`);
  }
}

// Sections of benchmarks not run this time are kept from the previous report.
const out = path.join(root, 'docs/benchmarks.md');
const sections = new Map();
try {
  const text = readFileSync(out, 'utf8');
  for (const m of text.matchAll(/<!-- bench:([\w-]+) -->\n([\s\S]*?)(?=\n<!-- bench:|$)/g)) sections.set(m[1], m[2].trim());
} catch {}
for (const [name, body] of fresh) sections.set(name, body);
const header = [
  '# Benchmarks',
  '',
  'Command: `npm run bench` (or `node scripts/bench/run.mjs [name...]` for a subset).',
  `Machine: ${machine}.`,
  'Every ratio compares against a baseline measured in the same run on the same data, since these machines are noisy. Each section says when it ran.',
  '',
].join('\n');
const body = [...sections].sort(([a], [b]) => a.localeCompare(b)).map(([name, text]) => `${marker(name)}\n${text}`).join('\n\n');
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out + '.tmp', header + '\n' + body + '\n');
renameSync(out + '.tmp', out);
process.stderr.write(`bench: wrote ${path.relative(root, out)}\n`);
process.exitCode = failed ? 1 : 0;
