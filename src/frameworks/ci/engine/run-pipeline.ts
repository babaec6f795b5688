import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type Dockerode from 'dockerode';
import type { HostPath } from './host-paths.ts';
import type { Pipeline, PipelineStep, StepOutput, StepStatus } from '../pipeline/pipeline.ts';
import { findCycles } from '../pipeline/step-graph.ts';
import { buildId, stepEnvironment } from './build-context.ts';
import { runBuildImageStep, type RegistryAccess } from './build-image-step.ts';
import { runDeployStep, type DeliveryAccess } from './deploy-step.ts';
import type { BuildContext } from './build-context.ts';
import { evaluateWhen } from './evaluate-when.ts';
import { CI_CONTAINER_LABELS, runImageStep } from './image-step.ts';
import { runProcessStep } from './process-step.ts';
import { runPublishStep, type ArtifactStoreAccess } from './publish-step.ts';
import { StepLog } from './step-log.ts';
import { SecretMask, SecretMasker } from '../../../lib/secret-mask.ts';
import type { StepOutcome, StepRunSpec } from './step-outcome.ts';

export type PipelineStatus = 'success' | 'failure' | 'cancelled' | 'error';

/** The states a step ends in. */
export type FinishedStepStatus = Exclude<StepStatus, 'pending' | 'running'>;

export interface StepResult {
  name: string;
  status: FinishedStepStatus;
  /** The exit status of the step's shell (128 + n when killed by signal n); absent when it did not run. */
  exitCode?: number;
  /** Milliseconds since the epoch. A step that did not run started and finished when that was decided. */
  startedAt: number;
  finishedAt: number;
  durationMs: number;
  /** What went wrong, for `error` (could not run) and for a `failure` by signal. */
  error?: string;
  /** Why a `skipped` step did not run (its `when`, a failed step upstream, the build cancelled). */
  reason?: string;
  /** What the step made that outlives the build (a publish step's artifacts); absent when nothing. */
  outputs?: StepOutput[];
}

export interface PipelineResult {
  status: PipelineStatus;
  /** Every step of the pipeline, in pipeline order. */
  steps: StepResult[];
  startedAt: number;
  finishedAt: number;
  durationMs: number;
  /** Why the pipeline could not run at all (no workspace, a step depending on an unknown one, ...). */
  error?: string;
}

/**
 * Progress, in order per step: `step-started`, its `log` pieces, `step-finished` (a step that
 * does not run has only `step-finished`, status `skipped`). Log pieces are the step's stdout and
 * stderr as one stream, in the order written, cut at line ends (see StepLog): concatenated, the
 * texts of a step are its output, with every form of the build's secrets replaced by `****`
 * (lib/secret-mask.ts; a piece that ends with what may be the start of one is cut there, and
 * its rest comes with the next piece). `at` is milliseconds since the epoch.
 */
export type PipelineEvent =
  | { type: 'step-started'; step: string; at: number }
  | { type: 'log'; step: string; at: number; text: string }
  | { type: 'step-finished'; step: string; at: number; result: StepResult };

export interface RunPipelineOptions {
  /** The directory holding the checked-out code; steps run in it (image steps with it mounted at the same path). */
  workspace: string;
  build: BuildContext;
  /** The engine for image steps; without it an image step ends in `error`. */
  docker?: Dockerode;
  /**
   * Where this process's paths are on the engine's host (host-paths.ts), for the mounts of image
   * steps; default: the same paths (an executor running as a process on the engine's host).
   */
  hostPath?: HostPath;
  /** Aborted: running steps are stopped, no other starts, the result is `cancelled`. */
  signal?: AbortSignal;
  /** Called synchronously, in order; it must not throw (what it throws is ignored) nor block. */
  onEvent?: (event: PipelineEvent) => void;
  /** How many steps may run at once; default no limit (the DAG alone decides). */
  maxParallel?: number;
  /** On cancel, between SIGTERM (docker stop) and SIGKILL; default DEFAULT_KILL_GRACE_MS. */
  killGraceMs?: number;
  /**
   * The job's artifact stores by name, for publish steps (with their passwords, which are masked
   * in every step's log like `build.secrets`); a store a step names that is not here fails it.
   */
  artifactStores?: Readonly<Record<string, ArtifactStoreAccess>>;
  /**
   * The job's registries by name, for build-image steps (with their passwords, masked in every
   * step's log like `build.secrets`); a registry a step names that is not here fails it.
   */
  registries?: Readonly<Record<string, RegistryAccess>>;
  /** Delivery, for deploy steps (a token per service, asked of the CI server); without it a deploy step ends in `error`. */
  delivery?: DeliveryAccess;
}

export const DEFAULT_KILL_GRACE_MS = 5_000;

/**
 * Runs a parsed pipeline in a workspace, without any server: the engine of a CI executor (and of
 * a local `slipway ci run`). See README.md for the lifecycle of a run and of a step.
 *
 * - A step starts once every step of its `dependsOn` has finished, independent steps at the same
 *   time (up to maxParallel, in pipeline order).
 * - Its `when` is evaluated then (evaluateWhen; any condition of the list suffices, every field
 *   of a condition must hold): event, branch glob, and `status` against the
 *   steps upstream of it, i.e. those it depends on directly or transitively. "Upstream failed"
 *   means one of them ended in `failure` or `error` without `failure: ignore`. Without
 *   `depends_on` in the YAML every step depends on the one before it, so upstream is all the
 *   steps before it: Woodpecker's "status of the pipeline so far". With a DAG, the answer does not
 *   depend on how fast unrelated branches run. A step skipped by its `when` does not count as
 *   failed: its dependents run.
 * - A step that does not run is `skipped`, with the reason.
 * - The build: `cancelled` if the signal was aborted before it ended; else `error` if a step
 *   could not be run (no Docker, image missing, ...), `failure` if a step failed, each counting
 *   only without `failure: ignore`; else `success`.
 *
 * Never rejects for what happens in steps; it rejects only for a bad option (maxParallel < 1).
 */
export async function runPipeline(pipeline: Pipeline, options: RunPipelineOptions): Promise<PipelineResult> {
  const maxParallel = options.maxParallel ?? Infinity;
  if (!(maxParallel >= 1)) throw new RangeError(`maxParallel must be at least 1, not ${maxParallel}`);
  return new PipelineRun(pipeline, options, maxParallel).run();
}

class PipelineRun {
  readonly #pipeline: Pipeline;
  readonly #options: RunPipelineOptions;
  readonly #maxParallel: number;
  readonly #workspace: string;
  readonly #signal: AbortSignal;
  readonly #killGraceMs: number;
  /** The job's secrets and their forms, masked in every step's log. */
  readonly #secretMask: SecretMask;
  readonly #startedAt = Date.now();
  readonly #results = new Map<string, StepResult>();
  readonly #running = new Set<string>();
  #upstream = new Map<string, string[]>();
  #cancelled = false;
  #done: (result: PipelineResult) => void = () => undefined;

  constructor(pipeline: Pipeline, options: RunPipelineOptions, maxParallel: number) {
    this.#pipeline = pipeline;
    this.#options = options;
    const storePasswords = [...Object.values(options.artifactStores ?? {}), ...Object.values(options.registries ?? {})].flatMap((s) => (s.password !== undefined && s.password !== '' ? [s.password] : []));
    this.#secretMask = new SecretMask([...Object.values(options.build.secrets ?? {}), ...storePasswords]);
    this.#maxParallel = maxParallel;
    this.#workspace = resolve(options.workspace);
    this.#signal = options.signal ?? new AbortController().signal;
    this.#killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  }

  async run(): Promise<PipelineResult> {
    const problem = pipelineProblem(this.#pipeline) ?? (await workspaceProblem(this.#workspace));
    if (problem !== undefined) {
      for (const step of this.#pipeline.steps) this.#skip(step, problem);
      return this.#result(problem);
    }
    this.#upstream = upstreamOf(this.#pipeline.steps);
    const finished = new Promise<PipelineResult>((r) => (this.#done = r));
    const onAbort = (): void => {
      this.#cancelled = true;
      this.#schedule();
    };
    this.#signal.addEventListener('abort', onAbort, { once: true });
    this.#cancelled = this.#signal.aborted;
    this.#schedule();
    const result = await finished;
    this.#signal.removeEventListener('abort', onAbort);
    return result;
  }

  /** Decides every step that can be decided now: skip it, start it, or leave it waiting. */
  #schedule(): void {
    for (let progressed = true; progressed; ) {
      progressed = false;
      for (const step of this.#pipeline.steps) {
        if (this.#results.has(step.name) || this.#running.has(step.name)) continue;
        if (this.#cancelled) {
          this.#skip(step, 'the build was cancelled');
          progressed = true;
          continue;
        }
        if (!step.dependsOn.every((d) => this.#results.has(d))) continue;
        const upstreamFailed = (this.#upstream.get(step.name) ?? []).some((name) => this.#failed(name));
        const verdict = evaluateWhen(step.when, { event: this.#options.build.event, branch: this.#options.build.branch, upstreamFailed });
        if (!verdict.run) {
          this.#skip(step, verdict.reason);
          progressed = true;
        } else if (this.#running.size < this.#maxParallel) {
          this.#start(step);
          progressed = true;
        }
      }
    }
    if (this.#running.size === 0 && this.#results.size === this.#pipeline.steps.length) this.#done(this.#result());
  }

  #start(step: PipelineStep): void {
    const startedAt = Date.now();
    this.#running.add(step.name);
    this.#emit({ type: 'step-started', step: step.name, at: startedAt });
    // The job's secrets are masked in the step's log before it leaves the engine; the masker
    // holds back the tail of a piece that may be the start of one (a value split across reads).
    const masker = new SecretMasker(this.#secretMask);
    const emitLog = (text: string) => {
      if (text !== '') this.#emit({ type: 'log', step: step.name, at: Date.now(), text });
    };
    const log = new StepLog((text) => emitLog(masker.push(text)));
    const outcome = this.#outcome(step, (chunk) => log.write(chunk));
    void outcome
      .catch((e: unknown): StepOutcome => ({ status: 'error', error: e instanceof Error ? e.message : String(e) }))
      .then((o) => {
        log.end();
        emitLog(masker.end());
        this.#running.delete(step.name);
        const finishedAt = Date.now();
        this.#finish({
          name: step.name,
          status: o.status,
          ...(o.exitCode !== undefined ? { exitCode: o.exitCode } : {}),
          startedAt,
          finishedAt,
          durationMs: finishedAt - startedAt,
          ...(o.error !== undefined ? { error: o.error } : {}),
          ...(o.outputs !== undefined && o.outputs.length > 0 ? { outputs: o.outputs } : {}),
        });
        this.#schedule();
      });
  }

  /** Runs a step by its kind. */
  #outcome(step: PipelineStep, output: (chunk: Buffer) => void): Promise<StepOutcome> {
    const { build, docker, hostPath } = this.#options;
    if (step.kind === 'publish') {
      return runPublishStep({ step, workspace: this.#workspace, build, stores: this.#options.artifactStores ?? {}, signal: this.#signal, output });
    }
    if (step.kind === 'build-image') {
      return runBuildImageStep({ step, workspace: this.#workspace, build, docker, registries: this.#options.registries ?? {}, signal: this.#signal, output });
    }
    if (step.kind === 'deploy') {
      // In pipeline order: a release's first image is the one a service takes by default.
      const before = new Set(this.#upstream.get(step.name) ?? []);
      const upstream = this.#pipeline.steps.filter((s) => before.has(s.name)).flatMap((s) => this.#results.get(s.name)?.outputs ?? []);
      return runDeployStep({ step, build, delivery: this.#options.delivery, upstream, signal: this.#signal, output });
    }
    const spec: StepRunSpec = {
      step,
      workspace: this.#workspace,
      env: stepEnvironment(step, build, this.#workspace, new Date(this.#startedAt)),
      signal: this.#signal,
      killGraceMs: this.#killGraceMs,
      output,
    };
    let outcome: Promise<StepOutcome>;
    if (step.image === undefined) {
      outcome = runProcessStep(spec);
    } else if (docker === undefined) {
      outcome = Promise.resolve({ status: 'error', error: `step ${step.name} needs a Docker engine for image ${step.image}, and this executor has none` });
    } else {
      const labels = {
        [CI_CONTAINER_LABELS.build]: buildId(build),
        [CI_CONTAINER_LABELS.job]: build.jobName,
        [CI_CONTAINER_LABELS.buildNumber]: String(build.number),
        [CI_CONTAINER_LABELS.step]: step.name,
      };
      outcome = runImageStep({ ...spec, docker, labels, ...(hostPath !== undefined ? { hostPath } : {}) });
    }
    return outcome;
  }

  #skip(step: PipelineStep, reason: string): void {
    const now = Date.now();
    this.#finish({ name: step.name, status: 'skipped', startedAt: now, finishedAt: now, durationMs: 0, reason });
  }

  #finish(result: StepResult): void {
    this.#results.set(result.name, result);
    this.#emit({ type: 'step-finished', step: result.name, at: result.finishedAt, result });
  }

  /** Whether a finished step counts as failed for its dependents and the build. */
  #failed(name: string): boolean {
    const status = this.#results.get(name)?.status;
    const step = this.#pipeline.steps.find((s) => s.name === name);
    return (status === 'failure' || status === 'error') && step?.failure !== 'ignore';
  }

  #result(error?: string): PipelineResult {
    const steps = this.#pipeline.steps.map((s) => this.#results.get(s.name) as StepResult);
    const counted = steps.filter((r) => this.#failed(r.name));
    const status: PipelineStatus =
      error !== undefined ? 'error'
      : this.#cancelled ? 'cancelled'
      : counted.some((r) => r.status === 'error') ? 'error'
      : counted.length > 0 ? 'failure'
      : 'success';
    const finishedAt = Date.now();
    return { status, steps, startedAt: this.#startedAt, finishedAt, durationMs: finishedAt - this.#startedAt, ...(error !== undefined ? { error } : {}) };
  }

  #emit(event: PipelineEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // The contract says onEvent does not throw; a listener's bug must not stop the build.
    }
  }
}

/** What makes the pipeline impossible to run (the parser guarantees none of it; the engine checks anyway). */
function pipelineProblem(pipeline: Pipeline): string | undefined {
  const names = new Set<string>();
  for (const step of pipeline.steps) {
    if (names.has(step.name)) return `two steps are named ${step.name}`;
    names.add(step.name);
  }
  for (const step of pipeline.steps) {
    const unknown = step.dependsOn.find((d) => !names.has(d));
    if (unknown !== undefined) return `step ${step.name} depends on ${unknown}, which is not a step of the pipeline`;
  }
  const cycle = findCycles(
    pipeline.steps.map((s) => s.name),
    new Map(pipeline.steps.map((s) => [s.name, s.dependsOn])),
    1,
  )[0];
  if (cycle !== undefined) return `depends_on makes a cycle: ${[...cycle, cycle[0]].join(' -> ')}`;
  return undefined;
}

async function workspaceProblem(workspace: string): Promise<string | undefined> {
  const info = await stat(workspace).catch(() => undefined);
  return info?.isDirectory() === true ? undefined : `the workspace ${workspace} is not a directory`;
}

/** For each step, the steps it depends on directly or through others. The pipeline is a DAG. */
function upstreamOf(steps: readonly PipelineStep[]): Map<string, string[]> {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const memo = new Map<string, Set<string>>();
  const of = (name: string): Set<string> => {
    let set = memo.get(name);
    if (set !== undefined) return set;
    set = new Set<string>();
    for (const d of byName.get(name)?.dependsOn ?? []) {
      set.add(d);
      for (const a of of(d)) set.add(a);
    }
    memo.set(name, set);
    return set;
  };
  return new Map(steps.map((s) => [s.name, [...of(s.name)]]));
}
