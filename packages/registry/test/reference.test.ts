import { describe, expect, it } from 'vitest';
import { isNydusError } from '@nydus-ts/core';
import { formatReference, parseImageLocation, parseReference, registryEndpointHost } from '../src/index.js';

const d = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it('normalises Docker Hub short names', () => {
    expect(parseReference('alpine')).toEqual({ registry: 'docker.io', repository: 'library/alpine', tag: 'latest' });
    expect(parseReference('user/app:1.0')).toEqual({ registry: 'docker.io', repository: 'user/app', tag: '1.0' });
    expect(parseReference('index.docker.io/alpine:3')).toEqual({ registry: 'docker.io', repository: 'library/alpine', tag: '3' });
    expect(registryEndpointHost('docker.io')).toBe('registry-1.docker.io');
  });
  it('parses hosts with ports, tags and digests', () => {
    expect(parseReference('127.0.0.1:5000/a/b/c:v1')).toEqual({ registry: '127.0.0.1:5000', repository: 'a/b/c', tag: 'v1' });
    expect(parseReference('localhost/app')).toEqual({ registry: 'localhost', repository: 'app', tag: 'latest' });
    expect(parseReference(`ghcr.io/o/app@${d}`)).toEqual({ registry: 'ghcr.io', repository: 'o/app', digest: d });
    expect(parseReference(`ghcr.io/o/app:v2@${d}`)).toEqual({ registry: 'ghcr.io', repository: 'o/app', tag: 'v2', digest: d });
    expect(formatReference(parseReference(`h:1/x:t@${d}`))).toBe(`h:1/x:t@${d}`);
  });
  it('rejects malformed references with INVALID_ARGUMENT', () => {
    for (const bad of ['', 'Upper/Case', 'h:1/x:bad tag', 'h:1/x@sha256:12', 'h:1/', 'h:1/a//b', 'h:1/x:-tag']) {
      let err: unknown;
      try {
        parseReference(bad);
      } catch (e) {
        err = e;
      }
      expect(isNydusError(err, 'INVALID_ARGUMENT'), bad).toBe(true);
    }
  });
});

describe('parseImageLocation', () => {
  it('reads oci: layouts with the skopeo syntax', () => {
    expect(parseImageLocation('oci:/data/img:v1')).toEqual({ kind: 'oci-layout', path: '/data/img', tag: 'v1' });
    expect(parseImageLocation('oci:rel/dir')).toEqual({ kind: 'oci-layout', path: 'rel/dir' });
    expect(parseImageLocation('docker://h:1/x:y')).toEqual({ kind: 'registry', reference: { registry: 'h:1', repository: 'x', tag: 'y' } });
    expect(() => parseImageLocation('oci:')).toThrow(/needs a directory/);
  });
});
