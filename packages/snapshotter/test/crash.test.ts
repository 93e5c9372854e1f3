// kill -9 in the middle of Prepare/Commit/Remove/View/Update leaves a consistent snapshotter root:
// a child process changes a root as fast as it can and is killed at random moments, 20 times;
// after each kill the database passes SQLite's integrity and foreign-key checks, every row has
// its directory, every parent is committed, and re-opening removes every directory without a
// row; the next child goes on from there. Then kills at chosen points inside Prepare, Commit and
// Remove (the child kills itself there), where the directories and the rows disagree unless the
// snapshotter's ordering and its start-up clean-up make them agree.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NydusSnapshotter } from '@nydus-ts/snapshotter';
import { MetaStore } from '../src/metastore.js';
import { bundleTestEntry } from '@nydus-ts/snapshotter/testing';

let work: string;
let worker: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'sn-crash-'));
  worker = await bundleTestEntry(path.join(import.meta.dirname, 'support/crash-worker.ts'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
  await rm(worker, { force: true });
});

function checkConsistent(root: string): void {
  const store = MetaStore.open(path.join(root, 'metadata.db'));
  try {
    expect(store.integrityProblems()).toEqual([]);
    const rows = store.list();
    const byName = new Map(rows.map((r) => [r.name, r]));
    for (const r of rows) {
      expect(existsSync(path.join(root, 'snapshots', String(r.id), 'fs')), `directory of ${r.name}`).toBe(true);
      if (r.kind === 'ACTIVE') expect(existsSync(path.join(root, 'snapshots', String(r.id), 'work'))).toBe(true);
      if (r.parent) expect(byName.get(r.parent)?.kind, `parent of ${r.name}`).toBe('COMMITTED');
    }
  } finally {
    store.close();
  }
}

it('kill -9 at random moments never leaves an inconsistent store', async () => {
  const root = path.join(work, 'root');
  let totalOps = 0;
  for (let round = 0; round < 20; round++) {
    const child = spawn(process.execPath, [worker, root, String(round + 1)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
      child.on('exit', (code) => reject(new Error(`worker exited (${code}) before ready: ${stderr}`)));
    });
    await sleep(30 + Math.floor(Math.random() * 300));
    expect(child.exitCode, `worker failed: ${stderr}`).toBeNull();
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(stderr).toBe('');
    checkConsistent(root);
    // Re-opening recovers: no directory without its row is left.
    const sn = await NydusSnapshotter.open({ root });
    const names = new Set((await sn.list()).map((s) => s.name));
    totalOps += names.size;
    await sn.close();
    const store = MetaStore.open(path.join(root, 'metadata.db'));
    const ids = new Set([...store.ids()].map(String));
    store.close();
    expect((await readdir(path.join(root, 'snapshots'))).filter((d) => !ids.has(d))).toEqual([]);
  }
  // The children did real work between kills.
  expect(totalOps).toBeGreaterThan(20);
});

/** Directories under snapshots/ that no row owns. */
async function orphanDirs(root: string): Promise<string[]> {
  const store = MetaStore.open(path.join(root, 'metadata.db'));
  const ids = new Set([...store.ids()].map(String));
  store.close();
  return (await readdir(path.join(root, 'snapshots'))).filter((d) => !ids.has(d));
}

it('kill -9 inside Prepare (before and inside its transaction), Commit and Remove: consistent, and leftovers removed on restart', async () => {
  const root = path.join(work, 'points');
  // what each point leaves behind before the restart: a temporary dir, a renamed dir without its
  // committed row, nothing (commit), a dir whose row is gone
  const leftovers: Record<string, RegExp> = {
    'prepare:before-transaction': /^new-/,
    'prepare:in-transaction': /^\d+$/,
    'commit:usage': /^$/,
    'remove:after-row': /^\d+$/,
  };
  let seed = 100;
  for (const point of Object.keys(leftovers)) {
    for (let n = 0; n < 2; n++) {
      const child = spawn(process.execPath, [worker, root, String(++seed), point], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let tail = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b));
      child.stdout.on('data', (b: Buffer) => (tail = (tail + b.toString()).slice(-200)));
      const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, sig) => resolve(sig)));
      expect(stderr, point).toBe('');
      expect(signal, point).toBe('SIGKILL');
      expect(tail, point).toMatch(new RegExp(`begin ${point.split(':')[0]}\n$`));
      checkConsistent(root);
      const orphans = await orphanDirs(root);
      const expected = leftovers[point]!;
      if (expected.source === '^$') expect(orphans, point).toEqual([]);
      else expect(orphans.filter((d) => expected.test(d)), point).toHaveLength(1);
      // the restart removes them
      await (await NydusSnapshotter.open({ root })).close();
      expect(await orphanDirs(root), point).toEqual([]);
      checkConsistent(root);
    }
  }
});
