/**
 * Tear-down of a snapshotter root after tests: stop every process started for it (daemons are
 * detached and outlive the snapshotter), then unmount what is mounted below it.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountsUnder, unmount } from '../fs-util.js';

/** Pids of processes with an argument inside `dir` (e.g. a daemon's `--apisock <root>/socket/...`). */
export async function processesUsing(dir: string): Promise<number[]> {
  const prefix = path.resolve(dir) + '/';
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').some((a) => a.startsWith(prefix))) out.push(Number(name));
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM (then SIGKILL after `graceMs`) to every process using `dir`, then unmounts everything below it. */
export async function stopEverythingUnder(dir: string, graceMs = 10_000): Promise<void> {
  const pids = await processesUsing(dir);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await sleep(100);
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
  while (pids.some(alive)) await sleep(50);
  for (const m of await mountsUnder(dir)) await unmount(m.mountpoint).catch(() => undefined);
}
