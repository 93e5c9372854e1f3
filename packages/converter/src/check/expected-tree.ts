import { createHash } from 'node:crypto';
import { FormatError, throwIfAborted } from '@nydus-ts/core';
import type { Descriptor } from '@nydus-ts/core';
import type { LayerEntry } from '@nydus-ts/format';
import type { ImageSource } from '@nydus-ts/registry';
import { decompressStream, readTarEntries } from '@nydus-ts/image';
import { assignLinkGroups, xattrMap, type CheckAttrs, type CheckTree } from './check-tree.js';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** Attributes of a directory a layer implies (a parent no entry describes). */
function implicitDirAttrs(): CheckAttrs {
  return { type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, xattrs: new Map() };
}

interface Node {
  /** Shared between the names of one hardlinked inode. */
  attrs: CheckAttrs;
  /** Directory created for a path's parent without an entry of its own (keeps lower attributes). */
  implicit: boolean;
  children: Map<string, Node> | null;
  /** Layer trees only: names this layer whites out in this directory, and the opaque marker. */
  whiteouts?: Set<string>;
  opaque?: boolean;
}

function dirNode(attrs: CheckAttrs, implicit: boolean): Node {
  return { attrs, implicit, children: new Map() };
}

/** One layer's entries as a tree (later entries replace earlier ones), whiteouts recorded per directory. */
class LayerTree {
  readonly root = dirNode(implicitDirAttrs(), true);
  readonly #layer: string;

  constructor(layer: string) {
    this.#layer = layer;
  }

  #parent(parts: string[], path: string): Node {
    let dir = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i]!;
      let next = dir.children!.get(name);
      if (next === undefined) {
        next = dirNode(implicitDirAttrs(), true);
        dir.children!.set(name, next);
      } else if (next.children === null) {
        throw new FormatError('source layer', `${this.#layer}: entry "${path}" lies under "${parts.slice(0, i + 1).join('/')}", which is a ${next.attrs.type}`);
      }
      dir = next;
    }
    return dir;
  }

  lookup(path: string): Node | undefined {
    let node: Node | undefined = this.root;
    for (const c of path.split('/').filter(Boolean)) {
      node = node.children?.get(c);
      if (node === undefined) return undefined;
    }
    return node;
  }

  async add(entry: LayerEntry, lower: Node, signal?: AbortSignal): Promise<void> {
    const parts = entry.path === '' ? [] : entry.path.split('/');
    const name = parts[parts.length - 1];
    if (name === undefined) {
      if (entry.type !== 'directory') throw new FormatError('source layer', `${this.#layer}: the root entry is a ${entry.type}`);
      this.root.attrs = attrsOf(entry);
      this.root.implicit = false;
      return;
    }
    if (name === OPAQUE) {
      await drain(entry);
      this.#parent(parts, entry.path).opaque = true;
      return;
    }
    if (name.startsWith(WHITEOUT_PREFIX)) {
      await drain(entry);
      const parent = this.#parent(parts, entry.path);
      (parent.whiteouts ??= new Set()).add(name.slice(WHITEOUT_PREFIX.length));
      return;
    }
    const parent = this.#parent(parts, entry.path);
    let node: Node;
    if (entry.type === 'hardlink') {
      const target = this.lookup(entry.linkTarget ?? '') ?? lookupIn(lower, entry.linkTarget ?? '');
      if (target === undefined || target.attrs.type !== 'file') {
        throw new FormatError('source layer', `${this.#layer}: hard link "${entry.path}" points to "${entry.linkTarget}", which is not a regular file of the image`);
      }
      node = { attrs: target.attrs, implicit: false, children: null };
    } else {
      const attrs = attrsOf(entry);
      if (entry.type === 'file') {
        const hash = createHash('sha256');
        let n = 0;
        if (entry.content) {
          for await (const chunk of entry.content) {
            throwIfAborted(signal);
            hash.update(chunk);
            n += chunk.length;
          }
        }
        if (n !== entry.size) throw new FormatError('source layer', `${this.#layer}: "${entry.path}" has ${n} content bytes, its header says ${entry.size}`);
        attrs.sha256 = hash.digest('hex');
      }
      node = entry.type === 'directory' ? dirNode(attrs, false) : { attrs, implicit: false, children: null };
    }
    const existing = parent.children!.get(name);
    if (existing !== undefined && existing.children !== null && node.children !== null) {
      existing.attrs = node.attrs; // a directory again: keep what is under it
      existing.implicit = false;
      return;
    }
    parent.children!.set(name, node);
  }
}

function lookupIn(root: Node, path: string): Node | undefined {
  let node: Node | undefined = root;
  for (const c of path.split('/').filter(Boolean)) {
    node = node.children?.get(c);
    if (node === undefined) return undefined;
  }
  return node;
}

async function drain(entry: LayerEntry): Promise<void> {
  if (entry.content) for await (const _ of entry.content) { /* whiteout markers carry no meaning in their data */ }
}

function attrsOf(entry: LayerEntry): CheckAttrs {
  const attrs: CheckAttrs = {
    type: entry.type === 'hardlink' ? 'file' : entry.type,
    mode: entry.mode & 0o7777,
    uid: entry.uid,
    gid: entry.gid,
    size: entry.type === 'file' ? entry.size : 0,
    xattrs: xattrMap(entry.xattrs),
  };
  if (entry.type === 'symlink') attrs.linkTarget = entry.linkTarget ?? '';
  if (entry.type === 'char-device' || entry.type === 'block-device') attrs.rdev = { major: entry.devMajor ?? 0, minor: entry.devMinor ?? 0 };
  return attrs;
}

/**
 * Applies an upper layer onto the tree (OCI image spec, "Applying changesets"): the opaque
 * marker empties the lower directory, `.wh.NAME` removes lower NAME, then entries replace
 * lower ones; a directory over a directory merges, taking the upper attributes unless the
 * upper one is only implied by a deeper path.
 */
function mergeDir(target: Node, upper: Node): void {
  const children = target.children!;
  if (upper.opaque) children.clear();
  for (const name of upper.whiteouts ?? []) children.delete(name);
  for (const [name, u] of upper.children!) {
    const t = children.get(name);
    if (u.children !== null && t !== undefined && t.children !== null) {
      if (!u.implicit) {
        t.attrs = u.attrs;
        t.implicit = false;
      }
      mergeDir(t, u);
      continue;
    }
    if (u.children !== null) {
      // A new directory: it brings no whiteouts along (there is nothing below it).
      const fresh = dirNode(u.attrs, u.implicit);
      mergeDir(fresh, u);
      children.set(name, fresh);
      continue;
    }
    children.set(name, u);
  }
}

export interface ExpectedTreeOptions {
  signal?: AbortSignal;
  /** Called after each layer with its index and entry count. */
  onLayer?: (index: number, entries: number) => void;
}

/**
 * The tree an OCI runtime builds from `layers`: each layer streamed once (fetched, decompressed,
 * tar-parsed), file contents hashed on the way and never kept, whiteouts applied in order.
 * Hardlinks of a layer share their inode's attributes (and later names of the group).
 */
export async function buildExpectedTree(source: ImageSource, layers: readonly Descriptor[], options: ExpectedTreeOptions = {}): Promise<CheckTree> {
  const root = dirNode(implicitDirAttrs(), true);
  for (const [i, layer] of layers.entries()) {
    throwIfAborted(options.signal);
    const tree = new LayerTree(`source layer ${i} (${layer.digest})`);
    let entries = 0;
    const blob = source.fetchBlob(layer, options.signal ? { signal: options.signal } : {});
    for await (const entry of readTarEntries(decompressStream(blob, options.signal ? { signal: options.signal } : {}), options.signal ? { signal: options.signal } : {})) {
      entries++;
      await tree.add(entry, root, options.signal);
    }
    if (!tree.root.implicit) {
      root.attrs = tree.root.attrs;
      root.implicit = false;
    }
    mergeDir(root, tree.root);
    options.onLayer?.(i, entries);
  }
  const out: CheckTree = new Map();
  const visit = (node: Node, path: string): void => {
    out.set(path, { path, attrs: node.attrs });
    if (node.children === null) return;
    for (const [name, child] of node.children) visit(child, path === '/' ? `/${name}` : `${path}/${name}`);
  };
  visit(root, '/');
  assignLinkGroups(out, (e) => e.attrs);
  return out;
}
