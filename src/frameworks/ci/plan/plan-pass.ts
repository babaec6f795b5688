import { planOfferMode } from '../../kit/offer-manners.ts';
import { buildKey, type Build } from '../build.ts';
import type { CiView } from '../ci-state.ts';
import { planExecutorPool } from '../executor-pool.ts';
import type { ExecutorRecord } from '../executor-record.ts';
import { EXECUTOR_HEARTBEAT_SECONDS, MISSED_HEARTBEATS } from '../executor-protocol.ts';
import { buildOf, CiPlanBuilder, type CiPlan } from './ci-plan.ts';
import type { RegistryAccess } from '../engine/build-image-step.ts';
import type { ArtifactStoreAccess } from '../engine/publish-step.ts';
import { setOwnValue } from '../job-definition.ts';

/** An executor that has not said HELLO this long after its launch is given up. */
export const HELLO_TIMEOUT_MS = 60_000;
/** After a restart, how long running builds wait for their executor to come back. */
export const RECONNECT_GRACE_MS = 30_000;
/** An executor asked to SHUTDOWN that still runs after this long is killed. */
export const SHUTDOWN_GRACE_MS = 30_000;

/** What the pass reads of the executors' streams (ExecutorHub). */
export interface StreamView {
  isConnected(executorId: string): boolean;
  lastHeard(executorId: string): number | undefined;
  lostSince(executorId: string): number | undefined;
}

export interface CiPassContext {
  now: number;
  /** When this CI process started (executors get their grace to reconnect from then). */
  startedAt: number;
  subscribed: boolean;
  role: string;
  /** A secret of the secret store by name, for the jobs' `credentials` (absent: CI has no secret store). */
  credential?: (name: string) => string | undefined;
}

/**
 * One pass of CI's pool, pure:
 * 1. Executors that are gone by their streams: silent for MISSED_HEARTBEATS heartbeats (the
 *    stream is dropped), lost for longer than RECONNECT_GRACE_MS while idle or busy, never said
 *    HELLO within HELLO_TIMEOUT_MS (or RECONNECT_GRACE_MS after a restart, for one that ran a
 *    build), or ignoring SHUTDOWN for SHUTDOWN_GRACE_MS: killed and removed, their builds ended.
 * 2. The pool plan (executor-pool.ts) over what is left: builds handed to idle executors (BUILD
 *    goes out once the build is stored as running), idle executors past their time told to shut
 *    down, executors wanted per label (the needs, for the next offers), and why each build waits.
 * 3. The offer mode follows the needs (kit/offer-manners.ts).
 */
export function planPass(view: CiView, streams: StreamView, ctx: CiPassContext): CiPlan {
  const { now } = ctx;
  const b = new CiPlanBuilder();
  const removed = new Set<string>();
  const ended = new Set<string>();
  for (const e of view.executors.values()) {
    let connected = streams.isConnected(e.id);
    let lostAt = streams.lostSince(e.id);
    if (connected && now - (streams.lastHeard(e.id) ?? now) > MISSED_HEARTBEATS * EXECUTOR_HEARTBEAT_SECONDS * 1000) {
      b.log(`ci framework: executor ${e.id} silent for ${MISSED_HEARTBEATS} heartbeats: closing its stream`);
      b.plan.drops.push(e.id);
      connected = false;
      lostAt = now;
    }
    let why: string | undefined;
    if (lostAt !== undefined && !connected && (e.state === 'idle' || e.state === 'busy') && now - lostAt > RECONNECT_GRACE_MS) {
      why = `its stream was lost ${Math.round((now - lostAt) / 1000)} s ago and it did not come back`;
    } else if (e.state === 'launching' && !connected && now - Math.max(e.launchedAt, ctx.startedAt) > (e.build !== undefined ? RECONNECT_GRACE_MS : HELLO_TIMEOUT_MS)) {
      why = `it did not connect to CI within ${Math.round((now - Math.max(e.launchedAt, ctx.startedAt)) / 1000)} s`;
    } else if (e.state === 'stopping' && now - (e.idleSince ?? now) > SHUTDOWN_GRACE_MS) {
      why = 'it did not shut down';
    }
    if (why === undefined) continue;
    const build = buildOf(e, view);
    b.killExecutor(e);
    b.removeExecutor(e, build, why, now);
    removed.add(e.id);
    if (build !== undefined) ended.add(buildKey(build.job, build.number));
  }

  const alive = [...view.executors.values()].filter((e) => !removed.has(e.id));
  const builds = [...view.builds.values()].filter((x) => !ended.has(buildKey(x.job, x.number)));
  const runningPerJob = new Map<string, number>();
  for (const x of builds) if (x.status === 'running') runningPerJob.set(x.job, (runningPerJob.get(x.job) ?? 0) + 1);
  const pool = planExecutorPool({
    waiting: builds.filter((x) => x.status === 'queued').map((x) => ({ key: buildKey(x.job, x.number), job: x.job, label: x.label, queuedAt: x.queuedAt })),
    runningPerJob,
    concurrency: new Map([...view.jobs.values()].map((j) => [j.name, j.concurrency] as const)),
    // After a restart executors wait to reconnect as `launching`; one with a build is busy, not coming capacity.
    executors: alive.map((e) => ({ id: e.id, label: e.label, state: e.state === 'launching' && e.build !== undefined ? 'busy' : e.state, ...(e.idleSince !== undefined ? { idleSince: e.idleSince } : {}) })),
    specs: new Map([...view.specs].map(([label, s]) => [label, { maxExecutors: s.maxExecutors, idleTerminationSeconds: s.idleTerminationSeconds }] as const)),
    launchBackoff: view.launchFailures,
    now,
  });
  b.change({ type: 'REASONS', reasons: pool.reasons });
  for (const [key, executorId] of pool.assign) {
    const build = view.builds.get(key);
    const e = view.executors.get(executorId);
    if (build !== undefined && e !== undefined && streams.isConnected(executorId)) dispatch(view, build, e, now, b, ctx.credential);
  }
  for (const id of pool.stop) {
    const e = view.executors.get(id);
    if (e === undefined) continue;
    b.saveExecutor({ ...e, state: 'stopping', idleSince: now });
    b.send(id, { type: 'SHUTDOWN' });
    b.log(`ci framework: executor ${id} (${e.label}) idle past its time: shutting it down`);
  }
  b.change({ type: 'NEEDS', needs: pool.launch });
  let total = 0;
  for (const n of pool.launch.values()) total += n;
  const mode = planOfferMode(view.manners, { need: total, now, subscribed: ctx.subscribed, role: ctx.role });
  if (mode.call !== undefined) b.call(mode.call);
  if (mode.next !== view.manners) b.change({ type: 'OFFER_MANNERS', state: mode.next });
  return b.plan;
}

/** Hands a queued build to an idle executor: both stored (running, busy), then BUILD goes out. */
function dispatch(view: CiView, build: Build, e: ExecutorRecord, now: number, b: CiPlanBuilder, credential: CiPassContext['credential']): void {
  const pipeline = build.pipeline;
  if (pipeline === undefined) return;
  const job = view.jobs.get(build.job);
  // The job's credentials, read from the secret store as the build starts (a changed secret
  // reaches the next build); one that is gone fails the build before it runs, saying which.
  const credentials: Record<string, string> = {};
  const missing: string[] = [];
  for (const [variable, name] of Object.entries(job?.credentials ?? {})) {
    const value = credential?.(name);
    if (value === undefined) missing.push(`${variable} (secret '${name}')`);
    else credentials[variable] = value;
  }
  // The passwords of its artifact stores, the same way: read now, given only to publish steps.
  const artifactStores: Record<string, ArtifactStoreAccess> = {};
  for (const [name, store] of Object.entries(job?.artifactStores ?? {})) {
    const access: ArtifactStoreAccess = { url: store.url, ...(store.username !== undefined ? { username: store.username } : {}) };
    if (store.passwordSecret !== undefined) {
      const value = credential?.(store.passwordSecret);
      if (value === undefined) missing.push(`artifactStores.${name}.passwordSecret (secret '${store.passwordSecret}')`);
      else access.password = value;
    }
    setOwnValue(artifactStores, name, access);
  }
  // And of its registries, for build-image steps.
  const registries: Record<string, RegistryAccess> = {};
  for (const [name, registry] of Object.entries(job?.registries ?? {})) {
    const access: RegistryAccess = { address: registry.address, ...(registry.username !== undefined ? { username: registry.username } : {}) };
    if (registry.passwordSecret !== undefined) {
      const value = credential?.(registry.passwordSecret);
      if (value === undefined) missing.push(`registries.${name}.passwordSecret (secret '${registry.passwordSecret}')`);
      else access.password = value;
    }
    setOwnValue(registries, name, access);
  }
  if (missing.length > 0) {
    b.finishBuild(build, 'error', now, `credentials not in the secret store: ${missing.join(', ')}`);
    b.pass();
    return;
  }
  b.saveBuild({ ...build, status: 'running', startedAt: now, executorId: e.id, agentId: e.agentId, hostname: e.hostname });
  const { idleSince: _idle, ...rest } = e;
  b.saveExecutor({ ...rest, state: 'busy', build: buildKey(build.job, build.number) });
  b.send(e.id, {
    type: 'BUILD',
    build: {
      job: build.job,
      number: build.number,
      repo: build.repo,
      commit: build.commit ?? '',
      ...(build.branch !== undefined ? { branch: build.branch } : {}),
      ...(build.tag !== undefined ? { tag: build.tag } : {}),
      event: build.event,
      pipeline,
      env: { ...(job?.env ?? {}) },
      secrets: { ...(job?.secrets ?? {}), ...credentials },
      ...(Object.keys(artifactStores).length > 0 ? { artifactStores } : {}),
      ...(Object.keys(registries).length > 0 ? { registries } : {}),
    },
  });
}
