import { PlanBuilder, type Plan } from '../../kit/plan-applier.ts';
import { isFinished, type Build, type BuildStep } from '../build.ts';
import type { StoredLogSizes } from '../build-log-store.ts';
import type { CiStateChange } from '../ci-state.ts';
import type { ExecutorRecord } from '../executor-record.ts';
import type { ServerToExecutor } from '../executor-protocol.ts';

/** A piece of a build's log to append before the plan's store batch (BuildLogStore.append). */
export interface LogAppend {
  job: string;
  number: number;
  step: string;
  text: string;
  /** The sizes the store holds for the build's log before this plan. */
  stored: StoredLogSizes;
}

/**
 * A plan of CI: the kit's plan (CI publishes no event stream yet) and what only CI does with one:
 * - `logs`: log pieces, appended to their files before the store batch (a report is stored only
 *   once its log piece is written, then acknowledged);
 * - `sends`: messages to executors (WELCOME, BUILD, ACK, CANCEL, SHUTDOWN), after the batch;
 * - `drops`: executor streams taken for lost (silent for too long);
 * - `ended`: builds that ended (their log's followers get the end);
 * - `mirror`: the configuration changed; its git mirror is written with this message.
 */
export interface CiPlan extends Plan<CiStateChange, never> {
  logs: LogAppend[];
  sends: { executorId: string; message: ServerToExecutor }[];
  drops: string[];
  ended: Build[];
  mirror?: string;
}

/** Builds a CiPlan, with the helpers every CI planner writes the same way. */
export class CiPlanBuilder extends PlanBuilder<CiStateChange, never, CiPlan> {
  constructor() {
    super({ changes: [], calls: [], events: [], log: [], logs: [], sends: [], drops: [], ended: [], pass: false });
  }

  send(executorId: string, message: ServerToExecutor): this {
    this.plan.sends.push({ executorId, message });
    return this;
  }

  saveBuild(b: Build): this {
    return this.change({ type: 'BUILD_SAVED', build: b });
  }

  saveExecutor(e: ExecutorRecord): this {
    return this.change({ type: 'EXECUTOR_SAVED', executor: e });
  }

  /** Ends a build (see finishedBuild) and stores it. */
  finishBuild(b: Build, status: Build['status'], now: number, error?: string, stepError?: string): Build {
    const done = finishedBuild(b, status, now, error, stepError);
    this.saveBuild(done);
    if (!isFinished(b)) this.plan.ended.push(done);
    return done;
  }

  /** KILL of an executor's task. */
  killExecutor(e: ExecutorRecord): this {
    return this.call({ type: 'KILL', kill: { task_id: { value: e.taskId }, agent_id: { value: e.agentId } } });
  }

  /**
   * The executor is gone (its task ended, it was given up): removed, its stream forgotten, and
   * the build it ran (as this plan has it) ended in `error` (`cancelled` if a cancel was asked).
   */
  removeExecutor(e: ExecutorRecord, build: Build | undefined, why: string, now: number): void {
    this.change({ type: 'EXECUTOR_REMOVED', id: e.id });
    if (build !== undefined && !isFinished(build)) this.finishBuild(build, build.cancelRequested === true ? 'cancelled' : 'error', now, `the build stopped because ${why}`, `executor lost: ${why}`);
    this.pass();
  }
}

/**
 * A build ended. Steps that did not start are `skipped` (`cancelled`, for a cancelled build). A
 * step still running is reported as it was: it ran from its start until now, and ends
 * `cancelled` for a cancelled build, else `error` with `stepError` (what ended it: "executor
 * lost: ..." when its executor went away mid-step), or the build's error. Its log stays as it was
 * streamed (issue 11, finding 10: such a step was reported `skipped`).
 */
export function finishedBuild(b: Build, status: Build['status'], now: number, error?: string, stepError?: string): Build {
  const endRunning = (s: BuildStep): BuildStep => {
    const ended: BuildStep = { ...s, status: status === 'cancelled' ? 'cancelled' : 'error', finishedAt: now, ...(s.startedAt !== undefined ? { durationMs: now - s.startedAt } : {}) };
    if (ended.status === 'error') ended.error = stepError ?? error ?? 'the build ended before the step reported its end';
    return ended;
  };
  return {
    ...b,
    status,
    finishedAt: now,
    ...(error !== undefined ? { error } : {}),
    steps: b.steps.map((s) => (s.status === 'running' ? endRunning(s) : s.status === 'pending' ? { ...s, status: status === 'cancelled' ? 'cancelled' : 'skipped' } : s)),
  };
}

/** The build an executor runs, as the view has it. */
export function buildOf(e: ExecutorRecord, view: { readonly builds: ReadonlyMap<string, Build> }): Build | undefined {
  return e.build !== undefined ? view.builds.get(e.build) : undefined;
}
