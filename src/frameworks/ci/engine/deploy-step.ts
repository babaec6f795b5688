import { setTimeout as delay } from 'node:timers/promises';
import type { DeployStep, ImageOutput, ArtifactOutput, StepOutput } from '../pipeline/pipeline.ts';
import type { BuildContext } from './build-context.ts';
import type { StepOutcome } from './step-outcome.ts';

/**
 * How a deploy step reaches delivery (`/deliver/v1`): `open(service)` answers delivery's base URL
 * and a token for that service alone, short-lived, which the CI server makes for the step (the
 * executor asks for it right before the step runs: it is never in a step's environment nor in
 * the build's spec). It rejects, with the CI server's words, when the job may not deploy the
 * service.
 */
export interface DeliveryAccess {
  open(service: string): Promise<{ url: string; token: string }>;
}

export interface DeployStepSpec {
  step: DeployStep;
  build: BuildContext;
  /** Absent: the executor has no way to delivery (the step ends in `error`). */
  delivery: DeliveryAccess | undefined;
  /** What the steps upstream of this one made: their images go into the release, their artifacts too. */
  upstream: readonly StepOutput[];
  signal: AbortSignal;
  output: (chunk: Buffer) => void;
  /** How often the promotion is looked at while it runs; default 1 s. */
  pollMs?: number;
}

/** The version of the release a build makes: its tag, else `<job>-<number>` (made a valid version). */
export function releaseVersionOf(build: BuildContext): string {
  if (build.tag !== undefined && build.tag !== '') return build.tag.replace(/[^A-Za-z0-9._+-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 128) || `build-${build.number}`;
  const job = build.jobName.replace(/[^A-Za-z0-9._+-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return `${job !== '' ? job.slice(0, 100) : 'build'}-${build.number}`;
}

const ENDED = new Set(['succeeded', 'failed', 'rejected']);

interface Promotion {
  id: string;
  state: string;
  reason?: string;
  release: string;
  progress?: { wanted?: number; healthyOnVersion?: number; old?: number };
}

class DeliveryRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Runs a deploy step (issue 14): the images the steps upstream pushed become a release of
 * `service` (version: the build's tag, else `<job>-<number>`; commit; artifacts; the build), which
 * is promoted to `to` through delivery, so that its gates, its one-at-a-time rule and its
 * rollback hold; then the step follows the promotion to its end:
 *
 *   succeeded ─► success
 *   failed (health, deadline: delivery has rolled the app back), rejected ─► failure, with the reason
 *   no images upstream, no delivery access, the job may not deploy the service ─► error
 *   delivery refusing (frozen, another promotion running, cannot be placed, ...) ─► failure, its words
 *   signal aborted ─► cancelled (the promotion goes on in delivery, to its own end)
 *
 * A release that exists already with the same images (the build run again) is promoted as it is;
 * with other images, the step fails: releases are immutable (tag a new version). A promotion
 * waiting at a manual gate is waited for. The step's `deadline` is the promotion's.
 */
export async function runDeployStep(spec: DeployStepSpec): Promise<StepOutcome> {
  const { step, build } = spec;
  const say = (line: string) => spec.output(Buffer.from(`${line}\n`));
  const stop = (status: 'error' | 'failure' | 'cancelled', error: string, outputs: StepOutput[] = []): StepOutcome => {
    say(error);
    return { status, error, ...(outputs.length > 0 ? { outputs } : {}) };
  };
  const images = spec.upstream.filter((o): o is ImageOutput => o.kind === 'image');
  if (images.length === 0) return stop('error', `step ${step.name} deploys the images of the steps before it, and none pushed one (add a build-image step it depends on)`);
  if (spec.delivery === undefined) return stop('error', `step ${step.name} needs delivery, and this executor was given no way to it`);

  let access: { url: string; token: string };
  try {
    access = await spec.delivery.open(step.service);
  } catch (e) {
    return stop('error', `step ${step.name} may not deploy ${step.service}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    let r: Response;
    try {
      r = await fetch(new URL(path, access.url), {
        method,
        headers: { Authorization: `Bearer ${access.token}`, Accept: 'application/json', ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.any([spec.signal, AbortSignal.timeout(30_000)]),
      });
    } catch (e) {
      if (spec.signal.aborted) throw e;
      throw new DeliveryRefusal(0, `delivery at ${access.url} does not answer: ${e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)}`);
    }
    const text = await r.text();
    let json: unknown;
    try {
      json = text === '' ? {} : JSON.parse(text);
    } catch {
      json = { message: text.slice(0, 500) };
    }
    if (r.status >= 300) {
      const m = (json as { message?: unknown }).message;
      const details = (json as { details?: unknown }).details;
      throw new DeliveryRefusal(r.status, `${typeof m === 'string' ? m : text.slice(0, 500)}${details !== undefined ? ` ${JSON.stringify(details).slice(0, 2000)}` : ''}`);
    }
    return json as T;
  };

  const service = encodeURIComponent(step.service);
  const version = releaseVersionOf(build);
  const artifacts = spec.upstream.filter((o): o is ArtifactOutput => o.kind === 'artifact').map((a) => ({ name: a.name, sha256: a.sha256, url: a.url }));
  const release = {
    version,
    ...(build.commitSha !== undefined && /^[0-9a-f]{7,64}$/.test(build.commitSha) ? { commit: build.commitSha } : {}),
    images: images.map((i) => ({ name: i.name, digest: i.digest })),
    ...(artifacts.length > 0 ? { artifacts } : {}),
    build: { job: build.jobName, number: build.number },
  };
  try {
    try {
      await call('POST', `/deliver/v1/services/${service}/releases`, release);
      say(`release ${version} of ${step.service}: ${release.images.map((i) => `${i.name}@${i.digest}`).join(', ')}`);
    } catch (e) {
      if (!(e instanceof DeliveryRefusal && e.status === 409)) throw e;
      const there = await call<{ images: { name: string; digest: string }[] }>('GET', `/deliver/v1/services/${service}/releases/${encodeURIComponent(version)}`);
      const same = JSON.stringify(there.images.map((i) => i.digest).sort()) === JSON.stringify(release.images.map((i) => i.digest).sort());
      if (!same) return stop('failure', `release ${version} of ${step.service} exists with other images (${there.images.map((i) => i.digest).join(', ')}): releases are immutable, tag a new version`);
      say(`release ${version} of ${step.service} exists with these images: promoting it as it is`);
    }
    let p = await call<Promotion>('POST', `/deliver/v1/services/${service}/promotions`, { release: version, to: step.to, ...(step.deadlineSeconds !== undefined ? { deadlineSeconds: step.deadlineSeconds } : {}) });
    say(`promotion ${p.id} of ${step.service} ${version} to ${step.to}: ${describe(p)}`);
    const outputOf = (x: Promotion): StepOutput[] => [{ kind: 'release', step: step.name, service: step.service, name: version, env: step.to, promotion: x.id, state: x.state }];
    let last = describe(p);
    while (!ENDED.has(p.state)) {
      // An abort ends the wait at once (and is looked at just below).
      await delay(spec.pollMs ?? 1000, undefined, { signal: spec.signal }).catch(() => undefined);
      if (spec.signal.aborted) return stop('cancelled', `the build was cancelled; promotion ${p.id} goes on in delivery (${describe(p)})`, outputOf(p));
      p = await call<Promotion>('GET', `/deliver/v1/services/${service}/promotions/${encodeURIComponent(p.id)}`);
      const now = describe(p);
      if (now !== last) say(`promotion ${p.id}: ${now}`);
      last = now;
    }
    if (p.state === 'succeeded') return { status: 'success', outputs: outputOf(p) };
    return stop('failure', `promotion ${p.id} of ${step.service} ${version} to ${step.to} ${p.state}${p.reason !== undefined ? `: ${p.reason}` : ''}`, outputOf(p));
  } catch (e) {
    if (spec.signal.aborted) return stop('cancelled', 'the build was cancelled');
    if (e instanceof DeliveryRefusal) return stop('failure', `delivery refused (${e.status === 0 ? 'no answer' : e.status}): ${e.message}`);
    throw e;
  }
}

function describe(p: Promotion): string {
  const g = p.progress;
  const counts = g !== undefined && typeof g.wanted === 'number' ? ` (${g.healthyOnVersion ?? 0}/${g.wanted} healthy${(g.old ?? 0) > 0 ? `, ${g.old} old` : ''})` : '';
  return `${p.state}${counts}${p.reason !== undefined && p.state !== 'deploying' ? `: ${p.reason}` : ''}`;
}
