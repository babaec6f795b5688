import { Resources } from '../../core/resources.ts';
import type { Offer, TaskInfo } from '../../protocol/mesos.ts';
import { meetsConstraints, wholeValuePattern, type Constraint } from '../kit/constraints.ts';
import { InstanceTally, type Location } from '../kit/instance-tally.ts';
import { offerAttributes } from '../kit/offer-attributes.ts';
import { declineSeconds, offersSeen } from '../kit/offer-manners.ts';
import type { CiView, LastOffer } from './ci-state.ts';
import { tokenDigest } from '../../lib/token-digest.ts';
import type { ExecutorRecord } from './executor-record.ts';
import { executorContainer, type ExecutorProgramFor } from './executor-task.ts';
import type { ExecutorSpec } from './job-definition.ts';
import { CiPlanBuilder, type CiPlan } from './plan/ci-plan.ts';

/**
 * How long an agent's last offer counts as capacity on its way when spreading executors: the
 * master offers agents one by one as their resources come back (after an ACCEPT, a DECLINE, a
 * task's end), so one batch of offers rarely shows every agent.
 */
export const OFFER_MEMORY_MS = 5_000;

export interface PlacementContext {
  now: number;
  /** A new executor id (randomUUID; fixed in tests). */
  uuid: () => string;
  /** A new executor token (random; fixed in tests). */
  token: () => string;
  /** How long an executor's launch token proves it, from its launch. */
  tokenTtlMs: number;
  /** How an executor task runs `slipway ci-executor` (executor-task.ts). */
  executorProgram: ExecutorProgramFor;
}

/**
 * Executors from a batch of offers, pure: for each label the last pass wants executors of, one
 * at a time, an offer that fits the spec's resources and meets its constraints (Marathon's
 * meanings, kit/constraints.ts, over the label's executors), on the agent with the fewest
 * executors; and no agent past an even share of the label's executors (those there and those
 * still wanted) over the agents whose latest offer could hold one, whether or not that offer is
 * in this batch (OFFER_MEMORY_MS). The executors are stored in the plan's batch, so they are
 * durable before their LAUNCH goes out; the rest of an accepted offer carries no filter (offered
 * again at once, it may take the next executor); offers not used are declined.
 */
export function planExecutorLaunches(view: CiView, offers: readonly Offer[], ctx: PlacementContext): CiPlan {
  const { now } = ctx;
  const b = new CiPlanBuilder();
  const lastOffers = new Map<string, LastOffer>([...view.lastOffers].map(([agentId, o]) => [agentId, { ...o }]));
  for (const o of offers) {
    const offer = { at: now, hostname: o.hostname, attributes: offerAttributes(o), left: Resources.fromJSON(o.resources), role: o.allocation_info.role };
    lastOffers.set(o.agent_id.value, offer);
  }
  const executors: ExecutorRecord[] = [...view.executors.values()];
  const perAgent = new Map<string, number>();
  for (const e of executors) perAgent.set(e.agentId, (perAgent.get(e.agentId) ?? 0) + 1);
  const left = new Map(offers.map((o) => [o.id.value, Resources.fromJSON(o.resources)] as const));
  const launches = new Map<string, TaskInfo[]>();
  let created = 0;
  const placeOf = (agentId: string, hostname: string): Location => ({ agentId, hostname, attributes: lastOffers.get(agentId)?.attributes ?? view.attributesOf(agentId) });
  const needs = new Map(view.needs);
  for (const [label, count] of view.needs) {
    const spec = view.specs.get(label);
    if (spec === undefined) continue;
    const constraints = kitConstraints(spec);
    const patterns = constraints.map((c) => (c.operator === 'LIKE' || c.operator === 'UNLIKE' ? wholeValuePattern(c.value) : undefined));
    for (let k = 0; k < count; k++) {
      const ofLabel = executors.filter((x) => x.label === label);
      const placed = new InstanceTally([...new Set(constraints.map((c) => c.fieldName))], ofLabel.map((x) => placeOf(x.agentId, x.hostname)));
      const meets = (at: Location) => meetsConstraints(constraints, patterns, at, placed);
      const able = [...lastOffers].filter(([agentId, l]) => now - l.at <= OFFER_MEMORY_MS && fit(l.left, spec, l.role) !== undefined && meets(placeOf(agentId, l.hostname))).length;
      const share = Math.ceil((ofLabel.length + count - k) / Math.max(1, able));
      const ofLabelOn = (agentId: string) => ofLabel.filter((x) => x.agentId === agentId).length;
      // The agent with the fewest executors first: builds spread over the machines.
      const best = offers
        .filter((o) => ofLabelOn(o.agent_id.value) < share && meets(placeOf(o.agent_id.value, o.hostname)))
        .map((o) => ({ o, take: fit(left.get(o.id.value)!, spec, o.allocation_info.role) }))
        .filter((c): c is { o: Offer; take: Resources } => c.take !== undefined)
        .sort((a, c) => (perAgent.get(a.o.agent_id.value) ?? 0) - (perAgent.get(c.o.agent_id.value) ?? 0))[0];
      if (best === undefined) break;
      const id = ctx.uuid();
      const token = ctx.token();
      const record: ExecutorRecord = {
        id,
        label,
        launchTokenDigest: tokenDigest(token),
        launchTokenExpiresAt: now + ctx.tokenTtlMs,
        taskId: `ci-executor-${label}-${id}`,
        agentId: best.o.agent_id.value,
        hostname: best.o.hostname,
        state: 'launching',
        launchedAt: now,
      };
      executors.push(record);
      b.saveExecutor(record);
      created++;
      needs.set(label, (needs.get(label) ?? 1) - 1);
      perAgent.set(record.agentId, (perAgent.get(record.agentId) ?? 0) + 1);
      const rest = left.get(best.o.id.value)!.subtract(best.take);
      left.set(best.o.id.value, rest);
      const last = lastOffers.get(record.agentId);
      if (last !== undefined) last.left = rest;
      const program = ctx.executorProgram({ id, token, label, containerizer: spec.containerizer });
      const container = executorContainer(spec, program);
      const info: TaskInfo = {
        name: `ci executor ${label}`,
        task_id: { value: record.taskId },
        agent_id: best.o.agent_id,
        resources: best.take.toJSON(best.o.allocation_info.role),
        command: program.command,
        ...(container !== undefined ? { container } : {}),
        labels: { labels: [{ key: 'slipway.ci.executor', value: label }] },
      };
      launches.set(best.o.id.value, [...(launches.get(best.o.id.value) ?? []), info]);
    }
  }
  for (const [agentId, offer] of lastOffers) b.change({ type: 'OFFER_SEEN', agentId, offer });
  let stillWanted = 0;
  for (const n of needs.values()) stillWanted += n;
  b.change({ type: 'OFFER_MANNERS', state: offersSeen(view.manners, now, stillWanted) });
  const unused = offers.filter((o) => !launches.has(o.id.value)).map((o) => o.id);
  if (unused.length > 0) b.call({ type: 'DECLINE', decline: { offer_ids: unused, filters: { refuse_seconds: declineSeconds(stillWanted > 0) } } });
  for (const [offerId, taskInfos] of launches) {
    // No filter on what is left of the offer: offered again at once, it may take the next
    // executor of a build that came meanwhile (or is declined with the usual filters).
    b.call({ type: 'ACCEPT', accept: { offer_ids: [{ value: offerId }], operations: [{ type: 'LAUNCH', launch: { task_infos: taskInfos } }], filters: { refuse_seconds: 0 } } });
  }
  if (created > 0) {
    const placedNow = b.plan.changes.flatMap((c) => (c.type === 'EXECUTOR_SAVED' ? [`${c.executor.label} on ${c.executor.hostname}`] : []));
    b.log(`ci framework: launching ${created} executor(s): ${placedNow.join(', ')}`);
    // What was launched is wanted no more (the next offers meet the rest).
    b.change({ type: 'NEEDS', needs: new Map([...needs].filter(([, n]) => n > 0)) }).pass();
  }
  return b.plan;
}

/** An executor spec's constraints in the kit's form (the JSON says `field`, Marathon's arrays say fieldName). */
export function kitConstraints(spec: Pick<ExecutorSpec, 'constraints'>): Constraint[] {
  return spec.constraints.map((c) => ({ fieldName: c.field, operator: c.operator, ...(c.value !== undefined ? { value: c.value } : {}) }));
}

/** The resources of an executor of `spec` taken from what is left of an offer, or undefined if they do not fit. */
export function fit(left: Resources, spec: ExecutorSpec, role: string): Resources | undefined {
  const wanted = { cpus: spec.cpus, mem: spec.mem, ...(spec.disk > 0 ? { disk: spec.disk } : {}) };
  for (const r of role === '*' ? ['*'] : [role, '*']) {
    const take = Resources.scalars(wanted, r);
    if (left.contains(take)) return take;
  }
  return undefined;
}
