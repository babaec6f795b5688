import type { TaskState } from '../../core/task-state.ts';
import type { InstanceCondition } from './events/marathon-events.ts';

const CONDITIONS: Record<TaskState, InstanceCondition> = {
  TASK_STAGING: 'Staging',
  TASK_STARTING: 'Starting',
  TASK_RUNNING: 'Running',
  TASK_KILLING: 'Killing',
  TASK_FINISHED: 'Finished',
  TASK_FAILED: 'Failed',
  TASK_KILLED: 'Killed',
  TASK_ERROR: 'Error',
  TASK_LOST: 'Gone',
  TASK_DROPPED: 'Dropped',
  TASK_UNREACHABLE: 'Unreachable',
  TASK_GONE: 'Gone',
  TASK_GONE_BY_OPERATOR: 'GoneByOperator',
  TASK_UNKNOWN: 'Unknown',
};

/** Marathon's instance condition for a Mesos task state (Condition.scala). */
export function marathonCondition(state: TaskState): InstanceCondition {
  return CONDITIONS[state];
}
