import { DocumentReader, type JsonObject } from '../../../core/document-reader.ts';
import { appToJSON, parseAppDefinition, type AppDefinition, type AppVersionInfo } from '../app-definition.ts';
import { checkStoredApp, type StoredAppJson } from '../apps-store.ts';
import { deploymentToJSON, type DeploymentActionName, type DeploymentJson, type DeploymentPlan, type DeploymentStep, type ReadinessCheckResultJson } from './deployment-plan.ts';

/** An app definition with the version the store gave it. */
export interface VersionedApp {
  def: AppDefinition;
  info: AppVersionInfo;
}

/** What the reconciler drives an app towards: a definition, or nothing (stop every instance). */
export interface RunSpec {
  def: AppDefinition | undefined;
  configVersion: string;
}

/** The stored form of a deployment in flight. */
export interface DeploymentDoc {
  id: string;
  version: string;
  startedAt: number;
  /** 0-based index of the step being run. */
  currentStep: number;
  steps: DeploymentStep[];
  affectedApps: string[];
  /** The affected apps before and after (an app absent from `target` is stopped). */
  original: StoredAppJson[];
  target: StoredAppJson[];
}

/** The newest `docVersion` of a stored deployment this code reads (absent in a document: 1). */
export const DEPLOYMENT_DOC_VERSION = 1;

const ACTION_NAMES: ReadonlySet<DeploymentActionName> = new Set<DeploymentActionName>(['StartApplication', 'ScaleApplication', 'RestartApplication', 'StopApplication']);

/**
 * Reads a stored deployment (the document of DEPLOYMENT_SAVED, `DeploymentRun.toDoc`) back:
 * checks every field of `DeploymentDoc` (its steps' actions, and of its apps what `readStoredApp`
 * checks) and the document's `docVersion`, and returns the document itself, typed. Throws
 * `InvalidStoredDocument` naming the deployment and the field that does not match. The apps'
 * definitions are parsed by `DeploymentRun.fromDoc`.
 */
export function readDeploymentDoc(doc: unknown): DeploymentDoc {
  const r = new DocumentReader('deployment', doc, deploymentName);
  const o = r.rootObject();
  r.version(o, DEPLOYMENT_DOC_VERSION);
  r.string(o, 'id');
  r.string(o, 'version');
  r.number(o, 'startedAt');
  r.integer(o, 'currentStep');
  r.objects(o, 'steps', checkStep);
  r.strings(o, 'affectedApps');
  r.objects(o, 'original', checkStoredApp);
  r.objects(o, 'target', checkStoredApp);
  return o as unknown as DeploymentDoc;
}

function checkStep(r: DocumentReader, step: JsonObject): void {
  r.objects(step, 'actions', checkAction);
}

function checkAction(r: DocumentReader, action: JsonObject): void {
  r.oneOf(action, 'action', ACTION_NAMES);
  r.string(action, 'app');
}

function deploymentName(doc: unknown): string | undefined {
  const id = (doc as { id?: unknown }).id;
  return typeof id === 'string' ? id : undefined;
}

/**
 * A deployment being run: a plan and how far it got (immutable: `atStep` gives the next). Steps run in order; the framework moves to
 * the next step once every action of the current one is done (`isActionDone`, judged by the
 * framework from the instances). While it runs, the apps it affects are driven by `runSpec`:
 *
 *   app not yet reached ──► its original definition (or nothing, for a new app)
 *   StartApplication done ──► the new definition with 0 instances
 *   its Scale/Restart step reached ──► the new definition (the reconciler scales or rolls)
 *   its StopApplication step reached ──► nothing: every instance is killed
 */
export class DeploymentRun {
  private readonly stepOf = new Map<string, Map<DeploymentActionName, number>>();

  constructor(
    readonly plan: DeploymentPlan,
    readonly original: ReadonlyMap<string, VersionedApp>,
    readonly target: ReadonlyMap<string, VersionedApp>,
    readonly startedAt: number,
    readonly currentStep = 0,
  ) {
    plan.steps.forEach((s, index) => {
      for (const a of s.actions) {
        const m = this.stepOf.get(a.app) ?? new Map<DeploymentActionName, number>();
        m.set(a.action, index);
        this.stepOf.set(a.app, m);
      }
    });
  }

  get id(): string {
    return this.plan.id;
  }

  /** The same deployment at step `step` (0-based): runs are values, advanced by replacing them. */
  atStep(step: number): DeploymentRun {
    return new DeploymentRun(this.plan, this.original, this.target, this.startedAt, step);
  }

  get done(): boolean {
    return this.currentStep >= this.plan.steps.length;
  }

  affects(appId: string): boolean {
    return this.stepOf.has(appId);
  }

  currentActions(): { action: DeploymentActionName; app: string }[] {
    return this.plan.steps[this.currentStep]?.actions ?? [];
  }

  runSpec(appId: string): RunSpec {
    const steps = this.stepOf.get(appId);
    const target = this.target.get(appId);
    const original = this.original.get(appId);
    const reached = (action: DeploymentActionName) => {
      const s = steps?.get(action);
      return s !== undefined && s <= this.currentStep;
    };
    if (target !== undefined) {
      if (reached('ScaleApplication') || reached('RestartApplication')) return { def: target.def, configVersion: target.info.lastConfigChangeAt };
      if (reached('StartApplication')) return { def: { ...target.def, instances: 0 }, configVersion: target.info.lastConfigChangeAt };
    } else if (reached('StopApplication')) {
      return { def: undefined, configVersion: '' };
    }
    if (original !== undefined) return { def: original.def, configVersion: original.info.lastConfigChangeAt };
    return { def: undefined, configVersion: '' };
  }

  toJSON(readiness?: ReadonlyMap<string, ReadinessCheckResultJson[]>): DeploymentJson {
    const total = this.plan.steps.length;
    return deploymentToJSON(this.plan, { currentStep: Math.min(total, this.currentStep + 1), ...(readiness !== undefined ? { readiness } : {}) });
  }

  toDoc(): DeploymentDoc {
    const affected = new Set(this.plan.affectedApps);
    const stored = (m: ReadonlyMap<string, VersionedApp>) => [...m.values()].filter((v) => affected.has(v.def.id)).map((v) => storedApp(v));
    return {
      id: this.plan.id,
      version: this.plan.version,
      startedAt: this.startedAt,
      currentStep: this.currentStep,
      steps: this.plan.steps,
      affectedApps: this.plan.affectedApps,
      original: stored(this.original),
      target: stored(this.target),
    };
  }

  static fromDoc(doc: DeploymentDoc): DeploymentRun {
    const original = new Map(doc.original.map((j) => [j.id, versionedApp(j)] as const));
    const target = new Map(doc.target.map((j) => [j.id, versionedApp(j)] as const));
    const plan: DeploymentPlan = {
      id: doc.id,
      version: doc.version,
      original: new Map([...original].map(([k, v]) => [k, v.def])),
      target: new Map([...target].map(([k, v]) => [k, v.def])),
      steps: doc.steps,
      affectedApps: doc.affectedApps,
    };
    return new DeploymentRun(plan, original, target, doc.startedAt, doc.currentStep);
  }
}

export function storedApp(v: VersionedApp): StoredAppJson {
  return appToJSON(v.def, v.info) as StoredAppJson;
}

/** Parses a stored app back (it was valid when stored; a failure here is a corrupt store). */
export function versionedApp(j: StoredAppJson): VersionedApp {
  return {
    def: parseAppDefinition(j),
    info: { version: j.version, lastScalingAt: j.versionInfo.lastScalingAt, lastConfigChangeAt: j.versionInfo.lastConfigChangeAt },
  };
}
