// One place for defaults: the libraries' resolve…Options functions and their *_DEFAULTS; the
// commands declare none of their own and their help shows the libraries' values.
import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { CHECK_CONVERTED_IMAGE_DEFAULTS, CONVERT_IMAGE_DEFAULTS } from '@nydus-ts/converter';
import { CREATE_IMAGE_DEFAULTS } from '@nydus-ts/image';
import { COPY_IMAGE_DEFAULTS } from '@nydus-ts/registry';
import { buildNydusifyProgram, runNydusify } from '../src/index.js';
import type { CliIo } from '../src/index.js';

function io(): CliIo & { out: () => string } {
  let text = '';
  const stdout = new PassThrough().on('data', (b: Buffer) => (text += b.toString()));
  return { stdout, stderr: new PassThrough(), env: {}, cwd: process.cwd(), out: () => text };
}

function commands(c: Command): Command[] {
  return [c, ...c.commands.flatMap(commands)];
}

describe('defaults', () => {
  it('no nydusify-ts option has a commander default', () => {
    const withDefaults = commands(buildNydusifyProgram(io())).flatMap((c) => c.options.filter((o) => o.defaultValue !== undefined && !o.negate).map((o) => `${c.name()} ${o.long}`));
    expect(withDefaults).toEqual([]);
  });

  it("help shows the libraries' defaults", async () => {
    const help = async (...args: string[]): Promise<string> => {
      const i = io();
      expect(await runNydusify([...args, '--help'], i)).toBe(0);
      return i.out().replace(/\s+/g, ' ');
    };
    const convert = await help('convert');
    expect(convert).toContain(`(default ${CONVERT_IMAGE_DEFAULTS.compressor})`);
    expect(convert).toContain(`(default 0x${CONVERT_IMAGE_DEFAULTS.chunkSize.toString(16)})`);
    expect(convert).toContain(`(default ${CONVERT_IMAGE_DEFAULTS.digester}; ${CONVERT_IMAGE_DEFAULTS.ociRefDigester} with --oci-ref)`);
    expect(convert).toContain(`(default ${CONVERT_IMAGE_DEFAULTS.concurrency})`);
    const create = await help('image', 'create');
    expect(create).toContain(`(default ${CREATE_IMAGE_DEFAULTS.type})`);
    expect(create).toContain(`(default ${CREATE_IMAGE_DEFAULTS.compressor})`);
    expect(await help('copy')).toContain(`(default ${COPY_IMAGE_DEFAULTS.concurrency})`);
    expect(await help('check')).toContain(`(default ${CHECK_CONVERTED_IMAGE_DEFAULTS.concurrency})`);
  });
});
