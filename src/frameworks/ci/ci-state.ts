import type { Resources } from '../../core/resources.ts';
import { setOrDelete } from '../../core/map-entry.ts';
import { applyOfferMode, freshOfferManners, type OfferMannersState, type OfferModeChange } from '../kit/offer-manners.ts';
import { loadDocuments } from '../kit/load-documents.ts';
import { buildKey, isFinished, readBuild, type Build } from './build.ts';
import type { CiChange, StoredCiState } from './ci-store.ts';
import type { WaitReason } from './executor-pool.ts';
import { readExecutorRecord, type ExecutorRecord } from './executor-record.ts';
import { DEFAULT_EXECUTOR_LABEL, defaultExecutorSpec, JOB_DOC_VERSION, readExecutorSpecDocument, type ExecutorSpec, type JobDefinition, type SealedSecret } from './job-definition.ts';

/** Executors of a label that ended before connecting, in a row, and when the next may start. */
export interface LaunchFailure {
  count: number;
  until: number;
  message: string;
}

/** An agent's latest offer, less what CI took from it (see OFFER_MEMORY_MS in executor-placement.ts). */
export interface LastOffer {
  at: number;
  hostname: string;
  attributes: Record<string, string>;
  left: Resources;
  role: string;
}

/**
 * A change of CI's state, in memory form. The first eight are durable: each maps to one store
 * change (`toStoreChange`) and takes effect in memory only once written. TRIGGER_STATE_SAVED
 * changes nothing here (the trigger runner keeps the states, and takes them once written). The
 * others are memory only; they ride in the same plans.
 */
export type CiStateChange =
  | { type: 'FRAMEWORK_ID'; frameworkId: string }
  | { type: 'JOB_SAVED'; job: JobDefinition }
  /** Removes the job and its builds (the store keeps its highest number, and so does memory). */
  | { type: 'JOB_REMOVED'; name: string }
  | { type: 'EXECUTOR_SPEC_SAVED'; label: string; spec: ExecutorSpec }
  | { type: 'BUILD_SAVED'; build: Build }
  | { type: 'EXECUTOR_SAVED'; executor: ExecutorRecord }
  | { type: 'EXECUTOR_REMOVED'; id: string }
  | { type: 'TRIGGER_STATE_SAVED'; job: string; doc: unknown }
  /** Memory only from here. Why each queued build waits (the last pass's answer). */
  | { type: 'REASONS'; reasons: ReadonlyMap<string, WaitReason> }
  /** `failure` absent: the label's executors start without delay again. */
  | { type: 'LAUNCH_FAILURE'; label: string; failure?: LaunchFailure }
  | { type: 'OFFER_SEEN'; agentId: string; offer: LastOffer }
  /** Executors wanted per label (the last pass's answer), for the next offers; the offer mode. */
  | OfferModeChange;

/**
 * The store change of a durable state change. A job is stored with its secrets sealed: `sealed`
 * gives the job's sealed form (job-secrets.ts, sealJob), and the document is that with its
 * `docVersion`.
 */
export function toStoreChange(c: CiStateChange, sealed: (job: JobDefinition) => JobDefinition<SealedSecret>): CiChange | undefined {
  switch (c.type) {
    case 'FRAMEWORK_ID':
    case 'JOB_REMOVED':
    case 'EXECUTOR_REMOVED':
    case 'TRIGGER_STATE_SAVED':
      return c;
    case 'JOB_SAVED':
      return { type: 'JOB_SAVED', name: c.job.name, doc: { ...sealed(c.job), docVersion: JOB_DOC_VERSION } };
    case 'EXECUTOR_SPEC_SAVED':
      return { type: 'EXECUTOR_SPEC_SAVED', label: c.label, doc: c.spec };
    case 'BUILD_SAVED':
      return { type: 'BUILD_SAVED', build: { job: c.build.job, number: c.build.number, finished: isFinished(c.build), doc: c.build } };
    case 'EXECUTOR_SAVED':
      return { type: 'EXECUTOR_SAVED', id: c.executor.id, doc: c.executor };
    default:
      return undefined;
  }
}

/** What CI's planners and routes read of its state. Read-only: builds, executors and jobs are values, replaced on change. */
export interface CiView {
  readonly frameworkId: string | undefined;
  readonly jobs: ReadonlyMap<string, JobDefinition>;
  /** Executor specs by label (the built-in `default` among them). */
  readonly specs: ReadonlyMap<string, ExecutorSpec>;
  /** Labels whose spec was PUT (the built-in `default` is not mirrored unless it was). */
  isStoredSpec(label: string): boolean;
  /** Builds CI keeps in memory, by build key: every build not finished, and those finished since it started or last of their job. */
  readonly builds: ReadonlyMap<string, Build>;
  readonly executors: ReadonlyMap<string, ExecutorRecord>;
  executorOfTask(taskId: string): ExecutorRecord | undefined;
  /** The highest build number the job ever had (0: none). */
  lastNumber(job: string): number;
  /** Why each queued build waits (by build key). */
  readonly reasons: ReadonlyMap<string, WaitReason>;
  readonly needs: ReadonlyMap<string, number>;
  readonly manners: OfferMannersState;
  /** Labels whose executors keep failing to start. */
  readonly launchFailures: ReadonlyMap<string, LaunchFailure>;
  /** Each agent's latest offer, less what CI took from it. */
  readonly lastOffers: ReadonlyMap<string, LastOffer>;
  /** The attributes an agent's offers showed (empty when none came yet). */
  attributesOf(agentId: string): Record<string, string>;
  /** Queued builds, oldest first, each with why it waits. */
  queue(): { build: Build; why: string }[];
}

/** CI's state in memory: a projection of its state changes (`load` goes through `apply` too). */
export class CiState implements CiView {
  frameworkId: string | undefined;
  readonly jobs = new Map<string, JobDefinition>();
  readonly specs = new Map<string, ExecutorSpec>();
  private readonly storedSpecs = new Set<string>();
  readonly builds = new Map<string, Build>();
  readonly executors = new Map<string, ExecutorRecord>();
  private readonly executorByTask = new Map<string, string>();
  private readonly numbers = new Map<string, number>();
  reasons: ReadonlyMap<string, WaitReason> = new Map();
  needs: ReadonlyMap<string, number> = new Map();
  manners: OfferMannersState = freshOfferManners();
  readonly launchFailures = new Map<string, LaunchFailure>();
  readonly lastOffers = new Map<string, LastOffer>();

  constructor() {
    // The `default` label exists out of the box.
    this.specs.set(DEFAULT_EXECUTOR_LABEL, defaultExecutorSpec());
  }

  /**
   * The stored state. Executors come back `launching` (they reconnect by themselves and say what
   * they run) unless they were being stopped. `readJob` reads a stored job's document, its
   * secrets opened (readJobDocument, then openJob), or throws.
   */
  load(stored: StoredCiState, log: (line: string) => void, readJob: (doc: unknown) => JobDefinition): void {
    if (stored.frameworkId !== undefined) this.apply({ type: 'FRAMEWORK_ID', frameworkId: stored.frameworkId });
    const skipped = (what: string) => (_: unknown, why: string) => log(`ci framework: a stored ${what} is left out: ${why}`);
    loadDocuments(stored.jobs, (j) => readJob(j.doc), (job) => this.apply({ type: 'JOB_SAVED', job }), skipped('job'));
    loadDocuments(stored.executorSpecs, (s) => ({ label: s.label, spec: readExecutorSpecDocument(s.doc) }), (s) => this.apply({ type: 'EXECUTOR_SPEC_SAVED', ...s }), skipped('executor spec'));
    loadDocuments(
      stored.executors,
      (e) => readExecutorRecord(e.doc),
      (doc) => this.apply({ type: 'EXECUTOR_SAVED', executor: { ...doc, state: doc.state === 'stopping' ? 'stopping' : 'launching' } }),
      skipped('executor'),
    );
    loadDocuments(stored.builds, (b) => readBuild(b.doc), (build) => this.apply({ type: 'BUILD_SAVED', build }), skipped('build'));
    for (const [job, n] of stored.lastNumbers) this.numbers.set(job, Math.max(n, this.numbers.get(job) ?? 0));
  }

  apply(c: CiStateChange): void {
    switch (c.type) {
      case 'FRAMEWORK_ID':
        this.frameworkId = c.frameworkId;
        return;
      case 'JOB_SAVED':
        this.jobs.set(c.job.name, c.job);
        return;
      case 'JOB_REMOVED':
        this.jobs.delete(c.name);
        for (const [key, b] of this.builds) if (b.job === c.name) this.builds.delete(key);
        return;
      case 'EXECUTOR_SPEC_SAVED':
        this.specs.set(c.label, c.spec);
        this.storedSpecs.add(c.label);
        return;
      case 'BUILD_SAVED':
        this.builds.set(buildKey(c.build.job, c.build.number), c.build);
        if (c.build.number > (this.numbers.get(c.build.job) ?? 0)) this.numbers.set(c.build.job, c.build.number);
        return;
      case 'EXECUTOR_SAVED':
        this.executors.set(c.executor.id, c.executor);
        this.executorByTask.set(c.executor.taskId, c.executor.id);
        return;
      case 'EXECUTOR_REMOVED': {
        const e = this.executors.get(c.id);
        if (e === undefined) return;
        this.executors.delete(c.id);
        this.executorByTask.delete(e.taskId);
        return;
      }
      case 'TRIGGER_STATE_SAVED':
        return;
      case 'REASONS':
        this.reasons = c.reasons;
        return;
      case 'NEEDS':
      case 'OFFER_MANNERS':
        applyOfferMode(this, c);
        return;
      case 'LAUNCH_FAILURE':
        setOrDelete(this.launchFailures, c.label, c.failure);
        return;
      case 'OFFER_SEEN':
        this.lastOffers.set(c.agentId, c.offer);
        return;
    }
  }

  // --- CiView ------------------------------------------------------------------------------

  isStoredSpec(label: string): boolean {
    return this.storedSpecs.has(label);
  }

  executorOfTask(taskId: string): ExecutorRecord | undefined {
    const id = this.executorByTask.get(taskId);
    return id === undefined ? undefined : this.executors.get(id);
  }

  lastNumber(job: string): number {
    return this.numbers.get(job) ?? 0;
  }

  attributesOf(agentId: string): Record<string, string> {
    return this.lastOffers.get(agentId)?.attributes ?? {};
  }

  queue(): { build: Build; why: string }[] {
    return [...this.builds.values()]
      .filter((b) => b.status === 'queued')
      .sort((a, b) => a.queuedAt - b.queuedAt)
      .map((b) => ({ build: b, why: this.reasons.get(buildKey(b.job, b.number))?.message ?? 'waiting for the next scheduling pass' }));
  }
}
