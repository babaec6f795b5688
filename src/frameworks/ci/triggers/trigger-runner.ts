import { SystemClock, type Clock, type Timer } from '../../../core/clock.ts';
import { CiStopping, JobNotFound } from '../ci-errors.ts';
import type { Build, BuildCause } from '../build.ts';
import type { CiChange } from '../ci-store.ts';
import { nextCronTime, parseCron, type CronSchedule } from '../cron-schedule.ts';
import { listRemoteRefs as gitListRemoteRefs, type RemoteRefs } from '../git/git-source.ts';
import type { JobDefinition } from '../job-definition.ts';
import type { BuildEvent } from '../pipeline/pipeline.ts';
import { cronDue, describeCronRun, watchCron } from './cron-trigger.ts';
import { planPoll, short } from './poll-plan.ts';
import { cloneTriggerState, emptyTriggerState, forRepo, markSeen, triggerStateFromDoc, triggerStateToDoc, wasSeen, type SeenRef, type TriggerState } from './trigger-state.ts';
import {
  InvalidWebhookPayload,
  SOURCE_NAMES,
  WebhookDisabled,
  WebhookSignatureInvalid,
  checkWebhookSecret,
  readWebhook,
  webhookSource,
  type Headers,
  type WebhookEvent,
} from './webhook-request.ts';

/** What the runner writes: a job's trigger state. */
export type TriggerStateChange = Extract<CiChange, { type: 'TRIGGER_STATE_SAVED' }>;

/** What the runner needs of CI (ci-framework.ts gives it). */
export interface TriggerHost {
  jobs(): Iterable<JobDefinition>;
  job(name: string): JobDefinition | undefined;
  /**
   * Queues a build (CiFramework.trigger). `alsoWrite` goes into the same store write as the
   * build: a build and the trigger state that says it was built are durable together or not at all.
   */
  trigger(job: string, opts: { cause: BuildCause; event: BuildEvent; commit?: string; branch?: string; tag?: string; alsoWrite: TriggerStateChange[] }): Promise<Build>;
  /** Writes trigger states to the store (in order with CI's other writes). */
  write(changes: TriggerStateChange[]): Promise<void>;
  log(line: string): void;
}

export interface TriggerRunnerOptions {
  /** Time and the tick's timer (default the system clock; a ManualClock in tests). */
  clock?: Clock;
  /** `git ls-remote` (replaced in unit tests). */
  listRemoteRefs?: (repo: string) => Promise<RemoteRefs>;
  /** How often the clock is looked at for polls and cron (ms). */
  tickMs?: number;
  /** Polls running at once over all jobs: hundreds of jobs do not start hundreds of git processes at once. */
  maxConcurrentPolls?: number;
}

/** What a webhook call did: builds (answered 201) or none, and why (202). */
export interface WebhookOutcome {
  builds: Build[];
  message: string;
}

/** What `GET /ci/v1/jobs/{name}/triggers` shows of a job's triggers. */
export interface TriggerStatus {
  poll?: { intervalSeconds: number; tags: boolean; branch: boolean; polls: number; lastPollAt?: string; nextPollAt?: string; lastError?: string };
  cron?: { expression: string; lastRun?: string; next?: string };
  webhook?: { path: string; secret: boolean; tags: boolean; branch: boolean };
  /** Tags and branch heads seen (built, or recorded by polling's first look). */
  seen: { tags: Record<string, string>; heads: Record<string, string>; firstLookDone: boolean };
}

interface PollInfo {
  nextAt: number;
  running: boolean;
  polls: number;
  lastAt?: number;
  lastError?: string;
  lastNote?: string;
}

const DEFAULT_TICK_MS = 250;
const DEFAULT_MAX_CONCURRENT_POLLS = 16;
/** How long `stop` waits for trigger work in flight (a git command may take longer: it is left to fail). */
const STOP_WAIT_MS = 5000;

/**
 * The build triggers besides manual ones: git polling, webhooks and cron (see README.md).
 *
 * Exactly once: everything that reads or changes a job's trigger state runs in that job's own
 * queue (one poll, webhook call or cron run at a time per job; a poll looks at the remote inside
 * it too, so a webhook never meets a listing older than itself). A build is written together with
 * the state that marks what it builds (TRIGGER_STATE_SAVED in the build's write): a crash before
 * that write loses neither (the next poll after the restart finds the tag again, a cron minute
 * still running is built), a crash after it does not build it again.
 */
export class TriggerRunner {
  private readonly states = new Map<string, TriggerState>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly polls = new Map<string, PollInfo>();
  private readonly cronBusy = new Set<string>();
  private readonly schedules = new Map<string, CronSchedule>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly listRemoteRefs: (repo: string) => Promise<RemoteRefs>;
  private readonly tickMs: number;
  private readonly maxPolls: number;
  private pollsRunning = 0;
  private ticker: Timer | undefined;
  private readonly clock: Clock;
  private stopped = false;

  constructor(
    private readonly host: TriggerHost,
    options: TriggerRunnerOptions = {},
  ) {
    this.listRemoteRefs = options.listRemoteRefs ?? gitListRemoteRefs;
    this.tickMs = options.tickMs ?? DEFAULT_TICK_MS;
    this.clock = options.clock ?? new SystemClock();
    this.maxPolls = options.maxConcurrentPolls ?? DEFAULT_MAX_CONCURRENT_POLLS;
  }

  /** The stored states (CiStore.load's `triggerStates`). */
  load(stored: readonly { job: string; doc: unknown }[]): void {
    for (const s of stored) this.states.set(s.job, triggerStateFromDoc(s.doc));
  }

  start(): void {
    if (this.stopped || this.ticker !== undefined) return;
    const tick = () => {
      this.tick();
      if (!this.stopped) this.ticker = this.clock.setTimer(this.tickMs, tick);
    };
    this.ticker = this.clock.setTimer(this.tickMs, tick);
    this.tick();
  }

  /** Stops polls and cron; waits a little for work in flight (it writes nothing once stopped). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ticker?.cancel();
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Real time, whatever the clock: a git command in flight runs in real time.
    await Promise.race([this.settled(), new Promise<void>((r) => (timer = setTimeout(r, STOP_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /** Resolves once no poll, cron run or webhook is in flight (tests wait on it instead of sleeping). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /**
   * A job was created or replaced: a created one starts afresh, and either is polled at the next
   * tick. Polling turned off forgets its first looks, so that turning it on again records what
   * exists then instead of building every tag pushed meanwhile.
   */
  jobSaved(job: JobDefinition, created: boolean): void {
    if (created) this.states.delete(job.name);
    const info = this.polls.get(job.name);
    if (info !== undefined) info.nextAt = 0;
    const state = this.states.get(job.name);
    const poll = job.triggers.poll;
    if (state === undefined || ((!state.tagsLooked || poll?.tags === true) && (state.branchLooked === undefined || poll?.branch === true))) return;
    const run = this.exclusive(job.name, async () => {
      const now = this.host.job(job.name);
      if (now === undefined) return;
      const before = this.stateOf(job.name);
      const next = cloneTriggerState(before);
      if (now.triggers.poll?.tags !== true) next.tagsLooked = false;
      if (now.triggers.poll?.branch !== true) delete next.branchLooked;
      if (!sameState(before, next)) await this.writeState(job.name, next);
    }).catch((e: unknown) => this.host.log(`ci triggers: ${job.name}: ${message(e)}`));
    this.track(run);
  }

  /** A job was deleted (its stored state goes with it: JOB_REMOVED). */
  jobRemoved(name: string): void {
    this.states.delete(name);
    if (this.polls.get(name)?.running !== true) this.polls.delete(name);
  }

  status(job: JobDefinition): TriggerStatus {
    const state = forRepo(this.states.get(job.name) ?? emptyTriggerState(), job.repo);
    const doc = triggerStateToDoc(state);
    const iso = (t: number | undefined) => (t !== undefined ? new Date(t).toISOString() : undefined);
    const out: TriggerStatus = { seen: { tags: doc.tags, heads: doc.heads, firstLookDone: state.tagsLooked || state.branchLooked !== undefined } };
    const poll = job.triggers.poll;
    if (poll !== undefined) {
      const info = this.polls.get(job.name);
      const last = iso(info?.lastAt);
      const next = iso(info !== undefined && !info.running ? Math.max(info.nextAt, this.clock.now()) : undefined);
      out.poll = {
        ...poll,
        polls: info?.polls ?? 0,
        ...(last !== undefined ? { lastPollAt: last } : {}),
        ...(next !== undefined ? { nextPollAt: next } : {}),
        ...(info?.lastError !== undefined ? { lastError: info.lastError } : {}),
      };
    }
    const cron = job.triggers.cron;
    if (cron !== undefined) {
      const schedule = this.scheduleOf(cron);
      const lastRun = state.cron?.expression === cron ? iso(state.cron.lastRun) : undefined;
      let next: string | undefined;
      if (schedule !== undefined) {
        // The current minute if it is still to be built, else the next firing.
        const now = this.clock.now();
        const watched = watchCron(state.cron, cron, now);
        const due = cronDue(schedule, watched, now);
        next = iso(due ?? nextFiring(schedule, now));
      }
      out.cron = { expression: cron, ...(lastRun !== undefined ? { lastRun } : {}), ...(next !== undefined ? { next } : {}) };
    }
    const hook = job.triggers.webhook;
    if (hook !== undefined) out.webhook = { path: `/ci/v1/hooks/${job.name}`, secret: hook.secret !== undefined, tags: hook.tags, branch: hook.branch };
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // The clock: polls that are due, cron minutes
  // -------------------------------------------------------------------------------------------

  private tick(): void {
    if (this.stopped) return;
    const now = this.clock.now();
    const live = new Set<string>();
    for (const job of this.host.jobs()) {
      live.add(job.name);
      if (job.triggers.poll !== undefined) this.maybePoll(job, now);
      if (job.triggers.cron !== undefined) this.maybeCron(job, job.triggers.cron, now);
    }
    for (const [name, info] of this.polls) if (!info.running && (!live.has(name) || this.host.job(name)?.triggers.poll === undefined)) this.polls.delete(name);
  }

  private maybePoll(job: JobDefinition, now: number): void {
    let info = this.polls.get(job.name);
    if (info === undefined) {
      info = { nextAt: 0, running: false, polls: 0 };
      this.polls.set(job.name, info);
    }
    if (info.running || now < info.nextAt || this.pollsRunning >= this.maxPolls) return;
    this.track(this.poll(job, info));
  }

  private maybeCron(job: JobDefinition, expression: string, now: number): void {
    if (this.cronBusy.has(job.name)) return;
    const schedule = this.scheduleOf(expression);
    if (schedule === undefined) return;
    const state = this.states.get(job.name);
    const watched = watchCron(state?.cron, expression, now);
    if (watched === state?.cron && cronDue(schedule, watched, now) === undefined) return;
    this.cronBusy.add(job.name);
    const run = this.exclusive(job.name, () => this.runCron(job.name, expression, schedule))
      .catch((e: unknown) => this.host.log(`ci triggers: cron of ${job.name} failed: ${message(e)}`))
      .finally(() => this.cronBusy.delete(job.name));
    this.track(run);
  }

  // -------------------------------------------------------------------------------------------
  // Git polling
  // -------------------------------------------------------------------------------------------

  private async poll(job: JobDefinition, info: PollInfo): Promise<void> {
    const poll = job.triggers.poll;
    if (poll === undefined) return;
    info.running = true;
    this.pollsRunning++;
    const startedAt = this.clock.now();
    try {
      await this.exclusive(job.name, async () => {
        if (!this.isCurrent(job)) return;
        const refs = await this.listRemoteRefs(job.repo);
        if (!this.isCurrent(job)) return;
        const before = this.stateOf(job.name);
        const plan = planPoll(before, refs, { repo: job.repo, ...(job.branch !== undefined ? { branch: job.branch } : {}), poll });
        const note = plan.notes.join('; ');
        if (note !== '' && note !== info.lastNote) this.host.log(`ci triggers: ${job.name}: ${note}`);
        info.lastNote = note;
        if (plan.builds.length === 0) {
          if (!sameState(before, plan.base)) await this.writeState(job.name, plan.base);
        }
        // One write per build, each with the marks of the builds so far: a crash in between
        // leaves the rest unmarked, and the next poll builds them.
        let state = plan.base;
        for (const b of plan.builds) {
          if (!this.isCurrent(job)) return;
          state = markSeen(state, b.ref);
          await this.build(job.name, state, {
            cause: b.cause,
            event: b.event,
            commit: b.ref.commit,
            ...(b.ref.kind === 'tag' ? { tag: b.ref.name } : { branch: b.ref.branch }),
          });
        }
      });
      if (info.lastError !== undefined) this.host.log(`ci triggers: polling ${job.name} works again`);
      delete info.lastError;
    } catch (e) {
      const why = message(e);
      if (why !== info.lastError) this.host.log(`ci triggers: polling ${job.name} (${job.repo}) failed: ${why}`);
      info.lastError = why;
    } finally {
      this.pollsRunning--;
      info.running = false;
      info.polls++;
      info.lastAt = startedAt;
      // Every interval from the start of the last poll; a poll slower than that is followed by
      // the next one, never overlapped by it.
      info.nextAt = startedAt + poll.intervalSeconds * 1000;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Cron
  // -------------------------------------------------------------------------------------------

  private async runCron(name: string, expression: string, schedule: CronSchedule): Promise<void> {
    const job = this.host.job(name);
    if (job === undefined || job.triggers.cron !== expression || this.stopped) return;
    const now = this.clock.now();
    const before = this.stateOf(name);
    const watched = watchCron(before.cron, expression, now);
    const due = cronDue(schedule, watched, now);
    if (due === undefined) {
      if (watched !== before.cron) await this.writeState(name, { ...before, cron: watched });
      return;
    }
    await this.build(name, { ...before, cron: { ...watched, lastRun: due } }, {
      cause: { kind: 'cron', description: describeCronRun(expression, due) },
      event: 'cron',
      ...(job.branch !== undefined ? { branch: job.branch } : {}),
    });
  }

  // -------------------------------------------------------------------------------------------
  // Webhooks
  // -------------------------------------------------------------------------------------------

  /**
   * A call of `POST /ci/v1/hooks/{job}`: checks that the job takes webhooks and that the call
   * proves its secret, reads the push, and builds it unless it was seen already (by polling or an
   * earlier call: forges deliver again). Throws JobNotFound, WebhookDisabled,
   * WebhookSignatureInvalid or InvalidWebhookPayload; GitFailed when the remote cannot be read.
   */
  async webhook(name: string, call: { headers: Headers; body: Buffer }): Promise<WebhookOutcome> {
    const job = this.host.job(name);
    if (job === undefined) throw new JobNotFound(name);
    const hook = job.triggers.webhook;
    if (hook === undefined) throw new WebhookDisabled(`job ${name} does not take webhooks: its triggers.webhook is off`);
    const source = webhookSource(call.headers);
    if (hook.secret !== undefined) {
      const why = checkWebhookSecret(source, hook.secret, call.headers, call.body);
      if (why !== undefined) throw new WebhookSignatureInvalid(why);
    }
    const event = readWebhook(source, call.headers, call.body);
    if (event.type === 'ignored') return { builds: [], message: event.message };
    if (this.stopped) return { builds: [], message: 'CI is stopping: nothing built' };
    const run = this.exclusive(name, () => this.applyPush(name, event));
    this.track(run);
    return run;
  }

  private async applyPush(name: string, event: Extract<WebhookEvent, { type: 'push' }>): Promise<WebhookOutcome> {
    const job = this.host.job(name);
    if (job === undefined) throw new JobNotFound(name);
    const hook = job.triggers.webhook;
    if (hook === undefined) throw new WebhookDisabled(`job ${name} does not take webhooks: its triggers.webhook is off`);
    const via = `${SOURCE_NAMES[event.source]} webhook`;
    const state = this.stateOf(name);
    let refs: RemoteRefs | undefined;
    const remote = async () => (refs ??= await this.listRemoteRefs(job.repo));
    const nothing = (message: string): WebhookOutcome => ({ builds: [], message });

    if (event.ref.kind === 'tag') {
      const tag = event.ref.name;
      if (event.deleted) {
        if (state.tags.has(tag)) {
          const next = { ...state, tags: new Map(state.tags) };
          next.tags.delete(tag);
          await this.writeState(name, next);
        }
        return nothing(`tag ${tag} was deleted: nothing to build (if it is pushed again, it is built again)`);
      }
      if (!hook.tags) return nothing(`tag ${tag} not built: job ${name} builds no tags by webhook (triggers.webhook.tags is false)`);
      const commit = event.commit ?? (await remote()).tags.get(tag);
      if (commit === undefined) throw new InvalidWebhookPayload(`tag ${tag} is not in ${job.repo}`);
      const seen: SeenRef = { kind: 'tag', name: tag, commit };
      if (wasSeen(state, seen)) return nothing(`tag ${tag} at ${short(commit)} was seen already (built, or there at the first poll): not built again`);
      const build = await this.build(name, markSeen(state, seen), { cause: { kind: 'webhook', description: `tag ${tag} (${via})` }, event: 'tag', tag, commit });
      return { builds: [build], message: `tag ${tag} at ${short(commit)}: build #${build.number}` };
    }

    const jobBranch = job.branch ?? (await remote()).head;
    if (jobBranch === undefined) return nothing(`job ${name} names no branch and ${job.repo} does not say which is its default: nothing to build`);
    const branch = event.ref.name ?? jobBranch;
    if (branch !== jobBranch) return nothing(`push to ${branch} ignored: job ${name} builds ${jobBranch}`);
    if (event.deleted) {
      if (state.heads.has(branch)) {
        const next = { ...state, heads: new Map(state.heads) };
        next.heads.delete(branch);
        await this.writeState(name, next);
      }
      return nothing(`branch ${branch} was deleted: nothing to build`);
    }
    if (!hook.branch) return nothing(`push to ${branch} not built: job ${name} builds no branch pushes by webhook (triggers.webhook.branch is false)`);
    const commit = event.commit ?? (await remote()).branches.get(branch);
    if (commit === undefined) throw new InvalidWebhookPayload(`branch ${branch} is not in ${job.repo}`);
    const seen: SeenRef = { kind: 'head', branch, commit };
    if (wasSeen(state, seen)) return nothing(`commit ${short(commit)} on ${branch} was seen already: not built again`);
    const build = await this.build(name, markSeen(state, seen), { cause: { kind: 'webhook', description: `commit ${short(commit)} on ${branch} (${via})` }, event: 'push', branch, commit });
    return { builds: [build], message: `commit ${short(commit)} on ${branch}: build #${build.number}` };
  }

  // -------------------------------------------------------------------------------------------

  /** The job's state for its current repo (a new repo starts afresh). */
  private stateOf(name: string): TriggerState {
    const job = this.host.job(name);
    const state = this.states.get(name) ?? emptyTriggerState();
    return job !== undefined ? forRepo(state, job.repo) : state;
  }

  /** Queues a build with `state` in its write; the state is CI's once the write is done. */
  private async build(name: string, state: TriggerState, opts: { cause: BuildCause; event: BuildEvent; commit?: string; branch?: string; tag?: string }): Promise<Build> {
    if (this.stopped) throw new CiStopping();
    const build = await this.host.trigger(name, { ...opts, alsoWrite: [{ type: 'TRIGGER_STATE_SAVED', job: name, doc: triggerStateToDoc(state) }] });
    this.states.set(name, state);
    return build;
  }

  private async writeState(name: string, state: TriggerState): Promise<void> {
    if (this.stopped) return;
    await this.host.write([{ type: 'TRIGGER_STATE_SAVED', job: name, doc: triggerStateToDoc(state) }]);
    this.states.set(name, state);
  }

  /** The job as it was when the work began is still the job (not deleted nor replaced meanwhile). */
  private isCurrent(job: JobDefinition): boolean {
    return !this.stopped && this.host.job(job.name) === job;
  }

  /** Runs `fn` after the job's earlier trigger work, alone. */
  private exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(name) ?? Promise.resolve();
    const run = prev.then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(name, tail);
    void tail.then(() => {
      if (this.queues.get(name) === tail) this.queues.delete(name);
    });
    return run;
  }

  private track(p: Promise<unknown>): void {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
  }

  private scheduleOf(expression: string): CronSchedule | undefined {
    let s = this.schedules.get(expression);
    if (s === undefined) {
      try {
        s = parseCron(expression);
      } catch {
        return undefined; // parseJobDefinition refused it already; a stored job from an older version may still have one
      }
      this.schedules.set(expression, s);
    }
    return s;
  }
}

/** The next firing strictly after the current minute. */
function nextFiring(schedule: CronSchedule, now: number): number | undefined {
  return nextCronTime(schedule, new Date(Math.floor(now / 60_000) * 60_000))?.getTime();
}

function sameState(a: TriggerState, b: TriggerState): boolean {
  return JSON.stringify(triggerStateToDoc(a)) === JSON.stringify(triggerStateToDoc(b));
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
