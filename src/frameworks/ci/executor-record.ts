import type { ExecutorState } from './executor-pool.ts';

/** One executor: a task CI launched on an agent, and (once it said HELLO) its stream. */
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

/** An executor record as the store gave it back. (Placeholder: the checking reader comes with the store work.) */
export function readExecutorRecord(doc: unknown): ExecutorRecord {
  return doc as ExecutorRecord;
}
