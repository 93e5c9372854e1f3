import { setFlagsFromString } from 'node:v8';
import { baselineWasmOnly } from '../v8-flags.js';
import { runInNewContext } from 'node:vm';
import type { Command } from 'commander';
import { InvalidArgumentError, createConsoleLogger, noopLogger } from '@nydus-ts/core';
import { COPY_IMAGE_DEFAULTS, checkPushChunkSize, copyImage, parseImageLocation, parsePlatform } from '@nydus-ts/registry';
import type { CopyImageOptions, CopyImageResult, CopyProgressEvent, CopySideOptions } from '@nydus-ts/registry';
import type { CliIo } from '../io.js';
import { registryEndpointFromFlags } from '../registry-endpoint.js';
import { addRegistrySideOptions, addTimeoutOptions, checkOutputJson, parseTimeoutFlags, writeJsonFile } from '../shared-options.js';
import type { TimeoutFlags } from '../shared-options.js';
import { writeLine } from '../io.js';
import { parseByteSize, parsePositiveInt } from '../parse.js';
import type { CommandRegistrar } from '../program-core.js';

/** The raw flags of `nydusify-ts copy`, as commander hands them over. */
export interface CopyFlags extends TimeoutFlags {
  source?: string;
  target?: string;
  platform?: string;
  allPlatforms?: boolean;
  sourceInsecure?: boolean;
  targetInsecure?: boolean;
  sourceCreds?: string;
  targetCreds?: string;
  sourceMirror?: string[];
  pushChunkSize?: string;
  concurrency?: string;
  outputJson?: string;
}

/** Validates flags into the library's options (everything but progress and logger); registry endpoints also from `env`. */
export function parseCopyFlags(flags: CopyFlags, env: NodeJS.ProcessEnv = {}): CopyImageOptions {
  if (!flags.source) throw new InvalidArgumentError('--source is required');
  if (!flags.target) throw new InvalidArgumentError('--target is required');
  if (flags.platform !== undefined && flags.allPlatforms) {
    throw new InvalidArgumentError('--platform and --all-platforms cannot be used together');
  }
  // Parse both locations now so a typo fails before any network traffic.
  const src = parseImageLocation(flags.source);
  const dst = parseImageLocation(flags.target);
  const side = (insecure: boolean | undefined, creds: string | undefined, flag: string, mirrors: string[] | undefined, loc: typeof src): CopySideOptions => {
    if (loc.kind !== 'registry') {
      if (insecure || creds || mirrors?.length) throw new InvalidArgumentError(`--${flag}-insecure/--${flag}-creds/--${flag}-mirror apply to registries, not oci: layouts`);
      return {};
    }
    return registryEndpointFromFlags({ registry: loc.reference.registry, insecure, creds, credsFlag: `--${flag}-creds`, mirrors }, env);
  };
  const options: CopyImageOptions = {
    source: flags.source,
    target: flags.target,
    sourceRegistry: side(flags.sourceInsecure, flags.sourceCreds, 'source', flags.sourceMirror, src),
    targetRegistry: side(flags.targetInsecure, flags.targetCreds, 'target', undefined, dst),
    allPlatforms: flags.allPlatforms ?? false,
    ...(flags.pushChunkSize !== undefined && { pushChunkSize: checkPushChunkSize(parseByteSize(flags.pushChunkSize, '--push-chunk-size'), '--push-chunk-size') }),
    ...(flags.concurrency !== undefined && { concurrency: parsePositiveInt(flags.concurrency, '--concurrency') }),
  };
  const timeouts = parseTimeoutFlags(flags);
  if (timeouts) options.timeouts = timeouts;
  if (flags.platform !== undefined) options.platform = parsePlatform(flags.platform);
  return options;
}

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** Per-blob and total progress bars, redrawn in place on a TTY at most 10 times a second. */
class ProgressView {
  readonly #out: NodeJS.WritableStream;
  readonly #blobs = new Map<string, { size: number; bytes: number; state: string }>();
  #lines = 0;
  #last = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
  }

  onEvent = (e: CopyProgressEvent): void => {
    if (e.type === 'manifest') return;
    const b = this.#blobs.get(e.digest) ?? { size: 'size' in e ? e.size : 0, bytes: 0, state: 'checking' };
    this.#blobs.set(e.digest, b);
    if (e.type === 'blob-progress') {
      b.bytes = e.bytes;
      b.state = 'copying';
    } else if (e.type === 'blob-retry') {
      b.bytes = 0;
      b.state = `retry ${e.attempt}`;
    } else if (e.type === 'blob-done') {
      b.bytes = b.size;
      b.state = e.action;
    }
    const now = Date.now();
    if (now - this.#last >= 100) this.render();
    else this.#timer ??= setTimeout(() => this.render(), 100);
  };

  render(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#last = Date.now();
    const bar = (done: number, total: number): string => {
      const width = 24;
      const fill = total > 0 ? Math.min(width, Math.round((done / total) * width)) : width;
      return `[${'#'.repeat(fill)}${'-'.repeat(width - fill)}]`;
    };
    const lines: string[] = [];
    let total = 0;
    let done = 0;
    for (const [digest, b] of this.#blobs) {
      total += b.size;
      done += b.bytes;
      if (b.state === 'checking' || b.state === 'copying' || b.state.startsWith('retry')) {
        lines.push(`${digest.slice(7, 19)} ${bar(b.bytes, b.size)} ${mib(b.bytes).padStart(10)} / ${mib(b.size)} ${b.state}`);
      }
    }
    const finished = [...this.#blobs.values()].filter((b) => !(b.state === 'checking' || b.state === 'copying' || b.state.startsWith('retry'))).length;
    lines.push(`total        ${bar(done, total)} ${mib(done).padStart(10)} / ${mib(total)} (${finished}/${this.#blobs.size} blobs)`);
    const clear = this.#lines > 0 ? `\x1b[${this.#lines}A\x1b[J` : '';
    this.#out.write(clear + lines.join('\n') + '\n');
    this.#lines = lines.length;
  }

  finish(): void {
    if (this.#blobs.size > 0) this.render();
  }
}


export function formatCopySummary(r: CopyImageResult): string {
  const platforms = r.platforms.length ? ` [${r.platforms.join(', ')}]` : '';
  return `copied ${r.source} -> ${r.target} ${r.digest}${platforms}: ${r.manifests} manifest(s), ${r.blobs.total} blob(s): ${r.blobs.copied} copied (${mib(r.bytesSent)} sent), ${r.blobs.skipped} skipped, ${r.blobs.mounted} mounted, in ${(r.durationMs / 1000).toFixed(2)} s`;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/**
 * Keeps RSS flat while gigabytes stream through. Every socket read is a fresh 64 KiB Buffer and
 * V8 lets tens of MiB of dead ones pile up before it collects them; a young-generation GC after
 * every few MiB of blob data frees them early. Each one costs about 1-2 ms here (the young
 * generation is small, but the ArrayBuffers are swept with it), so the interval trades CPU for
 * memory: every 4 MiB cost ~0.15 s of CPU per 300 MiB (peak RSS ~70 MiB), every 16 MiB ~0.04 s
 * (~85 MiB); without any, ~100 MiB, bounded only by V8's heuristics.
 */
function youngGcEvery(bytes: number): ((event: CopyProgressEvent) => void) | undefined {
  let gc: ((options?: { type?: 'minor' | 'major' }) => void) | undefined;
  try {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as typeof gc;
  } catch {
    return undefined;
  }
  if (typeof gc !== 'function') return undefined;
  const seen = new Map<string, number>();
  let pending = 0;
  return (e) => {
    if (e.type === 'blob-progress') {
      pending += e.bytes - (seen.get(e.digest) ?? 0);
      seen.set(e.digest, e.bytes);
      if (pending >= bytes) {
        pending = 0;
        gc!({ type: 'minor' });
      }
    } else if (e.type === 'blob-done' || e.type === 'blob-retry') {
      seen.delete(e.digest);
    }
  };
}

/**
 * A targz-ref image's original layers are named by its bootstrap, not its manifest: they are
 * copied too. The converter (bootstrap reader) loads only for images with nydus-ref layers.
 */
const originalLayersOfRefImage: NonNullable<CopyImageOptions['extraBlobs']> = async (manifest, ctx) => {
  if (!(manifest.layers ?? []).some((l) => l.annotations?.['containerd.io/snapshot/nydus-ref'] !== undefined)) return [];
  const { referencedOriginalLayers } = await import('@nydus-ts/converter');
  return referencedOriginalLayers(manifest, ctx);
};

export const registerCopyCommand: CommandRegistrar = (program: Command, io: CliIo) => {
  addTimeoutOptions(addRegistrySideOptions(program.command('copy')))
    .description('Copy an image (OCI or Nydus) between registries / OCI layouts, streaming every blob without touching disk')
    .requiredOption('--source <ref>', 'source image: host[:port]/repo[:tag][@digest] or oci:PATH[:TAG]')
    .requiredOption('--target <ref>', 'target image: host[:port]/repo[:tag] or oci:PATH[:TAG]')
    .option('--platform <os/arch[/variant]>', 'platform to copy from a multi-platform image (default: this machine)')
    .option('--all-platforms', 'copy the index and every platform unchanged')
    .option('--source-mirror <url>', 'mirror tried before the source registry for reads (repeatable)', collect)
    .option('--push-chunk-size <size>', `upload blobs in chunks of this size, 4KiB to 1GiB (e.g. 16MiB); 0 = monolithic (default ${COPY_IMAGE_DEFAULTS.pushChunkSize})`)
    .option('--concurrency <n>', `blobs transferred at once (default ${COPY_IMAGE_DEFAULTS.concurrency})`)
    .option('-J, --output-json <file>', 'write a JSON summary here')
    .action(async (flags: CopyFlags) => {
      const options = parseCopyFlags(flags, io.env);
      await checkOutputJson(flags.outputJson);
      const tty = io.stderr.isTTY === true;
      const view = tty ? new ProgressView(io.stderr) : undefined;
      baselineWasmOnly();
      const release = youngGcEvery(16 * 2 ** 20);
      const listeners = [view?.onEvent, release].filter((f): f is (e: CopyProgressEvent) => void => f !== undefined);
      const result = await copyImage({
        ...options,
        extraBlobs: originalLayersOfRefImage,
        ...(io.signal && { signal: io.signal }),
        logger: tty ? noopLogger : createConsoleLogger({ level: 'warn', write: (line) => writeLine(io.stderr, line) }),
        ...(listeners.length > 0 && { onProgress: (e: CopyProgressEvent) => listeners.forEach((f) => f(e)) }),
      });
      view?.finish();
      writeLine(io.stdout, formatCopySummary(result));
      if (flags.outputJson) {
        await writeJsonFile(flags.outputJson, { ...result, pushChunkSize: options.pushChunkSize, concurrency: options.concurrency, maxRssBytes: process.resourceUsage().maxRSS * 1024 });
      }
    });
};
