export { checkConvertedImage } from './check-image.js';
export type { CheckConvertedImageOptions, CheckReport, CheckCounts } from './check-image.js';
export { buildExpectedTree } from './expected-tree.js';
export type { ExpectedTreeOptions } from './expected-tree.js';
export { buildActualTree } from './actual-tree.js';
export type { ActualTreeOptions, ActualTreeResult } from './actual-tree.js';
export { compareTrees } from './compare.js';
export type { FsAttrs, FsEntry, FsNodeType, FsTree } from './fs-tree.js';
