import { Resources } from '../../../core/resources.ts';
import type { Offer, TaskInfo } from '../../../protocol/mesos.ts';
import { offerAttributes } from '../../kit/offer-attributes.ts';
import { DECLINE_BUSY_SECONDS, declineSeconds, offersSeen } from '../../kit/offer-manners.ts';
import type { AppDefinition } from '../app-definition.ts';
import type { AppsView } from '../apps-state.ts';
import { isAlive, newTaskId, type Instance } from '../instance.ts';
import { planPlacements, type Location, type PlacementApp, type PlacementOffer } from '../placement/placement.ts';
import { configLinkOf, type ConfigPort } from '../config-port.ts';
import { buildTaskInfo } from '../task-builder.ts';
import { AppsPlanBuilder, type AppsPlan } from './apps-plan.ts';

export interface LaunchContext {
  now: number;
  /** A new UUID for each task id (randomUUID; fixed in tests). */
  uuid: () => string;
  /** The config center, for apps linked to a config service (config-port.ts). */
  config?: ConfigPort;
}

/**
 * What to do with a batch of offers, pure: the needs of the last pass (kit's planOfferMode keeps
 * them fresh: a pass runs before every batch) placed by the pure placement, apps held by a
 * deployment first, then the others, each in id order. The instances are stored (INSTANCE_SAVED)
 * in the plan's batch, so they are durable before their LAUNCH goes out in one ACCEPT per offer;
 * offers not used are declined, briefly while needs still wait, for long otherwise.
 */
export function planLaunches(view: AppsView, offers: readonly Offer[], ctx: LaunchContext): AppsPlan {
  const { now } = ctx;
  const b = new AppsPlanBuilder();
  const seen = new Map<string, Location>();
  for (const o of offers) {
    const location = { agentId: o.agent_id.value, hostname: o.hostname, attributes: offerAttributes(o) };
    seen.set(location.agentId, location);
    b.change({ type: 'AGENT_SEEN', location });
  }
  const remaining = new Map<string, PlacementOffer & { role: string }>(
    offers.map((o) => [o.id.value, { id: o.id.value, agentId: o.agent_id.value, hostname: o.hostname, attributes: offerAttributes(o), resources: Resources.fromJSON(o.resources), role: o.allocation_info.role }]),
  );
  const launches = new Map<string, TaskInfo[]>();
  const needs = new Map(view.needs);
  let seed = view.seed;
  const held = (id: string) => Number(view.runOf(id) !== undefined);
  const order = [...needs.keys()].sort((a, c) => held(c) - held(a) || (a < c ? -1 : 1));
  for (const appId of order) {
    const wanted = needs.get(appId) ?? 0;
    const spec = view.runSpec(appId);
    const def = spec.def;
    if (def === undefined || wanted <= 0) continue;
    const running = view
      .instancesOf(appId)
      .filter((i) => isAlive(i) && !i.killing)
      .map((i) => seen.get(i.agentId) ?? view.agents.get(i.agentId) ?? { agentId: i.agentId, hostname: i.host, attributes: {} });
    const offered = [...remaining.values()];
    const placements = planPlacements({ app: placementApp(def), wanted, offers: offered, running, seed: seed++ });
    const stats = view.queued.get(appId);
    if (stats !== undefined) {
      const used = new Set(placements.map((p) => p.offerId)).size;
      b.change({ type: 'QUEUE', appId, entry: { ...stats, processedOffers: stats.processedOffers + offered.length, unusedOffers: stats.unusedOffers + offered.length - used } });
    }
    const version = view.versionOf(appId, spec);
    const link = configLinkOf(def.labels);
    for (const p of placements) {
      const offer = remaining.get(p.offerId)!;
      const taskId = newTaskId(appId, ctx.uuid());
      // Each instance starts with the release current now for it (a gray release may be for some).
      const config = link !== undefined ? ctx.config?.deliveryFor(link.service, link.env, appId, { taskId, agentId: p.agentId, hostname: offer.hostname, attributes: offer.attributes }) : undefined;
      const inst: Instance = {
        taskId,
        appId,
        version,
        configVersion: spec.configVersion,
        agentId: p.agentId,
        host: offer.hostname,
        ports: p.ports,
        servicePorts: def.portDefinitions.map((d) => d.port),
        state: 'TASK_STAGING',
        stagedAt: now,
        hasHealthCheck: def.healthChecks.length > 0,
        ready: def.readinessChecks.length === 0,
        killing: false,
        ...(config !== undefined ? { configRelease: { service: config.service, env: config.env, version: config.release } } : {}),
      };
      b.saveInstance(inst);
      offer.resources = offer.resources.subtract(p.resources);
      const info = buildTaskInfo(def, { taskId, agentId: p.agentId, host: offer.hostname, version, resources: p.resources, allocationRole: offer.role, ports: p.ports, ...(config !== undefined ? { config } : {}) });
      launches.set(p.offerId, [...(launches.get(p.offerId) ?? []), info]);
    }
    const left = wanted - placements.length;
    if (left > 0) needs.set(appId, left);
    else needs.delete(appId);
  }
  b.change({ type: 'SEED', seed });
  b.change({ type: 'NEEDS', needs });
  let stillWanted = 0;
  for (const n of needs.values()) stillWanted += n;
  b.change({ type: 'OFFER_MANNERS', state: offersSeen(view.manners, now, stillWanted) });
  const stillNeeded = needs.size > 0;
  const unused = offers.filter((o) => !launches.has(o.id.value)).map((o) => o.id);
  if (unused.length > 0) b.call({ type: 'DECLINE', decline: { offer_ids: unused, filters: { refuse_seconds: declineSeconds(stillNeeded) } } });
  for (const [offerId, taskInfos] of launches) {
    b.call({
      type: 'ACCEPT',
      accept: { offer_ids: [{ value: offerId }], operations: [{ type: 'LAUNCH', launch: { task_infos: taskInfos } }], filters: { refuse_seconds: stillNeeded ? 0 : DECLINE_BUSY_SECONDS } },
    });
  }
  if (launches.size > 0) b.pass();
  return b.plan;
}

/** What placement reads of an app definition (planLaunches and the preview of POST /v2/plan place by the same). */
export function placementApp(def: AppDefinition): PlacementApp {
  const fixed = def.requirePorts && def.portDefinitions.every((p) => p.port !== 0) ? def.portDefinitions.map((p) => p.port) : undefined;
  return {
    id: def.id,
    cpus: def.cpus,
    mem: def.mem,
    disk: def.disk,
    ports: def.portDefinitions.length,
    ...(fixed !== undefined ? { requirePorts: fixed } : {}),
    constraints: def.constraints,
    ...(def.acceptedResourceRoles !== undefined ? { acceptedResourceRoles: def.acceptedResourceRoles } : {}),
  };
}
