/**
 * A conformance suite for any {@link Snapshotter}, in the spirit of containerd's
 * snapshots/testsuite (SnapshotterSuite): lifecycle, kinds, parents, labels, errors, and the
 * file-system behaviour of the mounts it returns (performed for real: needs root and overlayfs).
 *
 *     snapshotterSuite('ours', async (root) => ({ snapshotter: await NydusSnapshotter.open({ root }) }));
 */
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isNydusError } from '@nydus-ts/core';
import type { NydusErrorCode } from '@nydus-ts/core';
import type { Snapshotter } from '../types.js';
import { mountAll, unmountAll } from './mount.js';

export interface SuiteSubject {
  snapshotter: Snapshotter;
  /** Called after the test (after `snapshotter.close()`), e.g. to stop a server. */
  teardown?: () => Promise<void>;
}

export type SnapshotterFactory = (root: string) => Promise<SuiteSubject>;

async function expectCode(p: Promise<unknown>, code: NydusErrorCode): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a ${code} error`).toBeDefined();
  expect(isNydusError(caught) ? caught.code : caught).toBe(code);
}

type Tree = Record<string, string>;

async function writeTree(dir: string, tree: Tree): Promise<void> {
  for (const [rel, content] of Object.entries(tree)) {
    const p = path.join(dir, rel);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
  }
}

/** Every regular file under `dir` (relative path → content). */
async function readTree(dir: string): Promise<Tree> {
  const out: Tree = {};
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out[r] = await readFile(path.join(dir, r), 'utf8');
    }
  };
  await walk('');
  return out;
}

export function snapshotterSuite(name: string, factory: SnapshotterFactory): void {
  describe(`snapshotter suite: ${name}`, () => {
    let work: string;
    let subject: SuiteSubject;
    let sn: Snapshotter;
    const mounted: string[] = [];

    beforeEach(async () => {
      work = await mkdtemp(path.join(tmpdir(), 'sn-suite-'));
      await mkdir(path.join(work, 'root'));
      subject = await factory(path.join(work, 'root'));
      sn = subject.snapshotter;
    });

    afterEach(async () => {
      for (const m of mounted.splice(0).reverse()) await unmountAll(m).catch(() => undefined);
      await sn.close();
      await subject.teardown?.();
      await rm(work, { recursive: true, force: true });
    });

    /** Mounts a snapshot's mounts on a fresh directory and returns it. */
    async function mountKey(key: string, mounts?: Awaited<ReturnType<Snapshotter['mounts']>>): Promise<string> {
      const target = await mkdtemp(path.join(work, 'mnt-'));
      await mountAll(mounts ?? (await sn.mounts(key)), target);
      mounted.push(target);
      return target;
    }

    async function unmountKey(target: string): Promise<void> {
      await unmountAll(target);
      mounted.splice(mounted.indexOf(target), 1);
    }

    /** Prepare on `parent`, apply `change` in the mount, commit as `name`. */
    async function layer(name: string, parent: string, change: (dir: string) => Promise<void>): Promise<void> {
      const key = `${name}-active`;
      const target = await mountKey(key, await sn.prepare(key, parent));
      await change(target);
      await unmountKey(target);
      await sn.commit(name, key);
    }

    it('basic lifecycle: prepare, write, commit, prepare on top, view, remove', async () => {
      const initial = { foo: 'foo\n', 'a/b': 'content-b\n', 'a/c/d': 'content-d\n' };
      await layer('committed', '', (d) => writeTree(d, initial));
      const si = await sn.stat('committed');
      expect(si).toMatchObject({ name: 'committed', parent: '', kind: 'COMMITTED' });

      const next = await mountKey('next', await sn.prepare('next', 'committed'));
      expect(await readTree(next)).toEqual(initial);
      await writeTree(next, { bar: 'bar\n', 'a/b': 'changed-b\n' });
      await rm(path.join(next, 'foo'));
      await rm(path.join(next, 'a/c'), { recursive: true });
      const expected = { bar: 'bar\n', 'a/b': 'changed-b\n' };
      expect(await readTree(next)).toEqual(expected);
      await unmountKey(next);
      expect(await sn.stat('next')).toMatchObject({ name: 'next', parent: 'committed', kind: 'ACTIVE' });
      await sn.commit('next-committed', 'next');
      expect(await sn.stat('next-committed')).toMatchObject({ parent: 'committed', kind: 'COMMITTED' });
      await expectCode(sn.stat('next'), 'NOT_FOUND');

      const names = (await sn.list()).map((i) => i.name).sort();
      expect(names).toEqual(['committed', 'next-committed']);

      const view = await mountKey('view', await sn.view('view', 'next-committed'));
      expect(await readTree(view)).toEqual(expected);
      await unmountKey(view);
      expect((await sn.stat('view')).kind).toBe('VIEW');
      await sn.remove('view');
      await sn.remove('next-committed');
      await sn.remove('committed');
      expect(await sn.list()).toEqual([]);
    });

    it('stat of an active and a committed snapshot; mounts only for active and view', async () => {
      const target = await mountKey('a', await sn.prepare('a', '', { 'containerd.io/snapshot/x': 'y' }));
      await writeTree(target, { f: 'x' });
      await unmountKey(target);
      expect(await sn.stat('a')).toMatchObject({ name: 'a', parent: '', kind: 'ACTIVE', labels: { 'containerd.io/snapshot/x': 'y' } });
      await sn.commit('c', 'a', { 'containerd.io/snapshot/z': '1' });
      const info = await sn.stat('c');
      // A committed snapshot's labels are those given to Commit.
      expect(info).toMatchObject({ name: 'c', kind: 'COMMITTED', labels: { 'containerd.io/snapshot/z': '1' } });
      expect(info.created).toBeGreaterThan(0);
      await expectCode(sn.mounts('c'), 'FAILED_PRECONDITION');
      await expectCode(sn.mounts('missing'), 'NOT_FOUND');
      await expectCode(sn.stat('missing'), 'NOT_FOUND');
    });

    it('transitivity: a third layer sees the first two', async () => {
      await layer('l1', '', (d) => writeTree(d, { one: '1' }));
      await layer('l2', 'l1', (d) => writeTree(d, { two: '2' }));
      const top = await mountKey('top', await sn.prepare('top', 'l2'));
      expect(await readTree(top)).toEqual({ one: '1', two: '2' });
    });

    it('errors: existing keys, missing or uncommitted parents, committing non-active snapshots', async () => {
      await layer('base', '', (d) => writeTree(d, { f: '1' }));
      await sn.prepare('active', 'base');
      await sn.view('view', 'base');
      await expectCode(sn.prepare('active', 'base'), 'ALREADY_EXISTS');
      await expectCode(sn.view('base', ''), 'ALREADY_EXISTS');
      await expectCode(sn.prepare('x', 'missing'), 'NOT_FOUND');
      await expectCode(sn.prepare('x', 'active'), 'INVALID_ARGUMENT');
      await expectCode(sn.prepare('x', 'view'), 'INVALID_ARGUMENT');
      await expectCode(sn.commit('c', 'view'), 'FAILED_PRECONDITION');
      await expectCode(sn.commit('c', 'base'), 'FAILED_PRECONDITION');
      await expectCode(sn.commit('base', 'active'), 'ALREADY_EXISTS');
      await expectCode(sn.commit('c', 'missing'), 'NOT_FOUND');
      // nothing half-made by the failures
      expect((await sn.list()).map((i) => i.name).sort()).toEqual(['active', 'base', 'view']);
    });

    it('update: labels only, by field path; timestamps move', async () => {
      await sn.prepare('a', '', { 'l/1': 'a', 'l/2': 'b' });
      const before = await sn.stat('a');
      const all = await sn.update({ name: 'a', labels: { 'l/3': 'c' } });
      expect(all.labels).toEqual({ 'l/3': 'c' });
      expect(all.created).toBe(before.created);
      expect(all.updated).toBeGreaterThan(before.updated);
      const one = await sn.update({ name: 'a', labels: { 'l/4': 'd', 'l/3': 'ignored' } }, ['labels.l/4']);
      expect(one.labels).toEqual({ 'l/3': 'c', 'l/4': 'd' });
      const removed = await sn.update({ name: 'a', labels: {} }, ['labels.l/3']);
      expect(removed.labels).toEqual({ 'l/4': 'd' });
      expect(await sn.stat('a')).toEqual(removed);
      await expectCode(sn.update({ name: 'a', labels: {} }, ['parent']), 'INVALID_ARGUMENT');
      await expectCode(sn.update({ name: 'missing', labels: {} }), 'NOT_FOUND');
      await expectCode(sn.update({ name: 'a', labels: { k: 'v'.repeat(4096) } }), 'INVALID_ARGUMENT');
    });

    it('remove: children first, unknown keys are NOT_FOUND', async () => {
      await layer('base', '', (d) => writeTree(d, { f: '1' }));
      await sn.prepare('child', 'base');
      await expectCode(sn.remove('base'), 'FAILED_PRECONDITION');
      await sn.remove('child');
      await sn.remove('base');
      await expectCode(sn.remove('base'), 'NOT_FOUND');
    });

    it('list with containerd filters', async () => {
      await layer('base', '', (d) => writeTree(d, { f: '1' }));
      await sn.prepare('a', 'base', { 'containerd.io/snapshot.ref': 'x', 'containerd.io/snapshot/k': 'v' });
      await sn.prepare('b', '', { 'containerd.io/snapshot/k': 'w' });
      const names = async (filters: string[]): Promise<string[]> => (await sn.list(filters)).map((i) => i.name).sort();
      expect(await names([])).toEqual(['a', 'b', 'base']);
      expect(await names(['labels."containerd.io/snapshot.ref"==x,parent==base'])).toEqual(['a']);
      expect(await names(['labels."containerd.io/snapshot.ref"==x,parent==other'])).toEqual([]);
      expect(await names(['labels."containerd.io/snapshot/k"'])).toEqual(['a', 'b']);
      expect(await names(['kind==committed', 'name==b'])).toEqual(['b', 'base']);
      expect(await names(['labels."containerd.io/snapshot/k"!=v'])).toEqual(['b', 'base']);
      expect(await names(['name~=^b'])).toEqual(['b', 'base']);
    });

    it('deleting and replacing files of lower layers (whiteouts, opaque dirs)', async () => {
      await layer('l1', '', (d) => writeTree(d, { 'dir/a': 'a', 'dir/b': 'b', keep: 'k', 'gone/x': 'x' }));
      await layer('l2', 'l1', async (d) => {
        await rm(path.join(d, 'dir/a'));
        await rm(path.join(d, 'gone'), { recursive: true });
        await mkdir(path.join(d, 'gone'));
        await writeTree(d, { 'gone/y': 'y', keep: 'k2' });
      });
      await layer('l3', 'l2', (d) => rename(path.join(d, 'dir/b'), path.join(d, 'moved-b')));
      const top = await mountKey('top', await sn.view('top', 'l3'));
      expect(await readTree(top)).toEqual({ keep: 'k2', 'gone/y': 'y', 'moved-b': 'b' });
      // removing an intermediate layer is refused while it has children
      await expectCode(sn.remove('l2'), 'FAILED_PRECONDITION');
    });

    it('views are read-only', async () => {
      await layer('base', '', (d) => writeTree(d, { f: '1' }));
      const v = await mountKey('v', await sn.view('v', 'base'));
      await expect(writeFile(path.join(v, 'new'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
      const empty = await mountKey('v2', await sn.view('v2', ''));
      await expect(writeFile(path.join(empty, 'new'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    });

    it('the root of a base snapshot is 0755 and a child keeps the owner and mode of its parent root', async () => {
      const t = await mountKey('a', await sn.prepare('a', ''));
      expect((await stat(t)).mode & 0o7777).toBe(0o755);
      await chown(t, 1000, 1000);
      await chmod(t, 0o750);
      await unmountKey(t);
      await sn.commit('c', 'a');
      const child = await mountKey('b', await sn.prepare('b', 'c'));
      const st = await stat(child);
      expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1000, 1000, 0o750]);
    });

    it('owners and modes of directories survive commit', async () => {
      await layer('c', '', async (d) => {
        await mkdir(path.join(d, 'owned'), { mode: 0o700 });
        await chown(path.join(d, 'owned'), 1234, 5678);
        await writeFile(path.join(d, 'owned/f'), 'x', { mode: 0o640 });
        await chown(path.join(d, 'owned/f'), 1234, 5678);
      });
      const v = await mountKey('v', await sn.view('v', 'c'));
      const dir = await stat(path.join(v, 'owned'));
      const file = await stat(path.join(v, 'owned/f'));
      expect([dir.uid, dir.gid, dir.mode & 0o7777]).toEqual([1234, 5678, 0o700]);
      expect([file.uid, file.gid, file.mode & 0o7777]).toEqual([1234, 5678, 0o640]);
    });

    it('stat inside a walk of every snapshot', async () => {
      await layer('l1', '', (d) => writeTree(d, { a: '1' }));
      await sn.prepare('a1', 'l1');
      await sn.view('v1', 'l1');
      for (const info of await sn.list()) expect(await sn.stat(info.name)).toEqual(info);
    });

    it('usage: active snapshots are measured live, committed ones at commit', async () => {
      const t = await mountKey('a', await sn.prepare('a', ''));
      await writeFile(path.join(t, 'big'), Buffer.alloc(1 << 20, 1));
      await writeFile(path.join(t, 'small'), 'x');
      await unmountKey(t);
      const active = await sn.usage('a');
      expect(active.size).toBeGreaterThanOrEqual(1 << 20);
      expect(active.inodes).toBe(3); // the root, big, small
      await sn.commit('c', 'a');
      expect(await sn.usage('c')).toEqual(active);
      await expectCode(sn.usage('missing'), 'NOT_FOUND');
    });

    it('128 layers mount', async () => {
      let parent = '';
      for (let i = 0; i < 128; i++) {
        const name = `layer-${i}`;
        await layer(name, parent, (d) => writeTree(d, { [`f${i}`]: String(i), shared: String(i) }));
        parent = name;
      }
      const top = await mountKey('top', await sn.view('top', parent));
      const tree = await readTree(top);
      expect(Object.keys(tree)).toHaveLength(129);
      expect(tree.shared).toBe('127');
      expect(tree.f0).toBe('0');
    });

    it('close twice is harmless', async () => {
      await sn.close();
      await sn.close();
    });
  });
}
