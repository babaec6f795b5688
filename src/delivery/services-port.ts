import type { JsonObject } from './delivery-definitions.ts';

/**
 * What delivery asks of the services framework (DESIGN.md: delivery reaches it through a port of
 * its own, which `server` implements; in `slipway up`, over the framework in the same process).
 * App definitions cross it as Marathon JSON, which the framework validates as `POST /v2/apps`
 * does.
 */

export interface AppProgress {
  /** How many instances the app is to run. */
  wanted: number;
  /** Instances that run the definition given (its `lastConfigChangeAt`), are not being killed, and are healthy (or running without checks). */
  healthyOnVersion: number;
  /** Instances of any other definition still there. */
  old: number;
}

export interface PreflightAnswer {
  fits: boolean;
  /** Why instances cannot be placed now, when they cannot (per agent). */
  reasons?: unknown;
}

export interface DeliveryServicesPort {
  /** The app's definition (Marathon JSON, without version info), or undefined when there is no such app. */
  appDefinition(appId: string): JsonObject | undefined;
  /**
   * Whether the framework can place the definition now (POST /v2/plan's answer). Throws
   * DeploymentRefused (422) when the definition is not valid.
   */
  preflight(app: JsonObject): Promise<PreflightAnswer>;
  /**
   * Creates or replaces the app (one Marathon deployment; its upgradeStrategy and health checks
   * apply). `force` supersedes a deployment of the app under way (the way back). Answers the
   * deployment and the definition's `lastConfigChangeAt`. Throws DeploymentRefused when invalid.
   */
  deploy(app: JsonObject, o: { force: boolean }): Promise<{ deploymentId: string; configVersion: string }>;
  /** Removes the app (the way back from a first promotion that failed: nothing ran before). */
  remove(appId: string): Promise<void>;
  /** Whether the deployment is still under way. */
  deploymentRunning(id: string): boolean;
  progress(appId: string, configVersion: string): AppProgress | undefined;
  /** A deadline for a deployment of the definition, from its health checks and upgradeStrategy (ms). */
  deadlineMs(app: JsonObject): number;
  /** Whether a config rollout of the app runs now (a promotion then waits its turn: 409). */
  configRolloutOf?(appId: string): string | undefined;
  /** The config center's current release of (service, env), if any. */
  configReleaseOf?(service: string, env: string): number | undefined;
}
