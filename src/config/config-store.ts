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
}

export interface ConfigStore {
  load(): Promise<{ services: ConfigService[]; environments: ConfigEnvironment[]; values: StoredValues[]; releases: StoredRelease[]; rollouts: StoredRollout[] }>;
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
