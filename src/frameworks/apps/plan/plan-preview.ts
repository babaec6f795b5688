import { Resources, fromMillis, toMillis } from '../../../core/resources.ts';
import { meetsConstraint, wholeValuePattern, type Constraint } from '../../kit/constraints.ts';
import { InstanceTally, fieldValue, type Location } from '../../kit/instance-tally.ts';
import type { MasterAgent } from '../../kit/master-agents.ts';
import type { AppDefinition } from '../app-definition.ts';
import { isInactive, killOrder } from '../app-reconciler.ts';
import { TooManyInRequest } from '../apps-errors.ts';
import type { AppsView } from '../apps-state.ts';
import { planDeployment, type DeploymentActionName } from '../deployment/deployment-plan.ts';
import { decideRollingUpgrade } from '../deployment/rolling-upgrade.ts';
import { isAlive, isHealthy, type Instance } from '../instance.ts';
import { usableResources } from '../placement/fit.ts';
import { planPlacements, type PlacementApp } from '../placement/placement.ts';
import { assignServicePorts } from '../service-ports.ts';
import { DraftApps } from './draft-apps.ts';
import { placementApp } from './plan-launches.ts';

// ---------------------------------------------------------------------------------------------
// The preview of a deployment (POST /v2/plan, the preflight of a promotion): what a deploy of an
// edit would do, and whether every instance it starts can be placed now. Pure, and without any
// side effect on the framework: nothing is stored, no version is issued, no deployment made.
//
//   edit(declared) ──► service ports (as planDeploy) ──► planDeployment: Marathon's steps
//        │
//        ▼ per step, in order (a step's actions run together):
//     1. kills: StopApplication (every instance), ScaleApplication down (the surplus, in the
//        app's kill order): their resources go back to their agents
//     2. launches, apps in id order: ScaleApplication up / a new app: n - current instances;
//        RestartApplication: the rolling upgrade simulated with the app's upgradeStrategy
//        (decideRollingUpgrade, as the reconciler decides it), a launched instance taken as
//        ready at once and a killed one as gone at once; a round that can kill nothing and place
//        nothing leaves the rest unplaced ("the restart can make no progress")
//     placed with planPlacements on one synthetic offer per active agent: its free capacity
//     (total - used, GET_AGENTS), allocatable to the framework's role, minus what was placed on
//     it so far; so constraints, ports, requirePorts and accepted roles are judged by the code
//     that places for real
//
// What it cannot know: offers other frameworks (CI) will take meanwhile, instances other apps
// still wait for (their needs), and instances already being killed (their resources count as
// taken until the master reports them gone). Freed resources go back as unreserved ones.
// ---------------------------------------------------------------------------------------------

/** What the preview reads of the framework's state. */
export type PreviewView = Pick<AppsView, 'declared' | 'instancesOf' | 'namesServicePort' | 'runOf'>;

export interface PreviewInput {
  view: PreviewView;
  /** A deploy's edit, as AppsFramework.deploy takes it (it gets a draft over the declared apps). */
  edit: (declared: Map<string, AppDefinition>) => ReadonlyMap<string, AppDefinition>;
  /** The master's agents (GET_AGENTS). */
  agents: readonly MasterAgent[];
  /** The framework's role: resources reserved for it may be used, besides unreserved ones. */
  role: string;
  now: number;
  /** Seed of the placement's tie-breaking shuffle (the framework's). */
  seed: number;
}

/** Why an instance cannot go on one agent, in words a user reads. */
export interface AgentReasons {
  agentId: string;
  hostname: string;
  reasons: string[];
}

export interface AppPreview {
  id: string;
  /** New instances to launch (a new app, a scale up, the instances a restart adds). */
  start: number;
  /** Instances killed and not replaced (a stopped app, a scale down, a restart to fewer). */
  stop: number;
  /** Instances replaced by new ones of the new definition (a rolling restart). */
  restart: number;
  /** Of the new instances (start + restart), how many cannot be placed now. */
  unplaced: number;
  /** Why, when unplaced > 0. */
  message?: string;
  /** Per agent, why one more instance cannot go there (only when unplaced > 0). */
  reasons: AgentReasons[];
}

export interface PlanPreview {
  /** Every new instance of every app can be placed now. */
  fits: boolean;
  /** Marathon's deployment steps: the actions of each step run together. */
  steps: { action: DeploymentActionName; app: string }[][];
  /** The apps the deployment touches, by id. */
  apps: AppPreview[];
  /** Deployments running now that hold an app of the change: a deploy without force answers 409. */
  lockedBy: string[];
}

/** One agent as placement sees it during the simulation. */
interface Capacity {
  location: Location;
  /** Why no offer comes from it; undefined when it is offered. */
  unavailable?: string;
  /** All it has, allocatable to the role (to tell a port in use from one it does not have). */
  total: Resources;
  /** What is free on it now, allocatable to the role, as the simulation goes. */
  left: Resources;
}

/** The reason an agent takes no instance whatever fits, or undefined when the master offers it. */
export function agentUnavailable(a: MasterAgent): string | undefined {
  if (a.state === 'UNREACHABLE') return 'agent is unreachable';
  if (a.state === 'RECOVERED') return 'agent has not reregistered since the master restarted';
  if (a.drain !== undefined) return a.drain === 'DRAINED' ? 'agent is drained' : 'agent is draining';
  if (a.deactivated) return 'agent is deactivated';
  if (!a.active) return 'agent is not active';
  return undefined;
}

/**
 * What an agent has free for a framework in `role`: what its tasks do not use (total - used),
 * unreserved or reserved for the role. This is what the master would offer the framework if
 * nobody else held part of it.
 */
export function freeCapacity(a: MasterAgent, role: string): Resources {
  return a.total.subtract(a.used).allocatableTo(role);
}

function capacitiesOf(agents: readonly MasterAgent[], role: string): Map<string, Capacity> {
  const out = new Map<string, Capacity>();
  for (const a of [...agents].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))) {
    const unavailable = agentUnavailable(a);
    out.set(a.id, {
      location: { agentId: a.id, hostname: a.hostname, attributes: a.attributes },
      ...(unavailable !== undefined ? { unavailable } : {}),
      total: a.total.allocatableTo(role),
      left: freeCapacity(a, role),
    });
  }
  return out;
}

/**
 * The most instances of one app a preview places one by one. Placement takes an instance at a
 * time, and an app that asks for no resources fits any number of times: without a bound, a
 * definition of 2^31 instances would hold the event loop (docs/reliability.md).
 */
export const MAX_PREVIEW_INSTANCES = 10_000;

/**
 * Answers what a deploy of `input.edit` would do now (see the top of this file). Throws what
 * the deploy would throw for the edit (the edit's own refusals, DeploymentCycle 422,
 * ServicePortsExhausted 409), and TooManyInRequest (413) for an app of more than
 * MAX_PREVIEW_INSTANCES instances.
 */
export function previewDeploy(input: PreviewInput): PlanPreview {
  const { view, now } = input;
  const original = view.declared();
  const draft = new DraftApps(original);
  const edited = input.edit(draft);
  const touched = edited === draft ? draft.changed : undefined;
  const target = assignServicePorts(original, edited, undefined, touched, (port) => view.namesServicePort(port));
  const plan = planDeployment(original, target, { id: 'preview', version: new Date(now).toISOString() }, touched);

  for (const id of plan.affectedApps) {
    const n = target.get(id)?.instances ?? 0;
    if (n > MAX_PREVIEW_INSTANCES) throw new TooManyInRequest(`app ${id} asks for ${n} instances: POST /v2/plan previews at most ${MAX_PREVIEW_INSTANCES} instances per app`);
  }
  const capacities = capacitiesOf(input.agents, input.role);
  let seed = input.seed;
  const locate = (i: Instance): Location => capacities.get(i.agentId)?.location ?? { agentId: i.agentId, hostname: i.host, attributes: {} };
  /** An instance's resources (those of the definition it was declared with) back to its agent. */
  const release = (i: Instance, def: AppDefinition) => {
    const c = capacities.get(i.agentId);
    if (c === undefined) return;
    let r = Resources.scalars({ cpus: def.cpus, mem: def.mem, disk: def.disk });
    for (const p of i.ports) if (p > 0) r = r.add(Resources.ranges('ports', [[p, p]]));
    c.left = c.left.add(r);
  };
  const counted = (id: string, def: AppDefinition): Instance[] =>
    view
      .instancesOf(id)
      .filter((i) => isAlive(i) && !i.killing && !isInactive(i, def.unreachableStrategy, now))
      .sort(killOrder(def.killSelection));

  const previews = new Map<string, AppPreview>();
  for (const id of plan.affectedApps) previews.set(id, { id, start: 0, stop: 0, restart: 0, unplaced: 0, reasons: [] });
  /** What is left of each app's current instances once the kills of its step are done. */
  const remaining = new Map<string, Instance[]>();

  for (const step of plan.steps) {
    // 1. kills
    for (const { action, app } of step.actions) {
      const p = previews.get(app)!;
      const before = original.get(app);
      if (action === 'StopApplication' && before !== undefined) {
        const all = counted(app, before);
        p.stop = all.length;
        for (const i of all) release(i, before);
      } else if (action === 'ScaleApplication' && before !== undefined) {
        const def = target.get(app)!;
        const current = counted(app, def);
        // The reconciler kills the surplus in kill order (least useful first).
        const surplus = current.slice(0, Math.max(0, current.length - def.instances));
        p.stop = surplus.length;
        for (const i of surplus) release(i, before);
        remaining.set(app, current.slice(surplus.length));
      }
    }
    // 2. launches
    for (const { action, app } of [...step.actions].sort((a, b) => (a.app < b.app ? -1 : 1))) {
      const p = previews.get(app)!;
      const def = target.get(app);
      if (def === undefined || action === 'StopApplication' || action === 'StartApplication') continue;
      const pa = placementApp(def);
      if (action === 'ScaleApplication') {
        const current = remaining.get(app) ?? [];
        const wanted = Math.max(0, def.instances - current.length);
        p.start = wanted;
        const running = current.map(locate);
        const placed = place(pa, wanted, running, capacities, seed++);
        if (placed.length < wanted) {
          p.unplaced = wanted - placed.length;
          p.message = `${p.unplaced} of ${wanted} new instance(s) cannot be placed now`;
          p.reasons = explain(pa, capacities, [...running, ...placed]);
        }
        continue;
      }
      // RestartApplication: a rolling upgrade.
      const before = original.get(app) ?? def;
      const old = counted(app, before);
      p.restart = Math.min(old.length, def.instances);
      p.start = Math.max(0, def.instances - old.length);
      p.stop = Math.max(0, old.length - def.instances);
      const result = simulateRestart(pa, def, before, old, capacities, locate, release, () => seed++);
      if (result.unplaced > 0) {
        p.unplaced = result.unplaced;
        p.message = `the rolling restart can make no progress: ${result.unplaced} of ${def.instances} new instance(s) cannot be placed now (upgradeStrategy minimumHealthCapacity ${def.upgradeStrategy.minimumHealthCapacity}, maximumOverCapacity ${def.upgradeStrategy.maximumOverCapacity}; ${result.oldLeft} old instance(s) still running)`;
        p.reasons = explain(pa, capacities, result.running);
      }
    }
  }

  const apps = [...previews.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  const lockedBy = [...new Set(plan.affectedApps.flatMap((id) => view.runOf(id)?.id ?? []))].sort();
  return {
    fits: apps.every((a) => a.unplaced === 0),
    steps: plan.steps.map((s) => s.actions.map((a) => ({ action: a.action, app: a.app }))),
    apps,
    lockedBy,
  };
}

/**
 * A rolling restart as the reconciler drives it, with instant launches and kills: each round,
 * decideRollingUpgrade says how many old ones to kill (unhealthy first, then in kill order) and
 * how many new ones to launch; kills give their resources back, launches are placed. It ends when
 * every new instance is placed and no old one is left, or when a round does nothing.
 */
function simulateRestart(
  pa: PlacementApp,
  def: AppDefinition,
  before: AppDefinition,
  old: readonly Instance[],
  capacities: Map<string, Capacity>,
  locate: (i: Instance) => Location,
  release: (i: Instance, def: AppDefinition) => void,
  nextSeed: () => number,
): { unplaced: number; oldLeft: number; running: Location[] } {
  const n = def.instances;
  let oldLeft = [...old];
  const placedNew: Location[] = [];
  // Each round kills or places at least one instance, so this many rounds always suffice.
  for (let round = 0; round <= 2 * (n + old.length) + 1; round++) {
    if (placedNew.length >= n && oldLeft.length === 0) break;
    const healthy = oldLeft.filter(isHealthy);
    const unhealthy = oldLeft.filter((i) => !isHealthy(i));
    const d = decideRollingUpgrade({
      instances: n,
      minimumHealthCapacity: def.upgradeStrategy.minimumHealthCapacity,
      maximumOverCapacity: def.upgradeStrategy.maximumOverCapacity,
      oldRunning: oldLeft.length,
      oldHealthy: healthy.length,
      newStarted: 0,
      newReady: placedNew.length,
    });
    const kills = [...unhealthy.slice(0, d.kill - d.killHealthy), ...healthy.slice(0, d.killHealthy)];
    for (const i of kills) release(i, before);
    const killed = new Set(kills.map((i) => i.taskId));
    oldLeft = oldLeft.filter((i) => !killed.has(i.taskId));
    const placed = d.launch > 0 ? place(pa, d.launch, [...oldLeft.map(locate), ...placedNew], capacities, nextSeed()) : [];
    placedNew.push(...placed);
    if (kills.length === 0 && placed.length === 0) break;
  }
  return { unplaced: Math.max(0, n - placedNew.length), oldLeft: oldLeft.length, running: [...oldLeft.map(locate), ...placedNew] };
}

/** planPlacements on one synthetic offer per offered agent; what is placed is taken from the agents. */
function place(pa: PlacementApp, wanted: number, running: readonly Location[], capacities: Map<string, Capacity>, seed: number): Location[] {
  if (wanted <= 0) return [];
  const offers = [...capacities.values()].filter((c) => c.unavailable === undefined).map((c) => ({ id: c.location.agentId, ...c.location, resources: c.left }));
  const placements = planPlacements({ app: pa, wanted, offers, running, seed });
  const out: Location[] = [];
  for (const p of placements) {
    const c = capacities.get(p.agentId)!;
    c.left = c.left.subtract(p.resources);
    out.push(c.location);
  }
  return out;
}

/** Per agent, why one more instance of the app cannot go there, given the instances at `running`. */
function explain(pa: PlacementApp, capacities: Map<string, Capacity>, running: readonly Location[]): AgentReasons[] {
  const tally = new InstanceTally([...new Set(pa.constraints.map((c) => c.fieldName))], running);
  const out: AgentReasons[] = [];
  for (const c of capacities.values()) {
    const reasons = c.unavailable !== undefined ? [c.unavailable] : [...constraintReasons(pa.constraints, c.location, tally), ...fitReasons(pa, c)];
    if (reasons.length > 0) out.push({ agentId: c.location.agentId, hostname: c.location.hostname, reasons });
  }
  return out;
}

/** A constraint as Marathon writes it: `hostname:UNIQUE`, `rack:LIKE:r[12]`. */
function constraintText(c: Constraint): string {
  return [c.fieldName, c.operator, ...(c.value !== undefined ? [c.value] : [])].join(':');
}

function constraintReasons(constraints: readonly Constraint[], at: Location, tally: InstanceTally): string[] {
  const out: string[] = [];
  for (const c of constraints) {
    const pattern = c.operator === 'LIKE' || c.operator === 'UNLIKE' ? wholeValuePattern(c.value) : undefined;
    if (meetsConstraint(c, at, tally, pattern)) continue;
    const value = fieldValue(c.fieldName, at);
    const text = `constraint ${constraintText(c)}`;
    const here = c.fieldName === 'hostname' ? 'on this agent' : `with ${c.fieldName}=${value}`;
    if (value === undefined) {
      out.push(`${text}: the agent has no attribute ${c.fieldName}`);
      continue;
    }
    switch (c.operator) {
      case 'UNIQUE':
        out.push(`${text} already has an instance ${here}`);
        break;
      case 'MAX_PER':
        out.push(`${text} already has ${tally.withValue(c.fieldName, value)} instance(s) ${here}`);
        break;
      case 'GROUP_BY':
        out.push(`${text}: ${c.fieldName}=${value} already has more instances than another group`);
        break;
      case 'CLUSTER':
        out.push(`${text}: the instances run where ${c.fieldName} is ${c.value !== undefined && c.value !== '' ? c.value : (tally.first(c.fieldName) ?? 'another value')}, this agent has ${value}`);
        break;
      case 'LIKE':
        out.push(pattern === undefined ? `${text}: the pattern cannot be used (it does not compile or could take too long)` : `${text}: ${c.fieldName} ${value} does not match`);
        break;
      case 'UNLIKE':
        out.push(pattern === undefined ? `${text}: the pattern cannot be used (it does not compile or could take too long)` : `${text}: ${c.fieldName} ${value} matches`);
        break;
      case 'IS':
        out.push(`${text}: the agent has ${c.fieldName}=${value}`);
        break;
    }
  }
  return out;
}

const SCALARS = ['cpus', 'mem', 'disk'] as const;

function fitReasons(pa: PlacementApp, c: Capacity): string[] {
  const usable = usableResources(c.left, pa.acceptedResourceRoles);
  const roles = pa.acceptedResourceRoles !== undefined ? ` for roles ${[...new Set(pa.acceptedResourceRoles)].join(', ')}` : '';
  const out: string[] = [];
  for (const name of SCALARS) {
    const want = toMillis(pa[name]);
    const have = usable.scalarMillis(name);
    if (have < want) out.push(`${name}: ${fromMillis(have)} free${roles}, ${fromMillis(want)} wanted`);
  }
  const free = usable.ranges('ports');
  const has = (ranges: readonly [number, number][], p: number) => ranges.some(([b, e]) => b <= p && p <= e);
  if (pa.requirePorts !== undefined) {
    const all = usableResources(c.total, pa.acceptedResourceRoles).ranges('ports');
    for (const p of pa.requirePorts) {
      if (has(free, p)) continue;
      out.push(has(all, p) ? `port ${p} in use` : `port ${p} is not offered by this agent (its ports${roles}: ${all.length === 0 ? 'none' : all.map(([b, e]) => (b === e ? `${b}` : `${b}-${e}`)).join(', ')})`);
    }
  } else {
    const count = free.reduce((n, [b, e]) => n + e - b + 1, 0);
    if (count < pa.ports) out.push(`ports: ${count} free${roles}, ${pa.ports} wanted`);
  }
  return out;
}
