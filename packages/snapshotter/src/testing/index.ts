export { snapshotterSuite } from './snapshotter-suite.js';
export type { SnapshotterFactory, SuiteSubject } from './snapshotter-suite.js';
export { mountAll, unmountAll } from './mount.js';
