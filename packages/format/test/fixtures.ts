import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BlobFeatures } from '../src/index.js';
import { ZERO_DIGEST_HEX, type BlobEntry } from '../src/internal.js';

/** The reference tools' fixtures, copied into testdata/ with their README and SHA256SUMS. */
export const fixturesDir = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));

export const ZRAN_ID = '233c72f2b6b698c07021c4da367cfe2dff4f049efbaa885ca0ff760ea297865a';
export const zranMeta = readFileSync(fixturesDir + ZRAN_ID + '.blob.meta');

/** The blob table values the fixtures README lists for the zran blob. */
export const zranEntry: BlobEntry = {
  blobId: ZRAN_ID,
  blobIndex: 0,
  chunkSize: 0x100000,
  chunkCount: 0xa3,
  compressionAlgo: 2,
  digestAlgo: 1,
  features: BlobFeatures.ALIGNED | BlobFeatures.INLINED_FS_META | BlobFeatures.CHUNK_INFO_V2 | BlobFeatures.ZRAN,
  compressedSize: 9_839_040,
  uncompressedSize: 0x16c6000,
  tocSize: 0,
  ciCompressor: 0,
  ciOffset: 0,
  ciCompressedSize: 0xa1290,
  ciUncompressedSize: 0xa1290,
  tocDigest: ZERO_DIGEST_HEX,
  metaDigest: ZERO_DIGEST_HEX,
  metaSize: 0,
  cipherIv: new Uint8Array(8),
  cipherAlgo: 0,
};
