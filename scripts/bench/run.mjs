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
const sections = [];
let failed = 0;
for (const script of scripts) {
  process.stderr.write(`bench: running ${script}\n`);
  const started = Date.now();
  const r = spawnSync(process.execPath, [path.join(here, script)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
  const secs = ((Date.now() - started) / 1000).toFixed(0);
  if (r.status !== 0) {
    failed++;
    sections.push(`## ${script}\n\nFAILED (exit ${r.status}) after ${secs} s; see the run's stderr.\n`);
  } else {
    sections.push(r.stdout.toString().trim() + `\n\n_(${script}, ${secs} s)_\n`);
  }
}

const out = path.join(root, 'docs/benchmarks.md');
let previous = {};
try {
  // Keep sections of benchmarks not run this time.
  const text = readFileSync(out, 'utf8');
  for (const part of text.split(/\n(?=## )/)) {
    const m = /^## (.+)$/m.exec(part);
    if (m && part.startsWith('## ')) previous[m[1].trim()] = part.trim();
  }
} catch {}
const fresh = Object.fromEntries(sections.map((s) => [/^## (.+)$/m.exec(s)?.[1]?.trim() ?? s, s.trim()]));
const merged = { ...previous, ...fresh };
const header = [
  '# Benchmarks',
  '',
  `Command: \`npm run bench\` (or \`node scripts/bench/run.mjs [name...]\` for a subset).`,
  `Last run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${machine}.`,
  'Every ratio compares against a baseline measured in the same run on the same data, since these machines are noisy.',
  '',
].join('\n');
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out + '.tmp', header + '\n' + Object.values(merged).join('\n\n') + '\n');
renameSync(out + '.tmp', out);
process.stderr.write(`bench: wrote ${path.relative(root, out)}\n`);
process.exitCode = failed ? 1 : 0;
