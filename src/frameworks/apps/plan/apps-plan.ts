import type { OutgoingCall } from '../../kit/framework-session.ts';
import { PlanBuilder, type Plan } from '../../kit/plan-applier.ts';
import type { AppsStateChange } from '../apps-state.ts';
import type { MarathonEvent } from '../events/marathon-events.ts';
import { instanceChangedEvent, type InstanceCondition } from '../events/marathon-events.ts';
import type { Instance } from '../instance.ts';

/**
 * A plan of the services framework: the kit's plan (state changes, scheduler calls, Marathon
 * events, log lines) and what only this framework does with one:
 * `probes`: instances whose readiness checks the framework starts polling (Marathon runs
 * readiness checks itself); their results come back as turns of their own.
 */
export interface AppsPlan extends Plan<AppsStateChange, MarathonEvent> {
  probes: Instance[];
}

/**
 * Builds an AppsPlan. Helpers for what every planner writes the same way (a kill, an instance
 * saved or removed), so that a KILL always carries the app's grace period and is remembered for
 * the kill retry.
 */
export class AppsPlanBuilder extends PlanBuilder<AppsStateChange, MarathonEvent, AppsPlan> {
  constructor() {
    super({ changes: [], calls: [], events: [], log: [], probes: [], pass: false });
  }

  saveInstance(i: Instance): this {
    return this.change({ type: 'INSTANCE_SAVED', instance: i });
  }

  /**
   * Marks the instance as being killed (stored) and sends KILL with the grace period of its run
   * spec; `inst` is the instance as it stands in this plan.
   */
  kill(inst: Instance, reason: string, now: number, graceSeconds: number | undefined): Instance {
    const killed: Instance = { ...inst, killing: true };
    this.saveInstance(killed);
    this.change({ type: 'KILL_SENT', taskId: inst.taskId, at: now });
    this.log(`apps framework: killing ${inst.taskId}: ${reason}`);
    this.call(killCall(inst, graceSeconds));
    return killed;
  }

  instanceChanged(i: Instance, condition: InstanceCondition, now: number): this {
    return this.event(instanceChangedEvent({ instanceId: i.taskId, condition, runSpecId: i.appId, agentId: i.agentId, host: i.host, runSpecVersion: i.version }, now));
  }

}

/** KILL of an instance's task, with a grace period when the app sets one. */
export function killCall(inst: Instance, graceSeconds?: number): OutgoingCall {
  return {
    type: 'KILL',
    kill: { task_id: { value: inst.taskId }, agent_id: { value: inst.agentId }, ...(graceSeconds !== undefined ? { kill_policy: { grace_period: { nanoseconds: Math.round(graceSeconds * 1e9) } } } : {}) },
  };
}
