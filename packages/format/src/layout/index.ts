// On-disk structures of RAFS v6 (bootstrap, blob meta, ToC), each as the spec lays it out.
export * from './constants.js';
export { LeReader, LeWriter, hexOf, isAllZero } from './bytes.js';
export * from './superblock.js';
export * from './blob-table.js';
export * from './inode.js';
export * from './xattr.js';
export * from './dirent.js';
export * from './chunk.js';
export * from './blob-meta.js';
export * from './toc.js';
