import { writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import type { ImageManifest } from '@nydus-ts/core';
import type { RegistryClient } from '@nydus-ts/registry';

/**
 * Reads a Nydus image's manifest and writes its bootstrap (`image/image.boot` of the last layer,
 * a gzip'd tar) to `file`; returns the manifest and the data blob ids (the other layers).
 */
export async function fetchNydusBootstrap(client: RegistryClient, repo: string, tag: string, file: string): Promise<{ manifest: ImageManifest; blobIds: string[] }> {
  const m = await client.getManifest(repo, tag);
  const manifest = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
  const layer = manifest.layers[manifest.layers.length - 1]!;
  const parts: Buffer[] = [];
  for await (const c of client.fetchBlob(repo, layer)) parts.push(c as Buffer);
  const boot = tarMember(gunzipSync(Buffer.concat(parts)), 'image/image.boot');
  if (!boot) throw new Error(`${repo}:${tag}: the bootstrap layer has no image/image.boot`);
  await writeFile(file, boot);
  return { manifest, blobIds: manifest.layers.slice(0, -1).map((l) => l.digest.slice(7)) };
}

/** A member of an uncompressed tar (ustar names and GNU long names are enough here). */
function tarMember(tar: Buffer, name: string): Buffer | undefined {
  let off = 0;
  let longName: string | undefined;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) return undefined;
    const field = (at: number, len: number): string => header.toString('utf8', at, at + len).replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156]!);
    const prefix = field(345, 155);
    const memberName = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    const body = tar.subarray(off + 512, off + 512 + size);
    if (type === 'L') longName = body.toString('utf8').replace(/\0.*$/s, '');
    else if ((type === '0' || type === '\0') && memberName.replace(/^\.\//, '') === name) return Buffer.from(body);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return undefined;
}
