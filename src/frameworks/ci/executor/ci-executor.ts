import { readFile } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join, resolve } from 'node:path';
import type Dockerode from 'dockerode';
import type { DistributiveOmit } from '../../../core/distributive-omit.ts';
import WebSocket from 'ws';
import { defaultBuildId } from '../engine/build-context.ts';
import { collectArtifacts } from '../engine/collect-artifacts.ts';
import type { HostPath } from '../engine/host-paths.ts';
import { removeBuildContainers } from '../engine/image-step.ts';
import { runPipeline, type PipelineEvent } from '../engine/run-pipeline.ts';
import { EXECUTOR_HEARTBEAT_SECONDS, MISSED_HEARTBEATS, type BuildSpec, type ExecutorToServer, type ServerToExecutor } from '../executor-protocol.ts';
import { checkoutCommit } from '../git/git-source.ts';

export interface ExecutorOptions {
  /** CI's base URL, e.g. http://127.0.0.1:5050. */
  serverUrl: string;
  id: string;
  /** The launch token; replaced by the session token of CI's first WELCOME. */
  token: string;
  label: string;
  /** Workspaces and artifacts go here (the task's sandbox). */
  workDir: string;
  /** The agent host's engine, for image steps. */
  docker?: Dockerode;
  /** Where this executor's paths are on the engine's host (engine/host-paths.ts); default the same. */
  hostPath?: HostPath;
  /** How long to stay alive idle without CI before exiting (default 60 s). */
  lostIdleExitMs?: number;
  /**
   * Aborted (SIGTERM: the agent kills the task): the running build stops, the containers of its
   * image steps are removed (they run beside the executor on the engine, so killing the
   * executor's process group or container would leave them), and the executor exits with 143.
   */
  terminate?: AbortSignal;
  log?: (line: string) => void;
}

type Report = Exclude<ExecutorToServer, { type: 'HELLO' } | { type: 'HEARTBEAT' }>;

/**
 * The CI executor (`slipway ci-executor`): a task CI launched on an agent. It connects back to
 * CI, takes builds one at a time (check out the commit, run the pipeline with the engine, upload
 * artifacts) and reports them over its stream, per executor-protocol.ts: reports carry a sequence
 * number and are kept until CI acknowledges them, and sent again after a reconnect.
 * Resolves with the exit code when it is told to shut down (0) or gives up on CI (1).
 */
export async function runExecutor(o: ExecutorOptions): Promise<number> {
  const log = o.log ?? (() => undefined);
  let socket: WebSocket | undefined;
  let running: { spec: BuildSpec; abort: AbortController } | undefined;
  /** Reports not yet acknowledged, in order. */
  let pending: Report[] = [];
  let seq = 0;
  let lostSince: number | undefined = Date.now();
  let done: ((code: number) => void) | undefined;
  const finished = new Promise<number>((r) => (done = r));
  let shutdownAsked = false;
  let lastHeard = Date.now();
  let backoff = 200;
  /** What this executor proves itself with: the launch token, then the session token CI gives in WELCOME. */
  let token = o.token;

  const send = (m: ExecutorToServer) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(m));
  };
  // Reports go out only once CI has welcomed this stream and the unacknowledged ones were sent
  // again: a live report overtaking the resent older ones would make CI skip those as seen.
  let welcomed = false;
  const report = (m: DistributiveOmit<Report, 'seq'>) => {
    const r = { ...m, seq: ++seq } as Report;
    pending.push(r);
    if (welcomed) send(r);
  };

  const connect = () => {
    const url = new URL('/ci/v1/executor-stream', o.serverUrl);
    url.searchParams.set('executor', o.id);
    url.searchParams.set('token', token);
    const ws = new WebSocket(url);
    socket = ws;
    ws.on('open', () => {
      backoff = 200;
      lastHeard = Date.now();
      // The build it runs, or the one whose reports CI has not acknowledged yet (it may have
      // finished while CI was away): CI must not give that build up.
      const last = pending[pending.length - 1];
      const inFlight = running !== undefined ? { job: running.spec.job, number: running.spec.number } : last !== undefined ? { job: last.job, number: last.number } : undefined;
      send({ type: 'HELLO', executorId: o.id, label: o.label, hostname: osHostname(), ...(inFlight !== undefined ? { running: inFlight } : {}) });
    });
    ws.on('message', (data) => {
      lastHeard = Date.now();
      let m: ServerToExecutor;
      try {
        m = JSON.parse(String(data)) as ServerToExecutor;
      } catch {
        return;
      }
      onMessage(m);
    });
    ws.on('close', () => {
      if (socket === ws) {
        socket = undefined;
        welcomed = false;
      }
      lostSince ??= Date.now();
      if (done === undefined) return;
      setTimeout(connect, backoff).unref();
      backoff = Math.min(backoff * 2, 5000);
    });
    ws.on('error', () => undefined);
  };

  const onMessage = (m: ServerToExecutor) => {
    switch (m.type) {
      case 'WELCOME':
        lostSince = undefined;
        welcomed = true;
        if (m.token !== undefined) token = m.token;
        // What CI has not acknowledged goes again: it ignores what it has seen.
        for (const r of pending) send(r);
        return;
      case 'ERROR':
        log(`CI refused this executor: ${m.message}`);
        exit(1);
        return;
      case 'ACK':
        pending = pending.filter((r) => r.seq > m.seq);
        if (shutdownAsked && running === undefined && pending.length === 0) exit(0);
        return;
      case 'BUILD':
        if (running !== undefined) return;
        void runBuild(m.build);
        return;
      case 'CANCEL':
        if (running !== undefined && running.spec.job === m.job && running.spec.number === m.number) running.abort.abort();
        return;
      case 'SHUTDOWN':
        shutdownAsked = true;
        if (running === undefined && pending.length === 0) exit(0);
        return;
      case 'HEARTBEAT':
        return;
    }
  };

  const runBuild = async (spec: BuildSpec) => {
    const abort = new AbortController();
    running = { spec, abort };
    const ids = { job: spec.job, number: spec.number };
    const workspace = resolve(o.workDir, 'workspace', `${spec.job}-${spec.number}`);
    let status: 'success' | 'failure' | 'cancelled' | 'error';
    let error: string | undefined;
    let artifacts: string[] = [];
    try {
      log(`build ${spec.job} #${spec.number}: checking out ${spec.commit.slice(0, 12)} of ${spec.repo}`);
      await checkoutCommit(spec.repo, spec.commit, workspace);
      const result = await runPipeline(spec.pipeline, {
        workspace,
        build: {
          jobName: spec.job,
          number: spec.number,
          event: spec.event,
          commitSha: spec.commit,
          ...(spec.branch !== undefined ? { branch: spec.branch } : {}),
          ...(spec.tag !== undefined ? { tag: spec.tag } : {}),
          env: spec.env,
          ...(spec.secrets !== undefined ? { secrets: spec.secrets } : {}),
          repo: spec.repo,
          executorLabel: o.label,
        },
        ...(o.docker !== undefined ? { docker: o.docker } : {}),
        ...(o.hostPath !== undefined ? { hostPath: o.hostPath } : {}),
        ...(spec.artifactStores !== undefined ? { artifactStores: spec.artifactStores } : {}),
        ...(spec.registries !== undefined ? { registries: spec.registries } : {}),
        // Asked for when a deploy step runs, with the token this executor holds then.
        delivery: { open: (service: string) => deployToken(o, token, spec, service) },
        signal: abort.signal,
        onEvent: (e: PipelineEvent) => {
          if (e.type === 'step-started') report({ type: 'STEP_STARTED', ...ids, step: e.step, at: e.at });
          else if (e.type === 'log') report({ type: 'LOG', ...ids, step: e.step, at: e.at, text: e.text });
          else
            report({
              type: 'STEP_FINISHED',
              ...ids,
              step: e.step,
              at: e.at,
              status: e.result.status,
              ...(e.result.exitCode !== undefined ? { exitCode: e.result.exitCode } : {}),
              ...(e.result.error !== undefined ? { error: e.result.error } : {}),
              ...(e.result.outputs !== undefined ? { outputs: e.result.outputs } : {}),
            });
        },
      });
      status = result.status;
      if (result.error !== undefined) error = result.error;
      if (spec.pipeline.artifacts.length > 0 && status !== 'cancelled') {
        const dest = join(o.workDir, 'artifacts', `${spec.job}-${spec.number}`);
        const collected = await collectArtifacts(workspace, spec.pipeline.artifacts, dest);
        for (const f of collected.files) {
          await upload(o, token, spec, f.path, join(dest, f.path));
          artifacts.push(f.path);
        }
      }
    } catch (e) {
      status = abort.signal.aborted ? 'cancelled' : 'error';
      error = e instanceof Error ? e.message : String(e);
      artifacts = [];
    }
    running = undefined;
    report({ type: 'BUILD_DONE', ...ids, at: Date.now(), status, ...(error !== undefined ? { error } : {}), artifacts });
    log(`build ${spec.job} #${spec.number}: ${status}${error !== undefined ? ` (${error})` : ''}`);
  };

  const heartbeat = setInterval(() => {
    send({ type: 'HEARTBEAT' });
    const now = Date.now();
    if (socket !== undefined && now - lastHeard > MISSED_HEARTBEATS * EXECUTOR_HEARTBEAT_SECONDS * 1000) socket.terminate();
    // Idle and without CI for long: CI is gone or forgot this executor; give the resources back.
    if (running === undefined && lostSince !== undefined && now - lostSince > (o.lostIdleExitMs ?? 60_000)) exit(1);
  }, EXECUTOR_HEARTBEAT_SECONDS * 1000);

  const exit = (code: number) => {
    const d = done;
    done = undefined;
    clearInterval(heartbeat);
    socket?.close();
    d?.(code);
  };

  o.terminate?.addEventListener(
    'abort',
    () => {
      const r = running;
      log(`terminated${r !== undefined ? `: stopping build ${r.spec.job} #${r.spec.number} and removing its step containers` : ''}`);
      r?.abort.abort();
      const removed = r !== undefined && o.docker !== undefined ? removeBuildContainers(o.docker, defaultBuildId(r.spec.job, r.spec.number)) : Promise.resolve(0);
      void removed.catch(() => 0).then(() => exit(143));
    },
    { once: true },
  );

  connect();
  return finished;
}

async function upload(o: ExecutorOptions, token: string, spec: BuildSpec, path: string, file: string): Promise<void> {
  const url = new URL(`/ci/v1/jobs/${encodeURIComponent(spec.job)}/builds/${spec.number}/artifacts/${path.split('/').map(encodeURIComponent).join('/')}`, o.serverUrl);
  url.searchParams.set('executor', o.id);
  url.searchParams.set('token', token);
  const r = await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: await readFile(file) });
  if (!r.ok) throw new Error(`artifact ${path} not stored by CI: ${r.status} ${await r.text()}`);
}

/** A deploy step's token for `service`, from CI (which checks that this executor runs the build and the job deploys it). */
async function deployToken(o: ExecutorOptions, token: string, spec: BuildSpec, service: string): Promise<{ url: string; token: string }> {
  const url = new URL(`/ci/v1/jobs/${encodeURIComponent(spec.job)}/builds/${spec.number}/deploy-token`, o.serverUrl);
  const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ executor: o.id, token, service }), signal: AbortSignal.timeout(30_000) });
  const text = await r.text();
  if (r.status !== 201) {
    let message = text.slice(0, 500);
    try {
      const m = (JSON.parse(text) as { message?: unknown }).message;
      if (typeof m === 'string') message = m;
    } catch {
      // Not JSON: the text as it is.
    }
    throw new Error(`CI refused a deploy token (${r.status}): ${message}`);
  }
  const answer = JSON.parse(text) as { url?: unknown; token?: unknown };
  if (typeof answer.url !== 'string' || typeof answer.token !== 'string') throw new Error('CI answered a deploy token without url and token');
  return { url: answer.url, token: answer.token };
}
