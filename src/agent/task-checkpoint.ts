import { Type } from '@sinclair/typebox';
import { DocumentReader, type JsonObject } from '../core/document-reader.ts';
import { TASK_STATES, type TaskState, type TaskStatusReason } from '../core/task-state.ts';
import { FrameworkID, FrameworkInfo, TaskInfo } from '../protocol/mesos.ts';
import { readBySchema } from '../protocol/read-by-schema.ts';
import type { ContainerRef } from './containerizer.ts';
import type { TaskUser } from './task-user.ts';

/** What a task's `task.json` checkpoint holds, so that a restarted agent finds its tasks again. */
export interface TaskCheckpoint {
  framework: FrameworkInfo & { id: FrameworkID };
  info: TaskInfo;
  sandbox: string;
  containerizer?: string;
  ref?: ContainerRef;
  state: TaskState;
  killRequested?: boolean;
  killGraceMs?: number;
  killReason?: string;
  killStatusReason?: TaskStatusReason;
  frameworkShutDown?: boolean;
  /** The user the task runs as (a root agent's tasks), for its COMMAND health checks after a restart. */
  user?: TaskUser;
}

/** The newest `docVersion` of a task checkpoint this code reads (absent in a document: 1). */
export const TASK_CHECKPOINT_DOC_VERSION = 1;

const TASK_STATE_SET: ReadonlySet<TaskState> = new Set(TASK_STATES);
const CheckpointedFramework = Type.Intersect([FrameworkInfo, Type.Object({ id: FrameworkID })]);

/**
 * Reads a task checkpoint back: its framework and task info against the protocol's schemas, the
 * rest field by field, and its `docVersion`; returns the document itself, typed. Throws
 * `InvalidStoredDocument` naming the checkpoint (`where`, its directory) and the field that does
 * not match; recovery then skips that checkpoint, saying why.
 */
export function readTaskCheckpoint(doc: unknown, where: string): TaskCheckpoint {
  const r = new DocumentReader('task checkpoint', doc, where);
  const o = r.rootObject();
  r.version(o, TASK_CHECKPOINT_DOC_VERSION);
  readBySchema(CheckpointedFramework, o['framework'], () => `task checkpoint ${where}`, 'framework');
  readBySchema(TaskInfo, o['info'], () => `task checkpoint ${where}`, 'info');
  r.string(o, 'sandbox');
  r.optString(o, 'containerizer');
  r.optNested(o, 'ref', checkContainerRef);
  r.oneOf(o, 'state', TASK_STATE_SET);
  r.optBoolean(o, 'killRequested');
  r.optNumber(o, 'killGraceMs');
  r.optString(o, 'killReason');
  const reason = r.optString(o, 'killStatusReason');
  if (reason !== undefined && !reason.startsWith('REASON_')) r.fail('killStatusReason', `must be a Mesos TaskStatus reason (REASON_...), not ${JSON.stringify(reason)}`);
  r.optBoolean(o, 'frameworkShutDown');
  r.optNested(o, 'user', checkTaskUser);
  return o as unknown as TaskCheckpoint;
}

function checkContainerRef(r: DocumentReader, ref: JsonObject): void {
  const kind = r.oneOf(ref, 'kind', CONTAINER_KINDS);
  r.string(ref, 'sandbox');
  r.optString(ref, 'meta');
  if (kind === 'process') {
    r.integer(ref, 'pid');
    r.string(ref, 'startTime');
  } else {
    r.string(ref, 'containerId');
    r.string(ref, 'name');
  }
}

function checkTaskUser(r: DocumentReader, user: JsonObject): void {
  r.string(user, 'name');
  r.integer(user, 'uid');
  r.integer(user, 'gid');
  r.numbers(user, 'groups');
  r.string(user, 'home');
}

const CONTAINER_KINDS: ReadonlySet<ContainerRef['kind']> = new Set<ContainerRef['kind']>(['process', 'docker']);
