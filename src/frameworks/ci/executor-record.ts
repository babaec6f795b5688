import { DocumentReader } from '../../core/document-reader.ts';
import type { ExecutorState } from './executor-pool.ts';

/**
 * One executor: a task CI launched on an agent, and (once it said HELLO) its stream. CI keeps
 * it as is in the store (the document of EXECUTOR_SAVED), so that a restarted CI knows every
 * executor it may have launched.
 */
export interface ExecutorRecord {
  id: string;
  label: string;
  /** Given to the task at launch; an executor proves with it that CI launched it. */
  token: string;
  taskId: string;
  agentId: string;
  hostname: string;
  state: ExecutorState;
  launchedAt: number;
  idleSince?: number;
  /** The build it runs (a build key). */
  build?: string;
}

/** The newest `docVersion` of a stored executor this code reads (absent in a document: 1). */
export const EXECUTOR_RECORD_DOC_VERSION = 1;

const EXECUTOR_STATES: ReadonlySet<ExecutorState> = new Set<ExecutorState>(['launching', 'idle', 'busy', 'stopping']);

/**
 * Reads a stored executor (the document of EXECUTOR_SAVED) back: checks every field of
 * `ExecutorRecord` and the document's `docVersion`, and returns the document itself, typed.
 * Throws `InvalidStoredDocument` naming the executor and the field that does not match.
 */
export function readExecutorRecord(doc: unknown): ExecutorRecord {
  const r = new DocumentReader('executor', doc, executorName);
  const o = r.rootObject();
  r.version(o, EXECUTOR_RECORD_DOC_VERSION);
  r.string(o, 'id');
  r.string(o, 'label');
  r.string(o, 'token');
  r.string(o, 'taskId');
  r.string(o, 'agentId');
  r.string(o, 'hostname');
  r.oneOf(o, 'state', EXECUTOR_STATES);
  r.number(o, 'launchedAt');
  r.optNumber(o, 'idleSince');
  r.optString(o, 'build');
  return o as unknown as ExecutorRecord;
}

function executorName(doc: unknown): string | undefined {
  const { id, label } = doc as { id?: unknown; label?: unknown };
  if (typeof id !== 'string') return undefined;
  return typeof label === 'string' ? `${id} (label ${label})` : id;
}
