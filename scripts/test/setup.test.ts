import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

/** Runs a bash script (async: no blocked worker) and resolves with its exit code and output. */
function bash(script: string, options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b));
    child.stderr.on('data', (b: Buffer) => (output += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** This environment without npm's and node-gyp's user-level settings, and with every download failing fast. */
function offlineEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_|^NODE_|^INIT_CWD$/i.test(k)) env[k] = v;
  const deadProxy = 'http://127.0.0.1:9';
  return { ...env, HOME: home, XDG_CACHE_HOME: path.join(home, '.cache'), HTTP_PROXY: deadProxy, HTTPS_PROXY: deadProxy, http_proxy: deadProxy, https_proxy: deadProxy, npm_config_proxy: deadProxy, npm_config_https_proxy: deadProxy };
}

describe('scripts/setup.sh', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydus-setup-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("builds the native addon against this Node's installed headers, downloading nothing", async () => {
    // A fresh machine: no ~/.npmrc (nodedir), no ~/.cache/node-gyp, no network. node-gyp without
    // a --nodedir would fetch a header tarball from nodejs.org here, and fail.
    const home = path.join(work, 'home');
    await mkdir(home);
    const addon = path.join(work, 'native');
    for (const entry of ['package.json', 'binding.gyp', 'native']) await cp(path.join(root, 'packages/native', entry), path.join(addon, entry), { recursive: true });
    const r = await bash(`source ${JSON.stringify(path.join(root, 'scripts/lib/node-gyp-env.sh'))} && use_installed_node_headers && npm run install`, { cwd: addon, env: offlineEnv(home) });
    expect(r.output).not.toMatch(/download/i);
    expect(r.code, r.output).toBe(0);
    expect((await stat(path.join(addon, 'build/Release/nydus_native.node'))).isFile()).toBe(true);
    expect(await readdir(home)).not.toContain('.cache'); // no header cache was filled
  });

  describe('npm dependencies', () => {
    let project: string;
    beforeAll(async () => {
      // The manifests and the lock file of this repository, without sources: what npm installs from.
      project = path.join(work, 'project');
      await mkdir(project);
      for (const file of ['package.json', 'package-lock.json']) await cp(path.join(root, file), path.join(project, file));
      // Every workspace the root package.json names (`dir/*` globs or plain directories).
      const { workspaces } = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { workspaces: string[] };
      for (const pattern of workspaces) {
        const dirs = pattern.endsWith('/*') ? (await readdir(path.join(root, pattern.slice(0, -2)))).map((name) => path.join(pattern.slice(0, -2), name)) : [pattern];
        for (const dir of dirs) {
          const manifest = path.join(root, dir, 'package.json');
          if (!(await stat(manifest).catch(() => undefined))) continue;
          await cp(manifest, path.join(project, dir, 'package.json'));
        }
      }
    });

    const install = (env: NodeJS.ProcessEnv = {}) =>
      bash(`source ${JSON.stringify(path.join(root, 'scripts/lib/npm-deps.sh'))} && install_npm_dependencies`, {
        cwd: project,
        // Scripts (addon builds) are not what this checks; the registry and npm's cache are used as set-up uses them.
        env: { ...process.env, npm_config_ignore_scripts: 'true', ...env },
      });

    it('installs exactly what the committed package-lock.json pins, leaving it byte for byte unchanged', async () => {
      const committed = await readFile(path.join(project, 'package-lock.json'));
      const r = await install();
      expect(r.code, r.output).toBe(0);
      expect((await readFile(path.join(project, 'package-lock.json'))).equals(committed)).toBe(true);
      expect((await stat(path.join(project, 'node_modules/vitest/package.json'))).isFile()).toBe(true);
      // A second run with nothing changed does nothing.
      const again = await install();
      expect(again.code).toBe(0);
      expect(again.output).toBe('');
    });

    it('fails with a message, instead of rewriting the lock file, when a package.json no longer matches it', async () => {
      const committed = await readFile(path.join(project, 'package-lock.json'));
      const manifest = path.join(project, 'packages/core/package.json');
      const pkg = JSON.parse(await readFile(manifest, 'utf8'));
      pkg.dependencies = { ...pkg.dependencies, 'left-pad': '^1.3.0' };
      await writeFile(manifest, JSON.stringify(pkg, null, 2));
      const r = await install();
      expect(r.code).not.toBe(0);
      expect(r.output).toMatch(/run `npm install` to update package-lock\.json/);
      expect((await readFile(path.join(project, 'package-lock.json'))).equals(committed)).toBe(true);
    });
  });
});
