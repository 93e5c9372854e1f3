// Registry endpoints as the binaries configure them: from flags, docker's config file and the
// proxy variables. The libraries take the resulting RegistryEndpoint as it is and read none of these.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '@nydus-ts/core';
import { dockerConfigCredentials } from '@nydus-ts/registry';
import type { Credentials, CredentialsProvider, ProxyOptions, RegistryEndpoint } from '@nydus-ts/registry';

/** `user:pass` as given to `--source-creds` (`flag` names it in errors). */
export function parseCredentials(value: string, flag: string): Credentials {
  const i = value.indexOf(':');
  if (i <= 0) throw new InvalidArgumentError(`${flag}: expected USER:PASSWORD`);
  return { username: value.slice(0, i), password: value.slice(i + 1) };
}

/** Path of docker's config file: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv): string {
  const dir = env.DOCKER_CONFIG ?? join(env.HOME ?? homedir(), '.docker');
  return join(dir, 'config.json');
}

/** `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (or their lower-case forms), when any proxy is set. */
export function proxyFromEnv(env: NodeJS.ProcessEnv): ProxyOptions | undefined {
  const https = env.HTTPS_PROXY ?? env.https_proxy;
  const http = env.HTTP_PROXY ?? env.http_proxy;
  if (!https && !http) return undefined;
  const noProxy = env.NO_PROXY ?? env.no_proxy;
  return { ...(https && { https }), ...(http && { http }), ...(noProxy && { noProxy }) };
}

/** What the flags say about one registry side (`--source-*` / `--target-*`). */
export interface EndpointFlags {
  /** The registry the side's reference names (explicit credentials apply to it alone). */
  registry?: string;
  insecure?: boolean;
  /** `user:pass` from `--<side>-creds`. */
  creds?: string;
  /** The flag that gave `creds`, for errors. */
  credsFlag: string;
  mirrors?: string[];
}

/**
 * A registry endpoint from flags and the environment: explicit credentials for the side's
 * registry, docker's config for any other host (mirrors) or when none are given; the proxy
 * variables.
 */
export function registryEndpointFromFlags(flags: EndpointFlags, env: NodeJS.ProcessEnv): RegistryEndpoint {
  const fromConfig = dockerConfigCredentials(dockerConfigPath(env));
  let credentials: CredentialsProvider = fromConfig;
  if (flags.creds !== undefined) {
    const creds = parseCredentials(flags.creds, flags.credsFlag);
    const registry = flags.registry;
    credentials = async (host) => (registry === undefined || host === registry ? creds : fromConfig(host));
  }
  const proxy = proxyFromEnv(env);
  return {
    insecure: flags.insecure ?? false,
    credentials,
    ...(flags.mirrors?.length && { mirrors: flags.mirrors }),
    ...(proxy && { proxy }),
  };
}
