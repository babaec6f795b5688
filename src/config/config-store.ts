import type { ConfigEnvironment, ConfigService, Json } from './config-definitions.ts';

/**
 * What the config center persists (src/store implements it: `KyselyConfigStore`, config.db).
 * Values versions and releases are appended, never changed: a release is immutable, and every
 * change of values is a new version with who and when.
 */

/** A stored value: JSON, or a secret sealed with the installation's key. */
export type StoredValue = Json | { $sealed: string };

export interface StoredValues {
  /** `service/env`, or `*\/env` for an environment's shared values. */
  scope: string;
  version: number;
  values: Record<string, StoredValue>;
  createdBy: string;
  createdAt: number;
}

export interface StoredReleaseFile {
  name: string;
  destination: string;
  mode: string;
  sha256: string;
  /** The rendered content, sealed (it may hold secret values). */
  sealed: string;
}

export interface StoredRelease {
  service: string;
  env: string;
  version: number;
  templateCommit: string;
  templateRef: string;
  /** The values versions rendered: the service's in the environment, and the environment's shared ones (0: none). */
  valuesVersion: number;
  sharedVersion: number;
  files: StoredReleaseFile[];
  /** What made it: a change of templates or values, or a rollback to an earlier version. */
  change: 'template-changed' | 'values-changed' | 'first' | 'rollback';
  rolledBackTo?: number;
  /** The commit of the releases' audit repository that holds it. */
  auditCommit?: string;
  note: string;
  createdBy: string;
  createdAt: number;
}

/**
 * A rollout of a release through the services framework (a restart of the linked app), and how
 * it ended: `succeeded` when every instance runs the release and is healthy; `failed` when that
 * did not happen before the deadline, after which the environment goes back to the previous
 * release (`rolledBackBy`, itself rolled out the same way, without a further way back).
 */
export interface StoredRollout {
  id: string;
  service: string;
  env: string;
  release: number;
  appId: string;
  /** The release it replaces (what a failure goes back to); undefined for a first release. */
  previous?: number;
  /** Whether it is the way back from a failed rollout (then a failure goes back no further). */
  isRollback: boolean;
  state: 'running' | 'succeeded' | 'failed';
  reason?: string;
  deploymentId?: string;
  startedAt: number;
  deadline: number;
  endedAt?: number;
  /** The rollout of the rollback release a failure started. */
  rolledBackBy?: string;
  /** The rollout of a gray release to its subset (a failure abandons the gray release instead of rolling back). */
  gray?: boolean;
}

/**
 * Who a gray release is for (exactly one): `instances` of the linked app, a `percent` of them
 * (rounded up), the instances named by task id (`taskIds`), or those on agents whose attributes
 * (or `hostname`) match every pair of `agents`.
 */
export interface GrayTarget {
  instances?: number;
  percent?: number;
  taskIds?: string[];
  agents?: Record<string, string>;
}

/**
 * A gray release: release `release` for a subset of the linked app's instances while the others
 * keep `main`, until it is promoted (it becomes the environment's release) or abandoned (the
 * subset goes back to `main`). `members`: the instances chosen when it started; an instance that
 * started with the gray release is one too, and a new instance gets it while fewer than `size`
 * run it (for `agents`: when its agent matches).
 */
export interface StoredGray {
  id: string;
  service: string;
  env: string;
  release: number;
  main: number;
  appId?: string;
  target: GrayTarget;
  size?: number;
  members: string[];
  rollout: 'restart' | 'hot' | 'none';
  state: 'active' | 'promoted' | 'abandoned';
  reason?: string;
  by: string;
  startedAt: number;
  endedAt?: number;
  endedBy?: string;
}

export interface ConfigStore {
  load(): Promise<{ services: ConfigService[]; environments: ConfigEnvironment[]; values: StoredValues[]; releases: StoredRelease[]; rollouts: StoredRollout[]; grays: StoredGray[] }>;
  saveGray(gray: StoredGray): Promise<void>;
  saveService(service: ConfigService): Promise<void>;
  deleteService(name: string): Promise<void>;
  saveEnvironment(env: ConfigEnvironment): Promise<void>;
  deleteEnvironment(name: string): Promise<void>;
  appendValues(values: StoredValues): Promise<void>;
  appendRelease(release: StoredRelease): Promise<void>;
  /** Records the audit commit of a stored release (the one thing of a release set after it is stored). */
  recordAuditCommit(service: string, env: string, version: number, commit: string): Promise<void>;
  saveRollout(rollout: StoredRollout): Promise<void>;
  close(): Promise<void>;
}
