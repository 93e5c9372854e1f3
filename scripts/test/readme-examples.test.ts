// Every workspace package's README has an `## Example` whose ts block this test runs, importing
// the packages by name as a user would: an example that no longer compiles (the suite's
// type-check here) or throws fails here, so examples cannot rot.
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const out = path.join(root, 'scripts/test/.readme-examples');

/** The first ```ts block after the `## Example` heading, or undefined. */
export function readmeExample(markdown: string): string | undefined {
  const heading = markdown.search(/^## Example\s*$/m);
  if (heading < 0) return undefined;
  const m = /```ts\n([\s\S]*?)```/.exec(markdown.slice(heading));
  return m?.[1];
}

const packages = readdirSync(path.join(root, 'packages')).filter((name) => existsSync(path.join(root, 'packages', name, 'package.json'))).sort();

mkdirSync(out, { recursive: true });
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('README examples', () => {
  it('every package has a README with an example', () => {
    const missing = packages.filter((name) => {
      const file = path.join(root, 'packages', name, 'README.md');
      return !existsSync(file) || readmeExample(readFileSync(file, 'utf8')) === undefined;
    });
    expect(missing).toEqual([]);
  });

  it('the examples type-check against the packages\' public types', () => {
    const files: string[] = [];
    for (const name of packages) {
      const file = path.join(root, 'packages', name, 'README.md');
      const example = existsSync(file) ? readmeExample(readFileSync(file, 'utf8')) : undefined;
      if (example === undefined) continue;
      const script = path.join(out, `${name}.ts`);
      writeFileSync(script, `${example}\nexport {};\n`);
      files.push(script);
    }
    const program = ts.createProgram({
      rootNames: files,
      options: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        customConditions: ['source'],
        types: ['node'],
        noEmit: true,
        skipLibCheck: true,
        strict: true,
      },
    });
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file !== undefined && files.includes(path.resolve(d.file.fileName)))
      .map((d) => `${path.basename(d.file!.fileName)}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(diagnostics).toEqual([]);
  }, 300_000);

  for (const name of packages) {
    const file = path.join(root, 'packages', name, 'README.md');
    const example = existsSync(file) ? readmeExample(readFileSync(file, 'utf8')) : undefined;
    if (example === undefined) continue;
    it(`@nydus-ts/${name}: the README example runs`, async () => {
      const script = path.join(out, `${name}.ts`);
      // `export {}` makes it a module (top-level await) even when it imports nothing.
      writeFileSync(script, `${example}\nexport {};\n`);
      await import(pathToFileURL(script).href);
    }, 300_000);
  }
});
