// The snapshotter process killed with SIGKILL, and stopped with SIGTERM, while Nydus containers
// run: the daemons are their own processes, so the containers keep reading their images; the
// restarted snapshotter re-attaches the same daemons and new containers start. Shared and
// dedicated daemons.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesUsing, waitForSnapshotter } from '@nydus-ts/snapshotter/testing';
import { SNAPSHOTTER, startE2eEnv } from '../support/env.js';
import type { E2eEnv } from '../support/env.js';
import { busyboxData, busyboxImages } from '../support/images.js';
import { pull } from '../support/cli.js';

const dataSha = createHash('sha256').update(busyboxData).digest('hex');

for (const mode of ['shared', 'dedicated'] as const) {
  describe(`snapshotter restarts with running Nydus containers (${mode} daemons)`, () => {
    let env: E2eEnv;
    let ref: string;

    beforeAll(async () => {
      env = await startE2eEnv({ daemonMode: mode });
      ref = (await busyboxImages(env.proxy.host, env.work)).native;
      await pull(env.containerd.address, SNAPSHOTTER, ref);
    }, 600_000);

    afterAll(async () => {
      await env?.stop();
    }, 300_000);

    /** nydusd-ts processes serving images (their API sockets lie under the snapshotter root). */
    const daemons = (): Promise<number[]> => processesUsing(`${env.snapshotter.root}/socket`);

    async function readsInContainer(id: string, execId: string): Promise<string> {
      return (await env.containerd.ctrOk(['tasks', 'exec', '--exec-id', execId, id, 'sha256sum', '/data/random.bin'])).split(' ')[0]!;
    }

    it('kill -9: the container keeps reading; the restarted snapshotter re-attaches the daemon', async () => {
      await env.containerd.ctrOk(['run', '-d', '--snapshotter', SNAPSHOTTER, ref, 'long-1', '/bin/sh', '-c', 'while true; do sleep 1; done']);
      const before = await daemons();
      expect(before).toHaveLength(1);
      expect(await env.stopSnapshotter('SIGKILL')).toBe('SIGKILL');
      expect(await readsInContainer('long-1', 'k1')).toBe(dataSha);
      await env.startSnapshotter();
      await waitForSnapshotter(env.containerd, SNAPSHOTTER);
      expect(await readFile(env.snapshotter.logFile, 'utf8')).toContain('re-attached running nydusd-ts');
      expect(await daemons()).toEqual(before);
      expect(await readsInContainer('long-1', 'k2')).toBe(dataSha);
      const r = await env.ctrRun(['--rm', ref, 'after-kill', '/bin/cat', '/data/hello.txt']);
      expect(r.stdout).toBe('hello from a nydus-ts e2e image\n');
    });

    it('SIGTERM: exit 0, the container keeps reading, a restart serves new containers', async () => {
      const before = await daemons();
      expect(await env.stopSnapshotter('SIGTERM')).toBe(0);
      expect(await readsInContainer('long-1', 't1')).toBe(dataSha);
      expect(await daemons()).toEqual(before);
      await env.startSnapshotter();
      await waitForSnapshotter(env.containerd, SNAPSHOTTER);
      const r = await env.ctrRun(['--rm', ref, 'after-term', '/bin/sha256sum', '/data/random.bin']);
      expect(r.stdout.split(' ')[0]).toBe(dataSha);
      await env.containerd.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'long-1']);
      for (let i = 0; i < 50 && (await env.containerd.ctr(['tasks', 'delete', 'long-1'])).code !== 0; i++) await sleep(100);
      await env.containerd.ctrOk(['containers', 'delete', 'long-1']);
    });
  });
}
