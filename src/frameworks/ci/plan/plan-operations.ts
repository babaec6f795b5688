import { buildKey, isFinished, type Build, type BuildCause } from '../build.ts';
import type { BuildSource } from '../build-planner.ts';
import { JobNotFound } from '../ci-errors.ts';
import type { CiStateChange, CiView } from '../ci-state.ts';
import type { ExecutorSpec, JobDefinition, SecretInput } from '../job-definition.ts';
import { resolveJobSecrets, type SecretSealer } from '../job-secrets.ts';
import type { BuildEvent } from '../pipeline/pipeline.ts';
import { CiPlanBuilder, type CiPlan } from './ci-plan.ts';

// CI's API verbs as pure planners: each reads the state and answers a plan and the result the
// route answers with, or throws (a 4xx: nothing happens). The framework runs each in a turn of
// its applier, so the state it reads is the state it changes.

export interface Planned<R> {
  plan: CiPlan;
  result: R;
}

/**
 * PUT /ci/v1/jobs/{name}: the job saved, its secrets read against the stored job (a "***" keeps
 * the stored value; resolveJobSecrets), and whether it is new. Throws InvalidJob for a secret
 * that cannot be read.
 */
export function planPutJob(view: CiView, input: JobDefinition<SecretInput>, sealer: Pick<SecretSealer, 'open'>): Planned<{ created: boolean; job: JobDefinition }> {
  const stored = view.jobs.get(input.name);
  const job = resolveJobSecrets(input, stored, sealer);
  const created = stored === undefined;
  const b = new CiPlanBuilder().change({ type: 'JOB_SAVED', job });
  b.plan.mirror = `${created ? 'add' : 'change'} job ${job.name}`;
  return { plan: b.plan, result: { created, job } };
}

/** DELETE /ci/v1/jobs/{name}: the job and its builds go (running ones are told to stop); false if there was none. */
export function planDeleteJob(view: CiView, name: string): Planned<boolean> {
  const b = new CiPlanBuilder();
  if (view.jobs.get(name) === undefined) return { plan: b.plan, result: false };
  for (const build of view.builds.values()) {
    if (build.job === name && build.status === 'running' && build.executorId !== undefined) b.send(build.executorId, { type: 'CANCEL', job: name, number: build.number });
  }
  b.change({ type: 'JOB_REMOVED', name });
  b.plan.mirror = `remove job ${name}`;
  return { plan: b.pass().plan, result: true };
}

/** PUT /ci/v1/executors/{label}: true when the label is new. */
export function planPutExecutorSpec(view: CiView, label: string, spec: ExecutorSpec): Planned<boolean> {
  const created = view.specs.get(label) === undefined;
  const b = new CiPlanBuilder().change({ type: 'EXECUTOR_SPEC_SAVED', label, spec });
  b.plan.mirror = `${created ? 'add' : 'change'} executor spec ${label}`;
  return { plan: b.pass().plan, result: created };
}

export interface QueueRequest {
  cause: BuildCause;
  event: BuildEvent;
  tag?: string;
  /** Goes into the build's own store batch (a trigger's state: what it marks as built is durable with the build). */
  alsoWrite?: CiStateChange[];
}

/**
 * Queues a build of `jobName` from what the build planner read (build-planner.ts): the next
 * number of the job (numbers are never reused), `queued` with its pipeline's steps pending, or
 * `error` with the reason the source could not be read. Throws JobNotFound when the job is gone.
 */
export function planQueueBuild(view: CiView, jobName: string, source: BuildSource, request: QueueRequest, now: number): Planned<Build> {
  const job = view.jobs.get(jobName);
  if (job === undefined) throw new JobNotFound(jobName);
  const number = view.lastNumber(jobName) + 1;
  const base = {
    job: jobName,
    number,
    cause: request.cause,
    event: request.event,
    repo: job.repo,
    ...(source.branch !== undefined ? { branch: source.branch } : {}),
    ...(request.tag !== undefined ? { tag: request.tag } : {}),
    ...(source.commit !== undefined ? { commit: source.commit } : {}),
    label: source.label,
    queuedAt: now,
    artifacts: [],
    seq: 0,
  };
  const build: Build = source.ok
    ? { ...base, status: 'queued', pipeline: source.pipeline, steps: source.pipeline.steps.map((s) => ({ name: s.name, status: 'pending' })) }
    : { ...base, status: 'error', steps: [], finishedAt: now, error: source.error };
  const b = new CiPlanBuilder().saveBuild(build);
  for (const c of request.alsoWrite ?? []) b.change(c);
  b.log(`ci: ${jobName} #${number} ${build.status} (${request.cause.description})`);
  if (!source.ok) b.plan.ended.push(build);
  return { plan: b.pass().plan, result: build };
}

/** Cancels a queued build at once, a running one through its executor (CANCEL). False if it had ended (or is not kept). */
export function planCancel(view: CiView, job: string, number: number, now: number): Planned<boolean> {
  const b = new CiPlanBuilder();
  const build = view.builds.get(buildKey(job, number));
  if (build === undefined || isFinished(build)) return { plan: b.plan, result: false };
  if (build.status === 'queued') {
    b.finishBuild(build, 'cancelled', now, 'cancelled while queued');
  } else {
    b.saveBuild({ ...build, cancelRequested: true });
    if (build.executorId !== undefined) b.send(build.executorId, { type: 'CANCEL', job, number });
  }
  return { plan: b.pass().plan, result: true };
}
