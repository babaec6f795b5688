import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runAuthorization } from '../src/sim/bench-token.ts';
import { up, type Up } from '../src/server/up.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// A real client nobody here wrote, marathon-event-bus-client (CommonJS, no type declarations:
// typed by its README), follows /v2/events of `slipway up` while a real deployment runs.
interface MarathonEventBusClient extends EventEmitter {
  subscribe(): void;
  /** The EventSource underneath; closing it ends the connection without reconnecting. */
  es: { close(): void };
}
type MarathonEventBusClientCtor = new (options: {
  marathonHost: string;
  marathonPort: number;
  eventTypes: string[];
  marathonHeaders?: Record<string, string>;
  handlers: Record<string, (name: string, data: unknown) => void>;
}) => MarathonEventBusClient;
const MarathonEventBusClient = createRequire(import.meta.url)('marathon-event-bus-client') as MarathonEventBusClientCtor;

interface Seen {
  name: string;
  data: Record<string, unknown>;
}

describe('Marathon events of a deployment, through marathon-event-bus-client', () => {
  let server: Up;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-events-'));
    server = await up({ host: '127.0.0.1', port: 0, dataDir: dir, containerizers: ['process'], resources: 'cpus:2;mem:1024;disk:1000;ports:[31000-31099]' });
  });
  after(async () => {
    await server.close();
    // Tasks outlive their agent by design: end them with the test.
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('sees deployment_info, status updates and deployment_success for a POSTed app, in that order (and one api_post_event on the bus)', async () => {
    const seen: Seen[] = [];
    const types = ['deployment_info', 'deployment_step_success', 'deployment_success', 'status_update_event'];
    const record = (name: string, data: unknown) => seen.push({ name, data: data as Record<string, unknown> });
    const port = Number(new URL(server.master.url).port);
    // Authenticated as Marathon clients are: the client's own Authorization header option.
    const client = new MarathonEventBusClient({ marathonHost: '127.0.0.1', marathonPort: port, marathonHeaders: { Authorization: runAuthorization() }, eventTypes: types, handlers: Object.fromEntries(types.map((t) => [t, record])) });
    const subscribed = new Promise<void>((resolve) => client.once('subscribed', () => resolve()));
    client.on('error', () => undefined);
    client.subscribe();
    await subscribed;
    // The client knows no api_post_event (its README's list predates it): watch the bus for it.
    const posts: Record<string, unknown>[] = [];
    const unsubscribe = server.apps.bus.subscribe(new Set(['api_post_event']), (e) => void posts.push(e as unknown as Record<string, unknown>));
    try {
      const r = await fetch(`${server.master.url}/v2/apps`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ id: '/events/sleeper', cmd: 'sleep 600', cpus: 0.1, mem: 16, instances: 2 }),
      });
      assert.equal(r.status, 201);
      const deploymentId = r.headers.get('marathon-deployment-id');
      assert.ok(deploymentId);
      const success = await waitUntil(
        () => seen.find((s) => s.name === 'deployment_success' && s.data['id'] === deploymentId),
        'deployment_success of the POST',
      );
      const info = seen.find((s) => s.name === 'deployment_info' && (s.data['plan'] as { id?: string } | undefined)?.id === deploymentId);
      assert.ok(info, `no deployment_info for ${deploymentId}: ${JSON.stringify(seen.map((s) => s.name))}`);
      const running = seen.filter((s) => s.name === 'status_update_event' && s.data['appId'] === '/events/sleeper' && s.data['taskStatus'] === 'TASK_RUNNING');
      assert.equal(running.length, 2, 'both instances reported running');
      assert.ok(seen.indexOf(info) < seen.indexOf(running[0]!) && seen.indexOf(running[1]!) < seen.indexOf(success), 'info, then the instances, then success');
      assert.equal(typeof success.data['timestamp'], 'string');
      assert.deepEqual(
        posts.map((p) => (p['appDefinition'] as { id: string }).id),
        ['/events/sleeper'],
      );
      assert.deepEqual((success.data['plan'] as { steps: unknown[] }).steps.length > 0, true);
    } finally {
      client.es.close();
      unsubscribe();
    }
  });

  it('lists apps (JSON text cached per task and per version) exactly as each app shows alone, also after a task changes', async () => {
    const list = async () => {
      const r = await fetch(`${server.master.url}/v2/apps?embed=apps.tasks&embed=apps.readiness&embed=apps.lastTaskFailure`);
      assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
      return ((await r.json()) as { apps: Record<string, unknown>[] }).apps;
    };
    const alone = async (id: string) => ((await (await fetch(`${server.master.url}/v2/apps${id}`)).json()) as { app: Record<string, unknown> }).app;
    const compare = async () => {
      for (const app of await list()) assert.deepEqual(app, await alone(app['id'] as string));
    };
    await compare();
    const before = (await alone('/events/sleeper'))['tasks'] as { id: string; state: string }[];
    assert.equal(before.length, 2);
    const killed = before[0]!.id;
    const r = await fetch(`${server.master.url}/v2/apps/events/sleeper/tasks/${killed}`, { method: 'DELETE' });
    assert.equal(r.status, 200);
    // The killed task changes state, then goes; its replacement appears: the list follows.
    await waitUntil(async () => {
      const tasks = ((await list())[0]!['tasks'] as { id: string; state: string }[]);
      return tasks.length === 2 && !tasks.some((t) => t.id === killed) && tasks.every((t) => t.state === 'TASK_RUNNING');
    }, 'the replacement running in the list');
    await compare();
  });
});
