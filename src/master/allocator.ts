import type { Resources } from '../core/resources.ts';
import { Random } from '../core/random.ts';

/**
 * The allocator decides how much each framework is offered: weighted Dominant Resource Fairness
 * over roles, then DRF among the frameworks of a role (Mesos's hierarchical allocator).
 *
 * It keeps its own view of what is allocated (offered or used by tasks) on every agent and to
 * every framework and role. The master tells it when resources come back (`recover`) and asks it
 * for allocations (`allocate`), which it returns as a plan the master turns into offers. It does
 * no I/O and keeps no timers: time comes in as `now` arguments.
 *
 * One allocation pass, for each agent (in a seeded random order, as Mesos shuffles agents):
 *   1. order the roles that want offers by weighted dominant share (share / weight), lowest first;
 *   2. for each role, what the agent has free for it (unreserved + reserved for it), capped by
 *      the role's quota limit, goes to the lowest-share framework of the role that wants offers
 *      and has no filter covering those resources on that agent;
 *   3. what is left (other roles' reservations) goes on to the next roles.
 * Offers smaller than the minimum allocatable (0.01 cpus or 32 mem, Mesos's default) are not made.
 */

export interface Allocation {
  frameworkId: string;
  agentId: string;
  role: string;
  resources: Resources;
  /**
   * Empty; the master writes the offer's id here and keeps the allocation as its offer record.
   * Made with the object so that naming it does not change the object's shape (50,000 offers a pass).
   */
  id: string;
}

interface AgentView {
  id: string;
  total: Resources;
  /** Not offered and not used by tasks. */
  free: Resources;
  /** False while the agent's stream is down: it keeps its books but gets no offers. */
  active: boolean;
}

interface Filter {
  resources: Resources;
  expiresAt: number;
}

interface FrameworkView {
  id: string;
  roles: Set<string>;
  active: boolean;
  suppressed: Set<string>;
  /** agent id -> refused resources with their expiry. */
  filters: Map<string, Filter[]>;
  /** role -> thousandths allocated to this framework in that role, by scalar index. */
  allocated: Map<string, number[]>;
}

interface RoleView {
  name: string;
  weight: number;
  /** Thousandths allocated to the role, by scalar index (see `Allocator.scalarIndex`). */
  allocated: number[];
  /** scalar name -> thousandths the role may hold at most. */
  limits: Map<string, number>;
  frameworks: Set<string>;
}

export interface AllocatorOptions {
  /** Seed of the agent shuffle, so that a run can be replayed. */
  seed?: number;
  /** Minimum allocatable resources: an offer must hold at least one of these sets. Mesos's default. */
  minAllocatable?: Record<string, number>[];
}

export interface RoleInfo {
  name: string;
  weight: number;
  /** Allocated scalars (offered or used), as numbers. */
  allocated: Record<string, number>;
  /** Quota limits, as numbers. */
  limits: Record<string, number>;
  frameworks: string[];
  /** Dominant share of the cluster's scalars, not divided by the weight. */
  share: number;
}

export class Allocator {
  private readonly agents = new Map<string, AgentView>();
  private readonly frameworks = new Map<string, FrameworkView>();
  private readonly roles = new Map<string, RoleView>();
  private readonly weights = new Map<string, number>();
  private readonly quotas = new Map<string, Map<string, number>>();
  /**
   * Scalar names get small indexes so that shares are sums over short arrays, not Map walks: the
   * allocation pass computes a few shares per agent and must stay in microseconds.
   */
  private readonly scalarIndex = new Map<string, number>();
  private readonly scalarNames: string[] = [];
  /** Totals of the agents in thousandths, by scalar index: the denominators of every share. */
  private readonly clusterTotal: number[] = [];
  private readonly random: Random;
  private readonly minAllocatable: [string, number][][];

  constructor(options: AllocatorOptions = {}) {
    this.random = new Random(options.seed ?? 1);
    const min = options.minAllocatable ?? [{ cpus: 0.01 }, { mem: 32 }];
    this.minAllocatable = min.map((set) => Object.entries(set).map(([k, v]) => [k, Math.round(v * 1000)] as [string, number]));
  }

  // ---------------------------------------------------------------------------------------------
  // Agents

  /** Adds an agent with `used` resources already held (by tasks it reports). */
  addAgent(id: string, total: Resources, used: readonly Allocation[] = []): void {
    if (this.agents.has(id)) throw new Error(`allocator: agent ${id} added twice`);
    let free = total;
    for (const u of used) {
      free = free.subtract(u.resources);
      this.track(u.frameworkId, u.role, u.resources, +1);
    }
    this.agents.set(id, { id, total, free, active: true });
    this.addTotal(total, +1);
  }

  /**
   * Removes an agent (lost or gone). What was allocated on it must have been recovered first, so
   * that it leaves the shares too.
   */
  removeAgent(id: string): void {
    const agent = this.agents.get(id);
    if (agent === undefined) return;
    this.addTotal(agent.total, -1);
    this.agents.delete(id);
    for (const fw of this.frameworks.values()) fw.filters.delete(id);
  }

  /** An agent whose stream is down is not offered until it is back (Mesos's deactivateSlave). */
  setAgentActive(id: string, active: boolean): void {
    const agent = this.agents.get(id);
    if (agent !== undefined) agent.active = active;
  }

  // ---------------------------------------------------------------------------------------------
  // Frameworks

  addFramework(id: string, roles: readonly string[], suppressedRoles: readonly string[] = []): void {
    if (this.frameworks.has(id)) throw new Error(`allocator: framework ${id} added twice`);
    const fw: FrameworkView = { id, roles: new Set(roles), active: true, suppressed: new Set(suppressedRoles), filters: new Map(), allocated: new Map() };
    this.frameworks.set(id, fw);
    for (const r of roles) this.role(r).frameworks.add(id);
  }

  /** Removes a framework; its allocations must have been recovered first. */
  removeFramework(id: string): void {
    const fw = this.frameworks.get(id);
    if (fw === undefined) return;
    for (const r of fw.roles) {
      const role = this.roles.get(r);
      role?.frameworks.delete(id);
    }
    // Anything still allocated to it leaves the role's share too.
    for (const [r, vec] of fw.allocated) {
      const role = this.roles.get(r);
      if (role === undefined) continue;
      for (let i = 0; i < vec.length; i++) role.allocated[i] = (role.allocated[i] ?? 0) - vec[i]!;
    }
    this.frameworks.delete(id);
  }

  /** Changes the roles of a framework (on resubscription); allocations stay with the roles they were made in. */
  setFrameworkRoles(id: string, roles: readonly string[]): void {
    const fw = this.frameworks.get(id);
    if (fw === undefined) return;
    for (const r of fw.roles) this.roles.get(r)?.frameworks.delete(id);
    fw.roles = new Set(roles);
    for (const r of roles) this.role(r).frameworks.add(id);
  }

  /** An inactive (disconnected) framework gets no offers but keeps its allocations. */
  setFrameworkActive(id: string, active: boolean): void {
    const fw = this.frameworks.get(id);
    if (fw !== undefined) fw.active = active;
  }

  /** Stops offers to the framework for `roles` (all of its roles when undefined). */
  suppress(id: string, roles?: readonly string[]): void {
    const fw = this.frameworks.get(id);
    if (fw === undefined) return;
    for (const r of roles ?? fw.roles) fw.suppressed.add(r);
  }

  /** Resumes offers for `roles` (all when undefined) and clears the framework's filters. */
  revive(id: string, roles?: readonly string[]): void {
    const fw = this.frameworks.get(id);
    if (fw === undefined) return;
    for (const r of roles ?? [...fw.suppressed]) fw.suppressed.delete(r);
    // Filters are per agent, not per role; a revive of any role clears them (as Mesos 1.x's
    // single-role frameworks see it).
    fw.filters.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // Roles: weights and quota

  setWeight(role: string, weight: number): void {
    if (!(weight > 0) || !Number.isFinite(weight)) throw new Error(`allocator: weight must be a positive number, got ${weight}`);
    this.weights.set(role, weight);
    const view = this.roles.get(role);
    if (view !== undefined) view.weight = weight;
  }

  weight(role: string): number {
    return this.weights.get(role) ?? 1;
  }

  /** Sets the quota limit of a role (scalars only); an empty record removes it. */
  setQuota(role: string, limits: Record<string, number>): void {
    const map = new Map(Object.entries(limits).map(([k, v]) => [k, Math.round(v * 1000)] as [string, number]));
    if (map.size === 0) this.quotas.delete(role);
    else this.quotas.set(role, map);
    const view = this.roles.get(role);
    if (view !== undefined) view.limits = map;
  }

  // ---------------------------------------------------------------------------------------------
  // Allocation

  /**
   * Resources allocated to a framework (an offer declined or rescinded, the unused part of an
   * accepted offer, a finished task) come back to the agent. With `refuseSeconds`, the framework
   * is not offered these resources (or less) on that agent again until the filter expires.
   */
  recover(frameworkId: string, agentId: string, role: string, resources: Resources, now: number, refuseSeconds?: number): void {
    if (resources.isEmpty()) return;
    const agent = this.agents.get(agentId);
    if (agent !== undefined) agent.free = agent.free.add(resources);
    this.track(frameworkId, role, resources, -1);
    if (refuseSeconds !== undefined && refuseSeconds > 0 && agent !== undefined) {
      const fw = this.frameworks.get(frameworkId);
      if (fw === undefined) return;
      const list = fw.filters.get(agentId) ?? [];
      list.push({ resources, expiresAt: now + refuseSeconds * 1000 });
      fw.filters.set(agentId, list);
    }
  }

  /**
   * Marks resources as used by a framework outside of an offer (tasks an agent reports on
   * reregistration). They must be free on the agent.
   */
  claim(frameworkId: string, agentId: string, role: string, resources: Resources): void {
    const agent = this.agents.get(agentId);
    if (agent === undefined) return;
    agent.free = agent.free.subtract(resources);
    this.track(frameworkId, role, resources, +1);
  }

  /**
   * One allocation pass over `agentIds` (all agents when undefined), in a seeded random order.
   * Returns the allocations made; they are already counted as allocated. `inOrder`: the ids come
   * shuffled already (`shuffle`), as when a pass is split into slices, and are taken as they are.
   */
  allocate(now: number, agentIds?: Iterable<string>, inOrder = false): Allocation[] {
    const out: Allocation[] = [];
    const candidates = this.candidateRoles();
    if (candidates.length === 0) return out;
    const ids = agentIds === undefined ? [...this.agents.keys()] : inOrder && Array.isArray(agentIds) ? (agentIds as string[]) : [...agentIds];
    if (!inOrder) this.random.shuffle(ids);
    const order = candidates.slice();
    const keys = new Float64Array(order.length);
    for (const agentId of ids) {
      const agent = this.agents.get(agentId);
      if (agent === undefined || !agent.active || agent.free.isEmpty()) continue;
      this.sortRoles(order, keys);
      for (const role of order) {
        let offerable = agent.free.allocatableTo(role.name);
        if (offerable.isEmpty()) continue;
        if (role.limits.size > 0) offerable = offerable.capScalars((name) => this.headroom(role, name));
        if (!this.isAllocatable(offerable)) continue;
        const fw = this.pickFramework(role, agentId, offerable, now);
        if (fw === undefined) continue;
        agent.free = agent.free.subtract(offerable);
        this.track(fw.id, role.name, offerable, +1);
        // `id: ''`: the master names the offer in this same object (see Allocation.id).
        out.push({ frameworkId: fw.id, agentId, role: role.name, resources: offerable, id: '' });
        if (agent.free.isEmpty()) break;
      }
    }
    return out;
  }

  /**
   * Whether any role has a framework that wants offers (active, not suppressed). Without one, a
   * pass would offer nothing; whatever makes one want offers asks for a pass over every agent.
   */
  wantsOffers(): boolean {
    return this.candidateRoles().length > 0;
  }

  /** Shuffles agent ids in place with the allocator's seeded random (Mesos shuffles agents per pass). */
  shuffle(ids: string[]): string[] {
    this.random.shuffle(ids);
    return ids;
  }

  /** Ids of every agent the allocator knows. */
  agentIds(): string[] {
    return [...this.agents.keys()];
  }

  // ---------------------------------------------------------------------------------------------
  // Views (operator API, tests, benchmark)

  /** Dominant share of `role` over all agents (not divided by its weight). */
  roleShare(role: string): number {
    const view = this.roles.get(role);
    return view === undefined ? 0 : this.share(view.allocated);
  }

  /** Dominant share of a framework in one of its roles. */
  frameworkShare(frameworkId: string, role: string): number {
    const vec = this.frameworks.get(frameworkId)?.allocated.get(role);
    return vec === undefined ? 0 : this.share(vec);
  }

  roleInfos(): RoleInfo[] {
    const names = new Set<string>([...this.roles.keys(), ...this.weights.keys(), ...this.quotas.keys()]);
    return [...names].sort().map((name) => {
      const view = this.roles.get(name);
      const allocated: Record<string, number> = {};
      (view?.allocated ?? []).forEach((v, i) => {
        if (v !== 0) allocated[this.scalarNames[i]!] = v / 1000;
      });
      return {
        name,
        weight: this.weight(name),
        allocated,
        limits: Object.fromEntries([...(this.quotas.get(name) ?? [])].map(([k, v]) => [k, v / 1000])),
        frameworks: [...(view?.frameworks ?? [])],
        share: this.roleShare(name),
      };
    });
  }

  /** What the allocator considers free on an agent (for tests and state). */
  free(agentId: string): Resources | undefined {
    return this.agents.get(agentId)?.free;
  }

  // ---------------------------------------------------------------------------------------------

  private role(name: string): RoleView {
    let view = this.roles.get(name);
    if (view === undefined) {
      view = { name, weight: this.weight(name), allocated: [], limits: this.quotas.get(name) ?? new Map(), frameworks: new Set() };
      this.roles.set(name, view);
    }
    return view;
  }

  private track(frameworkId: string, roleName: string, resources: Resources, sign: 1 | -1): void {
    const role = this.role(roleName);
    const fw = this.frameworks.get(frameworkId);
    let fwAlloc: number[] | undefined;
    if (fw !== undefined) {
      fwAlloc = fw.allocated.get(roleName);
      if (fwAlloc === undefined) {
        fwAlloc = [];
        fw.allocated.set(roleName, fwAlloc);
      }
    }
    resources.forEachScalar((name, millis) => {
      const i = this.indexOf(name);
      role.allocated[i] = (role.allocated[i] ?? 0) + sign * millis;
      if (fwAlloc !== undefined) fwAlloc[i] = (fwAlloc[i] ?? 0) + sign * millis;
    });
  }

  private indexOf(name: string): number {
    let i = this.scalarIndex.get(name);
    if (i === undefined) {
      i = this.scalarNames.length;
      this.scalarIndex.set(name, i);
      this.scalarNames.push(name);
      this.clusterTotal.push(0);
    }
    return i;
  }

  private addTotal(resources: Resources, sign: 1 | -1): void {
    resources.forEachScalar((name, millis) => {
      const i = this.indexOf(name);
      this.clusterTotal[i] = this.clusterTotal[i]! + sign * millis;
    });
  }

  /** Dominant share: the largest fraction of any scalar of the cluster that `allocated` holds. */
  private share(allocated: readonly number[]): number {
    let max = 0;
    const total = this.clusterTotal;
    for (let i = 0; i < allocated.length; i++) {
      const t = total[i]!;
      const a = allocated[i]!;
      if (t > 0 && a > 0 && a / t > max) max = a / t;
    }
    return max;
  }

  /** How many more thousandths of `name` a role may take under its quota. */
  private headroom(role: RoleView, name: string): number | undefined {
    const limit = role.limits.get(name);
    if (limit === undefined) return undefined;
    const i = this.scalarIndex.get(name);
    return Math.max(0, limit - (i === undefined ? 0 : (role.allocated[i] ?? 0)));
  }

  private isAllocatable(r: Resources): boolean {
    for (const set of this.minAllocatable) {
      let ok = true;
      for (const [name, millis] of set) if (r.scalarMillis(name) < millis) ok = false;
      if (ok) return true;
    }
    return false;
  }

  /** Roles with at least one active framework that has not suppressed offers for them. */
  private candidateRoles(): RoleView[] {
    const out: RoleView[] = [];
    for (const role of this.roles.values()) {
      for (const id of role.frameworks) {
        const fw = this.frameworks.get(id);
        if (fw !== undefined && fw.active && !fw.suppressed.has(role.name)) {
          out.push(role);
          break;
        }
      }
    }
    return out;
  }

  /** Sorts roles by weighted dominant share, then name (insertion sort: there are few roles). */
  private sortRoles(order: RoleView[], keys: Float64Array): void {
    for (let i = 0; i < order.length; i++) keys[i] = this.share(order[i]!.allocated) / order[i]!.weight;
    for (let i = 1; i < order.length; i++) {
      const r = order[i]!;
      const k = keys[i]!;
      let j = i - 1;
      while (j >= 0 && (keys[j]! > k || (keys[j] === k && order[j]!.name > r.name))) {
        order[j + 1] = order[j]!;
        keys[j + 1] = keys[j]!;
        j--;
      }
      order[j + 1] = r;
      keys[j + 1] = k;
    }
  }

  /** The framework of `role` with the lowest share in it that may be offered `resources` on the agent. */
  private pickFramework(role: RoleView, agentId: string, resources: Resources, now: number): FrameworkView | undefined {
    let best: FrameworkView | undefined;
    let bestShare = Infinity;
    for (const id of role.frameworks) {
      const fw = this.frameworks.get(id);
      if (fw === undefined || !fw.active || fw.suppressed.has(role.name)) continue;
      if (this.filtered(fw, agentId, resources, now)) continue;
      const vec = fw.allocated.get(role.name);
      const s = vec === undefined ? 0 : this.share(vec);
      if (s < bestShare || (s === bestShare && best !== undefined && fw.id < best.id)) {
        best = fw;
        bestShare = s;
      }
    }
    return best;
  }

  private filtered(fw: FrameworkView, agentId: string, resources: Resources, now: number): boolean {
    const list = fw.filters.get(agentId);
    if (list === undefined) return false;
    let hit = false;
    let expired = 0;
    for (const f of list) {
      if (f.expiresAt <= now) expired++;
      else if (f.resources.contains(resources)) hit = true;
    }
    if (expired > 0) {
      const live = list.filter((f) => f.expiresAt > now);
      if (live.length === 0) fw.filters.delete(agentId);
      else fw.filters.set(agentId, live);
    }
    return hit;
  }
}

