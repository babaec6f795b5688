import { SlipwayError } from '../../core/errors.ts';

/**
 * A container could not be started (bad image, unsupported network, no command...). The message
 * is for the user: the agent puts it in the TASK_FAILED update (REASON_CONTAINER_LAUNCH_FAILED).
 */
export class ContainerLaunchFailed extends SlipwayError {
  readonly code = 'CONTAINER_LAUNCH_FAILED';
  // 422: the task as given cannot be started here (unsupported network or container type, no
  // command, an image that cannot be had): resending it unchanged will fail again. An engine that
  // is down is ContainerizerUnavailable (503) instead. Today the failure goes into the task's
  // TASK_FAILED update and no HTTP answer carries it.
  readonly status = 422;
}
