import { DocumentReader, type JsonObject } from '../../core/document-reader.ts';
import type { BuildEvent, Pipeline, StepKind, StepOutput, StepStatus } from './pipeline/pipeline.ts';

/**
 * A build, as CI keeps it (the document the store holds for it).
 *
 * Lifecycle:
 *
 *   queued ──assigned to an executor──► running ──BUILD_DONE──► success | failure | cancelled | error
 *     │                                    │
 *     ├── cancel ──► cancelled             ├── cancel ──► (CANCEL sent) … ► cancelled
 *     └── no pipeline / bad pipeline ──► error      └── its executor ends or is lost ──► error
 *
 * A build that could not even be planned (no pipeline file at the commit, invalid YAML) is
 * created in `error` with the reason, so the user sees why a trigger did nothing.
 */
export type BuildStatus = 'queued' | 'running' | 'success' | 'failure' | 'cancelled' | 'error';

export const FINISHED: ReadonlySet<BuildStatus> = new Set<BuildStatus>(['success', 'failure', 'cancelled', 'error']);

/** What started a build: `manual` (API, CLI, Jenkins API), `tag` v1.2.3, `push` of a commit, `cron`, `webhook`, `rebuild` of #n. */
export interface BuildCause {
  kind: 'manual' | 'tag' | 'push' | 'cron' | 'webhook' | 'rebuild';
  /** Human words: "tag v1.2.3", "commit 1a2b3c4 on main", "rebuild of #12", "manual (by the API)". */
  description: string;
}

export interface BuildStep {
  name: string;
  status: StepStatus;
  exitCode?: number;
  startedAt?: number;
  finishedAt?: number;
  durationMs?: number;
  error?: string;
}

export interface Build {
  job: string;
  number: number;
  status: BuildStatus;
  cause: BuildCause;
  event: BuildEvent;
  repo: string;
  commit?: string;
  branch?: string;
  tag?: string;
  /** The executor label it needs. */
  label: string;
  /** The pipeline as it was when the build was queued (a rebuild runs the same). */
  pipeline?: Pipeline;
  steps: BuildStep[];
  queuedAt: number;
  startedAt?: number;
  finishedAt?: number;
  executorId?: string;
  agentId?: string;
  hostname?: string;
  error?: string;
  artifacts: string[];
  /**
   * What its steps made that outlives it, in the order they finished: the files publish steps
   * uploaded (store, name, sha256, size, URLs), the images build-image steps pushed (registry,
   * name, digest). Absent until a step reports one.
   */
  outputs?: StepOutput[];
  /** Set once a cancel was asked for a running build. */
  cancelRequested?: boolean;
  /** The highest report sequence number applied (executor protocol). */
  seq: number;
  /** Bytes of the whole log and of each step's log as of `seq` (to cut a log back after a crash). */
  logBytes?: { whole: number; steps: Record<string, number> };
}

export function buildKey(job: string, number: number): string {
  return `${job}#${number}`;
}

export function isFinished(b: Build): boolean {
  return FINISHED.has(b.status);
}

/** The newest `docVersion` of a stored build this code reads (absent in a document: 1). */
export const BUILD_DOC_VERSION = 1;

const BUILD_STATUSES: ReadonlySet<BuildStatus> = new Set<BuildStatus>(['queued', 'running', 'success', 'failure', 'cancelled', 'error']);
const CAUSE_KINDS: ReadonlySet<BuildCause['kind']> = new Set<BuildCause['kind']>(['manual', 'tag', 'push', 'cron', 'webhook', 'rebuild']);
const BUILD_EVENTS: ReadonlySet<BuildEvent> = new Set<BuildEvent>(['manual', 'push', 'tag', 'cron']);
const STEP_STATUSES: ReadonlySet<StepStatus> = new Set<StepStatus>(['pending', 'running', 'success', 'failure', 'skipped', 'cancelled', 'error']);
const CONDITION_STATUSES: ReadonlySet<'success' | 'failure'> = new Set(['success', 'failure'] as const);
const FAILURE_MODES: ReadonlySet<'fail' | 'ignore'> = new Set(['fail', 'ignore'] as const);
const STEP_KINDS: ReadonlySet<StepKind> = new Set<StepKind>(['commands', 'build-image', 'deploy', 'publish']);
const OUTPUT_KINDS: ReadonlySet<StepOutput['kind']> = new Set(['artifact', 'image', 'release'] as const);

/**
 * Reads a stored build (the document of BUILD_SAVED) back: checks every field of `Build`, its
 * cause, steps, log sizes and the pipeline it was queued with, and the document's `docVersion`,
 * and returns the document itself, typed. Throws `InvalidStoredDocument` naming the build
 * (`job#number`) and the field that does not match.
 *
 * Linear in the size of the document and allocation-light (one reader, no copies): CI reads every
 * build it loads and every page of history it serves through it.
 */
export function readBuild(doc: unknown): Build {
  const r = new DocumentReader('build', doc, buildName);
  const o = r.rootObject();
  r.version(o, BUILD_DOC_VERSION);
  r.string(o, 'job');
  r.integer(o, 'number');
  r.oneOf(o, 'status', BUILD_STATUSES);
  r.nested(o, 'cause', checkCause);
  r.oneOf(o, 'event', BUILD_EVENTS);
  r.string(o, 'repo');
  r.optString(o, 'commit');
  r.optString(o, 'branch');
  r.optString(o, 'tag');
  r.string(o, 'label');
  r.optNested(o, 'pipeline', checkPipeline);
  r.objects(o, 'steps', checkBuildStep);
  r.number(o, 'queuedAt');
  r.optNumber(o, 'startedAt');
  r.optNumber(o, 'finishedAt');
  r.optString(o, 'executorId');
  r.optString(o, 'agentId');
  r.optString(o, 'hostname');
  r.optString(o, 'error');
  r.strings(o, 'artifacts');
  r.optObjects(o, 'outputs', checkOutput);
  r.optBoolean(o, 'cancelRequested');
  r.integer(o, 'seq');
  r.optNested(o, 'logBytes', checkLogBytes);
  return o as unknown as Build;
}

// The parts of a build, each a function defined once (no closure per document read).

function checkCause(r: DocumentReader, c: JsonObject): void {
  r.oneOf(c, 'kind', CAUSE_KINDS);
  r.string(c, 'description');
}

function checkBuildStep(r: DocumentReader, step: JsonObject): void {
  r.string(step, 'name');
  r.oneOf(step, 'status', STEP_STATUSES);
  r.optInteger(step, 'exitCode');
  r.optNumber(step, 'startedAt');
  r.optNumber(step, 'finishedAt');
  r.optNumber(step, 'durationMs');
  r.optString(step, 'error');
}

function checkLogBytes(r: DocumentReader, l: JsonObject): void {
  r.integer(l, 'whole');
  r.numberRecord(l, 'steps');
}

/** The pipeline a build was queued with (`Pipeline`, as parsePipeline made it). */
function checkPipeline(r: DocumentReader, p: JsonObject): void {
  r.objects(p, 'steps', checkPipelineStep);
  r.strings(p, 'artifacts');
  r.optString(p, 'executor');
}

function checkPipelineStep(r: DocumentReader, step: JsonObject): void {
  r.string(step, 'name');
  // Builds stored before steps had a kind hold `commands` steps without one: they are read as
  // such (the one change made to a document read, so that the model's `kind` always holds).
  if (step['kind'] === undefined) step['kind'] = 'commands';
  const kind = r.oneOf(step, 'kind', STEP_KINDS);
  switch (kind) {
    case 'commands':
      r.optString(step, 'image');
      r.strings(step, 'commands');
      r.stringRecord(step, 'environment');
      break;
    case 'build-image':
      r.string(step, 'dockerfile');
      r.string(step, 'context');
      r.strings(step, 'tags');
      r.string(step, 'registry');
      r.stringRecord(step, 'buildArgs');
      break;
    case 'deploy':
      r.string(step, 'service');
      r.string(step, 'to');
      r.optInteger(step, 'deadlineSeconds');
      break;
    case 'publish':
      r.string(step, 'store');
      r.strings(step, 'files');
      r.string(step, 'target');
      break;
  }
  r.objects(step, 'when', checkCondition);
  r.strings(step, 'dependsOn');
  r.oneOf(step, 'failure', FAILURE_MODES);
}

function checkOutput(r: DocumentReader, output: JsonObject): void {
  const kind = r.oneOf(output, 'kind', OUTPUT_KINDS);
  r.string(output, 'step');
  r.string(output, 'name');
  switch (kind) {
    case 'artifact':
      r.string(output, 'store');
      r.string(output, 'sha256');
      r.integer(output, 'size');
      r.string(output, 'url');
      r.string(output, 'contentUrl');
      break;
    case 'image':
      r.string(output, 'registry');
      r.string(output, 'digest');
      break;
    case 'release':
      r.string(output, 'service');
      r.string(output, 'env');
      r.string(output, 'promotion');
      r.string(output, 'state');
      break;
  }
}

function checkCondition(r: DocumentReader, condition: JsonObject): void {
  const events = r.optStrings(condition, 'event');
  if (events !== undefined) {
    for (const e of events) if (!BUILD_EVENTS.has(e as BuildEvent)) r.fail('event', `must list only ${[...BUILD_EVENTS].join(', ')}, not ${JSON.stringify(e)}`);
  }
  r.optStrings(condition, 'branch');
  const statuses = r.optStrings(condition, 'status');
  if (statuses !== undefined) {
    for (const st of statuses) if (!CONDITION_STATUSES.has(st as 'success')) r.fail('status', `must list only success, failure, not ${JSON.stringify(st)}`);
  }
}

function buildName(doc: unknown): string | undefined {
  const { job, number } = doc as { job?: unknown; number?: unknown };
  if (typeof job !== 'string') return undefined;
  return typeof number === 'number' ? buildKey(job, number) : job;
}
