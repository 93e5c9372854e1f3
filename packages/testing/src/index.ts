// Test support shared by the packages' suites (devDependency only: no library imports it).
export { makeTree, createRandom, CAPABILITY_NET_BIND_SERVICE } from './make-tree.js';
export type { MakeTreeOptions, MadeTree } from './make-tree.js';
export { snapshotTree, snapshotEntries, diffTrees } from './tree-compare.js';
export type { NodeType, TreeNode, TreeSnapshot, SnapshotOptions, DiffTreesOptions } from './tree-compare.js';
export { mountErofs, mountOverlay, MountScope, loopsBackedBy } from './kernel.js';
export type { MountHandle, ErofsMountOptions } from './kernel.js';
export { appBin } from './app-bin.js';
export { runTool, runToolBuffer } from './run-tool.js';
export type { RunToolOptions } from './run-tool.js';
export { fetchNydusBootstrap } from './nydus-bootstrap.js';
export { rawHeader, fixChecksum, paxHeader, fileMember, pad, END } from './raw-tar.js';
export type { RawHeader } from './raw-tar.js';
export { letEventLoopRun, chunked, collect, sha256Of, fromArray, zstdFrame, zstdCompressProcess } from './streams.js';
