import { SlipwayError } from '../../core/errors.ts';

/**
 * A container could not be started (bad image, unsupported network, no command...). The message
 * is for the user: the agent puts it in the TASK_FAILED update (REASON_CONTAINER_LAUNCH_FAILED).
 */
export class ContainerLaunchFailed extends SlipwayError {
  readonly code = 'CONTAINER_LAUNCH_FAILED';
}
