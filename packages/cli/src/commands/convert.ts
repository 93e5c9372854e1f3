import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError, NotFoundError, createConsoleLogger, fileSystemError } from '@nydus-ts/core';
import { CONVERT_IMAGE_DEFAULTS, convertImage, resolveConvertImageOptions } from '@nydus-ts/converter';
import type { ConvertImageOptions, ConvertImageResult, ConvertProgressEvent } from '@nydus-ts/converter';
import { CHUNK_COMPRESSORS, CHUNK_DIGESTERS } from '@nydus-ts/format';
import type { CliIo } from '../io.js';
import { registryEndpointFromFlags } from '../registry-endpoint.js';
import { parseImageLocation } from '@nydus-ts/registry';
import { addRegistrySideOptions, addTimeoutOptions, checkOutputJson, parseTimeoutFlags, writeJsonFile } from '../shared-options.js';
import type { TimeoutFlags } from '../shared-options.js';
import { writeLine } from '../io.js';
import { parseByteSize, parseChoice, parsePositiveInt } from '../parse.js';
import type { CommandRegistrar } from '../program.js';
import { baselineWasmOnly } from '../v8-flags.js';

/** The raw flags of `nydusify-ts convert`, as commander hands them over. */
export interface ConvertFlags extends TimeoutFlags {
  source?: string;
  target?: string;
  platform?: string;
  allPlatforms?: boolean;
  compressor?: string;
  chunkSize?: string;
  digester?: string;
  mergePlatform?: boolean;
  mergeManifest?: boolean;
  keepSourceManifests?: boolean;
  oci?: boolean;
  prefetchPatterns?: string;
  chunkDict?: string;
  ociRef?: boolean;
  sourceInsecure?: boolean;
  targetInsecure?: boolean;
  sourceCreds?: string;
  targetCreds?: string;
  concurrency?: string;
  /** --workers / --no-workers: layers in worker threads or on the main thread (default: by cores). */
  workers?: boolean;
  outputJson?: string;
}

/** Prefetch patterns file: one absolute path per line; blank lines and `#` comments skipped. */
export function parsePrefetchPatterns(text: string, file: string): string[] {
  const out: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!line.startsWith('/')) throw new InvalidArgumentError(`--prefetch-patterns ${file}:${i + 1}: "${line}" is not an absolute path`);
    out.push(line);
  }
  return out;
}

/** Validates flags into the library's options (everything but progress and logger); registry endpoints and the workers default also from `env`. */
export async function parseConvertFlags(flags: ConvertFlags, cwd: string, env: NodeJS.ProcessEnv = {}): Promise<ConvertImageOptions> {
  if (!flags.source) throw new InvalidArgumentError('--source is required');
  if (!flags.target) throw new InvalidArgumentError('--target is required');
  if (flags.platform !== undefined && flags.allPlatforms) throw new InvalidArgumentError('--platform and --all-platforms cannot be used together');
  const options: ConvertImageOptions = {
    source: flags.source,
    target: flags.target,
    // Only what the flags give: the library's resolveConvertImageOptions holds every default.
    ...(flags.compressor !== undefined && { compressor: parseChoice(flags.compressor, '--compressor', CHUNK_COMPRESSORS) }),
    ...(flags.digester !== undefined && { digester: parseChoice(flags.digester, '--digester', CHUNK_DIGESTERS) }),
    ...(flags.chunkSize !== undefined && { chunkSize: parseByteSize(flags.chunkSize, '--chunk-size') }),
    ...(flags.concurrency !== undefined && { concurrency: parsePositiveInt(flags.concurrency, '--concurrency') }),
    allPlatforms: flags.allPlatforms ?? false,
    mergePlatform: flags.mergePlatform ?? false,
    mergeManifest: flags.mergeManifest ?? false,
    oci: flags.oci ?? false,
    ociRef: flags.ociRef ?? false,
  };
  // Registry endpoints: a source reference that is not a registry one (oci:, archives, dir:) needs none.
  const registryOf = (spec: string): string | undefined => {
    if (/^(oci|oci-archive|docker-archive|dir):/.test(spec)) return undefined;
    const loc = parseImageLocation(spec);
    return loc.kind === 'registry' ? loc.reference.registry : undefined;
  };
  const sourceRegistry = registryOf(flags.source);
  options.sourceRegistry = registryEndpointFromFlags({ ...(sourceRegistry !== undefined && { registry: sourceRegistry }), insecure: flags.sourceInsecure ?? false, ...(flags.sourceCreds !== undefined && { creds: flags.sourceCreds }), credsFlag: '--source-creds' }, env);
  const targetRegistry = registryOf(flags.target);
  options.targetRegistry = registryEndpointFromFlags({ ...(targetRegistry !== undefined && { registry: targetRegistry }), insecure: flags.targetInsecure ?? false, ...(flags.targetCreds !== undefined && { creds: flags.targetCreds }), credsFlag: '--target-creds' }, env);
  if (flags.keepSourceManifests) {
    if (!flags.mergePlatform && !flags.mergeManifest) throw new InvalidArgumentError('--keep-source-manifests applies to --merge-platform and --merge-manifest (the form of the merged index)');
    options.keepSourceManifests = true;
  }
  const timeouts = parseTimeoutFlags(flags);
  if (timeouts) options.timeouts = timeouts;
  const envWorkers = env.NYDUS_TS_CONVERT_WORKERS;
  const workers = flags.workers ?? (envWorkers === '1' ? true : envWorkers === '0' ? false : undefined);
  if (workers !== undefined) options.workers = workers;
  if (flags.platform !== undefined) options.platform = flags.platform;
  if (flags.chunkDict !== undefined) options.chunkDict = flags.chunkDict;
  if (flags.prefetchPatterns !== undefined) {
    const file = path.resolve(cwd, flags.prefetchPatterns);
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw fileSystemError(err, flags.prefetchPatterns, '--prefetch-patterns');
      throw new NotFoundError(`--prefetch-patterns ${flags.prefetchPatterns}: no such file`, { cause: err });
    });
    options.prefetchPatterns = parsePrefetchPatterns(text, flags.prefetchPatterns);
  }
  // Everything checkable without the network fails here, before any request.
  resolveConvertImageOptions(options);
  return options;
}

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

export function formatConvertSummary(r: ConvertImageResult): string {
  const layers = r.manifests.reduce((a, m) => a + m.layers.length, 0);
  const platforms = r.manifests.map((m) => m.platform).filter(Boolean);
  const secs = r.durationMs / 1000;
  const dedup = r.dedup.dictBytes > 0 ? `, ${mb(r.dedup.dictBytes)} deduplicated by the chunk dict` : '';
  const native = r.manifests.flatMap((m) => m.layers).filter((l) => l.ref?.kind === 'native').length;
  const ref = r.ociRef
    ? `, oci-ref artifact ${mb(r.ociRef.artifactBytes)} = ${((100 * r.ociRef.artifactBytes) / Math.max(r.ociRef.sourceBytes, 1)).toFixed(1)}% of the ${mb(r.ociRef.sourceBytes)} source layers${native ? ` (${native} zstd layer(s) converted to native Nydus blobs)` : ''}`
    : '';
  return `converted ${r.source} -> ${r.target} ${r.targetDigest}${platforms.length ? ` [${platforms.join(', ')}]` : ''}: ${r.manifests.length} manifest(s), ${layers} layer(s), ${mb(r.bytesIn)} in, ${mb(r.bytesOut)} out${dedup}${ref}, in ${secs.toFixed(2)} s (${(r.bytesIn / 1e6 / Math.max(secs, 1e-3)).toFixed(1)} MB/s)`;
}

function progressPrinter(io: CliIo): (e: ConvertProgressEvent) => void {
  return (e) => {
    if (e.type === 'layer-done') {
      writeLine(io.stderr, `${e.platform ? `${e.platform} ` : ''}layer ${e.index} ${e.digest.slice(7, 19)}: ${mb(e.bytesIn)} in -> ${e.blob ? `${e.blob.slice(7, 19)} ${mb(e.bytesOut)}` : 'no data'} in ${(e.durationMs / 1000).toFixed(2)} s`);
    } else if (e.type === 'pushed') {
      writeLine(io.stderr, `pushed ${e.reference} ${e.digest}`);
    }
  };
}


export const registerConvertCommand: CommandRegistrar = (program: Command, io: CliIo) => {
  addTimeoutOptions(addRegistrySideOptions(program.command('convert')))
    .description('Convert an OCI/Docker image to a Nydus image and push it, streaming every layer (nothing staged on disk)')
    .requiredOption('--source <ref>', 'source: host[:port]/repo[:tag][@digest], oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:TAG] or dir:PATH')
    .requiredOption('--target <ref>', 'target image: host[:port]/repo[:tag]')
    .option('--platform <os/arch[/variant]>', 'platform to convert from a multi-platform source (default: this machine)')
    .option('--all-platforms', 'convert every platform of an index and push an index')
    .option('--compressor <name>', `chunk compressor: none, lz4_block or zstd (default ${CONVERT_IMAGE_DEFAULTS.compressor})`)
    .option('--chunk-size <size>', `chunk size, a power of two from 0x1000 to 0x1000000 (default 0x${CONVERT_IMAGE_DEFAULTS.chunkSize.toString(16)})`)
    .option('--digester <name>', `chunk digest: blake3 or sha256 (default ${CONVERT_IMAGE_DEFAULTS.digester}; ${CONVERT_IMAGE_DEFAULTS.ociRefDigester} with --oci-ref)`)
    .option('--merge-platform', 'push an index of the source manifests (an empty layer prepended) plus the Nydus ones, as the reference tools write it')
    .option('--merge-manifest', 'add the Nydus manifest(s) to what the target tag already holds instead of replacing it')
    .option('--keep-source-manifests', 'with --merge-platform/--merge-manifest: the older index form, source manifests byte-identical (see docs/convert.md for the risk)')
    .option('--oci', 'use OCI media types (default: as the source)')
    .option('--prefetch-patterns <file>', 'file with absolute paths (one per line) for the prefetch table')
    .option('--chunk-dict <ref>', 'Nydus image (REF or bootstrap:registry:REF) whose chunks are reused instead of stored again')
    .option('--oci-ref', 'targz-ref ("zran") image: keep the original gzip/tar layers as data blobs, push only per-layer meta blobs and the bootstrap (zstd layers become native Nydus blobs)')
    .option('--concurrency <n>', `layers converted at once (default ${CONVERT_IMAGE_DEFAULTS.concurrency})`)
    .option('--workers', 'convert each layer in a worker thread (default: when there are more than 2 cores and layers; NYDUS_TS_CONVERT_WORKERS=1)')
    .option('--no-workers', 'convert every layer on the main thread (NYDUS_TS_CONVERT_WORKERS=0)')
    .option('-J, --output-json <file>', 'write a JSON report here')
    .action(async (flags: ConvertFlags) => {
      baselineWasmOnly();
      const options = await parseConvertFlags(flags, io.cwd, io.env);
      const resolved = resolveConvertImageOptions(options);
      await checkOutputJson(flags.outputJson && path.resolve(io.cwd, flags.outputJson));
      const result = await convertImage({
        ...options,
        ...(io.signal && { signal: io.signal }),
        logger: createConsoleLogger({ level: 'warn', write: (line) => writeLine(io.stderr, line) }),
        onProgress: progressPrinter(io),
      });
      writeLine(io.stdout, formatConvertSummary(result));
      if (flags.outputJson) {
        const secs = result.durationMs / 1000;
        await writeJsonFile(path.resolve(io.cwd, flags.outputJson), {
          ...result,
          options: { compressor: resolved.compressor, chunkSize: resolved.chunkSize, digester: resolved.digester, concurrency: resolved.concurrency, oci: resolved.oci, ociRef: resolved.ociRef, mergePlatform: resolved.mergePlatform, mergeManifest: resolved.mergeManifest, keepSourceManifests: resolved.keepSourceManifests },
          throughputMBps: result.bytesIn / 1e6 / Math.max(secs, 1e-3),
          maxRssBytes: process.resourceUsage().maxRSS * 1024,
        });
      }
    });
};
