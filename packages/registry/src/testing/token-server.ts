import { execFile } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TokenServerOptions {
  /** user → password; requests with other credentials get 401. Default `{ tester: 'secret' }`. */
  users?: Record<string, string>;
  /** Issue tokens to anonymous clients too (with pull-only access). Default false. */
  allowAnonymousPull?: boolean;
  service?: string;
  issuer?: string;
  /** Token lifetime in seconds (default 300). */
  expiresIn?: number;
  /** The first N tokens grant no actions at all (the registry then answers 401 to them). */
  emptyTokensFirst?: number;
}

export interface TokenRequestRecord {
  user: string | undefined;
  scopes: string[];
  granted: boolean;
}

export interface TokenServer {
  /** `http://127.0.0.1:PORT/token`, the registry's `auth.token.realm`. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate the registry trusts (`auth.token.rootcertbundle`). */
  certPath: string;
  /** Every token request, in order. */
  requests: TokenRequestRecord[];
  stop(): Promise<void>;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * A minimal Docker token server on 127.0.0.1 (port 0): checks basic credentials and issues
 * RS256 JWTs with an `x5c` header for a registry configured with `auth.token`.
 */
export async function startTokenServer(options: TokenServerOptions = {}): Promise<TokenServer> {
  const users = options.users ?? { tester: 'secret' };
  const service = options.service ?? 'nydus-test-registry';
  const issuer = options.issuer ?? 'nydus-test-issuer';
  const expiresIn = options.expiresIn ?? 300;
  const dir = await mkdtemp(join(tmpdir(), 'nydus-token-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=nydus-test-token']);
  const key = createPrivateKey(await readFile(keyPath));
  const cert = new X509Certificate(await readFile(certPath));
  const x5c = cert.raw.toString('base64');
  const requests: TokenRequestRecord[] = [];
  let emptyLeft = options.emptyTokensFirst ?? 0;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      const name = decoded.slice(0, i);
      if (i < 0 || users[name] !== decoded.slice(i + 1)) {
        requests.push({ user: name, scopes, granted: false });
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'incorrect username or password' }));
        return;
      }
      user = name;
    } else if (!options.allowAnonymousPull) {
      requests.push({ user: undefined, scopes, granted: false });
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'authentication required' }));
      return;
    }
    const empty = emptyLeft > 0;
    if (empty) emptyLeft--;
    const access = empty ? [] : scopes.map((s) => {
      const [type, ...rest] = s.split(':');
      const actions = (rest.pop() ?? '').split(',').filter(Boolean);
      return { type, name: rest.join(':'), actions: user ? actions : actions.filter((a) => a === 'pull') };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [x5c] };
    const claims = { iss: issuer, sub: user ?? '', aud: service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signingInput), key);
    const token = `${signingInput}.${b64url(signature)}`;
    requests.push({ user, scopes, granted: true });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
