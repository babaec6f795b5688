import type { AppDefinition, UnreachableStrategy } from './app-definition.ts';
import { decideRollingUpgrade } from './deployment/rolling-upgrade.ts';
import { isAlive, isHealthy, type Instance } from './instance.ts';

// ---------------------------------------------------------------------------------------------
// The reconciler of one app (Nomad's pattern: a pure function computes the diff, the framework
// applies it). It compares what should run (the app's run spec: its definition and config
// version, or nothing for an app being stopped) with its instances, and answers how many
// instances to launch and which to kill now. It is run again after every change (status update,
// REST change, deployment step, timer), so every answer is only the next move.
//
// Rules:
// - Instances being killed never count. An unreachable instance counts until its
//   unreachableStrategy makes it inactive (default: at once); then it is replaced. (Expunging it
//   after expungeAfterSeconds, with a KILL in case it returns, is the framework's job; an inactive
//   instance that returns in between counts again, and the surplus is killed in kill order.)
// - All instances of the current config version: launch up to `instances`, or kill the surplus in
//   kill order (unreachable, then not running, then unhealthy, then by killSelection).
// - Some of an older config version: a rolling upgrade (decideRollingUpgrade) that keeps at least
//   ceil(instances x minimumHealthCapacity) healthy and at most instances x (1 +
//   maximumOverCapacity) alive; a new instance counts once healthy and ready.
// ---------------------------------------------------------------------------------------------

export interface ReconcileInput {
  /** What should run; undefined when the app is being stopped (every instance is killed). */
  spec: AppDefinition | undefined;
  /** The run spec's `lastConfigChangeAt`. */
  configVersion: string;
  /** The app's instances (terminal ones are ignored). */
  instances: readonly Instance[];
  /** Milliseconds since the epoch. */
  now: number;
}

export interface KillOrder {
  taskId: string;
  reason: string;
}

export interface ReconcileResult {
  launch: number;
  kill: KillOrder[];
}

export function reconcileApp(input: ReconcileInput): ReconcileResult {
  const { spec, configVersion, now } = input;
  const kill: KillOrder[] = [];
  const counted: Instance[] = [];
  let oldKilling = 0;
  for (const i of input.instances) {
    if (!isAlive(i)) continue;
    if (i.killing) {
      if (i.configVersion !== configVersion) oldKilling++;
      continue;
    }
    if (spec === undefined) kill.push({ taskId: i.taskId, reason: 'the app is stopped' });
    else if (!isInactive(i, spec.unreachableStrategy, now)) counted.push(i);
  }
  if (spec === undefined) return { launch: 0, kill };

  const n = spec.instances;
  const current = counted.filter((i) => i.configVersion === configVersion);
  const old = counted.filter((i) => i.configVersion !== configVersion);
  const order = killOrder(spec.killSelection);

  if (current.length > n) {
    // Surplus of the current version (a scale-down, or replacements of instances that came
    // back): kill the least useful ones.
    const surplus = [...current].sort(order).slice(0, current.length - n);
    for (const i of surplus) kill.push({ taskId: i.taskId, reason: `scaled down to ${n} instances` });
    const gone = new Set(surplus.map((i) => i.taskId));
    current.splice(0, current.length, ...current.filter((i) => !gone.has(i.taskId)));
  }

  if (old.length === 0 && oldKilling === 0) {
    return { launch: Math.max(0, n - current.length), kill };
  }

  const newReady = current.filter((i) => isHealthy(i) && i.ready).length;
  const oldHealthy = old.filter(isHealthy);
  const oldUnhealthy = old.filter((i) => !isHealthy(i));
  const d = decideRollingUpgrade({
    instances: n,
    minimumHealthCapacity: spec.upgradeStrategy.minimumHealthCapacity,
    maximumOverCapacity: spec.upgradeStrategy.maximumOverCapacity,
    oldRunning: old.length + oldKilling,
    oldHealthy: oldHealthy.length,
    oldKilling,
    newStarted: current.length - newReady,
    newReady,
  });
  const reason = 'replaced by a new version of the app';
  for (const i of [...oldUnhealthy].sort(order).slice(0, d.kill - d.killHealthy)) kill.push({ taskId: i.taskId, reason });
  for (const i of [...oldHealthy].sort(order).slice(0, d.killHealthy)) kill.push({ taskId: i.taskId, reason });
  return { launch: d.launch, kill };
}

/** An unreachable instance past its strategy's inactiveAfterSeconds (never, when disabled). */
export function isInactive(i: Instance, strategy: UnreachableStrategy, now: number): boolean {
  if (i.unreachableSince === undefined || strategy === 'disabled') return false;
  return now >= i.unreachableSince + strategy.inactiveAfterSeconds * 1000;
}

/**
 * Which instance to kill first: unreachable ones, then those not running yet, then unhealthy or
 * not ready ones, then by `killSelection` (YOUNGEST_FIRST: latest staged first). Ties by task id,
 * so the order is total.
 */
export function killOrder(selection: AppDefinition['killSelection']): (a: Instance, b: Instance) => number {
  const rank = (i: Instance) => (i.unreachableSince !== undefined ? 0 : i.state !== 'TASK_RUNNING' ? 1 : !isHealthy(i) || !i.ready ? 2 : 3);
  return (a, b) =>
    rank(a) - rank(b) ||
    (selection === 'YOUNGEST_FIRST' ? b.stagedAt - a.stagedAt : a.stagedAt - b.stagedAt) ||
    (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0);
}
