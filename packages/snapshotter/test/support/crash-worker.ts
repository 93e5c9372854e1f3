// Child of crash.test.ts: opens a snapshotter root (which recovers it) and changes it as fast as
// it can until it is killed: prepare (with files written), commit, view, label, remove. Before
// each operation it prints `begin <op>`, after it `end` (stdout is a pipe: the writes are
// synchronous on Linux), so the test knows which operation a kill interrupted.
//
// With a kill point (argv[4]) the child kills itself with SIGKILL at that point inside an
// operation: node:fs functions the snapshotter calls are wrapped (and the ESM bindings synced),
// so no hook in the snapshotter is needed.
import fs from 'node:fs';
import fsp, { writeFile } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { NydusSnapshotter } from '@nydus-ts/snapshotter';

const root = process.argv[2]!;
const seed = Number(process.argv[3] ?? 1);
const killPoint = process.argv[4];
let inFlight = '';

function die(): never {
  process.kill(process.pid, 'SIGKILL');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // until the signal lands
  throw new Error('not killed');
}

/** Kills this process when `fn` of `mod` is called during `op`, before or after the call. */
function killInside(mod: object, fn: string, op: string, when: 'before' | 'after'): void {
  const m = mod as Record<string, (...args: unknown[]) => unknown>;
  const original = m[fn]!;
  m[fn] = (...args: unknown[]): unknown => {
    if (inFlight !== op) return original(...args);
    if (when === 'before') die();
    const r = original(...args);
    die();
    return r;
  };
  syncBuiltinESMExports();
}

// (the test names these; each one is a moment where the store and the directories disagree
// unless the snapshotter's ordering makes them agree)
const killPoints: Record<string, () => void> = {
  // Prepare: the new directory exists under its temporary name, no row yet
  'prepare:before-transaction': () => killInside(fsp, 'mkdir', 'prepare', 'before'),
  // Prepare: the directory renamed to the row's id inside the open transaction
  'prepare:in-transaction': () => killInside(fs, 'renameSync', 'prepare', 'after'),
  // Commit: while measuring the snapshot's disk usage, before the transaction
  'commit:usage': () => killInside(fsp, 'lstat', 'commit', 'before'),
  // Remove: the row is gone, the directory not yet
  'remove:after-row': () => killInside(fsp, 'rm', 'remove', 'before'),
};
if (killPoint) {
  const install = killPoints[killPoint];
  if (!install) throw new Error(`unknown kill point ${killPoint}`);
  install();
}
let state = seed;
const rand = (n: number): number => {
  state = (state * 1103515245 + 12345) % 2 ** 31;
  return state % n;
};

const sn = await NydusSnapshotter.open({ root });
process.stdout.write('ready\n');
async function step<T>(op: string, fn: () => Promise<T>): Promise<T> {
  process.stdout.write(`begin ${op}\n`);
  inFlight = op;
  const r = await fn();
  inFlight = '';
  process.stdout.write('end\n');
  return r;
}
for (let i = 0; ; i++) {
  const all = await sn.list();
  const committed = all.filter((s) => s.kind === 'COMMITTED');
  const op = rand(10);
  try {
    if (op < 5 || committed.length === 0) {
      const parent = committed.length > 0 && rand(3) > 0 ? committed[rand(committed.length)]!.name : '';
      const key = `active-${seed}-${i}`;
      const mounts = await step('prepare', () => sn.prepare(key, parent, { 'containerd.io/snapshot/n': String(i) }));
      const upper = mounts[0]!.type === 'bind' ? mounts[0]!.source : mounts[0]!.options.find((o) => o.startsWith('upperdir='))!.slice(9);
      await writeFile(path.join(upper, `file-${i}`), `content ${i}\n`);
      if (rand(4) > 0) await step('commit', () => sn.commit(`committed-${seed}-${i}`, key, { 'containerd.io/snapshot/c': String(i) }));
    } else if (op < 8) {
      const parents = new Set(all.map((s) => s.parent));
      const leaves = all.filter((s) => !parents.has(s.name));
      if (leaves.length > 0) await step('remove', () => sn.remove(leaves[rand(leaves.length)]!.name));
    } else if (op < 9) {
      await step('view', () => sn.view(`view-${seed}-${i}`, committed[rand(committed.length)]!.name));
    } else {
      const target = all[rand(all.length)]!;
      await step('update', () => sn.update({ name: target.name, labels: { 'containerd.io/snapshot/u': String(i) } }, ['labels.containerd.io/snapshot/u']));
    }
  } catch (err) {
    process.stderr.write(`op ${i}: ${(err as Error).message}\n`);
    process.exit(3);
  }
}
