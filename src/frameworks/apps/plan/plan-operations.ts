import { jsonEqual } from '../../../core/json-equal.ts';
import type { AppDefinition, AppVersionInfo } from '../app-definition.ts';
import { AppLocked, AppNotFound, DeploymentNotFound, TaskNotFoundInApp } from '../apps-errors.ts';
import type { AppsView } from '../apps-state.ts';
import { planDeployment, type DeploymentPlan, type ReadinessCheckResultJson } from '../deployment/deployment-plan.ts';
import { DeploymentRun, storedApp, type VersionedApp } from '../deployment/deployment-run.ts';
import { apiPostEvent, deploymentFailed, deploymentInfo, deploymentPlanJson, groupChangeSuccess } from '../events/marathon-events.ts';
import type { Instance } from '../instance.ts';
import { assignServicePorts } from '../service-ports.ts';
import { AppsPlanBuilder, type AppsPlan } from './apps-plan.ts';
import { DraftApps } from './draft-apps.ts';

// The REST API's verbs as pure planners: each reads the state and answers a plan and the result
// the route answers with, or throws (a 4xx: nothing happens). The framework runs each in a turn
// of its applier, so the state it reads is the state it changes, whatever else is in flight.

export interface OperationContext {
  now: number;
  /** A new UUID (deployment ids); randomUUID, fixed in tests. */
  uuid: () => string;
}

export interface Planned<R> {
  plan: AppsPlan;
  result: R;
}

export interface DeployResult {
  deploymentId: string;
  version: string;
  plan: DeploymentPlan;
  /** The apps the deployment creates or changes, with their new versions. */
  apps: ReadonlyMap<string, VersionedApp>;
}

/**
 * Deploys a new set of declared apps: `edit` gets the declared apps (a copy, to change and
 * return: a route's create, update, delete or group change) and may throw to refuse the request.
 * Plans the deployment from the current apps to the target, checks that no running deployment
 * holds an affected app (or cancels those with `force`), gives changed apps a new version (ports
 * declared 0 get their service ports first, service-ports.ts), and stores the apps and the
 * deployment in one batch. `restart` names apps to roll even if their definition is unchanged
 * (POST /v2/apps/{id}/restart).
 */
export function planDeploy(
  view: AppsView,
  edit: (declared: Map<string, AppDefinition>) => ReadonlyMap<string, AppDefinition>,
  opts: { force?: boolean; restart?: readonly string[] },
  ctx: OperationContext,
): Planned<DeployResult> {
  const b = new AppsPlanBuilder();
  const at = Math.max(ctx.now, view.lastVersionAt + 1);
  const version = new Date(at).toISOString();
  // No copy of the declared apps: the edit writes into a draft over them, which names what it
  // changed, and planning looks at those apps only (a create costs the same at 10 or 10,000 apps).
  const original = view.declared();
  const draft = new DraftApps(original);
  const edited = edit(draft);
  const touched = edited === draft ? draft.changed : undefined;
  const target = assignServicePorts(original, edited, undefined, touched, (port) => view.namesServicePort(port));
  const plan = planDeployment(original, target, { id: ctx.uuid(), version }, touched);
  const restarts = new Set(opts.restart ?? []);
  for (const id of restarts) {
    if (plan.affectedApps.includes(id) || !target.has(id)) continue;
    plan.steps.push({ actions: [{ action: 'RestartApplication', app: id }] });
    plan.affectedApps = [...plan.affectedApps, id].sort();
  }
  const holders = new Set<DeploymentRun>();
  for (const id of plan.affectedApps) {
    const run = view.runOf(id);
    if (run !== undefined) holders.add(run);
  }
  if (holders.size > 0 && opts.force !== true) throw new AppLocked([...holders].map((r) => r.id));

  b.change({ type: 'VERSION_ISSUED', at });
  for (const run of holders) {
    // Forced: the old deployment stops where it is, without rollback; its apps' declared
    // definitions stand and the reconciler converges them.
    b.change({ type: 'DEPLOYMENT_REMOVED', id: run.id });
    b.event(deploymentFailed({ id: run.id, plan: deploymentPlanJson(run.plan), reason: `cancelled by the forced deployment ${plan.id}` }, ctx.now));
  }
  const originalVersioned = new Map<string, VersionedApp>();
  const targetVersioned = new Map<string, VersionedApp>();
  for (const id of plan.affectedApps) {
    const before = view.app(id);
    if (before !== undefined) originalVersioned.set(id, before);
    const def = target.get(id);
    if (def === undefined) continue;
    const scaleOnly = before !== undefined && !restarts.has(id) && jsonEqual({ ...before.def, instances: 0 }, { ...def, instances: 0 });
    const info: AppVersionInfo = scaleOnly
      ? { version, lastScalingAt: version, lastConfigChangeAt: before.info.lastConfigChangeAt }
      : { version, lastScalingAt: version, lastConfigChangeAt: version };
    targetVersioned.set(id, { def, info });
  }
  const run = new DeploymentRun(
    { ...plan, original: new Map([...originalVersioned].map(([k, v]) => [k, v.def])), target: new Map([...targetVersioned].map(([k, v]) => [k, v.def])) },
    originalVersioned,
    targetVersioned,
    ctx.now,
  );
  const saved: { id: string; json: ReturnType<typeof storedApp> }[] = [];
  for (const id of plan.affectedApps) {
    const next = targetVersioned.get(id);
    if (next === undefined) {
      b.change({ type: 'APP_REMOVED', appId: id });
      continue;
    }
    // A new configuration launches without the old one's delay.
    if (view.app(id)?.info.lastConfigChangeAt !== next.info.lastConfigChangeAt && view.backoffs.get(id) !== undefined) b.change({ type: 'BACKOFF', appId: id });
    const json = storedApp(next);
    b.change({ type: 'APP_SAVED', app: next, json });
    saved.push({ id, json });
  }
  b.change({ type: 'DEPLOYMENT_SAVED', run });
  // Marathon publishes one per app a request changed; the request itself is the routes' (no client address here).
  for (const s of saved) b.event(apiPostEvent({ clientIp: '', uri: `/v2/apps${s.id}`, appDefinition: s.json }, ctx.now));
  b.event(groupChangeSuccess({ groupId: '/', version }, ctx.now));
  b.event(deploymentInfo({ plan: deploymentPlanJson(run.plan), currentStep: { actions: run.currentActions() } }, ctx.now));
  b.pass();
  return { plan: b.plan, result: { deploymentId: run.id, version, plan: run.plan, apps: targetVersioned } };
}

/**
 * DELETE /v2/deployments/{id}: without `force`, a new deployment that takes the affected apps
 * back to their definitions before it (Marathon's rollback: a forced deployment, which cancels
 * this one in the same batch, so a crash cannot leave the apps on the new definition without a
 * deployment); with `force`, the deployment just stops (apps keep their new definitions and are
 * converged without one). Result undefined for a forced stop.
 */
export function planCancelDeployment(view: AppsView, id: string, force: boolean, ctx: OperationContext): Planned<{ deploymentId: string; version: string } | undefined> {
  const run = view.deployment(id);
  if (run === undefined) throw new DeploymentNotFound(id);
  if (force) {
    const b = new AppsPlanBuilder();
    b.change({ type: 'DEPLOYMENT_REMOVED', id });
    b.event(deploymentFailed({ id, plan: deploymentPlanJson(run.plan), reason: 'stopped' }, ctx.now));
    return { plan: b.pass().plan, result: undefined };
  }
  const { plan, result } = planDeploy(
    view,
    (target) => {
      for (const appId of run.plan.affectedApps) {
        const before = run.original.get(appId);
        if (before === undefined) target.delete(appId);
        else target.set(appId, before.def);
      }
      return target;
    },
    { force: true },
    ctx,
  );
  return { plan, result: { deploymentId: result.deploymentId, version: result.version } };
}

export interface KillResult {
  instances: Instance[];
  deployment?: { deploymentId: string; version: string };
}

/**
 * Kills instances by task id (DELETE /v2/apps/{id}/tasks..., /v2/tasks/delete): `select` names
 * them from the state at the turn's time (and may throw a 404). With `scale`,
 * the apps' instance counts drop by the number killed (a deployment, refused with 409 before
 * anything is killed when a deployment holds an app, unless `force`); without, the reconciler
 * replaces them. `wipe` also forgets them at once (Marathon's wipe).
 */
export function planKillTasks(
  view: AppsView,
  select: (view: AppsView) => readonly string[],
  opts: { scale?: boolean; wipe?: boolean; force?: boolean },
  ctx: OperationContext,
): Planned<KillResult> {
  const found = [...new Set(select(view))].map((t) => {
    const inst = view.instance(t);
    if (inst === undefined) throw new TaskNotFoundInApp(t);
    return inst;
  });
  if (opts.scale === true && opts.force !== true) {
    const holders = new Set<string>();
    for (const i of found) {
      const run = view.runOf(i.appId);
      if (run !== undefined && !i.killing) holders.add(run.id);
    }
    if (holders.size > 0) throw new AppLocked([...holders]);
  }
  const b = new AppsPlanBuilder();
  // The kills first, so the scale-down does not pick other instances.
  const reason = opts.scale === true ? 'killed through the API (scale)' : 'killed through the API';
  for (const i of found) {
    if (i.killing) continue;
    const spec = view.runSpec(i.appId).def ?? view.app(i.appId)?.def;
    b.kill(i, reason, ctx.now, spec?.taskKillGracePeriodSeconds);
  }
  let deployment: KillResult['deployment'];
  if (opts.scale === true) {
    const byApp = new Map<string, number>();
    for (const i of found) if (!i.killing) byApp.set(i.appId, (byApp.get(i.appId) ?? 0) + 1);
    const d = planDeploy(
      view,
      (target) => {
        for (const [appId, n] of byApp) {
          const def = target.get(appId);
          if (def !== undefined) target.set(appId, { ...def, instances: Math.max(0, def.instances - n) });
        }
        return target;
      },
      { force: opts.force === true },
      ctx,
    );
    b.plan.changes.push(...d.plan.changes);
    b.plan.calls.push(...d.plan.calls);
    b.plan.events.push(...d.plan.events);
    b.plan.log.push(...d.plan.log);
    deployment = { deploymentId: d.result.deploymentId, version: d.result.version };
  }
  if (opts.wipe === true) for (const i of found) b.change({ type: 'INSTANCE_REMOVED', taskId: i.taskId });
  b.pass();
  return { plan: b.plan, result: { instances: found, ...(deployment !== undefined ? { deployment } : {}) } };
}

/** DELETE /v2/queue/{app}/delay: launch at once and start the backoff over. */
export function planResetDelay(view: AppsView, appId: string): Planned<void> {
  if (view.app(appId) === undefined) throw new AppNotFound(appId);
  const b = new AppsPlanBuilder();
  if (view.backoffs.get(appId) !== undefined) b.change({ type: 'BACKOFF', appId });
  return { plan: b.pass().plan, result: undefined };
}

/** A readiness check's result for an instance: kept for the API; a ready instance is stored as ready. */
export function planReadinessResult(view: AppsView, result: ReadinessCheckResultJson): AppsPlan {
  const b = new AppsPlanBuilder();
  const inst = view.instance(result.taskId);
  if (inst === undefined) return b.plan;
  b.change({ type: 'READINESS', taskId: inst.taskId, result });
  if (result.ready && !inst.ready) b.saveInstance({ ...inst, ready: true }).pass();
  return b.plan;
}
