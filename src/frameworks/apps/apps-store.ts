import { DocumentReader, type JsonObject } from '../../core/document-reader.ts';
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

/** The newest `docVersion` of a stored app this code reads (absent in a document: 1). */
export const STORED_APP_DOC_VERSION = 1;

/**
 * Reads a stored app (an app's current definition, one of its versions, or an app of a stored
 * deployment) back: checks what `StoredAppJson` adds to Marathon's JSON and what the store keys
 * rows by (`id`, `version`, `versionInfo.lastScalingAt` and `.lastConfigChangeAt`, all strings),
 * and its `docVersion`. Throws `InvalidStoredDocument` naming the app and the field otherwise.
 *
 * The rest of the definition is Marathon's JSON, checked by `parseAppDefinition` (its JSON Schema
 * and rules) where the framework turns it into an `AppDefinition` (`versionedApp`), which leaves
 * out an app that no longer parses rather than refusing the whole load.
 */
export function readStoredApp(doc: unknown): StoredAppJson {
  const r = new DocumentReader('app', doc, storedAppName);
  return checkStoredApp(r, r.rootObject());
}

/** `readStoredApp`'s checks of `o`, inside a document `r` reads (a deployment's apps). */
export function checkStoredApp(r: DocumentReader, o: JsonObject): StoredAppJson {
  r.version(o, STORED_APP_DOC_VERSION);
  r.string(o, 'id');
  r.string(o, 'version');
  r.nested(o, 'versionInfo', checkVersionInfo);
  return o as unknown as StoredAppJson;
}

function checkVersionInfo(r: DocumentReader, v: JsonObject): void {
  r.string(v, 'lastScalingAt');
  r.string(v, 'lastConfigChangeAt');
}

function storedAppName(doc: unknown): string | undefined {
  const { id, version } = doc as { id?: unknown; version?: unknown };
  if (typeof id !== 'string') return undefined;
  return typeof version === 'string' ? `${id} version ${version}` : id;
}

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
