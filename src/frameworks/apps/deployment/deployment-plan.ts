import { SlipwayError } from '../../../core/errors.ts';
import type { AppDefinition } from '../app-definition.ts';
import { jsonEqual } from '../../../core/json-equal.ts';

// ---------------------------------------------------------------------------------------------
// A deployment plan, as Marathon models it (DeploymentPlan.scala): the steps that take the apps
// from `original` to `target`. Steps run one after another; the actions of a step run together.
// Pure: it reads two snapshots and returns a plan; the deployment runner applies it.
//
//   1. StopApplication for every removed app, dependents first (one step per dependency layer of
//      the original apps, in reverse). Marathon stops all removed apps in one step; stopping a
//      dependent before what it depends on is the mirror image of starting, and costs nothing.
//   2. StartApplication (with 0 instances) for every new app, all in one step.
//   3. For new and changed apps, one step per dependency layer of the target apps (an app's layer
//      is the number of apps on the longest dependency path from it, itself included, so an app
//      comes after everything it depends on): ScaleApplication for a new app or a change of
//      `instances` only, RestartApplication (a rolling upgrade) for any other change.
// Unchanged apps get no action and are not affected. Empty steps are dropped.
// ---------------------------------------------------------------------------------------------

export type DeploymentActionName = 'StartApplication' | 'ScaleApplication' | 'RestartApplication' | 'StopApplication';

export interface DeploymentAction {
  action: DeploymentActionName;
  /** Absolute app id. The definition to deploy is `plan.target.get(app)` (`plan.original` for a stop). */
  app: string;
}

export interface DeploymentStep {
  actions: DeploymentAction[];
}

export interface DeploymentPlan {
  /** A UUID, as Marathon's. */
  id: string;
  /** ISO 8601 timestamp: the version given to the apps this plan creates or changes. */
  version: string;
  original: ReadonlyMap<string, AppDefinition>;
  target: ReadonlyMap<string, AppDefinition>;
  steps: DeploymentStep[];
  /** Ids of the apps any action touches, sorted. */
  affectedApps: string[];
}

/** The same app depends on itself through a chain of `dependencies`: no order can satisfy it. */
export class DeploymentCycle extends SlipwayError {
  readonly code = 'DEPLOYMENT_CYCLE';
  readonly status = 422;

  /** `cycle` lists the apps along the cycle, the first repeated at the end: `[/a, /b, /a]`. */
  constructor(readonly cycle: string[]) {
    super(`Dependency graph has cyclic dependencies: ${cycle.join(' -> ')}`);
  }
}

export function planDeployment(
  original: ReadonlyMap<string, AppDefinition>,
  target: ReadonlyMap<string, AppDefinition>,
  meta: { id: string; version: string },
  /**
   * The ids that may differ between original and target (a DraftApps' `changed`); without it,
   * every id is compared. With it, planning looks only at those apps and what they depend on.
   */
  touched?: ReadonlySet<string>,
): DeploymentPlan {
  const removed = (touched !== undefined ? [...touched].filter((id) => original.has(id) && !target.has(id)) : [...original.keys()].filter((id) => !target.has(id))).sort();
  const added = (touched !== undefined ? [...touched].filter((id) => target.has(id) && !original.has(id)) : [...target.keys()].filter((id) => !original.has(id))).sort();
  const changed: string[] = [];
  const scaleOnly = new Set<string>();
  const candidates = touched !== undefined ? [...touched].flatMap((id) => (target.has(id) ? [[id, target.get(id)!] as const] : [])) : target;
  for (const [id, next] of candidates) {
    const prev = original.get(id);
    if (prev === undefined || jsonEqual(prev, next)) continue;
    changed.push(id);
    if (jsonEqual({ ...prev, instances: 0 }, { ...next, instances: 0 })) scaleOnly.add(id);
  }

  const steps: DeploymentStep[] = [];

  // 1. Stops, dependents first.
  const stopLayers = layersOf(removed, dependencyGraph(original));
  for (const ids of [...stopLayers].reverse()) {
    steps.push({ actions: ids.map((app) => ({ action: 'StopApplication', app })) });
  }

  // 2. Starts, with no instances yet.
  steps.push({ actions: added.map((app) => ({ action: 'StartApplication', app })) });

  // 3. Scales and restarts, dependencies first.
  const newSet = new Set(added);
  for (const ids of layersOf([...added, ...changed], dependencyGraph(target))) {
    steps.push({
      actions: ids.map((app) => ({
        action: newSet.has(app) || scaleOnly.has(app) ? 'ScaleApplication' : 'RestartApplication',
        app,
      })),
    });
  }

  const nonEmpty = steps.filter((s) => s.actions.length > 0);
  const affectedApps = [...new Set(nonEmpty.flatMap((s) => s.actions.map((a) => a.app)))].sort();
  return { id: meta.id, version: meta.version, original, target, steps: nonEmpty, affectedApps };
}

// ---------------------------------------------------------------------------------------------
// JSON: an entry of Marathon's GET /v2/deployments (examples/deployments.json).
// ---------------------------------------------------------------------------------------------

export interface ReadinessCheckResultJson {
  name: string;
  taskId: string;
  ready: boolean;
  lastResponse?: { status: number; contentType: string; body: string };
}

export interface DeploymentJson {
  id: string;
  version: string;
  affectedApps: string[];
  affectedPods: string[];
  steps: { actions: { action: DeploymentActionName; app: string }[] }[];
  currentActions: { action: DeploymentActionName; app: string; readinessCheckResults: ReadinessCheckResultJson[] }[];
  currentStep: number;
  totalSteps: number;
}

export interface DeploymentProgress {
  /** 1-based index of the step being run (Marathon's `currentStep`). Default 1 (0 for an empty plan). */
  currentStep?: number;
  /** Readiness results of the instances of the current step's apps, by app id. */
  readiness?: ReadonlyMap<string, ReadinessCheckResultJson[]>;
}

export function deploymentToJSON(plan: DeploymentPlan, progress: DeploymentProgress = {}): DeploymentJson {
  const totalSteps = plan.steps.length;
  const currentStep = progress.currentStep ?? (totalSteps > 0 ? 1 : 0);
  if (!Number.isInteger(currentStep) || currentStep < 0 || currentStep > totalSteps) {
    throw new RangeError(`currentStep ${currentStep} is not within 0..${totalSteps}`);
  }
  const current = currentStep > 0 ? (plan.steps[currentStep - 1]?.actions ?? []) : [];
  return {
    id: plan.id,
    version: plan.version,
    affectedApps: [...plan.affectedApps],
    affectedPods: [],
    steps: plan.steps.map((s) => ({ actions: s.actions.map((a) => ({ action: a.action, app: a.app })) })),
    currentActions: current.map((a) => ({
      action: a.action,
      app: a.app,
      readinessCheckResults: [...(progress.readiness?.get(a.app) ?? [])],
    })),
    currentStep,
    totalSteps,
  };
}

// ---------------------------------------------------------------------------------------------
// Dependency order
// ---------------------------------------------------------------------------------------------

/**
 * Edges app -> the apps it depends on. A dependency names an app or a group: a group stands for
 * every app under it (but an app under a group it depends on does not depend on itself through
 * it). Dependencies on ids that match no app are ignored: they constrain nothing here.
 */
function dependencyGraph(apps: ReadonlyMap<string, AppDefinition>): DependencyGraph {
  // Built on demand, per app that layering visits: a deploy of one app at 10,000 apps looks at
  // that app and what it depends on, not at every app. The sorted ids are needed only for a
  // dependency that names a group.
  let ids: string[] | undefined;
  const graph = new Map<string, string[]>();
  const get = (id: string): string[] | undefined => {
    const known = graph.get(id);
    if (known !== undefined) return known;
    const app = apps.get(id);
    if (app === undefined) return undefined;
    const deps = new Set<string>();
    for (const dep of app.dependencies) {
      if (apps.has(dep)) deps.add(dep);
      const prefix = dep === '/' ? '/' : `${dep}/`;
      ids ??= [...apps.keys()].sort();
      for (const other of ids) if (other !== id && other.startsWith(prefix)) deps.add(other);
    }
    const sorted = [...deps].sort();
    graph.set(id, sorted);
    return sorted;
  };
  return { get };
}

/** Edges app -> the apps it depends on, sorted; undefined for an id that is no app. */
interface DependencyGraph {
  get(id: string): readonly string[] | undefined;
}

/**
 * Groups `ids` by layer (1 = depends on nothing), in increasing layer order, each layer sorted.
 * Layers are computed over the whole graph, so an app in between that is not in `ids` still
 * orders those around it. A cycle reachable from `ids` throws DeploymentCycle.
 */
function layersOf(ids: readonly string[], graph: DependencyGraph): string[][] {
  const layer = new Map<string, number>();
  const onPath: string[] = [];
  const onPathSet = new Set<string>();

  // Iterative DFS (deep chains must not overflow the stack).
  const visit = (root: string): void => {
    const stack: { id: string; next: number }[] = [{ id: root, next: 0 }];
    onPath.push(root);
    onPathSet.add(root);
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const deps = graph.get(frame.id) ?? [];
      if (frame.next < deps.length) {
        const dep = deps[frame.next++]!;
        if (layer.has(dep)) continue;
        if (onPathSet.has(dep)) throw new DeploymentCycle([...onPath.slice(onPath.indexOf(dep)), dep]);
        stack.push({ id: dep, next: 0 });
        onPath.push(dep);
        onPathSet.add(dep);
        continue;
      }
      let depth = 1;
      for (const dep of deps) depth = Math.max(depth, (layer.get(dep) ?? 0) + 1);
      layer.set(frame.id, depth);
      stack.pop();
      onPath.pop();
      onPathSet.delete(frame.id);
    }
  };

  const byLayer = new Map<number, string[]>();
  for (const id of [...ids].sort()) {
    if (!layer.has(id)) visit(id);
    const l = layer.get(id)!;
    const list = byLayer.get(l) ?? [];
    list.push(id);
    byLayer.set(l, list);
  }
  return [...byLayer.entries()].sort(([a], [b]) => a - b).map(([, list]) => list);
}

