import { printableFsName } from '@nydus-ts/format';
import { formatXattrValue, type CheckEntry, type CheckTree } from './check-tree.js';

const oct = (mode: number): string => mode.toString(8).padStart(4, '0');
const rdev = (r: { major: number; minor: number } | undefined): string => (r ? `${r.major}:${r.minor}` : 'none');

/**
 * Differences between the expected (source) and the actual (Nydus) tree, one line per finding,
 * `PATH: WHAT SOURCE != TARGET`. Symlink permission bits are not compared (Linux has none);
 * nor are mtimes, nor directory sizes.
 */
export function compareTrees(expected: CheckTree, actual: CheckTree): string[] {
  const out: string[] = [];
  // Paths are compared as the bytes they stand for (decodeFsName); lines show bytes that are
  // not UTF-8 as \xNN.
  for (const [path, e] of expected) {
    const a = actual.get(path);
    if (a === undefined) {
      out.push(`${printableFsName(path)}: missing from target (source has a ${e.attrs.type})`);
      continue;
    }
    compareEntry(printableFsName(path), e, a, out);
  }
  for (const [path, a] of actual) {
    if (!expected.has(path)) out.push(`${printableFsName(path)}: not in source (target has a ${a.attrs.type})`);
  }
  return out;
}

function compareEntry(path: string, e: CheckEntry, a: CheckEntry, out: string[]): void {
  const x = e.attrs;
  const y = a.attrs;
  if (x.type !== y.type) {
    out.push(`${path}: type ${x.type} != ${y.type}`);
    return;
  }
  if (x.type !== 'symlink' && x.mode !== y.mode) out.push(`${path}: mode ${oct(x.mode)} != ${oct(y.mode)}`);
  if (x.uid !== y.uid) out.push(`${path}: uid ${x.uid} != ${y.uid}`);
  if (x.gid !== y.gid) out.push(`${path}: gid ${x.gid} != ${y.gid}`);
  switch (x.type) {
    case 'file': {
      if (x.size !== y.size) out.push(`${path}: size ${x.size} != ${y.size}`);
      if (y.unreadable !== undefined) out.push(`${path}: content unreadable in target: ${y.unreadable}`);
      else if (x.sha256 !== y.sha256) out.push(`${path}: content sha256:${x.sha256} != sha256:${y.sha256}`);
      const xl = e.links ?? [];
      const yl = a.links ?? [];
      if (xl.length !== yl.length || xl.some((l, i) => l !== yl[i])) {
        out.push(`${path}: hard links [${xl.map(printableFsName).join(', ')}] != [${yl.map(printableFsName).join(', ')}]`);
      }
      break;
    }
    case 'symlink':
      if (x.linkTarget !== y.linkTarget) out.push(`${path}: link target ${JSON.stringify(x.linkTarget)} != ${JSON.stringify(y.linkTarget)}`);
      break;
    case 'char-device':
    case 'block-device':
      if (rdev(x.rdev) !== rdev(y.rdev)) out.push(`${path}: device ${rdev(x.rdev)} != ${rdev(y.rdev)}`);
      break;
    default:
      break;
  }
  for (const [k, v] of x.xattrs) {
    const w = y.xattrs.get(k);
    if (w === undefined) out.push(`${path}: xattr ${k} missing from target (source ${formatXattrValue(v)})`);
    else if (w !== v) out.push(`${path}: xattr ${k} ${formatXattrValue(v)} != ${formatXattrValue(w)}`);
  }
  for (const [k, w] of y.xattrs) {
    if (!x.xattrs.has(k)) out.push(`${path}: xattr ${k} not in source (target ${formatXattrValue(w)})`);
  }
}
