import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Dockerode from 'dockerode';
import { up, type Up } from '../src/server/up.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 14, section 4: many services released and promoted at once. 20 delivery services (each
// its own app /dev/par-NN), a release each of one image by digest, and 20 promotions POSTed at
// the same moment: every POST answers 201 (none 409 for another service's promotion, none 500),
// every promotion ends `succeeded`, and each is exactly one Marathon deployment, of its own app
// only (every deployment of the services framework is followed on /v2/events from before the
// POSTs, so none is missed, however short). Twice: the first round creates the apps, the second
// (another release of the same digest: a new definition) upgrades them, after which each app has
// exactly two versions. Over `slipway up` with the docker containerizer, the real engine and the
// registry on 127.0.0.1:5000.

const REGISTRY = process.env['SLIPWAY_REGISTRY'] ?? '127.0.0.1:5000';
const NS = `slipway-e2e-${randomBytes(4).toString('hex')}`;
const LABEL = `slipway.e2e=delivery-parallel-${NS}`;
const SERVICES = Array.from({ length: 20 }, (_, i) => `par-${String(i + 1).padStart(2, '0')}`);

interface Promotion {
  id: string;
  state: string;
  reason?: string;
  deploymentId?: string;
  appId: string;
}

let skip: string | false = false;

describe('20 delivery services promoted at once', { timeout: 300_000 }, () => {
  let dir: string;
  let server: Up | undefined;
  let docker: Dockerode;
  let digest = '';
  const imageTag = `${REGISTRY}/${NS}/par:v1`;
  /** Deployment id → the apps its plan touches, from every deployment event since before the first POST. */
  const deployments = new Map<string, Set<string>>();
  const events = new AbortController();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-delivery-parallel-'));
    docker = new Dockerode();
    try {
      await docker.ping();
      const r = await fetch(`http://${REGISTRY}/v2/`);
      if (r.status !== 200) throw new Error(`the registry at ${REGISTRY} answers ${r.status}`);
    } catch (e) {
      if (process.env['CI']) throw new Error(`CI needs a Docker engine and the registry on ${REGISTRY} for these tests: ${(e as Error).message}`, { cause: e });
      skip = `no Docker engine or registry: ${(e as Error).message}`;
      return;
    }
    // The image every release names by digest: the local busybox image, pushed under a name of this run.
    const busybox = await ensureBusyboxImage(docker);
    await docker.getImage(busybox).tag({ repo: `${REGISTRY}/${NS}/par`, tag: 'v1' });
    const push = (await docker.getImage(`${REGISTRY}/${NS}/par`).push({ tag: 'v1', authconfig: { serveraddress: REGISTRY } })) as NodeJS.ReadableStream;
    digest = await new Promise<string>((resolve, reject) => {
      docker.modem.followProgress(push, (err: Error | null, out: { error?: string; aux?: { Digest?: string } }[]) => {
        const d = out?.find((m) => m.aux?.Digest !== undefined)?.aux?.Digest;
        const failed = out?.find((m) => m.error !== undefined)?.error;
        if (err !== null || failed !== undefined || d === undefined) reject(new Error(`docker push of ${imageTag} failed: ${err?.message ?? failed ?? 'no digest'}`));
        else resolve(d);
      });
    });
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['docker'], resources: 'cpus:2;mem:4096;disk:20000;ports:[32600-32699]' });

    assert.equal((await api('PUT', '/deliver/v1/environments/dev', { order: 1, deadlineSeconds: 120 })).status, 201);
    for (const name of SERVICES) {
      const r = await api('PUT', `/deliver/v1/services/${name}`, {
        image: `${NS}/par`,
        app: {
          // Exits on SIGTERM (a PID 1 without a handler ignores it, and each kill of the upgrade would wait out the grace period).
          cmd: `trap 'exit 0' TERM; mkdir -p /tmp/www && echo ${name} > /tmp/www/index.html && httpd -f -p $PORT0 -h /tmp/www & wait`,
          container: { type: 'DOCKER', docker: { network: 'HOST', parameters: [{ key: 'label', value: LABEL }] } },
          cpus: 0.01,
          mem: 16,
          instances: 1,
          healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 5, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 3 }],
        },
      });
      assert.equal(r.status, 201, r.text);
    }
    await followDeployments();
  });

  after(async () => {
    events.abort();
    if (server !== undefined) {
      await Promise.all(SERVICES.map((name) => api('DELETE', `/v2/apps/dev/${name}?force=true`).catch(() => undefined)));
      await waitUntil(async () => (await docker.listContainers({ filters: { label: [LABEL] } })).length === 0, 'the containers to stop', 60_000).catch(() => undefined);
      await server.close();
    }
    killProcessesUnder(dir);
    if (skip === false) {
      for (const c of await docker.listContainers({ all: true, filters: { label: [LABEL] } }).catch(() => [])) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      await docker.getImage(imageTag).remove().catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function api(method: string, path: string, body?: unknown) {
    const r = await fetch(`${server!.master.url}${path}`, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  }

  /** Reads /v2/events in the background into `deployments`; resolves once the stream is attached. */
  async function followDeployments(): Promise<void> {
    const r = await fetch(`${server!.master.url}/v2/events`, { headers: { Accept: 'text/event-stream' }, signal: events.signal });
    assert.equal(r.status, 200);
    const body = r.body!;
    void (async () => {
      const decoder = new TextDecoder();
      let rest = '';
      for await (const chunk of body) {
        rest += decoder.decode(chunk as Uint8Array, { stream: true });
        const lines = rest.split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) {
          if (!line.startsWith('data:')) continue;
          const e = JSON.parse(line.slice(5)) as { eventType?: string; plan?: { id: string; steps: { actions: { app: string }[] }[] } };
          if (e.plan === undefined || !String(e.eventType).startsWith('deployment_')) continue;
          const apps = deployments.get(e.plan.id) ?? new Set<string>();
          for (const s of e.plan.steps) for (const a of s.actions) apps.add(a.app);
          deployments.set(e.plan.id, apps);
        }
      }
    })().catch(() => undefined);
  }

  /** Releases `version` of every service, POSTs all promotions at once, and waits for every one to end. */
  async function promoteAll(version: string): Promise<Promotion[]> {
    for (const name of SERVICES) {
      const r = await api('POST', `/deliver/v1/services/${name}/releases`, { version, images: [{ name: imageTag, digest }] });
      assert.equal(r.status, 201, r.text);
    }
    const answers = await Promise.all(SERVICES.map(async (name) => ({ name, ...(await api('POST', `/deliver/v1/services/${name}/promotions`, { release: version, to: 'dev' })) })));
    const refused = answers.filter((a) => a.status !== 201).map((a) => `${a.name}: ${a.status} ${a.text}`);
    if (refused.some((r) => r.includes('cannot be placed'))) assert.fail(`the agent has no room for ${SERVICES.length} instances of cpus 0.01 and mem 16: ${refused[0]}`);
    assert.deepEqual(refused, [], 'every promotion is accepted, none refused for another service\'s, none a 500');
    const ids = answers.map((a) => ({ name: a.name, id: a.json()['id'] as string }));
    return waitUntil(
      async () => {
        const ps = await Promise.all(ids.map(async ({ name, id }) => (await api('GET', `/deliver/v1/services/${name}/promotions/${id}`)).json() as unknown as Promotion));
        return ps.every((p) => p.state === 'succeeded' || p.state === 'failed' || p.state === 'rejected') ? ps : undefined;
      },
      `the ${SERVICES.length} promotions of ${version} to end`,
      180_000,
    );
  }

  /** Each promotion's deployment is its own and touches its app alone; no other deployment touched these apps since `since`. */
  function assertOneDeploymentEach(promotions: Promotion[], since: Set<string>): void {
    assert.deepEqual(promotions.filter((p) => p.state !== 'succeeded').map((p) => `${p.id}: ${p.state} ${p.reason ?? ''}`), [], 'every promotion succeeds');
    const ids = promotions.map((p) => p.deploymentId);
    assert.equal(new Set(ids).size, SERVICES.length, `one deployment per promotion: ${JSON.stringify(ids)}`);
    const ours = new Set(promotions.map((p) => p.appId));
    const touching = [...deployments].filter(([id, apps]) => !since.has(id) && [...apps].some((a) => ours.has(a)));
    assert.deepEqual(touching.map(([id]) => id).sort(), [...ids].sort(), 'the deployments of these apps are the promotions\' and no others (none lost, none doubled)');
    for (const p of promotions) assert.deepEqual([...deployments.get(p.deploymentId!)!], [p.appId], `deployment ${p.deploymentId} of ${p.id} changes its own app only`);
  }

  it('creates the 20 apps: every promotion accepted and succeeded, each one deployment of its own app', { skip }, async () => {
    const since = new Set(deployments.keys());
    const promotions = await promoteAll('v1');
    // The events of the last deployments may trail their end by a moment.
    await waitUntil(() => promotions.every((p) => p.deploymentId !== undefined && deployments.has(p.deploymentId)), 'every promotion\'s deployment on /v2/events', 10_000).catch(() => undefined);
    assertOneDeploymentEach(promotions, since);
    const deploymentsLeft = (await api('GET', '/v2/deployments')).json() as unknown as unknown[];
    assert.deepEqual(deploymentsLeft, []);
    for (const name of SERVICES) {
      const app = (await api('GET', `/v2/apps/dev/${name}`)).json()['app'] as { container: { docker: { image: string } }; tasksHealthy: number; labels: Record<string, string> };
      assert.equal(app.container.docker.image, `${REGISTRY}/${NS}/par@${digest}`);
      assert.equal(app.tasksHealthy, 1, name);
      assert.equal(app.labels['SLIPWAY_DELIVERY_RELEASE'], 'v1');
    }
  });

  it('upgrades the 20 apps at once to another release of the same digest: one deployment each, two versions each', { skip }, async () => {
    const since = new Set(deployments.keys());
    const promotions = await promoteAll('v2');
    await waitUntil(() => promotions.every((p) => p.deploymentId !== undefined && deployments.has(p.deploymentId)), 'every promotion\'s deployment on /v2/events', 10_000).catch(() => undefined);
    assertOneDeploymentEach(promotions, since);
    for (const name of SERVICES) {
      const versions = (await api('GET', `/v2/apps/dev/${name}/versions`)).json()['versions'] as string[];
      assert.equal(versions.length, 2, `${name}: ${JSON.stringify(versions)}`);
      const app = (await api('GET', `/v2/apps/dev/${name}`)).json()['app'] as { tasksHealthy: number; labels: Record<string, string> };
      assert.equal(app.labels['SLIPWAY_DELIVERY_RELEASE'], 'v2');
      assert.equal(app.tasksHealthy, 1, name);
    }
  });
});
