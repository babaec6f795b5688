/**
 * The elastic executor pool of CI, as a pure planner (the Jenkins Mesos plugin's model, without
 * its pains): given the builds waiting per executor label and the executors that exist, it
 * answers how many executors to start per label, which idle ones to stop, and why each waiting
 * build waits. The CI framework applies the plan: it starts executors from fitting offers
 * (REVIVE while it needs offers, SUPPRESS otherwise) and tells executors to exit.
 *
 * Rules:
 * - A waiting build of label L is matched to an idle executor of L; builds beyond the idle ones
 *   need new executors, up to the spec's `maxExecutors` (counting every executor of L that is
 *   not stopping). Executors still launching count as coming capacity: no second executor is
 *   started for a build that one being launched will take.
 * - An executor idle for `idleTerminationSeconds` (and not needed by a waiting build) is stopped.
 * - Builds of a job beyond its `concurrency` wait, whatever the executors ("concurrency limit").
 * - A label without a spec: its builds wait with the reason saying so.
 * - A label in launch backoff (its executors ended before connecting, several in a row) starts
 *   no executor before the backoff's end; its builds say so.
 * Every waiting build is taken in queue order (oldest first), so capacity goes to the oldest.
 */

export type ExecutorState = 'launching' | 'idle' | 'busy' | 'stopping';

export interface PoolExecutor {
  id: string;
  label: string;
  state: ExecutorState;
  /** When it last became idle (milliseconds), for idle termination. */
  idleSince?: number;
}

export interface PoolSpec {
  maxExecutors: number;
  idleTerminationSeconds: number;
}

export interface WaitingBuild {
  /** Unique key, e.g. `job#12`. */
  key: string;
  job: string;
  label: string;
  /** Milliseconds; queue order. */
  queuedAt: number;
}

export interface PoolInput {
  waiting: readonly WaitingBuild[];
  /** Builds running now per job (for concurrency limits). */
  runningPerJob: ReadonlyMap<string, number>;
  /** Each job's concurrency limit (absent: 1). */
  concurrency: ReadonlyMap<string, number>;
  executors: readonly PoolExecutor[];
  specs: ReadonlyMap<string, PoolSpec>;
  /** Labels whose executors keep failing to start: no launch before `until` (ms). */
  launchBackoff?: ReadonlyMap<string, { count: number; until: number; message: string }>;
  now: number;
}

export type WaitReason =
  | { kind: 'concurrency'; message: string }
  | { kind: 'no-spec'; message: string }
  | { kind: 'executor-starting'; message: string }
  | { kind: 'waiting-for-offer'; message: string }
  | { kind: 'max-executors'; message: string };

export interface PoolPlan {
  /** Builds to hand to an idle executor now: build key → executor id. */
  assign: Map<string, string>;
  /** New executors to start, per label. */
  launch: Map<string, number>;
  /** Idle executors to stop (idle past their time, not needed). */
  stop: string[];
  /** Why each build that is neither assigned nor about to be explains its wait. */
  reasons: Map<string, WaitReason>;
}

export function planExecutorPool(input: PoolInput): PoolPlan {
  const assign = new Map<string, string>();
  const launch = new Map<string, number>();
  const reasons = new Map<string, WaitReason>();
  const idle = new Map<string, PoolExecutor[]>();
  const launching = new Map<string, number>();
  const alive = new Map<string, number>();
  for (const e of input.executors) {
    if (e.state === 'stopping') continue;
    alive.set(e.label, (alive.get(e.label) ?? 0) + 1);
    if (e.state === 'idle') idle.set(e.label, [...(idle.get(e.label) ?? []), e]);
    if (e.state === 'launching') launching.set(e.label, (launching.get(e.label) ?? 0) + 1);
  }
  // The longest idle first: it is the one closest to being stopped, and keeps the others warm.
  for (const list of idle.values()) list.sort((a, b) => (a.idleSince ?? 0) - (b.idleSince ?? 0) || (a.id < b.id ? -1 : 1));

  const running = new Map(input.runningPerJob);
  const ordered = [...input.waiting].sort((a, b) => a.queuedAt - b.queuedAt || (a.key < b.key ? -1 : 1));
  for (const b of ordered) {
    const limit = input.concurrency.get(b.job) ?? 1;
    const now = running.get(b.job) ?? 0;
    if (now >= limit) {
      reasons.set(b.key, { kind: 'concurrency', message: `job ${b.job} runs ${now} build(s), its concurrency limit is ${limit}` });
      continue;
    }
    const spec = input.specs.get(b.label);
    if (spec === undefined) {
      reasons.set(b.key, { kind: 'no-spec', message: `no executor spec for label ${b.label} (PUT /ci/v1/executors/${b.label})` });
      continue;
    }
    const free = idle.get(b.label)?.shift();
    if (free !== undefined) {
      assign.set(b.key, free.id);
      running.set(b.job, now + 1);
      continue;
    }
    // Capacity on the way: an executor being launched will take this build.
    const coming = launching.get(b.label) ?? 0;
    if (coming > 0) {
      launching.set(b.label, coming - 1);
      reasons.set(b.key, { kind: 'executor-starting', message: `an executor of label ${b.label} is starting for it` });
      running.set(b.job, now + 1);
      continue;
    }
    const count = alive.get(b.label) ?? 0;
    if (count >= spec.maxExecutors) {
      reasons.set(b.key, { kind: 'max-executors', message: `all ${spec.maxExecutors} executors of label ${b.label} are busy` });
      continue;
    }
    alive.set(b.label, count + 1);
    running.set(b.job, now + 1);
    const backoff = input.launchBackoff?.get(b.label);
    if (backoff !== undefined && input.now < backoff.until) {
      // Executors of the label keep failing to start: no launch loop, the build says why.
      const message = `executors of label ${b.label} fail to start (${backoff.count} in a row, last: ${backoff.message}); next try in ${Math.ceil((backoff.until - input.now) / 1000)} s`;
      reasons.set(b.key, { kind: 'waiting-for-offer', message });
      continue;
    }
    launch.set(b.label, (launch.get(b.label) ?? 0) + 1);
    reasons.set(b.key, { kind: 'waiting-for-offer', message: `waiting for an offer that fits an executor of label ${b.label}` });
  }

  const stop: string[] = [];
  for (const [label, list] of idle) {
    const spec = input.specs.get(label);
    const limitMs = (spec?.idleTerminationSeconds ?? 0) * 1000;
    for (const e of list) if (spec === undefined || input.now - (e.idleSince ?? input.now) >= limitMs) stop.push(e.id);
  }
  return { assign, launch, stop: stop.sort(), reasons };
}
