import type { MarathonAppJson } from './app-definition.ts';

/**
 * What the services framework persists, and the narrow port a store implements for it
 * (`src/store` does, over SQLite in the embedded default).
 *
 * Contract:
 * - `write` applies a batch atomically and in order (a later change of the same key wins) and
 *   resolves only once the batch is durable: the framework answers a REST call, or sends LAUNCH
 *   for an instance, only after the write that records it resolved. A rejected write changed
 *   nothing.
 * - `load` returns what the last completed `write` left.
 * - Documents (apps, versions, deployments, instances) are JSON values the framework owns; the
 *   store keeps them as they are and never interprets them beyond the keys named here.
 * - App versions are kept per app, newest last, at most `maxVersionsPerApp` (oldest dropped);
 *   deleting an app deletes its versions.
 */
export interface AppsStore {
  load(): Promise<StoredAppsState>;
  write(changes: readonly AppsChange[]): Promise<void>;
  close(): Promise<void>;
}

/** An app as stored: its Marathon JSON with `version` and `versionInfo` set. */
export type StoredAppJson = MarathonAppJson & { version: string; versionInfo: { lastScalingAt: string; lastConfigChangeAt: string } };

/** A deployment in flight, as the framework serializes it (opaque to the store). */
export interface StoredDeployment {
  id: string;
  /** JSON value owned by the deployment runner. */
  doc: unknown;
}

/** One instance (one Mesos task) the framework launched, as the framework serializes it. */
export interface StoredInstance {
  taskId: string;
  appId: string;
  /** JSON value owned by the framework. */
  doc: unknown;
}

export type AppsChange =
  | { type: 'FRAMEWORK_ID'; frameworkId: string }
  /** Sets the app's current definition and records it as a version (same version twice: one row). */
  | { type: 'APP_SAVED'; app: StoredAppJson }
  /** Removes the app and its versions. */
  | { type: 'APP_REMOVED'; appId: string }
  | { type: 'DEPLOYMENT_SAVED'; deployment: StoredDeployment }
  | { type: 'DEPLOYMENT_REMOVED'; id: string }
  | { type: 'INSTANCE_SAVED'; instance: StoredInstance }
  | { type: 'INSTANCE_REMOVED'; taskId: string };

export interface StoredAppsState {
  frameworkId?: string;
  /** Current definitions. */
  apps: StoredAppJson[];
  /** Every kept version per app id, oldest first (the current one included). */
  versions: Map<string, StoredAppJson[]>;
  deployments: StoredDeployment[];
  instances: StoredInstance[];
}

/** Marathon's default (`--max_versions`... `zk_max_versions`: 50). */
export const MAX_VERSIONS_PER_APP = 50;
