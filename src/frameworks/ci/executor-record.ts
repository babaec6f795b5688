import { DocumentReader, type JsonObject } from '../../core/document-reader.ts';
import { tokenDigest } from '../../lib/token-digest.ts';
import type { ExecutorState } from './executor-pool.ts';

/**
 * One executor: a task CI launched on an agent, and (once it said HELLO) its stream. CI keeps
 * it as is in the store (the document of EXECUTOR_SAVED), so that a restarted CI knows every
 * executor it may have launched.
 */
export interface ExecutorRecord {
  id: string;
  label: string;
  /**
   * The SHA-256 of the launch token: given to the task at launch (in its environment, never on
   * its command line), it proves on the executor's first HELLO that CI launched it, until
   * `launchTokenExpiresAt`. CI keeps only the digest.
   */
  launchTokenDigest: string;
  launchTokenExpiresAt: number;
  /**
   * The SHA-256 of the session token CI gave the executor in WELCOME (answering a HELLO with the
   * launch token): what the executor proves itself with from then on (reconnects, artifact
   * uploads), for as long as the executor lives. It exists only in the executor's memory.
   */
  sessionTokenDigest?: string;
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

/**
 * How long a launch token proves an executor, from its launch, unless CI is told otherwise
 * (`executorTokenTtlMs`): long enough for an agent to fetch an image and start the program.
 */
export const DEFAULT_EXECUTOR_TOKEN_TTL_MS = 10 * 60_000;

const EXECUTOR_STATES: ReadonlySet<ExecutorState> = new Set<ExecutorState>(['launching', 'idle', 'busy', 'stopping']);

/**
 * Reads a stored executor (the document of EXECUTOR_SAVED) back: checks every field of
 * `ExecutorRecord` and the document's `docVersion`, and returns the document itself, typed.
 * Throws `InvalidStoredDocument` naming the executor and the field that does not match.
 */
export function readExecutorRecord(doc: unknown): ExecutorRecord {
  const r = new DocumentReader('executor', doc, executorName);
  const o = withDigestOfClearToken(r.rootObject());
  r.version(o, EXECUTOR_RECORD_DOC_VERSION);
  r.string(o, 'id');
  r.string(o, 'label');
  r.string(o, 'launchTokenDigest');
  r.number(o, 'launchTokenExpiresAt');
  r.optString(o, 'sessionTokenDigest');
  r.string(o, 'taskId');
  r.string(o, 'agentId');
  r.string(o, 'hostname');
  r.oneOf(o, 'state', EXECUTOR_STATES);
  r.number(o, 'launchedAt');
  r.optNumber(o, 'idleSince');
  r.optString(o, 'build');
  return o as unknown as ExecutorRecord;
}

/**
 * An executor stored by a version that kept its token in clear (`token`): its digest instead, the
 * token good for the default TTL from its launch (an executor launched since reconnects as
 * before; an older one is refused, and its build ends in error).
 */
function withDigestOfClearToken(o: JsonObject): JsonObject {
  const { token, ...rest } = o;
  if (typeof token !== 'string' || o['launchTokenDigest'] !== undefined) return o;
  const launchedAt = typeof o['launchedAt'] === 'number' ? o['launchedAt'] : 0;
  return { ...rest, launchTokenDigest: tokenDigest(token), launchTokenExpiresAt: launchedAt + DEFAULT_EXECUTOR_TOKEN_TTL_MS };
}

function executorName(doc: unknown): string | undefined {
  const { id, label } = doc as { id?: unknown; label?: unknown };
  if (typeof id !== 'string') return undefined;
  return typeof label === 'string' ? `${id} (label ${label})` : id;
}
