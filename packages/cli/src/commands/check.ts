import type { Command } from 'commander';
import { InvalidArgumentError, NydusError, createConsoleLogger } from '@nydus-ts/core';
import { CHECK_CONVERTED_IMAGE_DEFAULTS, checkConvertedImage, parseArchiveLocation } from '@nydus-ts/converter';
import type { CheckConvertedImageOptions, CheckReport } from '@nydus-ts/converter';
import { parseImageLocation, parsePlatform } from '@nydus-ts/registry';
import type { CliIo } from '../io.js';
import { registryEndpointFromFlags } from '../registry-endpoint.js';
import { addRegistrySideOptions, addTimeoutOptions, checkOutputJson, parseTimeoutFlags, writeJsonFile } from '../shared-options.js';
import type { TimeoutFlags } from '../shared-options.js';
import { writeLine } from '../io.js';
import { parsePositiveInt } from '../parse.js';
import type { CommandRegistrar } from '../program.js';
import { baselineWasmOnly } from '../v8-flags.js';

/** The raw flags of `nydusify-ts check`, as commander hands them over. */
export interface CheckFlags extends TimeoutFlags {
  source?: string;
  target?: string;
  platform?: string;
  sourceInsecure?: boolean;
  targetInsecure?: boolean;
  sourceCreds?: string;
  targetCreds?: string;
  verifyBlobs?: boolean;
  concurrency?: string;
  outputJson?: string;
}

/** Validates flags into the library's options (INVALID_ARGUMENT before any network traffic). */
export function parseCheckFlags(flags: CheckFlags, env: NodeJS.ProcessEnv = {}): CheckConvertedImageOptions {
  if (!flags.source) throw new InvalidArgumentError('--source is required');
  if (!flags.target) throw new InvalidArgumentError('--target is required');
  const sourceLocation = parseArchiveLocation(flags.source) === undefined ? parseImageLocation(flags.source) : undefined;
  const sourceIsRegistry = sourceLocation?.kind === 'registry';
  if (!sourceIsRegistry && (flags.sourceInsecure || flags.sourceCreds !== undefined)) {
    throw new InvalidArgumentError('--source-insecure/--source-creds apply to registries, not to oci:, oci-archive: or docker-archive: sources');
  }
  const targetLocation = parseImageLocation(flags.target);
  if (targetLocation.kind !== 'registry' || parseArchiveLocation(flags.target) !== undefined) {
    throw new InvalidArgumentError(`--target ${flags.target}: the Nydus image must be in a registry`);
  }
  const options: CheckConvertedImageOptions = {
    source: flags.source,
    target: flags.target,
    ...(sourceLocation?.kind === 'registry' && {
      sourceRegistry: registryEndpointFromFlags({ registry: sourceLocation.reference.registry, insecure: flags.sourceInsecure ?? false, ...(flags.sourceCreds !== undefined && { creds: flags.sourceCreds }), credsFlag: '--source-creds' }, env),
    }),
    targetRegistry: registryEndpointFromFlags({ registry: targetLocation.reference.registry, insecure: flags.targetInsecure ?? false, ...(flags.targetCreds !== undefined && { creds: flags.targetCreds }), credsFlag: '--target-creds' }, env),
    verifyBlobs: flags.verifyBlobs ?? false,
    ...(flags.concurrency !== undefined && { concurrency: parsePositiveInt(flags.concurrency, '--concurrency') }),
  };
  if (flags.platform !== undefined) options.platform = parsePlatform(flags.platform);
  const timeouts = parseTimeoutFlags(flags);
  if (timeouts) options.timeouts = timeouts;
  return options;
}


export function formatCheckSummary(r: CheckReport): string {
  const c = r.counts;
  const what = `${c.sourceEntries} source / ${c.targetEntries} target entries, ${c.filesRead} files (${(c.bytesRead / 2 ** 20).toFixed(1)} MiB) read, ${c.blobs} blob(s)`;
  return r.ok
    ? `OK: ${r.target.name} (${r.target.digest}) matches ${r.source.name} (${r.source.digest}) [${r.platform}]: ${what}, in ${(r.durationMs / 1000).toFixed(2)} s`
    : `FAILED: ${r.differences.length} difference(s) between ${r.source.name} and ${r.target.name} [${r.platform}] (filesystem lines: source != target): ${what}`;
}

export const registerCheckCommand: CommandRegistrar = (program: Command, io: CliIo) => {
  addTimeoutOptions(addRegistrySideOptions(program.command('check')))
    .description('Validate a Nydus image against its source image: manifest, bootstrap, blobs and the whole filesystem (exit 1 on any difference)')
    .requiredOption('--source <ref>', 'source image: host[:port]/repo[:tag][@digest], oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF]')
    .requiredOption('--target <ref>', 'Nydus image in a registry: host[:port]/repo[:tag][@digest]')
    .option('--platform <os/arch[/variant]>', 'platform to check in multi-platform images (default: this machine)')
    .option('--verify-blobs', 'also download every Nydus blob whole to verify its digest')
    .option('--concurrency <n>', `files read from the target at once (default ${CHECK_CONVERTED_IMAGE_DEFAULTS.concurrency})`)
    .option('-J, --output-json <file>', 'write the report as JSON here')
    .action(async (flags: CheckFlags) => {
      baselineWasmOnly();
      const options = parseCheckFlags(flags, io.env);
      await checkOutputJson(flags.outputJson);
      const report = await checkConvertedImage({
        ...options,
        ...(io.signal && { signal: io.signal }),
        logger: createConsoleLogger({ level: 'warn', write: (line) => writeLine(io.stderr, line) }),
      });
      for (const line of report.differences) writeLine(io.stdout, line);
      writeLine(io.stdout, formatCheckSummary(report));
      if (flags.outputJson) await writeJsonFile(flags.outputJson, report);
      // Exit code 1 (the differences are on stdout; the error line goes to stderr).
      if (!report.ok) throw new NydusError('DATA_LOSS', `check found ${report.differences.length} difference(s) between the Nydus image and its source`);
    });
};
