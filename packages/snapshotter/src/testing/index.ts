// The conformance suite (it imports vitest) is the `@nydus-ts/snapshotter/conformance` entry.
export { mountAll, unmountAll } from './mount.js';
export { run, runCommand } from './exec.js';
export type { RunOptions, RunResult } from './exec.js';
export { startContainerd, waitForSnapshotter } from './containerd.js';
export type { StartContainerdOptions, TestContainerd } from './containerd.js';
export { buildLayer, describeLayer, pushImage, makeBusyboxRootfs, pseudoRandomBytes } from './images.js';
export type { LayerFile, ImageConfigOptions, PushImageOptions, PushedImage } from './images.js';
export { bundleTestEntry } from './bundle-entry.js';
export { processesUsing, stopEverythingUnder } from './cleanup.js';
