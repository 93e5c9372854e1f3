import type { Command} from 'commander';
import { Option } from 'commander';
import { InvalidArgumentError, NotFoundError, fileSystemError } from '@nydus-ts/core';
import {
  CREATE_IMAGE_DEFAULTS,
  SOURCE_TYPES,
  checkImage,
  createImage,
  inspectImage,
  mergeImage,
  unpackImage,
  type ImageInspection,
  type SourceType,
} from '@nydus-ts/image';
import { CHUNK_COMPRESSORS, CHUNK_DIGESTERS, printableFsName, type ChunkCompressor, type ChunkDigester } from '@nydus-ts/format';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import type { CliIo } from '../io.js';
import { checkOutputJson, writeJsonFile } from '../shared-options.js';
import { writeLine } from '../io.js';
import { parseByteSize, parseChoice } from '../parse.js';
import type { CommandRegistrar } from '../program.js';

/** `--chunk-dict bootstrap=PATH` (the nydus-image form) or a plain path. */
function chunkDictPath(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.startsWith('bootstrap=')) return value.slice('bootstrap='.length);
  if (/^[a-z]+=/.test(value)) throw new InvalidArgumentError(`--chunk-dict: unsupported source "${value}" (use bootstrap=PATH or PATH)`);
  return value;
}

/** Reads prefetch patterns: one absolute path per line, `#` comments and blank lines ignored. */
async function readPatterns(file: string | undefined): Promise<string[] | undefined> {
  if (file === undefined) return undefined;
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw fileSystemError(err, file, '--prefetch-patterns');
    throw new NotFoundError(`--prefetch-patterns ${file}: no such file`);
  });
  const patterns = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const p of patterns) if (!p.startsWith('/')) throw new InvalidArgumentError(`--prefetch-patterns: "${p}" is not an absolute path`);
  return patterns;
}

async function emitJson(file: string | undefined, value: unknown): Promise<void> {
  if (file) await writeJsonFile(file, value);
}

const mib = (n: number): string => (n / 2 ** 20).toFixed(1) + ' MiB';

const CONTROL_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

/**
 * A name as the tree prints it: control characters (C0, DEL, C1) and backslashes escaped, so a
 * file name cannot move the cursor, recolour the terminal or fake extra lines of the listing;
 * bytes that are not UTF-8 (names are bytes, see decodeFsName) as `\xNN` too.
 */
export function escapeForDisplay(name: string): string {
  return printableFsName(name.replace(/[\x00-\x1f\x7f-\x9f\\]/g, (c) => CONTROL_ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

export function formatInspection(r: ImageInspection): string {
  const lines: string[] = [];
  const sb = r.superblock;
  lines.push('Superblock:');
  lines.push(`  block size ${sb.blockSize}, root nid ${sb.rootNid}, inodes ${sb.inodeCount}, blocks ${sb.blocks}, meta blkaddr ${sb.metaBlkaddr}`);
  lines.push(`  flags ${sb.flags}, chunk size 0x${sb.chunkSize.toString(16)}, compressor ${sb.compressor}, digester ${sb.digester}`);
  lines.push(`  devices ${sb.extraDevices}, chunk table ${sb.chunkTableEntries} entries, prefetch nids [${sb.prefetchNids.join(', ')}]`);
  lines.push(`Blobs (${r.blobs.length}):`);
  for (const b of r.blobs) {
    lines.push(`  [${b.index}] ${b.id}`);
    lines.push(`      chunks ${b.chunkCount}, compressed ${b.compressedSize}, uncompressed ${b.uncompressedSize}, ${b.compressor}/${b.digester}, features ${b.features}`);
    lines.push(`      ci offset ${b.ciOffset} (${b.ciCompressedSize}/${b.ciUncompressedSize} bytes), toc ${b.tocSize ? `${b.tocSize} bytes sha256:${b.tocDigest}` : 'unknown'}, mapped blkaddr ${b.mappedBlkaddr}`);
  }
  const s = r.stats;
  lines.push('Stats:');
  lines.push(`  ${s.files} files (${mib(s.fileBytes)}), ${s.directories} directories, ${s.symlinks} symlinks, ${s.others} others, ${s.hardlinkNames} extra hardlink names, ${s.chunkRefs} chunk references`);
  if (r.tree) {
    lines.push('Tree:');
    for (const n of r.tree) {
      const extra = n.linkTarget !== undefined ? ` -> ${escapeForDisplay(n.linkTarget)}` : n.rdev ? ` dev ${n.rdev}` : n.chunks !== undefined ? ` chunks ${n.chunks}` : '';
      const xattrs = n.xattrs ? ` xattrs ${Object.keys(n.xattrs).map(escapeForDisplay).join(',')}` : '';
      lines.push(`  ${n.type.padEnd(12)} ${n.mode} ${n.uid}:${n.gid} ${String(n.size).padStart(10)} nid ${n.nid} ${escapeForDisplay(n.path)}${extra}${xattrs}`);
    }
  }
  return lines.join('\n');
}

/**
 * A build keeps one small object set per entry alive (~70 MB for 200,000 entries) while
 * gigabytes of file data pass through short-lived Buffers. On one core V8 sometimes settles
 * on a heap growing factor near 1.35 for that heap and then runs a full mark-compact every
 * ~25 MB of allocation: ~70 of them (~85 ms each) over a 2 GiB layer, doubling the build time
 * (7-8 s vs 15-17 s, about half the runs). A fixed factor of 2 gives 12-15 of them in every
 * run at the same peak RSS. The flag is read at each limit computation, so setting it here
 * (after start-up) takes effect.
 */
function roomierOldGeneration(): void {
  try {
    setFlagsFromString('--heap-growing-percent=100');
  } catch {
    // Not fatal: only GC scheduling.
  }
}

export const registerImageCommands: CommandRegistrar = (program: Command, io: CliIo) => {
  const image = program.command('image').description('Build and examine RAFS v6 bootstraps and blobs locally (like nydus-image)');

  image
    .command('create')
    .description('Build a layer bootstrap and data blob from a directory or tar')
    .argument('<source>', 'directory (dir-rafs) or tar file (tar-rafs, targz-rafs)')
    .addOption(new Option('-t, --type <type>', `source type (default ${CREATE_IMAGE_DEFAULTS.type})`).choices([...SOURCE_TYPES]))
    .requiredOption('-B, --bootstrap <file>', 'bootstrap file to write')
    .requiredOption('-D, --blob-dir <dir>', 'directory for the data blob (named by its sha256)')
    .option('--compressor <name>', `chunk compressor: ${CHUNK_COMPRESSORS.join(', ')} (default ${CREATE_IMAGE_DEFAULTS.compressor})`)
    .option('--chunk-size <size>', `chunk size, power of two from 0x1000 to 0x1000000 (default 0x${CREATE_IMAGE_DEFAULTS.chunkSize.toString(16)})`)
    .option('--digester <name>', `chunk digester: ${CHUNK_DIGESTERS.join(', ')} (default ${CREATE_IMAGE_DEFAULTS.digester})`)
    .option('--chunk-dict <bootstrap>', 'dedup against the chunks of this bootstrap (bootstrap=PATH or PATH)')
    .option('--prefetch-patterns <file>', 'file of absolute paths to list in the prefetch table')
    .option('-J, --output-json <file>', 'write a JSON summary here')
    .action(async (source: string, o: Record<string, string | undefined>) => {
      roomierOldGeneration();
      await checkOutputJson(o.outputJson, [path.dirname(path.resolve(o.bootstrap!)), o.blobDir!]);
      const patterns = await readPatterns(o.prefetchPatterns);
      const dict = chunkDictPath(o.chunkDict);
      const result = await createImage({
        ...(io.signal && { signal: io.signal }),
        ...(o.type !== undefined && { type: o.type as SourceType }),
        source,
        bootstrap: o.bootstrap!,
        blobDir: o.blobDir!,
        // Only what the flags give: the library's resolveCreateImageOptions holds the defaults.
        ...(o.compressor !== undefined && { compressor: parseChoice(o.compressor, '--compressor', CHUNK_COMPRESSORS) as ChunkCompressor }),
        ...(o.digester !== undefined && { digester: parseChoice(o.digester, '--digester', CHUNK_DIGESTERS) as ChunkDigester }),
        ...(o.chunkSize !== undefined && { chunkSize: parseByteSize(o.chunkSize, '--chunk-size') }),
        ...(dict && { chunkDict: dict }),
        ...(patterns && { prefetchPatterns: patterns }),
      });
      const s = result.stats;
      writeLine(io.stdout, `bootstrap: ${result.bootstrap}`);
      writeLine(io.stdout, result.blob ? `blob: ${result.blob.id} (${result.blob.size} bytes, ${result.blob.chunkCount} chunks)` : 'blob: none (no file data)');
      writeLine(
        io.stdout,
        `${s.entries} entries, ${s.files} files, ${mib(s.bytesIn)} in, ${s.chunks} chunks, ${s.dedupChunks} deduplicated (${mib(s.dedupBytes)}), ${(result.durationMs / 1000).toFixed(2)} s`,
      );
      await emitJson(o.outputJson, result);
    });

  image
    .command('merge')
    .description('Merge layer bootstraps (lowest first) into one, applying OCI whiteouts')
    .argument('<sources...>', 'layer bootstraps, lowest layer first')
    .requiredOption('-B, --bootstrap <file>', 'merged bootstrap to write')
    .option('--blob-ids <ids>', 'comma-separated replacement id of each source\'s own blob')
    .option('--chunk-dict <bootstrap>', 'chunk dictionary bootstrap (bootstrap=PATH or PATH)')
    .option('--prefetch-patterns <file>', 'file of absolute paths to list in the prefetch table')
    .option('-J, --output-json <file>', 'write a JSON summary here')
    .action(async (sources: string[], o: Record<string, string | undefined>) => {
      await checkOutputJson(o.outputJson, [path.dirname(path.resolve(o.bootstrap!))]);
      const patterns = await readPatterns(o.prefetchPatterns);
      const dict = chunkDictPath(o.chunkDict);
      const result = await mergeImage({
        ...(io.signal && { signal: io.signal }),
        sources,
        bootstrap: o.bootstrap!,
        ...(o.blobIds !== undefined && { blobIds: o.blobIds.split(',').map((s) => s.trim()) }),
        ...(patterns && { prefetchPatterns: patterns }),
        ...(dict && { chunkDict: dict }),
      });
      writeLine(io.stdout, `bootstrap: ${result.bootstrap}`);
      writeLine(io.stdout, `blobs: ${result.blobIds.join(', ') || 'none'}`);
      await emitJson(o.outputJson, result);
    });

  image
    .command('inspect')
    .description('Show the superblock, blob table, stats and tree of a bootstrap')
    .argument('<bootstrap>', 'bootstrap file')
    .option('--json', 'print JSON')
    .option('--no-tree', 'leave out the tree')
    .action(async (bootstrap: string, o: { json?: boolean; tree: boolean }) => {
      const r = await inspectImage(bootstrap, { tree: o.tree });
      writeLine(io.stdout, o.json ? JSON.stringify(r, null, 2) : formatInspection(r));
    });

  image
    .command('check')
    .description('Validate a bootstrap, and with --blob-dir every blob whole: its sha256, ToC sections and every chunk digest')
    .argument('<bootstrap>', 'bootstrap file')
    .option('-D, --blob-dir <dir>', 'directory holding the blobs, named by id')
    .option('-J, --output-json <file>', 'write a JSON summary here')
    .action(async (bootstrap: string, o: { blobDir?: string; outputJson?: string }) => {
      await checkOutputJson(o.outputJson);
      const r = await checkImage({ bootstrap, ...(o.blobDir && { blobDir: o.blobDir }), ...(io.signal && { signal: io.signal }) });
      writeLine(io.stdout, `bootstrap ${bootstrap}: valid RAFS v6, ${r.inodes} inodes, ${r.compressor}/${r.digester}, ${r.blobs.length} blob(s)`);
      if (o.blobDir) {
        for (const b of r.blobs) {
          const id = b.idIsSha256 ? 'sha256 of the file is its id' : `sha256 of the file is ${b.sha256}, not its id (named so by another tool?)`;
          const toc = b.tocSections && b.tocSections.length > 0 ? `, ToC sections ${b.tocSections.join(', ')} verified` : ', no ToC';
          const chunks = b.chunksVerified !== undefined ? `, ${b.chunksVerified} chunks against its digest array` : '';
          writeLine(io.stdout, `blob ${b.id}: ${id}${toc}${chunks}`);
        }
        writeLine(io.stdout, `verified ${r.chunksVerified} chunks (${mib(r.bytesVerified)}) in ${r.blobs.length} blob(s)`);
      }
      await emitJson(o.outputJson, r);
    });

  image
    .command('unpack')
    .description('Write the tree of an image as a tar file')
    .argument('[bootstrap]', 'bootstrap file (or use --bootstrap)')
    .option('-B, --bootstrap <file>', 'bootstrap file')
    .requiredOption('-D, --blob-dir <dir>', 'directory holding the blobs, named by id')
    .requiredOption('-o, --output <tar>', 'tar file to write')
    .action(async (positional: string | undefined, o: { bootstrap?: string; blobDir: string; output: string }) => {
      const bootstrap = o.bootstrap ?? positional;
      if (!bootstrap) throw new InvalidArgumentError('image unpack needs a bootstrap (--bootstrap FILE)');
      const r = await unpackImage({ bootstrap, blobDir: o.blobDir, output: o.output, ...(io.signal && { signal: io.signal }) });
      writeLine(io.stdout, `wrote ${r.output} (${r.bytes} bytes)`);
    });
};
