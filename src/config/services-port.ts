/**
 * What the config center asks of the services framework (DESIGN.md: config reaches the services
 * framework through a port of its own, which `server` implements: in `slipway up`, over the
 * framework in the same process): the instances of an app, with the release each started with, and
 * its restart through the framework's deployments (rollouts).
 */
export interface ConfigInstance {
  taskId: string;
  host: string;
  /** The attributes of the instance's agent, as its offers carry them (gray releases by attribute). */
  attributes?: Record<string, string>;
  state: string;
  /** Being killed (it counts no more). */
  killing?: boolean;
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
  /**
   * How long a restart of the app may take before it counts as failed, from its health checks and
   * upgradeStrategy (rolloutDeadlineOf); undefined when there is no such app.
   */
  rolloutDeadlineMs(appId: string): number | undefined;
  /**
   * Kills these instances of the app, which the framework replaces (Marathon's kill without
   * scale): a gray release's subset restarted onto it, or back onto the main release.
   */
  killTasks(appId: string, taskIds: readonly string[]): Promise<void>;
  /** Whether the deployment is still under way. */
  deploymentRunning(id: string): boolean;
  /** Delivery's promotion under way on the app, if any (a config release then waits: 409). */
  promotionOf?(appId: string): string | undefined;
  /**
   * The app id delivery's environment gives the config service in `env` (the delivery service
   * whose `configService` it is, in the delivery environment whose `configEnv` it is), if any:
   * it wins over the config service's own `apps`.
   */
  appIdOf?(configService: string, env: string): string | undefined;
}

/** What a rollout adds to the health checks' time for every wave: fetch, launch and start. */
export const ROLLOUT_LAUNCH_SLACK_MS = 30_000;
/** The deadline of an app without health checks (running is enough, but launches take time). */
export const ROLLOUT_DEADLINE_WITHOUT_CHECKS_MS = 5 * 60 * 1000;

/**
 * A rollout's deadline from the app (issue 13: "default from the app's health checks"): an
 * instance has its checks' grace period, then `maxConsecutiveFailures` + 1 intervals and a timeout
 * to pass (the slowest check counts); a restart replaces the instances in waves as wide as the
 * upgradeStrategy lets (`instances` - ceil(instances x minimumHealthCapacity) stopped, plus
 * floor(instances x maximumOverCapacity) started beside them, at least one); each wave adds
 * ROLLOUT_LAUNCH_SLACK_MS. Without checks, ROLLOUT_DEADLINE_WITHOUT_CHECKS_MS.
 */
export function rolloutDeadlineOf(app: { instances: number; healthChecks: readonly { gracePeriodSeconds: number; intervalSeconds: number; timeoutSeconds: number; maxConsecutiveFailures: number }[]; upgradeStrategy: { minimumHealthCapacity: number; maximumOverCapacity: number } }): number {
  if (app.healthChecks.length === 0) return ROLLOUT_DEADLINE_WITHOUT_CHECKS_MS;
  const perInstanceS = Math.max(...app.healthChecks.map((h) => h.gracePeriodSeconds + h.intervalSeconds * (h.maxConsecutiveFailures + 1) + h.timeoutSeconds));
  const n = Math.max(app.instances, 1);
  const wave = Math.max(1, n - Math.ceil(n * app.upgradeStrategy.minimumHealthCapacity) + Math.floor(n * app.upgradeStrategy.maximumOverCapacity));
  const waves = Math.ceil(n / wave);
  return waves * (perInstanceS * 1000 + ROLLOUT_LAUNCH_SLACK_MS);
}
