import { SlipwayError } from '../../core/errors.ts';

// Failures of the services framework's operations, each with its own code and HTTP status (the
// Marathon routes answer them through marathonErrorReply). Messages are Marathon's where Marathon has one, because deploy
// scripts match on them.

export class AppNotFound extends SlipwayError {
  readonly code = 'APP_NOT_FOUND';
  readonly status = 404;
  constructor(readonly appId: string) {
    super(`App '${appId}' does not exist`);
  }
}

export class AppAlreadyExists extends SlipwayError {
  readonly code = 'APP_ALREADY_EXISTS';
  readonly status = 409;
  constructor(readonly appId: string) {
    super(`An app with id [${appId}] already exists.`);
  }
}

export class GroupNotFound extends SlipwayError {
  readonly code = 'GROUP_NOT_FOUND';
  readonly status = 404;
  constructor(readonly groupId: string) {
    super(`Group '${groupId}' does not exist`);
  }
}

/** POST of a group that exists (Marathon's ConflictingChangeException for groups). */
export class GroupAlreadyExists extends SlipwayError {
  readonly code = 'GROUP_ALREADY_EXISTS';
  readonly status = 409;
  constructor(readonly groupId: string) {
    super(`Group ${groupId} is already created. Use PUT to change this group.`);
  }
}

export class TaskNotFoundInApp extends SlipwayError {
  readonly code = 'APP_TASK_NOT_FOUND';
  readonly status = 404;
  constructor(readonly taskId: string) {
    super(`Task '${taskId}' does not exist`);
  }
}

export class DeploymentNotFound extends SlipwayError {
  readonly code = 'DEPLOYMENT_NOT_FOUND';
  readonly status = 404;
  constructor(readonly deploymentId: string) {
    super(`DeploymentPlan ${deploymentId} does not exist`);
  }
}

export class AppVersionNotFound extends SlipwayError {
  readonly code = 'APP_VERSION_NOT_FOUND';
  readonly status = 404;
  constructor(appId: string, version: string) {
    super(`App '${appId}' does not exist in version ${version}`);
  }
}

/** A change touches apps that a running deployment holds (Marathon's AppLockedException, 409). */
export class AppLocked extends SlipwayError {
  readonly code = 'APP_LOCKED';
  readonly status = 409;
  constructor(readonly deploymentIds: string[]) {
    super(
      `App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.`,
    );
  }

  /** Marathon's 409 body: the message and the deployments that hold the app. */
  override get body(): { message: string; deployments: { id: string }[] } {
    return { message: this.message, deployments: this.deploymentIds.map((id) => ({ id })) };
  }
}

/** The change does not make sense as a whole (e.g. a group PUT whose app ids are outside it). */
export class InvalidAppsRequest extends SlipwayError {
  readonly code = 'INVALID_APPS_REQUEST';
  readonly status = 400;
}

/**
 * A request carries more than a route takes at once (`PUT /v2/apps` of more than
 * MAX_APPS_PER_REQUEST apps): refused before any of it is read, so that one request cannot hold
 * the event loop for seconds nor answer megabytes of errors. Split it into several requests.
 */
export class TooManyInRequest extends SlipwayError {
  readonly code = 'TOO_MANY_IN_REQUEST';
  readonly status = 413;
}

/** Every port of the service port range is named by some app (Marathon's PortRangeExhaustedException). */
export class ServicePortsExhausted extends SlipwayError {
  readonly code = 'SERVICE_PORTS_EXHAUSTED';
  readonly status = 409;
  constructor(min: number, max: number) {
    super(`All ports in the range ${min}-${max} are already in use`);
  }
}
