import { InvalidArgumentError, isDigest } from '@nydus-ts/core';
import type { Digest } from '@nydus-ts/core';

/** A parsed image reference `host[:port]/repo[:tag][@digest]`. */
export interface ImageReference {
  /** Registry host as users name it (`docker.io`, `127.0.0.1:5000`). */
  registry: string;
  /** Repository path inside the registry (`library/alpine`). */
  repository: string;
  tag?: string;
  digest?: Digest;
}

export const dockerHubRegistry = 'docker.io';
/** Where Docker Hub's API actually lives. */
export const dockerHubEndpoint = 'registry-1.docker.io';

const componentPattern = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const hostPattern = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * Parses `host[:port]/repo[:tag][@digest]`. Without a host, the reference is a Docker Hub one
 * (`alpine` → `docker.io/library/alpine`); without tag or digest the tag is `latest`.
 */
export function parseReference(input: string): ImageReference {
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`invalid image reference "${input}": ${why}`);
  };
  if (input.length === 0) bad('empty');
  if (/\s/.test(input)) bad('contains whitespace');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) bad(`"${d}" is not a digest (expected sha256:<64 hex>)`);
    digest = d as Digest;
    rest = rest.slice(0, at);
  }
  let registry = dockerHubRegistry;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      registry = first;
      rest = rest.slice(slash + 1);
      if (!hostPattern.test(registry)) bad(`"${registry}" is not a valid registry host`);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) bad(`"${tag}" is not a valid tag`);
  }
  if (rest.length === 0) bad('missing repository');
  const components = rest.split('/');
  for (const c of components) {
    if (!componentPattern.test(c)) bad(`repository component "${c}" must be lowercase letters, digits and separators`);
  }
  if (registry === 'index.docker.io') registry = dockerHubRegistry;
  if (registry === dockerHubRegistry && components.length === 1) rest = `library/${rest}`;
  if (rest.length > 255) bad('repository name longer than 255 characters');
  if (tag === undefined && digest === undefined) tag = 'latest';
  const ref: ImageReference = { registry, repository: rest };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `registry/repository[:tag][@digest]`, fully qualified. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** The host to talk to for a registry name (Docker Hub's API host differs from its name). */
export function registryEndpointHost(registry: string): string {
  return registry === dockerHubRegistry ? dockerHubEndpoint : registry;
}
