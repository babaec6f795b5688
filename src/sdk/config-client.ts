import { authHeaders, defaultToken } from './credentials.ts';

/** A failed call of the config center: its status and the body's message (and details). */
export class ConfigRequestFailed extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: { field: string; message: string }[] = [],
  ) {
    super(message);
  }
}

export interface ConfigReleaseView {
  service: string;
  env: string;
  version: number;
  templateCommit: string;
  valuesVersion: number;
  sharedVersion: number;
  change: string;
  rolledBackTo?: number;
  files: { name: string; destination: string; mode: string; sha256: string }[];
  note: string;
  createdBy: string;
  createdAt: string;
  rollout?: { id: string; state: 'running' | 'succeeded' | 'failed'; reason?: string };
  gray?: { id: string; state: 'active' | 'promoted' | 'abandoned'; main: number; size?: number; members: string[]; rollout?: { id: string; state: 'running' | 'succeeded' | 'failed'; reason?: string }; reason?: string };
}

/** How a release or rollback is made and rolled out; `gray`: a gray release, for whom (release only). */
export interface ReleaseOptions {
  note?: string;
  rollout?: 'restart' | 'hot' | 'none';
  deadlineSeconds?: number;
  gray?: { instances: number } | { percent: number } | { taskIds: string[] } | { agents: Record<string, string> };
}

export interface ConfigRolloutView {
  id: string;
  service: string;
  env: string;
  release: number;
  appId: string;
  previous?: number;
  isRollback: boolean;
  state: 'running' | 'succeeded' | 'failed';
  reason?: string;
  startedAt: number;
  deadline: number;
  endedAt?: number;
  rolledBackBy?: string;
  progress: { onRelease: number; wanted: number; deploymentRunning: boolean; waitingFor?: string };
}

/** A client of `/config/v1` (docs/config.md), for the CLI and tools. */
export class ConfigClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined = defaultToken(),
  ) {}

  private async call(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<{ status: number; text: string }> {
    let r: Response;
    try {
      r = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: { ...authHeaders(this.token), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signal !== undefined ? { signal } : {}),
      });
    } catch (e) {
      throw new ConfigRequestFailed(0, `cannot reach ${this.baseUrl}: ${e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)}`);
    }
    const text = await r.text();
    if (!r.ok && r.status !== 304) {
      let message = text;
      let details: { field: string; message: string }[] = [];
      try {
        const j = JSON.parse(text) as { message?: string; details?: { field: string; message: string }[] };
        message = j.message ?? text;
        details = j.details ?? [];
      } catch {
        // Not JSON: the text is the message.
      }
      throw new ConfigRequestFailed(r.status, `${method} ${path}: ${r.status} ${message}`, details);
    }
    return { status: r.status, text };
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return JSON.parse((await this.call(method, path, body)).text) as T;
  }

  private scope(service: string, env: string): string {
    return `/config/v1/services/${encodeURIComponent(service)}/environments/${encodeURIComponent(env)}`;
  }

  services(): Promise<{ services: { name: string; repo: string; ref: string; files: unknown[] }[] }> {
    return this.json('GET', '/config/v1/services');
  }

  putService(name: string, doc: unknown): Promise<unknown> {
    return this.json('PUT', `/config/v1/services/${encodeURIComponent(name)}`, doc);
  }

  putEnvironment(name: string, description?: string): Promise<unknown> {
    return this.json('PUT', `/config/v1/environments/${encodeURIComponent(name)}`, description !== undefined ? { description } : {});
  }

  /** `service` '*' is the environment's shared values. */
  private valuesPath(service: string, env: string): string {
    return service === '*' ? `/config/v1/environments/${encodeURIComponent(env)}/values` : `${this.scope(service, env)}/values`;
  }

  values(service: string, env: string): Promise<{ version: number; values: Record<string, unknown> }> {
    return this.json('GET', this.valuesPath(service, env));
  }

  patchValues(service: string, env: string, change: { set?: Record<string, unknown>; unset?: string[] }): Promise<{ version: number; values: Record<string, unknown> }> {
    return this.json('PATCH', this.valuesPath(service, env), change);
  }

  release(service: string, env: string, o: ReleaseOptions = {}): Promise<{ change: string; release?: ConfigReleaseView }> {
    return this.json('POST', `${this.scope(service, env)}/releases`, o);
  }

  releases(service: string, env: string): Promise<{ releases: ConfigReleaseView[] }> {
    return this.json('GET', `${this.scope(service, env)}/releases`);
  }

  diff(service: string, env: string, a: number, b: number): Promise<{ files: { name: string; patch: string }[] }> {
    return this.json('GET', `${this.scope(service, env)}/releases/${a}/diff/${b}`);
  }

  preview(service: string, env: string): Promise<{ change: string; files: { name: string; patch: string }[] }> {
    return this.json('POST', `${this.scope(service, env)}/preview`, {});
  }

  rollback(service: string, env: string, to: number, o: ReleaseOptions = {}): Promise<ConfigReleaseView> {
    return this.json('POST', `${this.scope(service, env)}/rollback`, { to, ...o });
  }

  /** Completes a gray release: the environment's release from now on, rolled out to every instance. */
  promote(service: string, env: string, version: number, o: Omit<ReleaseOptions, 'gray' | 'note'> = {}): Promise<ConfigReleaseView> {
    return this.json('POST', `${this.scope(service, env)}/releases/${version}/promote`, o);
  }

  /** Ends a gray release: its instances go back to the environment's release. */
  abandon(service: string, env: string, version: number, o: { rollout?: ReleaseOptions['rollout']; note?: string } = {}): Promise<ConfigReleaseView> {
    return this.json('POST', `${this.scope(service, env)}/releases/${version}/abandon`, o);
  }

  rollout(service: string, env: string, id: string): Promise<ConfigRolloutView> {
    return this.json('GET', `${this.scope(service, env)}/rollouts/${encodeURIComponent(id)}`);
  }

  instances(service: string, env: string): Promise<{ appId?: string; release?: number; instances: { taskId: string; host: string; state: string; release?: number; stale: boolean; why: string[] }[] }> {
    return this.json('GET', `${this.scope(service, env)}/instances`);
  }

  /** `instance`: the task asking (MESOS_TASK_ID), which a gray release may be for. */
  files(service: string, env: string, instance?: string): Promise<{ release: number; files: { name: string; destination: string; mode: string; sha256: string; url: string }[] }> {
    return this.json('GET', `/config/v1/files?service=${encodeURIComponent(service)}&env=${encodeURIComponent(env)}${instance !== undefined ? `&instance=${encodeURIComponent(instance)}` : ''}`);
  }

  async fileContent(url: string): Promise<string> {
    return (await this.call('GET', url)).text;
  }

  /** Long poll: the first release newer than `since`, or undefined when none came within `waitSeconds`. */
  async watch(service: string, env: string, since: number, waitSeconds: number, signal?: AbortSignal, instance?: string): Promise<ConfigReleaseView | undefined> {
    const r = await this.call('GET', `/config/v1/watch?service=${encodeURIComponent(service)}&env=${encodeURIComponent(env)}&since=${since}&wait=${waitSeconds}${instance !== undefined ? `&instance=${encodeURIComponent(instance)}` : ''}`, undefined, signal);
    return r.status === 304 ? undefined : (JSON.parse(r.text) as { release: ConfigReleaseView }).release;
  }
}
