import { planOfferMode } from '../../kit/offer-manners.ts';
import { isInactive, reconcileApp } from '../app-reconciler.ts';
import type { AppsView } from '../apps-state.ts';
import type { DeploymentRun } from '../deployment/deployment-run.ts';
import { deploymentInfo, deploymentPlanJson, deploymentStepSuccess, deploymentSuccess } from '../events/marathon-events.ts';
import { isAlive, isHealthy, type Instance } from '../instance.ts';
import { AppsPlanBuilder, killCall, type AppsPlan } from './apps-plan.ts';

/** A KILL without a terminal update after this long is sent again (Marathon's KillService retries too). */
export const KILL_RETRY_MS = 10_000;
/** How often instances the master has not answered for are reconciled again. */
export const RECONCILE_RETRY_MS = 5_000;

export interface PassContext {
  now: number;
  /** Whether the framework is subscribed (reconciliation and SUPPRESS need a subscription). */
  subscribed: boolean;
  role: string;
  /**
   * Reconcile every app (default), or only those the state marks dirty. Between full passes
   * nothing changes for the other apps but time: the framework runs a full pass at least every
   * second, for what time changes (backoffs running out, unreachable instances going inactive).
   */
  full?: boolean;
}

/**
 * One reconcile pass of the services framework, pure: what to do now, given the state.
 *
 * 1. Deployments whose current step is done move on (as far as their steps are done). Such a
 *    pass does only that and asks for another (`pass`), which then drives the apps by the new
 *    steps: every pass reads one consistent state.
 * 2. Otherwise: unreachable instances past their strategy's expungeAfterSeconds (or killed
 *    while unreachable) are forgotten, with a KILL in case they return; instances the master has
 *    not confirmed are reconciled again every RECONCILE_RETRY_MS; every app is reconciled against
 *    its run spec (kills now, launches wanted: the needs, unless the app's backoff delays them);
 *    expired backoffs are forgotten; KILLs without an end are repeated every KILL_RETRY_MS; and
 *    the offer mode follows the needs (kit/offer-manners.ts).
 */
export function planPass(view: AppsView, ctx: PassContext): AppsPlan {
  const b = new AppsPlanBuilder();
  if (advanceDeployments(view, ctx.now, b)) return b.pass().plan;
  const expunged = expungeUnreachable(view, ctx.now, b);
  reconcileUnconfirmed(view, ctx, b);
  const full = ctx.full !== false;
  const needs = reconcileApps(view, ctx.now, expunged, full, b);
  forgetOldBackoffs(view, ctx.now, b);
  retryKills(view, ctx.now, b);
  if (!sameNeeds(needs, view.needs)) b.change({ type: 'NEEDS', needs });
  let total = 0;
  for (const n of needs.values()) total += n;
  const mode = planOfferMode(view.manners, { need: total, now: ctx.now, subscribed: ctx.subscribed, role: ctx.role });
  if (mode.call !== undefined) b.call(mode.call);
  if (mode.next !== view.manners) b.change({ type: 'OFFER_MANNERS', state: mode.next });
  return b.plan;
}

/** Moves every deployment whose current step is done; true if any moved (or ended). */
function advanceDeployments(view: AppsView, now: number, b: AppsPlanBuilder): boolean {
  let any = false;
  for (const run of view.deployments()) {
    let r = run;
    while (!r.done && r.currentActions().every((a) => actionDone(view, r, a.app, a.action, now))) {
      const step = r.plan.steps[r.currentStep]!;
      b.event(deploymentStepSuccess({ plan: deploymentPlanJson(r.plan), currentStep: { actions: step.actions } }, now));
      r = r.atStep(r.currentStep + 1);
    }
    if (r.done) {
      b.change({ type: 'DEPLOYMENT_REMOVED', id: r.id });
      b.event(deploymentSuccess({ id: r.id, plan: deploymentPlanJson(r.plan) }, now));
      b.log(`deployment ${r.id} done in ${now - r.startedAt} ms`);
      any = true;
    } else if (r !== run) {
      b.change({ type: 'DEPLOYMENT_SAVED', run: r });
      b.event(deploymentInfo({ plan: deploymentPlanJson(r.plan), currentStep: { actions: r.currentActions() } }, now));
      any = true;
    }
  }
  return any;
}

/** Whether an action of a deployment's current step is done, judged from the app's instances. */
export function actionDone(view: AppsView, run: DeploymentRun, appId: string, action: string, now: number): boolean {
  const spec = run.runSpec(appId);
  const alive = view
    .instancesOf(appId)
    .filter((i) => isAlive(i) && !(i.killing && i.unreachableSince !== undefined) && !(spec.def !== undefined && isInactive(i, spec.def.unreachableStrategy, now)));
  switch (action) {
    case 'StartApplication':
      return true;
    case 'StopApplication':
      return alive.length === 0;
    default: {
      const def = spec.def;
      if (def === undefined) return alive.length === 0;
      return alive.length === def.instances && alive.every((i) => !i.killing && i.configVersion === spec.configVersion && isHealthy(i) && i.ready);
    }
  }
}

/** Unreachable instances past expungeAfterSeconds, or killed while unreachable, are forgotten (killed if they return). */
function expungeUnreachable(view: AppsView, now: number, b: AppsPlanBuilder): Set<string> {
  const expunged = new Set<string>();
  for (const inst of view.instances()) {
    if (inst.unreachableSince === undefined) continue;
    const def = view.runSpec(inst.appId).def;
    const strategy = def?.unreachableStrategy ?? { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 };
    const expire = strategy !== 'disabled' && now >= inst.unreachableSince + strategy.expungeAfterSeconds * 1000;
    if (!inst.killing && !expire) continue;
    if (!inst.killing) b.call(killCall(inst));
    b.change({ type: 'INSTANCE_REMOVED', taskId: inst.taskId });
    b.instanceChanged(inst, 'Gone', now);
    expunged.add(inst.taskId);
  }
  return expunged;
}

/**
 * Explicit reconciliation again, every RECONCILE_RETRY_MS, of the instances the master has not
 * answered for: the master stays silent about tasks of agents that have not come back after its
 * own restart (Mesos's rule), and an instance whose LAUNCH never reached the master (a crash
 * between storing it and sending it, a dropped ACCEPT) is only found out this way.
 */
function reconcileUnconfirmed(view: AppsView, ctx: PassContext, b: AppsPlanBuilder): void {
  const { now } = ctx;
  if (!ctx.subscribed || now - view.lastReconcileAt < RECONCILE_RETRY_MS) return;
  const tasks: { task_id: { value: string }; agent_id: { value: string } }[] = [];
  for (const i of view.instances()) {
    const silent = (i.state === 'TASK_STAGING' || i.state === 'TASK_STARTING') && now - (view.heard.get(i.taskId) ?? i.stagedAt) >= RECONCILE_RETRY_MS;
    if (view.unconfirmed.has(i.taskId) || silent) tasks.push({ task_id: { value: i.taskId }, agent_id: { value: i.agentId } });
  }
  b.change({ type: 'RECONCILED', at: now });
  for (let k = 0; k < tasks.length; k += 1000) b.call({ type: 'RECONCILE', reconcile: { tasks: tasks.slice(k, k + 1000) } });
}

/**
 * Apps against their run specs (every app, or the dirty ones and those with expunged instances):
 * kills now; launches wanted, returned as the needs (of every app: those not looked at keep
 * theirs). The pass is recorded (PASSED), which clears what it covered from the dirty set.
 */
function reconcileApps(view: AppsView, now: number, expunged: ReadonlySet<string>, full: boolean, b: AppsPlanBuilder): Map<string, number> {
  let needs: Map<string, number>;
  let ids: Set<string>;
  if (full) {
    needs = new Map<string, number>();
    ids = new Set<string>([...view.apps().map((a) => a.def.id), ...view.appsWithInstances()]);
    for (const run of view.deployments()) for (const a of run.plan.affectedApps) ids.add(a);
  } else {
    needs = new Map(view.needs);
    ids = new Set(view.dirty);
    for (const taskId of expunged) {
      const appId = view.instance(taskId)?.appId;
      if (appId !== undefined) ids.add(appId);
    }
    for (const id of ids) needs.delete(id);
    ids = new Set([...ids].sort()); // the order a full pass takes them in
  }
  b.change({ type: 'PASSED', at: now, full, apps: full ? [] : [...ids] });
  for (const appId of ids) {
    const spec = view.runSpec(appId);
    const instances = view.instancesOf(appId).filter((i) => !expunged.has(i.taskId));
    let result: ReturnType<typeof reconcileApp>;
    try {
      result = reconcileApp({ spec: spec.def, configVersion: spec.configVersion, instances, now });
    } catch (e) {
      // A definition the reconciler cannot work with is a bug upstream; it must not stop the
      // other apps (nor, in slipway up, the master that shares this process).
      b.log(`apps framework: cannot reconcile ${appId}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    const grace = spec.def?.taskKillGracePeriodSeconds ?? view.app(appId)?.def.taskKillGracePeriodSeconds;
    for (const k of result.kill) {
      const inst = view.instance(k.taskId);
      if (inst !== undefined && !inst.killing) b.kill(inst, k.reason, now, grace);
    }
    const queued = view.queued.get(appId);
    if (result.launch > 0) {
      if (queued === undefined) b.change({ type: 'QUEUE', appId, entry: { since: now, processedOffers: 0, unusedOffers: 0 } });
      const backoff = view.backoffs.get(appId);
      if (backoff === undefined || backoff.until <= now) needs.set(appId, result.launch);
    } else if (queued !== undefined) {
      b.change({ type: 'QUEUE', appId });
    }
  }
  return needs;
}

/**
 * Marathon's RateLimiter forgets an app's delay once maxLaunchDelaySeconds passed after it ran
 * out: a failure long after the last one starts the backoff over, instead of at the maximum.
 */
function forgetOldBackoffs(view: AppsView, now: number, b: AppsPlanBuilder): void {
  for (const [appId, backoff] of view.backoffs) {
    const max = (view.runSpec(appId).def?.maxLaunchDelaySeconds ?? 0) * 1000;
    if (now > backoff.until + max) b.change({ type: 'BACKOFF', appId });
  }
}

function retryKills(view: AppsView, now: number, b: AppsPlanBuilder): void {
  for (const [taskId, at] of view.killsSent) {
    const inst: Instance | undefined = view.instance(taskId);
    if (inst === undefined || !inst.killing || inst.unreachableSince !== undefined || now - at < KILL_RETRY_MS) continue;
    b.change({ type: 'KILL_SENT', taskId, at: now });
    b.call(killCall(inst));
  }
}

function sameNeeds(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/**
 * Subscribed (the first time or again): explicit reconciliation of every instance the framework
 * knows, then implicit (to learn of tasks it does not know, which are then killed); kills decided
 * while disconnected (or not confirmed before a restart) go out again. The master starts the new
 * subscription unsuppressed, so the offer mode starts over.
 */
export function planSubscribed(view: AppsView, now: number): AppsPlan {
  const b = new AppsPlanBuilder();
  const all = [...view.instances()];
  b.change({ type: 'RECONCILED', at: now, unconfirmed: all.map((i) => i.taskId) });
  const tasks = all.map((i) => ({ task_id: { value: i.taskId }, agent_id: { value: i.agentId } }));
  for (let k = 0; k < tasks.length; k += 1000) b.call({ type: 'RECONCILE', reconcile: { tasks: tasks.slice(k, k + 1000) } });
  b.call({ type: 'RECONCILE', reconcile: { tasks: [] } });
  for (const i of all) if (i.killing) b.call(killCall(i));
  b.change({ type: 'OFFER_MANNERS', state: { ...view.manners, suppressed: false, lastNeed: 0 } });
  return b.pass().plan;
}
