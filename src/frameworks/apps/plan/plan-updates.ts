import { isTerminal, type TaskState } from '../../../core/task-state.ts';
import type { TaskStatus } from '../../../protocol/mesos.ts';
import type { AppsView, Backoff } from '../apps-state.ts';
import {
  failedHealthCheckEvent,
  healthStatusChangedEvent,
  statusUpdateEvent,
  unhealthyInstanceKillEvent,
} from '../events/marathon-events.ts';
import { isHealthy, type Instance } from '../instance.ts';
import { marathonCondition } from '../marathon-condition.ts';
import { AppsPlanBuilder, killCall, type AppsPlan } from './apps-plan.ts';

const FAILED: readonly TaskState[] = ['TASK_FAILED', 'TASK_ERROR', 'TASK_FINISHED', 'TASK_KILLED'];

/**
 * Status updates from the master, pure: what each changes of its instance, in arrival order (a
 * batch may hold several updates of one instance). Every update's ACKNOWLEDGE is in the plan's
 * calls, so it goes out only once the state it reports is stored: a crash before that gets the
 * update sent again. An update of a task the framework does not know is acknowledged and, unless
 * it ended, answered with KILL (launched by an earlier incarnation and expunged, or forgotten).
 *
 * A reconciliation answer that changes nothing writes nothing and publishes nothing (a reconnect
 * at 10,000 instances would otherwise write and publish 20,000 times).
 */
export function planUpdates(view: AppsView, statuses: readonly TaskStatus[], now: number): AppsPlan {
  const b = new AppsPlanBuilder();
  // The instances and backoffs as this batch has left them so far (null: the instance ended).
  const local = new Map<string, Instance | null>();
  const backoffs = new Map<string, Backoff | undefined>();
  const current = (taskId: string) => (local.has(taskId) ? (local.get(taskId) ?? undefined) : view.instance(taskId));
  for (const status of statuses) {
    const taskId = status.task_id.value;
    const ack = () => {
      if (status.uuid !== undefined && status.agent_id !== undefined) b.call({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: status.agent_id, task_id: status.task_id, uuid: status.uuid } });
    };
    const inst = current(taskId);
    if (inst === undefined) {
      if (!isTerminal(status.state) && status.state !== 'TASK_UNREACHABLE') {
        b.log(`apps framework: killing unknown task ${taskId}`);
        b.call({ type: 'KILL', kill: { task_id: status.task_id, ...(status.agent_id !== undefined ? { agent_id: status.agent_id } : {}) } });
      }
      ack();
      continue;
    }
    b.change({ type: 'HEARD', taskId, at: now });
    if (status.reason === 'REASON_RECONCILIATION' && status.state === inst.state && (status.healthy === undefined || status.healthy === inst.healthy)) {
      if (status.state === 'TASK_RUNNING' && !inst.ready) {
        const ready = readiness(view, inst, b);
        if (ready !== inst) local.set(taskId, ready);
      }
      ack();
      continue;
    }
    const previousHealth = isHealthy(inst);
    const wasUnreachable = inst.unreachableSince !== undefined;
    let next: Instance = { ...inst, state: status.state };
    if (status.message !== undefined) next.message = status.message;
    if (status.healthy !== undefined) next.healthy = status.healthy;
    if (status.state === 'TASK_UNREACHABLE') next.unreachableSince = inst.unreachableSince ?? now;
    else delete next.unreachableSince;
    if (status.state === 'TASK_RUNNING' && next.startedAt === undefined) next.startedAt = now;
    // Back from a partition after we gave it up: the master may have forgotten the kill.
    if (status.state === 'TASK_RUNNING' && wasUnreachable && inst.killing) b.call(killCall(inst));

    b.event(
      statusUpdateEvent(
        { slaveId: next.agentId, taskId, taskStatus: status.state, message: status.message ?? '', appId: next.appId, host: next.host, ipAddresses: [], ports: next.ports, version: next.version },
        now,
      ),
    );
    b.instanceChanged(next, marathonCondition(status.state), now);
    if (isHealthy(next) !== previousHealth && next.hasHealthCheck) {
      b.event(healthStatusChangedEvent({ appId: next.appId, instanceId: taskId, version: next.version, alive: isHealthy(next) }, now));
      const check = view.app(next.appId)?.def.healthChecks[0];
      if (status.healthy === false && check !== undefined) b.event(failedHealthCheckEvent({ appId: next.appId, instanceId: taskId, healthCheck: check }, now));
    }

    if (isTerminal(status.state)) {
      b.change({ type: 'INSTANCE_REMOVED', taskId });
      local.set(taskId, null);
      if (!inst.killing) recordFailure(view, next, status, now, backoffs, b);
      if (status.reason === 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED') {
        b.event(
          unhealthyInstanceKillEvent(
            { appId: next.appId, taskId, instanceId: taskId, version: next.version, reason: status.message ?? 'health check failed', host: next.host, slaveId: next.agentId },
            now,
          ),
        );
      }
    } else {
      if (status.state === 'TASK_RUNNING' && !next.ready) next = readiness(view, next, b, false);
      b.saveInstance(next);
      local.set(taskId, next);
    }
    ack();
    b.pass();
  }
  return b.plan;
}

/**
 * A running instance that is not ready yet: probed (Marathon runs readiness checks itself), or
 * ready at once when its run spec has no readiness check. Answers the instance as it stands
 * (saved here when `save` is set; the caller saves it otherwise).
 */
function readiness(view: AppsView, inst: Instance, b: AppsPlanBuilder, save = true): Instance {
  const def = view.runSpec(inst.appId).def ?? view.app(inst.appId)?.def;
  if (def?.readinessChecks[0] !== undefined) {
    b.plan.probes.push(inst);
    return inst;
  }
  const ready = { ...inst, ready: true };
  if (save) b.saveInstance(ready).pass();
  return ready;
}

/** Marathon's lastTaskFailure, and its RateLimiter for the failures that count. */
function recordFailure(view: AppsView, inst: Instance, status: TaskStatus, now: number, backoffs: Map<string, Backoff | undefined>, b: AppsPlanBuilder): void {
  b.change({
    type: 'FAILURE',
    appId: inst.appId,
    failure: { appId: inst.appId, host: inst.host, message: status.message ?? '', state: status.state, taskId: inst.taskId, timestamp: new Date(now).toISOString(), version: inst.version, slaveId: inst.agentId },
  });
  // An operator's drain killed it, not a fault of the app: its replacement goes out at once.
  if (!FAILED.includes(status.state) || status.reason === 'REASON_AGENT_DRAINING') return;
  const spec = view.runSpec(inst.appId).def;
  if (spec === undefined) return;
  // Marathon's RateLimiter: the first failure waits backoffSeconds, each further one factor
  // times longer, up to maxLaunchDelaySeconds; counted from the failure.
  const prev = backoffs.has(inst.appId) ? backoffs.get(inst.appId) : view.backoffs.get(inst.appId);
  const delaySeconds = prev === undefined ? spec.backoffSeconds : Math.min(prev.delaySeconds * spec.backoffFactor, spec.maxLaunchDelaySeconds);
  const backoff = { failures: (prev?.failures ?? 0) + 1, delaySeconds, until: now + delaySeconds * 1000 };
  backoffs.set(inst.appId, backoff);
  b.change({ type: 'BACKOFF', appId: inst.appId, backoff });
}
