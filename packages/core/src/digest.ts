import { InvalidArgumentError } from './errors.js';

/** An OCI content digest, `algorithm:hex`. */
export type Digest = `${string}:${string}`;

const digestPattern = /^(sha256|sha512):([0-9a-f]+)$/;
const hexLength: Record<string, number> = { sha256: 64, sha512: 128 };

export function parseDigest(value: string): { algorithm: 'sha256' | 'sha512'; hex: string } {
  const m = digestPattern.exec(value);
  if (!m || m[2]!.length !== hexLength[m[1]!]) {
    throw new InvalidArgumentError(`invalid digest "${value}": expected sha256:<64 hex> or sha512:<128 hex>`);
  }
  return { algorithm: m[1] as 'sha256' | 'sha512', hex: m[2]! };
}

export function isDigest(value: string): value is Digest {
  const m = digestPattern.exec(value);
  return m !== null && m[2]!.length === hexLength[m[1]!];
}

export function sha256Digest(hex: string): Digest {
  return `sha256:${hex}`;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
