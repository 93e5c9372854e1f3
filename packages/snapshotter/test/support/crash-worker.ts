// Child of crash.test.ts: opens a snapshotter root (which recovers it) and changes it as fast as
// it can until it is killed: prepare (with files written), commit, view, label, remove.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NydusSnapshotter } from '@nydus-ts/snapshotter';

const root = process.argv[2]!;
const seed = Number(process.argv[3] ?? 1);
let state = seed;
const rand = (n: number): number => {
  state = (state * 1103515245 + 12345) % 2 ** 31;
  return state % n;
};

const sn = await NydusSnapshotter.open({ root });
process.stdout.write('ready\n');
for (let i = 0; ; i++) {
  const all = await sn.list();
  const committed = all.filter((s) => s.kind === 'COMMITTED');
  const op = rand(10);
  try {
    if (op < 5 || committed.length === 0) {
      const parent = committed.length > 0 && rand(3) > 0 ? committed[rand(committed.length)]!.name : '';
      const key = `active-${seed}-${i}`;
      const mounts = await sn.prepare(key, parent, { 'containerd.io/snapshot/n': String(i) });
      const upper = mounts[0]!.type === 'bind' ? mounts[0]!.source : mounts[0]!.options.find((o) => o.startsWith('upperdir='))!.slice(9);
      await writeFile(path.join(upper, `file-${i}`), `content ${i}\n`);
      if (rand(4) > 0) await sn.commit(`committed-${seed}-${i}`, key, { 'containerd.io/snapshot/c': String(i) });
    } else if (op < 8) {
      const parents = new Set(all.map((s) => s.parent));
      const leaves = all.filter((s) => !parents.has(s.name));
      if (leaves.length > 0) await sn.remove(leaves[rand(leaves.length)]!.name);
    } else if (op < 9) {
      await sn.view(`view-${seed}-${i}`, committed[rand(committed.length)]!.name);
    } else {
      const target = all[rand(all.length)]!;
      await sn.update({ name: target.name, labels: { 'containerd.io/snapshot/u': String(i) } }, ['labels.containerd.io/snapshot/u']);
    }
  } catch (err) {
    process.stderr.write(`op ${i}: ${(err as Error).message}\n`);
    process.exit(3);
  }
}
