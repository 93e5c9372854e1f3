import { createHash } from 'node:crypto';
import type { Digest } from '@nydus-ts/core';

/**
 * OCI chain ids of a layer stack from its diff ids (`rootfs.diff_ids`): chain(0) = diff(0),
 * chain(n) = sha256(chain(n-1) + " " + diff(n)). containerd names committed layer snapshots so.
 */
export function chainIds(diffIds: readonly string[]): Digest[] {
  const out: Digest[] = [];
  for (const diff of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? (diff as Digest) : `sha256:${createHash('sha256').update(`${prev} ${diff}`).digest('hex')}`);
  }
  return out;
}
