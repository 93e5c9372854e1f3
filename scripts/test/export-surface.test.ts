// The public surface of every workspace package: for each entry point in its package.json
// `exports`, the sorted names it exports with their kind, compared against the package's
// committed api-report.txt. A name added, removed or changed in kind fails here, so a change
// of the public API is always a deliberate one: update the report with
//   npx vitest run scripts/test/export-surface.test.ts -u
// and say in the commit what changed for users.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Entry {
  subpath: string;
  file: string;
}

interface WorkspacePackage {
  name: string;
  dir: string;
  entries: Entry[];
}

function workspacePackages(): WorkspacePackage[] {
  const out: WorkspacePackage[] = [];
  for (const group of ['packages', 'apps']) {
    for (const name of readdirSync(path.join(root, group)).sort()) {
      const dir = path.join(root, group, name);
      const manifest = path.join(dir, 'package.json');
      if (!existsSync(manifest)) continue;
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name: string; exports?: Record<string, unknown> };
      const entries: Entry[] = [];
      for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
        const source = typeof target === 'object' && target !== null ? (target as { source?: string }).source : undefined;
        if (source) entries.push({ subpath, file: path.join(dir, source) });
      }
      if (entries.length > 0) out.push({ name: pkg.name, dir, entries });
    }
  }
  return out;
}

function kindOf(symbol: ts.Symbol): string {
  const f = symbol.flags;
  if (f & ts.SymbolFlags.Class) return 'class';
  if (f & ts.SymbolFlags.Enum) return 'enum';
  if (f & ts.SymbolFlags.Function) return 'function';
  if (f & ts.SymbolFlags.Variable) {
    const decl = symbol.valueDeclaration;
    const list = decl && ts.isVariableDeclaration(decl) ? decl.parent : undefined;
    return list && ts.isVariableDeclarationList(list) && list.flags & ts.NodeFlags.Const ? 'const' : 'let';
  }
  if (f & ts.SymbolFlags.Interface) return 'interface';
  if (f & ts.SymbolFlags.TypeAlias) return 'type';
  if (f & (ts.SymbolFlags.NamespaceModule | ts.SymbolFlags.ValueModule)) return 'namespace';
  return 'unknown';
}

const packages = workspacePackages();
const program = ts.createProgram({
  rootNames: packages.flatMap((p) => p.entries.map((e) => e.file)),
  options: {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    // workspace packages resolve to their sources, so no build is needed
    customConditions: ['source'],
    types: ['node'],
    noEmit: true,
    skipLibCheck: true,
    strict: true,
  },
});
const checker = program.getTypeChecker();

function exportLines(file: string): string[] {
  const sourceFile = program.getSourceFile(file);
  if (!sourceFile) throw new Error(`${file}: not in the program`);
  const moduleSymbol = checker.getSymbolAtLocation(sourceFile);
  if (!moduleSymbol) return [];
  return checker
    .getExportsOfModule(moduleSymbol)
    .map((s) => {
      const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
      return `${kindOf(target)} ${s.getName()}`;
    })
    .sort((a, b) => a.split(' ')[1]!.localeCompare(b.split(' ')[1]!) || a.localeCompare(b));
}

function report(pkg: WorkspacePackage): string {
  const parts = [`# ${pkg.name}: public exports (checked by scripts/test/export-surface.test.ts)`];
  for (const entry of pkg.entries) parts.push('', `## ${entry.subpath === '.' ? pkg.name : `${pkg.name}/${entry.subpath.slice(2)}`}`, ...exportLines(entry.file));
  return parts.join('\n') + '\n';
}

describe('export surface', () => {
  it('finds the workspace packages', () => {
    expect(packages.map((p) => p.name)).toContain('@nydus-ts/core');
  });

  for (const pkg of packages) {
    it(`${pkg.name} exports what its api-report.txt lists`, async () => {
      const text = report(pkg);
      for (const line of text.split('\n')) expect(line, `${pkg.name}: an export whose kind is unknown`).not.toMatch(/^unknown /);
      await expect(text).toMatchFileSnapshot(path.join(pkg.dir, 'api-report.txt'));
    });
  }
});
