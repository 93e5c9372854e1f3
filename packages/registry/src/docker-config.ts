import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, NydusError } from '@nydus-ts/core';
import { dockerHubRegistry } from './reference.js';

/** Credentials for one registry. */
export type Credentials =
  | { username: string; password: string }
  /** An OAuth2 refresh token (`identitytoken` in docker's config). */
  | { identityToken: string; username?: string };

/** Finds credentials for a registry host (`docker.io`, `127.0.0.1:5000`); undefined means anonymous. */
export type CredentialsProvider = (registry: string) => Promise<Credentials | undefined>;

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/** Strips scheme and path from an `auths` key: `https://index.docker.io/v1/` → `docker.io`. */
export function normalizeAuthKey(key: string): string {
  let host = key.replace(/^[a-z]+:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  host = host.toLowerCase();
  if (host === 'index.docker.io' || host === 'registry-1.docker.io') return dockerHubRegistry;
  return host;
}

async function runCredentialHelper(helper: string, registry: string): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9_.-]+$/.test(helper)) throw new InvalidArgumentError(`docker config: invalid credential helper name "${helper}"`);
  const serverUrl = registry === dockerHubRegistry ? 'https://index.docker.io/v1/' : registry;
  // Loaded here: only helpers need it, and every copy would otherwise pay for it at start-up.
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(`docker-credential-${helper}`, ['get'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.on('error', (err) =>
      reject(new NydusError('FAILED_PRECONDITION', `docker credential helper "docker-credential-${helper}" could not be run`, { cause: err })),
    );
    child.on('close', (code) => {
      if (code !== 0) return resolve(undefined); // "credentials not found in native keychain"
      try {
        const parsed = JSON.parse(out) as { Username?: string; Secret?: string };
        if (!parsed.Secret) return resolve(undefined);
        if (parsed.Username === '<token>') return resolve({ identityToken: parsed.Secret });
        resolve({ username: parsed.Username ?? '', password: parsed.Secret });
      } catch (err) {
        reject(new NydusError('FAILED_PRECONDITION', `docker credential helper "${helper}" printed invalid JSON`, { cause: err }));
      }
    });
    child.stdin.end(serverUrl);
  });
}

/**
 * Credentials from a docker config file (`~/.docker/config.json` is the caller's to find):
 * `auths` (base64 `auth`, `username`/`password`, `identitytoken`), then
 * `credHelpers`/`credsStore`. A missing file means anonymous. Read once, on the first lookup.
 */
export function dockerConfigCredentials(path: string): CredentialsProvider {
  let loaded: Promise<DockerConfigFile | undefined> | undefined;
  const load = (): Promise<DockerConfigFile | undefined> =>
    (loaded ??= readFile(path, 'utf8').then(
      (text) => {
        try {
          return JSON.parse(text) as DockerConfigFile;
        } catch (err) {
          throw new InvalidArgumentError(`docker config ${path}: invalid JSON`, { cause: err });
        }
      },
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw new NydusError('FAILED_PRECONDITION', `docker config ${path}: ${err.message}`, { cause: err });
      },
    ));
  return async (registry) => {
    const config = await load();
    if (!config) return undefined;
    const host = registry.toLowerCase();
    const helper = config.credHelpers?.[host];
    if (helper) return runCredentialHelper(helper, host);
    for (const [key, entry] of Object.entries(config.auths ?? {})) {
      if (normalizeAuthKey(key) !== host) continue;
      if (entry.identitytoken) {
        const creds: Credentials = { identityToken: entry.identitytoken };
        if (entry.username) creds.username = entry.username;
        return creds;
      }
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const i = decoded.indexOf(':');
        if (i < 0) throw new InvalidArgumentError(`docker config ${path}: auths["${key}"].auth is not base64 of user:password`);
        return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
      }
      if (entry.username !== undefined && entry.password !== undefined) {
        return { username: entry.username, password: entry.password };
      }
    }
    if (config.credsStore) return runCredentialHelper(config.credsStore, host);
    return undefined;
  };
}

/** A provider that always returns `creds` for its one registry and defers to `fallback` otherwise. */
export function staticCredentials(registry: string, creds: Credentials, fallback?: CredentialsProvider): CredentialsProvider {
  return async (host) => (host === registry ? creds : fallback?.(host));
}
