import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { SystemClock, type Clock } from '../../core/clock.ts';
import { privateDir } from '../../lib/private-files.ts';
import { writeThrough, type WriteQueue } from '../../lib/write-queue.ts';
import type { TaskStatus } from '../../protocol/mesos.ts';
import type { Event } from '../../protocol/scheduler.ts';
import type { SchedulerTransport } from '../../protocol/scheduler-transport.ts';
import { FrameworkSession } from '../kit/framework-session.ts';
import { FrameworkTurns } from '../kit/framework-turns.ts';
import { buildKey, readBuild, type Build, type BuildCause } from './build.ts';
import { BuildLogStore } from './build-log-store.ts';
import { resolveBuildSource } from './build-planner.ts';
import { BuildNotFound, DeployTokenRefused, InvalidJob, JobNotFound } from './ci-errors.ts';
import { CiState, toStoreChange, type CiStateChange, type CiView } from './ci-state.ts';
import type { CiChange, CiStore } from './ci-store.ts';
import { ExecutorHub, type ExecutorReport } from './executor-hub.ts';
import { planExecutorLaunches } from './executor-placement.ts';
import { DEFAULT_EXECUTOR_TOKEN_TTL_MS } from './executor-record.ts';
import type { ExecutorProgramFor } from './executor-task.ts';
import { writeMirror } from './git/config-mirror.ts';
import { readJobDocument, type ExecutorSpec, type JobDefinition, type SealedSecret, type SecretInput } from './job-definition.ts';
import { openJob, sealJob, type SecretSealer } from './job-secrets.ts';
import type { BuildEvent, Pipeline } from './pipeline/pipeline.ts';
import { CiPlanBuilder, type CiPlan } from './plan/ci-plan.ts';
import { planHello, planReports, planTaskUpdates } from './plan/plan-executors.ts';
import { planCancel, planDeleteJob, planPutExecutorSpec, planPutJob, planQueueBuild } from './plan/plan-operations.ts';
import { planPass } from './plan/plan-pass.ts';
import { TriggerRunner, type TriggerStateChange, type TriggerStatus, type WebhookOutcome } from './triggers/trigger-runner.ts';
import type { Headers } from './triggers/webhook-request.ts';
import { DEPLOY_TOKEN_MARGIN_MS, DEPLOY_TOKEN_TTL_MS, type DeployTokens } from './deploy-tokens.ts';

export interface CiFrameworkOptions {
  transport: SchedulerTransport;
  store: CiStore;
  /**
   * Seals the jobs' secrets before they reach the store or the git mirror, and opens them when
   * they are loaded or given back sealed in a PUT (the server gives lib's SecretBox, whose key
   * is `<data-dir>/secret.key` or `--secret-key-file`).
   */
  secrets: SecretSealer;
  /**
   * The secret store (`/auth/v1/secrets`), for the jobs' `credentials`: `slipway up` gives the
   * master's. Absent (CI in its own process): jobs with credentials are refused.
   */
  secretStore?: { value(name: string): string | undefined };
  /** Logs, artifacts and scratch checkouts live here. */
  dataDir: string;
  /** How an executor task runs `slipway ci-executor --server ... --id ...`, its token in its environment (executor-task.ts). */
  executorProgram: ExecutorProgramFor;
  role?: string;
  /**
   * A git repository (URL or path) that mirrors the jobs and executor specs: written and pushed
   * after every change (`slipway ci import --from` restores them into a fresh server).
   */
  mirrorRepo?: string;
  /** Time and timers (default the system clock); a ManualClock runs CI on simulated time. */
  clock?: Clock;
  /** New executor ids (default randomUUID) and tokens, launch and session ones (default 32 random bytes, hex). */
  uuid?: () => string;
  token?: () => string;
  /**
   * How long an executor's launch token (in its task's environment) proves it, from its launch
   * (default DEFAULT_EXECUTOR_TOKEN_TTL_MS, 10 minutes). Its first WELCOME gives it a session
   * token, good while it lives.
   */
  executorTokenTtlMs?: number;
  /** Tokens for deploy steps, and where delivery is (`slipway up`: its own tokens and `/deliver/v1`). Absent: deploy steps are refused a token. */
  deployTokens?: DeployTokens;
  /** Attempts of a store write before the change is refused with 503 (default 10). */
  writeAttempts?: number;
  log?: (line: string) => void;
}

/** A pass runs at least this often, for what changes with time (heartbeats, idle executors, backoffs). */
const TICK_MS = 1000;

/**
 * CI as a framework of the cluster, as a short wiring of the kit (session, applier, write
 * queue), its state (ci-state.ts), its edges (ExecutorHub: the executors' streams; BuildLogStore:
 * the log files; resolveBuildSource: git; TriggerRunner: polls, webhooks, cron) and its pure
 * planners (plan/, executor-placement.ts, executor-pool.ts):
 *
 *   offers, task updates, executors' HELLOs and reports, API verbs, the tick
 *        ──► a turn: plan*(view, now) ──► log pieces ──► store batch ──► memory ──► calls ──► executor messages
 *
 * Durability: jobs, specs, builds, executors and trigger states are written before they are
 * acted on. After a restart, running builds wait RECONNECT_GRACE_MS for their executor (which
 * reconnects by itself and says what it runs); a build whose executor is gone ends in `error`
 * with the reason; executor tasks CI does not know are killed (implicit reconciliation).
 */
export class CiFramework {
  private readonly state = new CiState();
  /** CI's state, read-only: what routes read. */
  readonly view: CiView = this.state;
  readonly logs: BuildLogStore;
  /** The executors' streams (the HTTP layer hands it each stream). */
  readonly hub: ExecutorHub;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private readonly role: string;
  private readonly writes: WriteQueue<CiChange>;
  private readonly turns: FrameworkTurns<CiStateChange, never, CiChange, CiPlan>;
  private readonly triggers: TriggerRunner;
  private session: FrameworkSession | undefined;
  private startedAt = 0;
  private mirrorChain: Promise<void> = Promise.resolve();
  /** Each job's sealed form, as last stored (what the mirror writes: sealing anew would change it on every write). */
  private readonly sealedJobs = new Map<string, { job: JobDefinition; sealed: JobDefinition<SealedSecret> }>();
  /** Queue an input; one turn takes all that came meanwhile. */
  private readonly update: (status: TaskStatus) => void;
  private readonly report: (r: { executorId: string; report: ExecutorReport }) => void;

  constructor(private readonly options: CiFrameworkOptions) {
    const store = options.secretStore;
    const credential = store !== undefined ? (name: string) => store.value(name) : undefined;
    this.clock = options.clock ?? new SystemClock();
    this.log = options.log ?? (() => undefined);
    this.role = options.role ?? '*';
    this.logs = new BuildLogStore(join(options.dataDir, 'logs'), this.log);
    this.hub = new ExecutorHub({
      clock: this.clock,
      executor: (id) => this.state.executors.get(id),
      onHello: (hello, via) => void this.turns.turn(() => planHello(this.state, hello, this.clock.now(), via === 'launch' ? this.newToken() : undefined)),
      onReport: (executorId, report) => this.report({ executorId, report }),
    });
    this.writes = writeThrough('CI store', options.store, { clock: this.clock, attempts: options.writeAttempts, log: this.log });
    this.turns = new FrameworkTurns({
      name: 'ci framework',
      clock: this.clock,
      tickMs: TICK_MS,
      planPass: () => planPass(this.state, this.hub, {
          now: this.clock.now(),
          startedAt: this.startedAt,
          subscribed: this.session?.subscription !== undefined,
          role: this.role,
          ...(credential !== undefined ? { credential } : {}),
        }),
      toStore: (c) => toStoreChange(c, (job) => this.sealedOf(job)),
      write: (changes) => this.writes.write(changes),
      apply: (c) => this.state.apply(c),
      send: (call) => this.session?.send(call),
      publish: () => undefined,
      log: this.log,
      prepare: async (plan) => {
        await Promise.all(plan.logs.map((l) => this.logs.append(l.job, l.number, l.step, l.text, l.stored)));
      },
      failed: (plan) => {
        for (const l of plan.logs) this.logs.forget(l.job, l.number);
      },
      finish: (plan) => this.finish(plan),
    });
    this.update = this.turns.batched((statuses: TaskStatus[]) => planTaskUpdates(this.state, this.hub, statuses, this.clock.now()));
    this.report = this.turns.batched((reports: { executorId: string; report: ExecutorReport }[]) => planReports(this.state, reports, this.clock.now(), credential));
    this.triggers = new TriggerRunner(
      {
        jobs: () => this.state.jobs.values(),
        job: (name) => this.state.jobs.get(name),
        trigger: (job, opts) => this.trigger(job, opts),
        write: (changes) => this.turns.operation(() => ({ plan: { ...new CiPlanBuilder().plan, changes }, result: undefined })),
        log: this.log,
      },
      { clock: this.clock },
    );
  }

  async start(): Promise<void> {
    const stored = await this.options.store.load();
    let opened = 0;
    let unopened = 0;
    const inClear: JobDefinition[] = [];
    this.state.load(stored, this.log, (doc) => {
      const read = readJobDocument(doc);
      let o: ReturnType<typeof openJob>;
      try {
        o = openJob(read, this.options.secrets);
      } catch (e) {
        unopened++;
        throw new Error(`its secrets do not open with this key: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      opened++;
      if (o.sealed !== undefined) this.sealedJobs.set(o.job.name, { job: o.job, sealed: o.sealed });
      if (o.inClear) inClear.push(o.job);
      return o.job;
    });
    if (unopened > 0 && opened === 0) {
      // Every job with secrets refused: the key is not theirs. Starting would serve CI without
      // its jobs, and the next PUT of one would overwrite what only the right key can open.
      throw new Error(`CI's stored secrets do not open with this secret key (${unopened} job(s)): start CI with the key they were sealed with (--secret-key-file, or the secret.key of its data dir)`);
    }
    // Jobs stored before secrets were sealed: sealed now, so that nothing stays in clear.
    if (inClear.length > 0) {
      await this.writes.write(inClear.map((job) => toStoreChange({ type: 'JOB_SAVED', job }, (j) => this.sealedOf(j))!));
      this.log(`ci framework: sealed the secrets of ${inClear.length} job(s) stored in clear by an older version`);
    }
    this.triggers.load(stored.triggerStates);
    this.startedAt = this.clock.now();
    // CI's own files: logs (which may quote what a build printed), artifacts, scratch checkouts
    // and the mirror's working copy, 0700 dirs and 0600 files whatever the umask.
    for (const sub of ['logs', 'artifacts', 'scratch']) await privateDir(join(this.options.dataDir, sub));
    let connected: () => void = () => undefined;
    const subscribed = new Promise<void>((resolve) => (connected = resolve));
    this.session = new FrameworkSession({
      transport: this.options.transport,
      clock: this.clock,
      name: 'slipway-ci',
      role: this.role,
      failoverTimeoutSeconds: 7 * 24 * 3600,
      capabilities: [{ type: 'MULTI_ROLE' }, { type: 'PARTITION_AWARE' }],
      ...(this.state.frameworkId !== undefined ? { frameworkId: this.state.frameworkId } : {}),
      onFrameworkId: (id) => void this.turns.turn(() => new CiPlanBuilder().change({ type: 'FRAMEWORK_ID', frameworkId: id }).plan),
      onSubscribed: () => {
        void this.turns.turn(() => this.subscribedPlan());
        connected();
      },
      onEvent: (e) => this.onEvent(e),
      log: this.log,
    });
    void this.session.connect();
    this.turns.start();
    await subscribed;
    this.triggers.start();
  }

  async stop(): Promise<void> {
    this.session?.close();
    this.hub.closeAll();
    await this.triggers.stop();
    await this.turns.stop();
    await this.writes.flush();
    await this.mirrorChain;
  }

  /** Resolves once every turn asked so far is applied (tests wait on it). */
  settled(): Promise<void> {
    return this.turns.drained();
  }

  // --- the API's verbs (plan/plan-operations.ts) ---------------------------------------------

  /**
   * Saves a job (PUT /ci/v1/jobs/{name}): its secrets as given, "***" keeping the stored value,
   * `{encrypted}` opened (job-secrets.ts). True when it is new; throws InvalidJob for a secret
   * that cannot be read.
   */
  async putJob(input: JobDefinition<SecretInput>): Promise<boolean> {
    if (input.credentials !== undefined && this.options.secretStore === undefined) {
      throw new InvalidJob([{ field: 'credentials', message: 'this CI has no secret store to read credentials from (it runs apart from the master): give the values in `secrets`, or run CI in `slipway up`' }]);
    }
    const withSecret = [
      ...Object.entries(input.artifactStores ?? {}).flatMap(([name, s]) => (s.passwordSecret !== undefined ? [`artifactStores.${name}.passwordSecret`] : [])),
      ...Object.entries(input.registries ?? {}).flatMap(([name, s]) => (s.passwordSecret !== undefined ? [`registries.${name}.passwordSecret`] : [])),
    ];
    if (withSecret.length > 0 && this.options.secretStore === undefined) {
      throw new InvalidJob(withSecret.map((field) => ({ field, message: 'this CI has no secret store to read the password from (it runs apart from the master): run CI in `slipway up`' })));
    }
    const { created, job } = await this.turns.operation(() => planPutJob(this.state, input, this.options.secrets));
    this.triggers.jobSaved(job, created);
    return created;
  }

  async deleteJob(name: string): Promise<boolean> {
    const removed = await this.turns.operation(() => planDeleteJob(this.state, name));
    if (removed) this.triggers.jobRemoved(name);
    return removed;
  }

  putExecutorSpec(label: string, spec: ExecutorSpec): Promise<boolean> {
    return this.turns.operation(() => planPutExecutorSpec(this.state, label, spec));
  }

  /**
   * Queues a build of `job`: what it runs is read from git first (resolveBuildSource: a build
   * that cannot start is queued in `error` with why), then a turn gives it its number and stores
   * it. `alsoWrite` goes into the build's own store batch (a trigger's state: what it marks as
   * built is durable with the build). Throws JobNotFound.
   */
  async trigger(
    jobName: string,
    opts: { cause: BuildCause; event: BuildEvent; commit?: string; branch?: string; tag?: string; pipeline?: Pipeline; alsoWrite?: TriggerStateChange[] },
  ): Promise<Build> {
    const job = this.state.jobs.get(jobName);
    if (job === undefined) throw new JobNotFound(jobName);
    const ref = { ...(opts.commit !== undefined ? { commit: opts.commit } : {}), ...(opts.branch !== undefined ? { branch: opts.branch } : {}), ...(opts.tag !== undefined ? { tag: opts.tag } : {}), ...(opts.pipeline !== undefined ? { pipeline: opts.pipeline } : {}) };
    const source = await resolveBuildSource(job, ref, join(this.options.dataDir, 'scratch'));
    const request = { cause: opts.cause, event: opts.event, ...(opts.tag !== undefined ? { tag: opts.tag } : {}), ...(opts.alsoWrite !== undefined ? { alsoWrite: opts.alsoWrite } : {}) };
    return this.turns.operation(() => planQueueBuild(this.state, jobName, source, request, this.clock.now()));
  }

  async rebuild(jobName: string, number: number): Promise<Build> {
    const old = await this.getBuild(jobName, number);
    if (old === undefined) throw new BuildNotFound(jobName, number);
    return this.trigger(jobName, {
      cause: { kind: 'rebuild', description: `rebuild of #${number}` },
      event: old.event,
      ...(old.commit !== undefined ? { commit: old.commit } : {}),
      ...(old.branch !== undefined ? { branch: old.branch } : {}),
      ...(old.tag !== undefined ? { tag: old.tag } : {}),
      ...(old.pipeline !== undefined ? { pipeline: old.pipeline } : {}),
    });
  }

  /** Cancels a queued build at once, a running one through its executor. False if it had ended. */
  cancel(job: string, number: number): Promise<boolean> {
    return this.turns.operation(() => planCancel(this.state, job, number, this.clock.now()));
  }

  async getBuild(job: string, number: number): Promise<Build | undefined> {
    const b = this.state.builds.get(buildKey(job, number));
    if (b !== undefined) return b;
    const [stored] = await this.options.store.builds(job, { limit: 1, before: number + 1 });
    return stored !== undefined && stored.number === number ? readBuild(stored.doc) : undefined;
  }

  async listBuilds(job: string, limit: number, before?: number): Promise<Build[]> {
    const stored = await this.options.store.builds(job, { limit, ...(before !== undefined ? { before } : {}) });
    return stored.map((s) => this.state.builds.get(buildKey(s.job, s.number)) ?? readBuild(s.doc));
  }

  /**
   * A token for a deploy step of a running build (`POST /ci/v1/jobs/{job}/builds/{n}/deploy-token`),
   * asked by the executor that runs it, proved by its token. Refused (DeployTokenRefused, 403)
   * unless the build runs on that executor, the job lists the service in `deploys`, and a deploy
   * step of the build's pipeline names it. The token lives the longest deadline of those steps
   * (or DEPLOY_TOKEN_TTL_MS) plus DEPLOY_TOKEN_MARGIN_MS.
   */
  async deployToken(job: string, number: number, proof: { executor: string; token: string }, service: string): Promise<{ url: string; token: string; expiresAt: string }> {
    const e = this.hub.authenticate(proof.executor, proof.token)?.executor;
    const build = this.state.builds.get(buildKey(job, number));
    if (e === undefined || build === undefined || build.status !== 'running' || e.build !== buildKey(job, number)) {
      throw new DeployTokenRefused('only the executor running the build may ask for its deploy tokens');
    }
    const definition = this.state.jobs.get(job);
    if (!(definition?.deploys ?? []).includes(service)) throw new DeployTokenRefused(`job ${job} may not deploy ${service}: it is not in the job's deploys (${(definition?.deploys ?? []).join(', ') || 'none'})`);
    const steps = (build.pipeline?.steps ?? []).filter((s) => s.kind === 'deploy' && s.service === service);
    if (steps.length === 0) throw new DeployTokenRefused(`no deploy step of build ${job}#${number} deploys ${service}`);
    const tokens = this.options.deployTokens;
    if (tokens === undefined) throw new DeployTokenRefused('this CI server has no delivery to deploy with (run CI in `slipway up`)');
    const longest = Math.max(...steps.map((s) => (s.kind === 'deploy' && s.deadlineSeconds !== undefined ? s.deadlineSeconds * 1000 : DEPLOY_TOKEN_TTL_MS)));
    const minted = await tokens.mint({ service, job, build: number, ttlMs: longest + DEPLOY_TOKEN_MARGIN_MS });
    this.log(`ci framework: build ${job}#${number} got a token to deploy ${service}, until ${new Date(minted.expiresAt).toISOString()}`);
    return { url: tokens.deliveryUrl(), token: minted.token, expiresAt: new Date(minted.expiresAt).toISOString() };
  }

  /** `POST /ci/v1/hooks/{job}`: see TriggerRunner.webhook for what it checks and throws. */
  webhook(job: string, call: { headers: Headers; body: Buffer }): Promise<WebhookOutcome> {
    return this.triggers.webhook(job, call);
  }

  /** What a job's triggers have seen and when they look next (`GET /ci/v1/jobs/{name}/triggers`). */
  triggerStatus(job: JobDefinition): TriggerStatus {
    return this.triggers.status(job);
  }

  private newToken(): string {
    return this.options.token?.() ?? randomBytes(32).toString('hex');
  }

  /** The job with its secrets sealed: its last sealed form if it is that job, else sealed now (reusing what is unchanged). */
  private sealedOf(job: JobDefinition): JobDefinition<SealedSecret> {
    const known = this.sealedJobs.get(job.name);
    if (known?.job === job) return known.sealed;
    const sealed = sealJob(job, this.options.secrets, known);
    this.sealedJobs.set(job.name, { job, sealed });
    return sealed;
  }

  /** Resolves once the mirror writes asked so far are done (for tests and shutdown). */
  mirrored(): Promise<void> {
    return this.mirrorChain;
  }

  // --- the master's events -------------------------------------------------------------------

  private onEvent(e: Event): void {
    if (e.type === 'UPDATE') this.update(e.update.status);
    else if (e.type === 'OFFERS') {
      const offers = e.offers.offers;
      const ctx = { uuid: this.options.uuid ?? randomUUID, token: () => this.newToken(), tokenTtlMs: this.options.executorTokenTtlMs ?? DEFAULT_EXECUTOR_TOKEN_TTL_MS, executorProgram: this.options.executorProgram };
      this.turns.offers(offers, () => planExecutorLaunches(this.state, offers, { ...ctx, now: this.clock.now() }));
    }
  }

  /** Subscribed (again): the executors' tasks reconciled, explicitly then implicitly; the offer mode starts over. */
  private subscribedPlan(): CiPlan {
    const plan = new CiPlanBuilder().plan;
    const tasks = [...this.state.executors.values()].map((e) => ({ task_id: { value: e.taskId }, agent_id: { value: e.agentId } }));
    if (tasks.length > 0) plan.calls.push({ type: 'RECONCILE', reconcile: { tasks } });
    plan.calls.push({ type: 'RECONCILE', reconcile: { tasks: [] } });
    plan.changes.push({ type: 'OFFER_MANNERS', state: { ...this.state.manners, suppressed: false, lastNeed: 0 } });
    plan.pass = true;
    return plan;
  }

  /** What a plan asks of CI itself, once it is applied. */
  private finish(plan: CiPlan): void {
    for (const id of plan.drops) this.hub.drop(id);
    for (const c of plan.changes) {
      if (c.type === 'EXECUTOR_REMOVED') this.hub.forget(c.id);
      if (c.type === 'JOB_REMOVED') this.sealedJobs.delete(c.name);
    }
    for (const s of plan.sends) this.hub.send(s.executorId, s.message);
    for (const b of plan.ended) this.logs.ended(b.job, b.number);
    if (plan.mirror !== undefined) this.mirror(plan.mirror);
  }

  /**
   * Writes the configuration to the mirror repository, after the store (the store is the truth;
   * a failed push is logged and the next change pushes everything again). Serialized.
   */
  private mirror(message: string): void {
    const repo = this.options.mirrorRepo;
    if (repo === undefined) return;
    // The mirror holds each job's secrets sealed ({"encrypted": "v1:..."}), as the store does,
    // rather than leaving them out: a mirror is there to rebuild CI elsewhere (`slipway ci import
    // --from`), and a CI given the same key (--secret-key-file) gets the jobs back whole, while
    // whoever reads the repository reads no secret. A sealed value opens only as the secret of
    // the job and name it was sealed for, so a mirror's value cannot be put in another job to
    // be printed by its build.
    const config = {
      jobs: new Map([...this.state.jobs.values()].map((j) => [j.name, this.sealedOf(j)] as const)),
      executors: new Map([...this.state.specs].filter(([label]) => this.state.isStoredSpec(label))),
    };
    this.mirrorChain = this.mirrorChain
      .then(() => writeMirror(repo, join(this.options.dataDir, 'mirror'), config, message))
      .then(
        (commit) => commit !== undefined && this.log(`ci: configuration mirrored to ${repo} (${commit.slice(0, 12)}: ${message})`),
        (e: unknown) => this.log(`ci: mirror to ${repo} failed: ${e instanceof Error ? e.message : String(e)}`),
      )
      .then(() => undefined);
  }
}
