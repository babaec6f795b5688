import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Dockerode from 'dockerode';
import { up, type Up } from '../src/server/up.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Typical Marathon apps as written: a Docker app from a local image (host networking, $PORT0,
// an HTTP health check) and an app that fetches its files into the sandbox. Docker is required
// in CI; elsewhere the Docker test is skipped with the reason.

let dockerSkip: string | false = false;
let image = '';

describe('Marathon apps with Docker and fetch on `slipway up`', () => {
  let server: Up;
  let dir: string;
  let docker: Dockerode | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-apps-docker-'));
    try {
      docker = new Dockerode();
      await docker.ping();
      image = await ensureBusyboxImage(docker);
    } catch (e) {
      if (process.env['CI']) throw new Error(`CI needs a Docker engine for these tests: ${(e as Error).message}`, { cause: e });
      dockerSkip = `no Docker engine: ${(e as Error).message}`;
      docker = undefined;
    }
    server = await up({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(dir, 'data'),
      containerizers: docker !== undefined ? ['process', 'docker'] : ['process'],
      resources: 'cpus:4;mem:2048;disk:1000;ports:[32100-32199]',
    });
  });

  after(async () => {
    await server.close();
    killProcessesUnder(dir);
    if (docker !== undefined) {
      const containers = await docker.listContainers({ all: true, filters: { label: ['MARATHON_APP_ID=/docker/web'] } }).catch(() => []);
      for (const c of containers) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${server.master.url}${path}`, { method, headers: body !== undefined ? { 'Content-Type': 'application/json' } : {}, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };
  type Task = { id: string; host: string; ports: number[]; state: string; healthCheckResults?: { alive: boolean }[] };
  const tasksOf = async (id: string) => ((await api('GET', `/v2/apps${id}`)).json['app'] as { tasks: Task[] }).tasks;

  it('runs a Docker app from a local image with host networking, $PORT0 and an HTTP health check', { skip: dockerSkip }, async () => {
    const created = await api('POST', '/v2/apps', {
      id: '/docker/web',
      container: { type: 'DOCKER', docker: { image, network: 'HOST', parameters: [{ key: 'label', value: 'MARATHON_APP_ID=/docker/web' }] } },
      // In /tmp: the app names no user, so it runs as the agent's default user (nobody), who
      // may not write at the image's root.
      cmd: 'mkdir -p /tmp/www && echo "hello from $MESOS_TASK_ID" > /tmp/www/index.html && exec httpd -f -p $PORT0 -h /tmp/www',
      cpus: 0.1,
      mem: 32,
      instances: 2,
      healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 10, intervalSeconds: 1, maxConsecutiveFailures: 3 }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const tasks = await waitUntil(async () => {
      const t = await tasksOf('/docker/web');
      return t.length === 2 && t.every((x) => x.state === 'TASK_RUNNING' && x.healthCheckResults?.[0]?.alive === true) ? t : undefined;
    }, 'two healthy Docker instances', 60_000);
    for (const t of tasks) {
      const body = await (await fetch(`http://127.0.0.1:${t.ports[0]}/`)).text();
      assert.equal(body.trim(), `hello from ${t.id}`);
    }
    await waitUntil(async () => ((await api('GET', '/v2/deployments')).json as unknown as unknown[]).length === 0, 'the deployment to end');
    assert.equal((await api('DELETE', '/v2/apps/docker/web')).status, 200);
    await waitUntil(async () => (await docker!.listContainers({ filters: { label: ['MARATHON_APP_ID=/docker/web'] } })).length === 0, 'the containers to stop', 30_000);
  });

  it('fetches an app\'s files into the sandbox before it starts (a file URI, an executable path)', async () => {
    writeFileSync(join(dir, 'greeting.txt'), 'hello fetched\n');
    writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\necho "ran with $(cat greeting.txt)" > out.txt\nexec sleep 600\n');
    const created = await api('POST', '/v2/apps', {
      id: '/fetched',
      cmd: './run.sh',
      cpus: 0.1,
      mem: 16,
      fetch: [{ uri: `file://${join(dir, 'greeting.txt')}` }, { uri: join(dir, 'run.sh'), executable: true }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const [task] = await waitUntil(async () => {
      const t = await tasksOf('/fetched');
      return t.length === 1 && t[0]!.state === 'TASK_RUNNING' ? t : undefined;
    }, 'the fetching app running');
    const frameworkId = (await api('GET', '/v2/info')).json['frameworkId'] as string;
    const out = await waitUntil(async () => {
      const r = await fetch(`${server.master.url}/files/read?framework_id=${frameworkId}&task_id=${encodeURIComponent(task!.id)}&path=out.txt&offset=0`);
      if (r.status !== 200) return undefined;
      const j = (await r.json()) as { data: string };
      return j.data.length > 0 ? j.data : undefined;
    }, 'out.txt in the sandbox');
    assert.equal(out, 'ran with hello fetched\n');
  });
});
