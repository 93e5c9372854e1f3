// The behaviour every BlobBackend shares, as a vitest suite: run it against each implementation
// (local files, registry, the daemon's backends). A backend moves bytes only; verifying chunk
// content is its caller's job, so the suite checks exactly the bytes and the failures.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isNydusError } from '@nydus-ts/core';
import type { BlobBackend } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';

/** What a factory hands the suite: a backend serving `blobs` (blob id → the blob's bytes). */
export interface BlobBackendFixture {
  backend: BlobBackend;
  /** At least one blob of 64 KiB or more, as the backend serves it. */
  blobs: ReadonlyMap<string, Uint8Array>;
  /** A well-formed blob id the backend does not have. */
  missingBlobId: string;
  /** Releases what the fixture holds (the backend's connections or files). */
  close?(): Promise<void>;
}

/** The same random blobs in a blob directory and in a loopback registry, for the suite's factories. */
export interface BlobBackendData {
  blobs: ReadonlyMap<string, Uint8Array>;
  missingBlobId: string;
  /** A directory holding each blob under its id. */
  dir: string;
  /** A docker-registry holding each blob in `repository`. */
  registry: TestRegistry;
  repository: string;
  close(): Promise<void>;
}

/** Makes two random blobs (300,000 and 65,537 bytes) and stores them in a directory and a registry. */
export async function prepareBlobBackendData(): Promise<BlobBackendData> {
  const blobs = new Map<string, Uint8Array>();
  for (const size of [300_000, 65_537]) {
    const bytes = randomBytes(size);
    blobs.set(createHash('sha256').update(bytes).digest('hex'), bytes);
  }
  const repository = 'suite/blobs';
  const dir = await mkdtemp(join(tmpdir(), 'nydus-backend-suite-'));
  let registry: TestRegistry | undefined;
  const close = async (): Promise<void> => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const [id, bytes] of blobs) await writeFile(join(dir, id), bytes);
    registry = await startRegistry();
    const client = new RegistryClient({ registry: registry.host, insecure: true });
    try {
      for (const [id, bytes] of blobs) await client.pushBlob(repository, { digest: `sha256:${id}`, size: bytes.length }, Buffer.from(bytes));
    } finally {
      await client.close();
    }
    return { blobs, missingBlobId: 'f'.repeat(64), dir, registry, repository, close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (err: unknown) => err ?? new Error('rejected without a reason'),
  );
}

/**
 * Must: a read returns exactly the bytes of the range (whole blob, its first and last byte,
 * ranges across the middle, many at once); the caller owns what it gets (changing it changes no
 * later read); a range that ends past the blob and a blob the backend does not have fail with a
 * NydusError, never with short or padded data. Need not: know blob sizes in advance, verify
 * content, or serve ranges larger than a chunk or two at once (the suite reads at most 1 MiB).
 */
export function blobBackendSuite(name: string, factory: () => Promise<BlobBackendFixture>): void {
  describe(`BlobBackend conformance: ${name}`, () => {
    const withFixture = (test: (f: BlobBackendFixture) => Promise<void>) => async () => {
      const f = await factory();
      try {
        expect(f.blobs.size).toBeGreaterThan(0);
        await test(f);
      } finally {
        await f.close?.();
      }
    };

    it('reads every range exactly: whole blob, first and last byte, across the middle', withFixture(async ({ backend, blobs }) => {
      for (const [id, bytes] of blobs) {
        const whole = Math.min(bytes.length, 1 << 20);
        expect(Buffer.from(await backend.readRange(id, 0, whole)).equals(Buffer.from(bytes.subarray(0, whole)))).toBe(true);
        expect(Buffer.from(await backend.readRange(id, 0, 1))).toEqual(Buffer.from(bytes.subarray(0, 1)));
        expect(Buffer.from(await backend.readRange(id, bytes.length - 1, 1))).toEqual(Buffer.from(bytes.subarray(bytes.length - 1)));
        const mid = Math.floor(bytes.length / 2) - 1000;
        expect(Buffer.from(await backend.readRange(id, mid, 5000)).equals(Buffer.from(bytes.subarray(mid, mid + 5000)))).toBe(true);
        const tail = Math.max(0, bytes.length - 70_000);
        expect(Buffer.from(await backend.readRange(id, tail, bytes.length - tail)).equals(Buffer.from(bytes.subarray(tail)))).toBe(true);
      }
    }));

    it('serves many reads at once, each its own bytes', withFixture(async ({ backend, blobs }) => {
      const reads: Array<Promise<void>> = [];
      for (const [id, bytes] of blobs) {
        for (let i = 0; i < 16; i++) {
          const offset = Math.floor(((bytes.length - 4096) * i) / 16);
          const length = 1 + ((i * 977) % 4096);
          reads.push(backend.readRange(id, offset, length).then((got) => {
            expect(Buffer.from(got).equals(Buffer.from(bytes.subarray(offset, offset + length)))).toBe(true);
          }));
        }
      }
      await Promise.all(reads);
    }));

    it('hands out bytes the caller owns: changing them changes no later read', withFixture(async ({ backend, blobs }) => {
      const [id, bytes] = [...blobs][0]!;
      const first = await backend.readRange(id, 100, 1000);
      first.fill(0xee);
      expect(Buffer.from(await backend.readRange(id, 100, 1000)).equals(Buffer.from(bytes.subarray(100, 1100)))).toBe(true);
      expect(Buffer.from(await backend.readRange(id, 600, 100)).equals(Buffer.from(bytes.subarray(600, 700)))).toBe(true);
    }));

    it('fails with a NydusError for a range past the end and for a missing blob', withFixture(async ({ backend, blobs, missingBlobId }) => {
      const [id, bytes] = [...blobs][0]!;
      const past = await failure(backend.readRange(id, bytes.length - 10, 20));
      expect(isNydusError(past), `range past the end: ${String(past)}`).toBe(true);
      const missing = await failure(backend.readRange(missingBlobId, 0, 10));
      expect(isNydusError(missing), `missing blob: ${String(missing)}`).toBe(true);
    }));
  });
}
