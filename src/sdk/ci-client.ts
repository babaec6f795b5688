import { authHeaders, defaultToken } from './credentials.ts';
/**
 * A client of CI's REST API (`/ci/v1`), for the CLI and other tools. It knows the wire shapes only
 * (not the CI framework's types): a build is what `GET /ci/v1/jobs/{job}/builds/{n}` answers.
 */
export interface CiBuildSummary {
  job: string;
  number: number;
  status: 'queued' | 'running' | 'success' | 'failure' | 'cancelled' | 'error';
  cause: { kind: string; description: string };
  commit?: string;
  tag?: string;
  branch?: string;
  /** The executor label it needs. */
  label: string;
  /** Times in ms since the epoch, as CI recorded them: queued, dispatched to an executor, ended. */
  queuedAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** The executor that ran it, and its agent's hostname. */
  executorId?: string;
  hostname?: string;
  error?: string;
  /** `startedAt` of a step is STEP_STARTED: the executor's time just before it starts the step. */
  steps: { name: string; status: string; exitCode?: number; startedAt?: number; finishedAt?: number; durationMs?: number }[];
  artifacts: string[];
}

/** The statuses after which a build changes no more. */
export const CI_BUILD_FINISHED: ReadonlySet<CiBuildSummary['status']> = new Set(['success', 'failure', 'cancelled', 'error']);

/** An executor as `GET /ci/v1/executors` lists it (a task CI launched on an agent). */
export interface CiExecutorSummary {
  id: string;
  label: string;
  taskId: string;
  agentId: string;
  hostname: string;
  state: string;
  /** When CI launched its task (ms since the epoch). */
  launchedAt: number;
  idleSince?: number;
  /** The build it runs, `job#number`. */
  build?: string;
}

/** CI answered with an error status; `body` is its JSON (or text). */
export class CiRequestFailed extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`CI answered ${status}: ${typeof body === 'string' ? body : JSON.stringify(body)}`);
  }
}

/** Nothing answered at the URL (refused, no such host, ...): the message says where and what to check. */
export class CiUnreachable extends Error {
  constructor(baseUrl: string, cause: unknown) {
    // fetch says "fetch failed"; the cause says why (an AggregateError, for localhost refused on
    // both IPv4 and IPv6, has an empty message but a code).
    const inner = cause instanceof Error ? (cause.cause as (Error & { code?: string }) | undefined) : undefined;
    const why = inner !== undefined ? inner.message || inner.code || String(inner) : cause instanceof Error ? cause.message : String(cause);
    super(`cannot reach CI at ${baseUrl} (${why}): is \`slipway up\` or \`slipway ci\` running there? Give its URL with --server`, { cause });
  }
}

export class CiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined = defaultToken(),
  ) {}

  /** fetch, with a failure to connect turned into CiUnreachable. */
  private async request(path: string, init?: RequestInit): Promise<Response> {
    let url: URL;
    try {
      url = new URL(path, this.baseUrl);
    } catch {
      throw new Error(`${this.baseUrl} is not a URL of CI (e.g. http://127.0.0.1:5050)`);
    }
    try {
      return await fetch(url, { ...init, headers: { ...authHeaders(this.token), ...(init?.headers as Record<string, string> | undefined) } });
    } catch (e) {
      throw new CiUnreachable(this.baseUrl, e);
    }
  }

  /** The body as text (logs); an error status throws CiRequestFailed. */
  private async text(path: string): Promise<string> {
    const r = await this.request(path);
    const text = await r.text();
    if (!r.ok) throw new CiRequestFailed(r.status, text);
    return text;
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.request(path, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    const parsed: unknown = text !== '' && (r.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text;
    if (!r.ok) throw new CiRequestFailed(r.status, parsed);
    return parsed as T;
  }

  jobs(): Promise<{ jobs: { name: string; repo: string; lastBuild: number | null }[] }> {
    return this.json('GET', '/ci/v1/jobs');
  }

  putJob(name: string, job: unknown): Promise<unknown> {
    return this.json('PUT', `/ci/v1/jobs/${encodeURIComponent(name)}`, job);
  }

  putExecutorSpec(label: string, spec: unknown): Promise<unknown> {
    return this.json('PUT', `/ci/v1/executors/${encodeURIComponent(label)}`, spec);
  }

  trigger(job: string, what: { tag?: string; branch?: string; commit?: string } = {}): Promise<CiBuildSummary> {
    return this.json('POST', `/ci/v1/jobs/${encodeURIComponent(job)}/builds`, what);
  }

  build(job: string, n: number): Promise<CiBuildSummary> {
    return this.json('GET', `/ci/v1/jobs/${encodeURIComponent(job)}/builds/${n}`);
  }

  /** The job's builds, newest first: at most `limit` (CI's default 50, its maximum 1000), numbered below `before` if given. */
  builds(job: string, page: { limit?: number; before?: number } = {}): Promise<{ builds: CiBuildSummary[] }> {
    const query = new URLSearchParams();
    if (page.limit !== undefined) query.set('limit', String(page.limit));
    if (page.before !== undefined) query.set('before', String(page.before));
    const q = query.toString();
    return this.json('GET', `/ci/v1/jobs/${encodeURIComponent(job)}/builds${q !== '' ? `?${q}` : ''}`);
  }

  /** The build's log as it is now (the whole build, or one step's): a finished build's is complete. */
  log(job: string, n: number, step?: string): Promise<string> {
    return this.text(`/ci/v1/jobs/${encodeURIComponent(job)}/builds/${n}/log${step !== undefined ? `?step=${encodeURIComponent(step)}` : ''}`);
  }

  /** The executor specs (by label) and the executors CI has now. */
  executors(): Promise<{ specs: ({ label: string } & Record<string, unknown>)[]; executors: CiExecutorSummary[] }> {
    return this.json('GET', '/ci/v1/executors');
  }

  queue(): Promise<{ queue: { job: string; number: number; why: string }[] }> {
    return this.json('GET', '/ci/v1/queue');
  }

  /** Streams the build's log until it ends, passing each piece to `onText`. */
  async followLog(job: string, n: number, onText: (text: string) => void): Promise<void> {
    const r = await this.request(`/ci/v1/jobs/${encodeURIComponent(job)}/builds/${n}/log?follow=true`);
    if (!r.ok || r.body === null) throw new CiRequestFailed(r.status, await r.text());
    const decoder = new TextDecoder();
    for await (const chunk of r.body) onText(decoder.decode(chunk as Uint8Array, { stream: true }));
  }
}
