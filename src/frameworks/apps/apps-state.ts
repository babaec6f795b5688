import type { Location } from '../kit/instance-tally.ts';
import { loadDocuments } from '../kit/load-documents.ts';
import { setOrDelete } from '../../core/map-entry.ts';
import { applyOfferMode, freshOfferManners, type OfferMannersState, type OfferModeChange } from '../kit/offer-manners.ts';
import { reconcileApp } from './app-reconciler.ts';
import { MAX_VERSIONS_PER_APP, type AppsChange, type StoredAppJson, type StoredAppsState } from './apps-store.ts';
import type { ReadinessCheckResultJson } from './deployment/deployment-plan.ts';
import { DeploymentRun, readDeploymentDoc, versionedApp, type RunSpec, type VersionedApp } from './deployment/deployment-run.ts';
import { readInstance, type Instance } from './instance.ts';
import type { AppDefinition } from './app-definition.ts';

/** Marathon's `lastTaskFailure`. */
export interface TaskFailure {
  appId: string;
  host: string;
  message: string;
  state: string;
  taskId: string;
  timestamp: string;
  version: string;
  slaveId: string;
}

/** The launch delay of an app that keeps failing (Marathon's RateLimiter). */
export interface Backoff {
  failures: number;
  delaySeconds: number;
  /** Launches wait until then (milliseconds since the epoch). */
  until: number;
}

/** Since when an app waits for launches, and what offers did for it meanwhile (`/v2/queue`). */
export interface QueueStats {
  since: number;
  processedOffers: number;
  unusedOffers: number;
}

/** An entry of /v2/queue: an app that needs instances launched. */
export interface QueueEntry {
  app: VersionedApp;
  count: number;
  since: number;
  delayUntil: number;
  processedOffers: number;
  unusedOffers: number;
}

/**
 * A change of the services framework's state, in memory form. The first seven are durable: each
 * maps to one store change (`toStoreChange`) and takes effect in memory only once written. The
 * others are memory only (Marathon keeps them in memory too): they ride in the same plans, so
 * they take effect with the plan or not at all.
 */
export type AppsStateChange =
  | { type: 'FRAMEWORK_ID'; frameworkId: string }
  /** `json` is `app` as stored (storedApp(app)), built once by the planner. */
  | { type: 'APP_SAVED'; app: VersionedApp; json: StoredAppJson }
  | { type: 'APP_REMOVED'; appId: string }
  | { type: 'DEPLOYMENT_SAVED'; run: DeploymentRun }
  | { type: 'DEPLOYMENT_REMOVED'; id: string }
  | { type: 'INSTANCE_SAVED'; instance: Instance }
  | { type: 'INSTANCE_REMOVED'; taskId: string }
  /** Memory only from here. `backoff` absent: the app launches without delay again. */
  | { type: 'BACKOFF'; appId: string; backoff?: Backoff }
  | { type: 'FAILURE'; appId: string; failure: TaskFailure }
  /** A KILL went out (kills are repeated until the task ends). */
  | { type: 'KILL_SENT'; taskId: string; at: number }
  /** The master reported on the instance (it is confirmed). */
  | { type: 'HEARD'; taskId: string; at: number }
  /** Explicit reconciliation went out; `unconfirmed` (when given) replaces the set awaiting an answer. */
  | { type: 'RECONCILED'; at: number; unconfirmed?: readonly string[] }
  /** The app's queue entry (absent: it waits for nothing). */
  | { type: 'QUEUE'; appId: string; entry?: QueueStats }
  /** An agent's hostname and attributes, as its offers show them (for constraints). */
  | { type: 'AGENT_SEEN'; location: Location }
  | { type: 'READINESS'; taskId: string; result: ReadinessCheckResultJson }
  /** A version timestamp was given out (the next is strictly later). */
  | { type: 'VERSION_ISSUED'; at: number }
  /** The next seed of the placement's tie-breaking shuffle. */
  | { type: 'SEED'; seed: number }
  /**
   * A pass reconciled `apps` (every app when `full`): they are no longer dirty. Apps that became
   * dirty after the pass was planned stay dirty (turns run one at a time, so none do).
   */
  | { type: 'PASSED'; at: number; full: boolean; apps: readonly string[] }
  /** What each app waits to launch (the last pass's answer), and the offer mode. */
  | OfferModeChange;

/** The store change of a state change, or undefined for a memory-only one. */
export function toStoreChange(c: AppsStateChange): AppsChange | undefined {
  switch (c.type) {
    case 'FRAMEWORK_ID':
      return c;
    case 'APP_SAVED':
      return { type: 'APP_SAVED', app: c.json };
    case 'APP_REMOVED':
      return c;
    case 'DEPLOYMENT_SAVED':
      return { type: 'DEPLOYMENT_SAVED', deployment: { id: c.run.id, doc: c.run.toDoc() } };
    case 'DEPLOYMENT_REMOVED':
      return c;
    case 'INSTANCE_SAVED':
      return { type: 'INSTANCE_SAVED', instance: { taskId: c.instance.taskId, appId: c.instance.appId, doc: c.instance } };
    case 'INSTANCE_REMOVED':
      return c;
    default:
      return undefined;
  }
}

/**
 * What planners and routes read of the framework's state. Read-only: a planner returns changes
 * and never mutates what it reads (instances, runs and apps are values, replaced on change).
 */
export interface AppsView {
  readonly frameworkId: string | undefined;
  app(appId: string): VersionedApp | undefined;
  /** Declared apps, in id order. */
  apps(): VersionedApp[];
  /** Kept versions of an app, oldest first. */
  versions(appId: string): readonly StoredAppJson[];
  deployments(): DeploymentRun[];
  deployment(id: string): DeploymentRun | undefined;
  /** The deployment holding an app (at most one). */
  runOf(appId: string): DeploymentRun | undefined;
  instance(taskId: string): Instance | undefined;
  instancesOf(appId: string): Instance[];
  instances(): IterableIterator<Instance>;
  /** Ids of the apps that have instances (declared or not). */
  appsWithInstances(): IterableIterator<string>;
  /** What the reconciler drives an app towards now (the deployment's step, or the declared app). */
  runSpec(appId: string): RunSpec;
  /** The version string of what a run spec runs (the deployment's target version, or the declared one). */
  versionOf(appId: string, spec: RunSpec): string;
  /** Apps whose launches wait (Marathon's RateLimiter). */
  readonly backoffs: ReadonlyMap<string, Backoff>;
  /** Each app's last task failure (Marathon's `lastTaskFailure`). */
  readonly failures: ReadonlyMap<string, TaskFailure>;
  /** Instances whose kill went out, with when. */
  readonly killsSent: ReadonlyMap<string, number>;
  /** When the master last reported on each instance. */
  readonly heard: ReadonlyMap<string, number>;
  /** Instances the master has not confirmed since the framework (re)subscribed. */
  readonly unconfirmed: ReadonlySet<string>;
  readonly lastReconcileAt: number;
  /** Apps that wait for launches, since when and what offers did for them. */
  readonly queued: ReadonlyMap<string, QueueStats>;
  readonly needs: ReadonlyMap<string, number>;
  /** Each agent's hostname and attributes, as its offers show them. */
  readonly agents: ReadonlyMap<string, Location>;
  readinessResults(appId: string): ReadinessCheckResultJson[];
  readonly manners: OfferMannersState;
  readonly lastVersionAt: number;
  readonly seed: number;
  /** `/v2/queue`: apps waiting for instances now. */
  queue(now: number): QueueEntry[];
  /** Whether some declared app's id lies under `groupId` (starts with `groupId/`). Logarithmic. */
  hasAppUnder(groupId: string): boolean;
  /** Whether a declared app names `port` in its port definitions (service ports; constant time). */
  namesServicePort(port: number): boolean;
  /** The declared apps' definitions by id (not a copy: read only). */
  declared(): ReadonlyMap<string, AppDefinition>;
  /**
   * Apps whose reconciliation inputs (definition, deployment, instances, backoff) changed since
   * the last pass that covered them: what a pass between full ones needs to look at.
   */
  readonly dirty: ReadonlySet<string>;
  /** When the last pass over every app ran. */
  readonly lastFullPassAt: number;
  /**
   * Grows with every change applied (any kind): whatever is computed from the view alone, at
   * one revision, is the same at that revision (the routes cache answers by it).
   */
  readonly revision: number;
}

/**
 * The services framework's state in memory: a projection of its state changes. `apply` is the
 * only way it changes, and `load` goes through it too, so what a restart loads is what the
 * running framework had.
 */
export class AppsState implements AppsView {
  frameworkId: string | undefined;
  private readonly appsById = new Map<string, VersionedApp>();
  private readonly versionsById = new Map<string, StoredAppJson[]>();
  private readonly runs = new Map<string, DeploymentRun>();
  private readonly runByApp = new Map<string, DeploymentRun>();
  private readonly byTask = new Map<string, Instance>();
  private readonly byApp = new Map<string, Map<string, Instance>>();
  readonly backoffs = new Map<string, Backoff>();
  readonly failures = new Map<string, TaskFailure>();
  readonly killsSent = new Map<string, number>();
  readonly heard = new Map<string, number>();
  unconfirmed = new Set<string>();
  lastReconcileAt = 0;
  readonly queued = new Map<string, QueueStats>();
  needs: ReadonlyMap<string, number> = new Map();
  readonly agents = new Map<string, Location>();
  private readonly readiness = new Map<string, Map<string, ReadinessCheckResultJson>>();
  manners: OfferMannersState = freshOfferManners();
  lastVersionAt = 0;
  seed = 1;
  revision = 0;
  private readonly defsById = new Map<string, AppDefinition>();
  /** The declared apps in id order, kept in order as apps are saved and removed (binary search). */
  private readonly sortedApps: VersionedApp[] = [];
  readonly dirty = new Set<string>();
  /** How many declared apps name each port (non-zero port definitions). */
  private readonly portUse = new Map<number, number>();
  lastFullPassAt = 0;

  /** The stored state, through `apply`. A document that does not read (or an app that no longer parses) is left out, and logged. */
  load(stored: StoredAppsState, log: (line: string) => void): void {
    if (stored.frameworkId !== undefined) this.apply({ type: 'FRAMEWORK_ID', frameworkId: stored.frameworkId });
    const skipped = (what: string) => (_: unknown, why: string) => log(`apps framework: a stored ${what} is left out: ${why}`);
    loadDocuments(stored.apps, (j) => ({ app: versionedApp(j), json: j }), (a) => this.apply({ type: 'APP_SAVED', ...a }), skipped('app'));
    for (const [id, list] of stored.versions) if (this.appsById.has(id)) this.versionsById.set(id, [...list]);
    loadDocuments(stored.deployments, (d) => DeploymentRun.fromDoc(readDeploymentDoc(d.doc)), (run) => this.apply({ type: 'DEPLOYMENT_SAVED', run }), skipped('deployment'));
    loadDocuments(stored.instances, (s) => readInstance(s.doc), (instance) => this.apply({ type: 'INSTANCE_SAVED', instance }), skipped('instance'));
  }

  apply(c: AppsStateChange): void {
    this.revision++;
    switch (c.type) {
      case 'FRAMEWORK_ID':
        this.frameworkId = c.frameworkId;
        return;
      case 'APP_SAVED': {
        this.countPorts(this.defsById.get(c.app.def.id), -1);
        this.countPorts(c.app.def, 1);
        this.appsById.set(c.app.def.id, c.app);
        this.defsById.set(c.app.def.id, c.app.def);
        const at = this.sortedIndex(c.app.def.id);
        if (this.sortedApps[at]?.def.id === c.app.def.id) this.sortedApps[at] = c.app;
        else this.sortedApps.splice(at, 0, c.app);
        this.dirty.add(c.app.def.id);
        const list = (this.versionsById.get(c.app.def.id) ?? []).filter((v) => v.version !== c.json.version);
        list.push(c.json);
        this.versionsById.set(c.app.def.id, list.slice(-MAX_VERSIONS_PER_APP));
        return;
      }
      case 'APP_REMOVED':
        this.countPorts(this.defsById.get(c.appId), -1);
        this.appsById.delete(c.appId);
        this.defsById.delete(c.appId);
        {
          const at = this.sortedIndex(c.appId);
          if (this.sortedApps[at]?.def.id === c.appId) this.sortedApps.splice(at, 1);
        }
        this.dirty.add(c.appId);
        this.versionsById.delete(c.appId);
        this.backoffs.delete(c.appId);
        this.failures.delete(c.appId);
        return;
      case 'DEPLOYMENT_SAVED': {
        const before = this.runs.get(c.run.id);
        if (before !== undefined) this.unindexRun(before);
        this.runs.set(c.run.id, c.run);
        for (const app of c.run.plan.affectedApps) {
          this.runByApp.set(app, c.run);
          this.dirty.add(app);
        }
        return;
      }
      case 'DEPLOYMENT_REMOVED': {
        const run = this.runs.get(c.id);
        if (run === undefined) return;
        this.runs.delete(c.id);
        this.unindexRun(run);
        for (const app of run.plan.affectedApps) this.dirty.add(app);
        return;
      }
      case 'INSTANCE_SAVED': {
        const i = c.instance;
        this.byTask.set(i.taskId, i);
        let m = this.byApp.get(i.appId);
        if (m === undefined) this.byApp.set(i.appId, (m = new Map()));
        m.set(i.taskId, i);
        this.dirty.add(i.appId);
        return;
      }
      case 'INSTANCE_REMOVED': {
        const i = this.byTask.get(c.taskId);
        if (i === undefined) return;
        this.byTask.delete(c.taskId);
        this.unconfirmed.delete(c.taskId);
        this.heard.delete(c.taskId);
        this.killsSent.delete(c.taskId);
        this.readiness.delete(c.taskId);
        this.dirty.add(i.appId);
        const m = this.byApp.get(i.appId);
        m?.delete(c.taskId);
        if (m?.size === 0) this.byApp.delete(i.appId);
        return;
      }
      case 'BACKOFF':
        setOrDelete(this.backoffs, c.appId, c.backoff);
        this.dirty.add(c.appId);
        return;
      case 'FAILURE':
        this.failures.set(c.appId, c.failure);
        return;
      case 'KILL_SENT':
        if (this.byTask.has(c.taskId)) this.killsSent.set(c.taskId, c.at);
        return;
      case 'HEARD':
        if (!this.byTask.has(c.taskId)) return;
        this.heard.set(c.taskId, c.at);
        this.unconfirmed.delete(c.taskId);
        return;
      case 'RECONCILED':
        this.lastReconcileAt = c.at;
        if (c.unconfirmed !== undefined) this.unconfirmed = new Set(c.unconfirmed.filter((t) => this.byTask.has(t)));
        return;
      case 'QUEUE':
        setOrDelete(this.queued, c.appId, c.entry);
        return;
      case 'NEEDS':
      case 'OFFER_MANNERS':
        applyOfferMode(this, c);
        return;
      case 'AGENT_SEEN':
        this.agents.set(c.location.agentId, c.location);
        return;
      case 'READINESS': {
        if (!this.byTask.has(c.taskId)) return;
        let m = this.readiness.get(c.taskId);
        if (m === undefined) this.readiness.set(c.taskId, (m = new Map()));
        m.set(c.result.name, c.result);
        return;
      }
      case 'VERSION_ISSUED':
        this.lastVersionAt = Math.max(this.lastVersionAt, c.at);
        return;
      case 'SEED':
        this.seed = c.seed;
        return;
      case 'PASSED':
        if (c.full) {
          this.dirty.clear();
          this.lastFullPassAt = c.at;
        } else {
          for (const id of c.apps) this.dirty.delete(id);
        }
        return;
    }
  }

  private countPorts(def: AppDefinition | undefined, by: 1 | -1): void {
    for (const p of def?.portDefinitions ?? []) {
      if (p.port === 0) continue;
      const n = (this.portUse.get(p.port) ?? 0) + by;
      if (n > 0) this.portUse.set(p.port, n);
      else this.portUse.delete(p.port);
    }
  }

  namesServicePort(port: number): boolean {
    return this.portUse.has(port);
  }

  private unindexRun(run: DeploymentRun): void {
    for (const app of run.plan.affectedApps) if (this.runByApp.get(app) === run) this.runByApp.delete(app);
  }

  // --- AppsView ----------------------------------------------------------------------------

  app(appId: string): VersionedApp | undefined {
    return this.appsById.get(appId);
  }

  apps(): VersionedApp[] {
    return [...this.sortedApps];
  }

  /** Where `id` is, or would go, in sortedApps. */
  private sortedIndex(id: string): number {
    let lo = 0;
    let hi = this.sortedApps.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sortedApps[mid]!.def.id < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  hasAppUnder(groupId: string): boolean {
    const prefix = groupId === '/' ? '/' : `${groupId}/`;
    // Ids under the prefix, if any, start where the prefix would go.
    return this.sortedApps[this.sortedIndex(prefix)]?.def.id.startsWith(prefix) ?? false;
  }

  declared(): ReadonlyMap<string, AppDefinition> {
    return this.defsById;
  }

  versions(appId: string): readonly StoredAppJson[] {
    return this.versionsById.get(appId) ?? [];
  }

  deployments(): DeploymentRun[] {
    return [...this.runs.values()];
  }

  deployment(id: string): DeploymentRun | undefined {
    return this.runs.get(id);
  }

  runOf(appId: string): DeploymentRun | undefined {
    return this.runByApp.get(appId);
  }

  instance(taskId: string): Instance | undefined {
    return this.byTask.get(taskId);
  }

  instancesOf(appId: string): Instance[] {
    return [...(this.byApp.get(appId)?.values() ?? [])];
  }

  instances(): IterableIterator<Instance> {
    return this.byTask.values();
  }

  appsWithInstances(): IterableIterator<string> {
    return this.byApp.keys();
  }

  runSpec(appId: string): RunSpec {
    const run = this.runByApp.get(appId);
    if (run !== undefined) return run.runSpec(appId);
    const app = this.appsById.get(appId);
    return app === undefined ? { def: undefined, configVersion: '' } : { def: app.def, configVersion: app.info.lastConfigChangeAt };
  }

  versionOf(appId: string, spec: RunSpec): string {
    const run = this.runByApp.get(appId);
    for (const v of [run?.target.get(appId), run?.original.get(appId)]) {
      if (v !== undefined && v.info.lastConfigChangeAt === spec.configVersion) return v.info.version;
    }
    return this.appsById.get(appId)?.info.version ?? spec.configVersion;
  }

  readinessResults(appId: string): ReadinessCheckResultJson[] {
    return this.instancesOf(appId).flatMap((i) => [...(this.readiness.get(i.taskId)?.values() ?? [])]);
  }

  queue(now: number): QueueEntry[] {
    const out: QueueEntry[] = [];
    for (const [appId, stats] of this.queued) {
      const spec = this.runSpec(appId);
      const app = this.appsById.get(appId);
      if (spec.def === undefined || app === undefined) continue;
      const r = reconcileApp({ spec: spec.def, configVersion: spec.configVersion, instances: this.instancesOf(appId), now });
      if (r.launch <= 0) continue;
      out.push({ app, count: r.launch, since: stats.since, delayUntil: this.backoffs.get(appId)?.until ?? 0, processedOffers: stats.processedOffers, unusedOffers: stats.unusedOffers });
    }
    return out;
  }
}
