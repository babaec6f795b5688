import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { Filters, TaskInfo } from './mesos.ts';
import { fieldPath } from './read-by-schema.ts';

/**
 * Reading the operations of an ACCEPT, one by one (issue 11 §1). `parseCall` checks only the
 * envelope of an ACCEPT (`accept.offer_ids`): a call refused as a whole would leave its offers
 * outstanding, and a single bad task would stop every other launch of the call. The master reads
 * the rest here, and answers each part on its own:
 *
 * - `tasks`: every task info of a LAUNCH, in order. One that does not match the TaskInfo schema
 *   has `problem` (the field's path in the task info and what was expected); the master answers
 *   TASK_ERROR for it, naming the field. A task whose `task_id` cannot be read cannot be answered
 *   that way: it is in `unreadable` instead.
 * - `unreadable`: what cannot be answered per task (operations that are not objects, types other
 *   than LAUNCH, task infos without a readable task_id); the master carries out the rest, returns
 *   the unused resources, and refuses the call (400) with these messages.
 * - `refuseSeconds`: `accept.filters.refuse_seconds`, when it is valid; a bad `filters` is one
 *   more unreadable part.
 */
export interface ReadTask {
  /** The task info as sent: typed only when `problem` is undefined. */
  info: TaskInfo;
  problem?: string;
}

export interface ReadAccept {
  tasks: ReadTask[];
  unreadable: string[];
  refuseSeconds: number | undefined;
}

const checks = new Map<TSchema, TypeCheck<TSchema>>();

function check(schema: TSchema): TypeCheck<TSchema> {
  let c = checks.get(schema);
  if (c === undefined) {
    c = TypeCompiler.Compile(schema);
    checks.set(schema, c);
  }
  return c;
}

/** Reads `accept` (the ACCEPT call's payload, as received). Never throws. */
export function readAccept(accept: unknown): ReadAccept {
  const out: ReadAccept = { tasks: [], unreadable: [], refuseSeconds: undefined };
  const body = isObject(accept) ? accept : {};
  const filters = body['filters'];
  if (filters !== undefined) {
    if (check(Filters).Check(filters)) out.refuseSeconds = (filters as Filters).refuse_seconds;
    else out.unreadable.push(`filters: ${firstError(Filters, filters)}`);
  }
  const operations = body['operations'];
  if (!Array.isArray(operations)) {
    out.unreadable.push(`operations: must be an array of operations, got ${describe(operations)}`);
    return out;
  }
  operations.forEach((op: unknown, i) => {
    const at = `operations[${i}]`;
    if (!isObject(op)) {
      out.unreadable.push(`${at}: must be an object, got ${describe(op)}`);
      return;
    }
    if (op['type'] !== 'LAUNCH') {
      out.unreadable.push(`${at}: operation type ${JSON.stringify(op['type'])} is not supported (only LAUNCH); nothing of it was done`);
      return;
    }
    const infos = isObject(op['launch']) ? op['launch']['task_infos'] : undefined;
    if (!Array.isArray(infos)) {
      out.unreadable.push(`${at}.launch.task_infos: must be an array of TaskInfo`);
      return;
    }
    infos.forEach((info: unknown, j) => {
      const where = `${at}.launch.task_infos[${j}]`;
      if (check(TaskInfo).Check(info)) {
        out.tasks.push({ info: info as TaskInfo });
        return;
      }
      const problem = firstError(TaskInfo, info);
      if (!isObject(info) || !isId(info['task_id'])) {
        out.unreadable.push(`${where}: ${problem}`);
        return;
      }
      // Typed as far as an answer needs (task_id; agent_id only when readable): the master reads
      // nothing else of a task with a problem.
      out.tasks.push({ info: info as unknown as TaskInfo, problem });
    });
  });
  return out;
}

/** The first schema error of `value`, as `path: message` (`command.environment.variables[0].name: ...`). */
function firstError(schema: TSchema, value: unknown): string {
  const first = check(schema).Errors(value).First();
  if (first === undefined) return 'does not match its schema';
  const path = fieldPath(first.path);
  return `${path === '' ? '' : path + ': '}${first.message}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isId(v: unknown): boolean {
  return isObject(v) && typeof v['value'] === 'string' && v['value'] !== '';
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null || typeof v !== 'object') return JSON.stringify(v).slice(0, 40);
  return Array.isArray(v) ? 'an array' : 'an object';
}
