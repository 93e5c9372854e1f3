#!/usr/bin/env node
// 4 KiB random reads for the daemon benchmark (not a benchmark itself: run.mjs skips `_` files):
// `node _rand-read.mjs ROOT PLAN.json` reads, for each [relative path, offset] of the plan, 4 KiB
// at that offset with a synchronous pread (this process only measures; it serves nothing), and
// prints {"p50": µs, "p99": µs, "n": count} on stdout.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';

const [root, planFile] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planFile, 'utf8'));
const buf = Buffer.alloc(4096);
const fds = new Map();
const times = [];
for (const [rel, offset] of plan) {
  let fd = fds.get(rel);
  if (fd === undefined) fds.set(rel, (fd = openSync(path.join(root, rel), 'r')));
  const t = process.hrtime.bigint();
  const n = readSync(fd, buf, 0, 4096, offset);
  times.push(Number(process.hrtime.bigint() - t) / 1000);
  if (n <= 0) throw new Error(`${rel}@${offset}: read ${n}`);
}
for (const fd of fds.values()) closeSync(fd);
times.sort((a, b) => a - b);
const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
process.stdout.write(JSON.stringify({ p50: at(0.5), p99: at(0.99), n: times.length }) + '\n');
