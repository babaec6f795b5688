/**
 * What the config center asks of the services framework (DESIGN.md: config reaches the services
 * framework through a port of its own, which `server` implements: in `slipway up`, over the
 * framework in the same process). Today: the instances of an app, with the release each started
 * with. Rollouts (restart through the framework's deployments) will come through here too.
 */
export interface ConfigInstance {
  taskId: string;
  host: string;
  state: string;
  healthy?: boolean;
  /** The release the instance started with, when it got one. */
  configRelease?: { service: string; env: string; version: number };
}

export interface ServicesPort {
  /** The instances of the Marathon app `appId` (none when there is no such app). */
  instancesOf(appId: string): ConfigInstance[];
  /** How many instances the app is to run, or undefined when there is no such app. */
  wantedInstances(appId: string): number | undefined;
  /**
   * Restarts the app as a Marathon deployment (its upgradeStrategy and health checks apply); new
   * instances start with the config center's current release. `force` supersedes a deployment of
   * the app still under way (the way back from a rollout that failed).
   */
  restart(appId: string, o: { force: boolean }): Promise<{ deploymentId: string }>;
  /** Whether the deployment is still under way. */
  deploymentRunning(id: string): boolean;
}
