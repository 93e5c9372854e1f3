import { InvalidArgumentError } from '@nydus-ts/core';
import { parseReference } from './reference.js';
import type { ImageReference } from './reference.js';

/** Where an image is: a registry reference or an OCI layout directory. */
export type ImageLocation =
  | { kind: 'registry'; reference: ImageReference }
  | { kind: 'oci-layout'; path: string; tag?: string };

/**
 * `oci:PATH[:TAG]` (skopeo syntax: the path ends at the first colon) or a registry reference
 * (an optional `docker://` prefix is accepted).
 */
export function parseImageLocation(value: string): ImageLocation {
  if (value.startsWith('oci:')) {
    const rest = value.slice(4);
    const colon = rest.indexOf(':');
    const path = colon >= 0 ? rest.slice(0, colon) : rest;
    const tag = colon >= 0 ? rest.slice(colon + 1) : undefined;
    if (!path) throw new InvalidArgumentError(`invalid image location "${value}": oci: needs a directory path`);
    if (tag !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) {
      throw new InvalidArgumentError(`invalid image location "${value}": "${tag}" is not a valid tag`);
    }
    return tag === undefined ? { kind: 'oci-layout', path } : { kind: 'oci-layout', path, tag };
  }
  const ref = value.startsWith('docker://') ? value.slice('docker://'.length) : value;
  return { kind: 'registry', reference: parseReference(ref) };
}
