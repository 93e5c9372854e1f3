import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { freeLoopbackPort } from './free-port.js';
import { startTokenServer } from './token-server.js';
import type { TokenServer, TokenServerOptions } from './token-server.js';

const run = promisify(execFile);

export interface StartRegistryOptions {
  /** Default: no auth. `htpasswd`: basic auth for `users`; `token`: a token server is started too. */
  auth?: 'htpasswd' | 'token';
  /** user → password for htpasswd or the token server (default `{ tester: 'secret' }`). */
  users?: Record<string, string>;
  /** Extra token-server options (auth: 'token'). */
  token?: Omit<TokenServerOptions, 'users'>;
  /** Serve HTTPS with a self-signed certificate for 127.0.0.1 (clients need `insecure`). */
  tls?: boolean;
  /** Default `/usr/bin/docker-registry`. */
  binary?: string;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`, the registry part of references. */
  host: string;
  /** `http://127.0.0.1:PORT` (`https://` with `tls`). */
  url: string;
  /** Temporary directory holding config and storage. */
  dir: string;
  pid: number;
  users: Record<string, string>;
  tokenServer?: TokenServer;
  /** Stops the registry process, keeping its port and storage (clients then see refused connections). */
  pause(): Promise<void>;
  /** Starts the process again on the same port with the same storage (after `pause`). */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

function configYaml(port: number, storage: string, auth: string, tls: string): string {
  return [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: nydus-ts-test-secret',
    tls,
    auth,
    '',
  ].join('\n');
}

async function waitReady(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${stderr()}`);
      try {
        const res = await request(`${url}/v2/`, { headersTimeout: 1000, dispatcher });
        await res.body.dump();
        if (res.statusCode === 200 || res.statusCode === 401) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`docker-registry at ${url} did not become ready: ${stderr()}`);
  } finally {
    await dispatcher.close();
  }
}

/**
 * Starts the real `docker-registry` (distribution) on 127.0.0.1 with a free port and storage in
 * a temporary directory, waits until it answers `/v2/`, and returns how to reach and stop it.
 */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const users = options.users ?? { tester: 'secret' };
  const dir = await mkdtemp(join(tmpdir(), 'nydus-registry-'));
  let tokenServer: TokenServer | undefined;
  try {
    let auth = '';
    if (options.auth === 'htpasswd') {
      const lines: string[] = [];
      for (const [user, pass] of Object.entries(users)) {
        const { stdout } = await run('htpasswd', ['-Bbn', user, pass]);
        lines.push(stdout.trim());
      }
      await writeFile(join(dir, 'htpasswd'), lines.join('\n') + '\n');
      auth = ['auth:', '  htpasswd:', '    realm: nydus-test', `    path: ${join(dir, 'htpasswd')}`].join('\n');
    } else if (options.auth === 'token') {
      tokenServer = await startTokenServer({ ...options.token, users });
      auth = [
        'auth:',
        '  token:',
        `    realm: ${tokenServer.realm}`,
        `    service: ${tokenServer.service}`,
        `    issuer: ${tokenServer.issuer}`,
        `    rootcertbundle: ${tokenServer.certPath}`,
      ].join('\n');
    }
    let tls = '';
    if (options.tls) {
      await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt'), '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
      tls = ['  tls:', `    certificate: ${join(dir, 'tls.crt')}`, `    key: ${join(dir, 'tls.key')}`].join('\n');
    }
    for (let attempt = 0; ; attempt++) {
      const port = await freeLoopbackPort();
      const config = join(dir, 'config.yml');
      await writeFile(config, configYaml(port, join(dir, 'storage'), auth, tls));
      const child = spawn(options.binary ?? '/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      let errText = '';
      child.stderr!.setEncoding('utf8').on('data', (s: string) => {
        if (errText.length < 16_384) errText += s;
      });
      const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
      try {
        await waitReady(url, child, () => errText);
      } catch (err) {
        child.kill('SIGKILL');
        if (attempt < 2 && /address already in use/.test(errText)) continue;
        throw err;
      }
      let current = child;
      let exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const ts = tokenServer;
      const halt = async (): Promise<void> => {
        if (current.exitCode === null && current.signalCode === null) {
          current.kill('SIGTERM');
          const timer = setTimeout(() => current.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        }
      };
      const registry: TestRegistry = {
        host: `127.0.0.1:${port}`,
        url,
        dir,
        pid: child.pid!,
        users,
        pause: halt,
        async resume() {
          if (current.exitCode === null && current.signalCode === null) return;
          const next = spawn(options.binary ?? '/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
          let text = '';
          next.stderr!.setEncoding('utf8').on('data', (s: string) => {
            if (text.length < 16_384) text += s;
          });
          current = next;
          exited = new Promise<void>((resolve) => next.once('exit', () => resolve()));
          await waitReady(url, next, () => text);
          registry.pid = next.pid!;
        },
        async stop() {
          await halt();
          await ts?.stop();
          await rm(dir, { recursive: true, force: true });
        },
      };
      if (ts) registry.tokenServer = ts;
      return registry;
    }
  } catch (err) {
    await tokenServer?.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
