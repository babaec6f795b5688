import type { FastifyInstance } from 'fastify';
import { TASK_STATES, isTerminal } from '../../core/task-state.ts';
import { InvalidRequest } from '../errors.ts';
import { isValidRole, type Master, type Task } from '../master.ts';

/**
 * The operator API: a subset of Mesos's `POST /api/v1` (docs/operator-http-api.md) in its JSON
 * shapes (maintenance: DEACTIVATE_AGENT, REACTIVATE_AGENT, DRAIN_AGENT as docs/maintenance.md
 * describes them; GET_AGENTS shows `deactivated` and `drain_info`), plus `GET /master/state` (a summary like Mesos's /master/state), `GET /health` and
 * `GET /metrics` (Prometheus text).
 */

const nanos = (ms: number) => ({ nanoseconds: Math.round(ms * 1e6) });

function taskJSON(t: Task): Record<string, unknown> {
  return {
    name: t.info.name,
    task_id: t.info.task_id,
    framework_id: { value: t.frameworkId },
    agent_id: { value: t.agentId },
    state: t.state,
    resources: t.info.resources,
    statuses: t.status === undefined ? [] : [t.status],
    ...(t.info.labels !== undefined ? { labels: t.info.labels } : {}),
    ...(t.info.container !== undefined ? { container: t.info.container } : {}),
    ...(t.info.health_check !== undefined ? { health_check: t.info.health_check } : {}),
  };
}

export function operatorState(master: Master, version: string) {
  const frameworks = master.frameworkIds().map((id) => master.frameworkView(id)!);
  const agents = master.agentIds().map((id) => master.agentView(id)!);
  const tasks: Record<string, unknown>[] = [];
  const unreachable: Record<string, unknown>[] = [];
  const completed: Record<string, unknown>[] = [];
  for (const f of frameworks) {
    for (const t of f.tasks) (t.state === 'TASK_UNREACHABLE' ? unreachable : tasks).push(taskJSON(t));
    for (const t of f.completed) completed.push(taskJSON(t));
  }
  return {
    get_version: { version_info: { version } },
    get_frameworks: {
      frameworks: frameworks.map((f) => ({
        framework_info: f.info,
        active: f.connected,
        connected: f.connected,
        recovered: false,
        registered_time: nanos(f.registeredAt),
        offers: f.offers,
      })),
      completed_frameworks: [],
    },
    get_agents: {
      agents: agents.map((a) => ({
        agent_info: { id: { value: a.id }, hostname: a.hostname, resources: a.total.toJSON(), attributes: a.attributes },
        active: a.state === 'ACTIVE',
        state: a.state,
        deactivated: a.deactivated,
        ...(a.drain !== undefined
          ? { drain_info: { state: a.drain.state, config: { mark_gone: a.drain.markGone, ...(a.drain.maxGracePeriodMs !== undefined ? { max_grace_period: nanos(a.drain.maxGracePeriodMs) } : {}) } } }
          : {}),
        // Slipway's own (Mesos has no such field): a restart the agent announced, and while it is
        // away, until when the master waits for it before its tasks are reported unreachable.
        ...(a.restart !== undefined ? { planned_restart: { announced_time: nanos(a.restart.announcedAt), ...(a.restart.backBy !== undefined ? { back_by_time: nanos(a.restart.backBy) } : {}) } } : {}),
        url: a.url,
        containerizers: a.containerizers,
        registered_time: nanos(a.registeredAt),
        total_resources: a.total.toJSON(),
        allocated_resources: a.used.add(a.offered).toJSON(),
        offered_resources: a.offered.toJSON(),
      })),
      recovered_agents: [],
    },
    get_tasks: { pending_tasks: [], tasks, unreachable_tasks: unreachable, completed_tasks: completed },
    get_executors: { executors: [], orphan_executors: [] },
  };
}

/** The agent id of an agent call (`{"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": "..."}}}`). */
function agentIdOf(body: object, field: string): string {
  const payload = (body as Record<string, unknown>)[field];
  const id = typeof payload === 'object' && payload !== null ? (payload as { agent_id?: { value?: unknown } }).agent_id?.value : undefined;
  if (typeof id !== 'string' || id === '') throw new InvalidRequest(`${field.toUpperCase()} needs '${field}.agent_id': {"value": "<agent id>"}`);
  return id;
}

export function operatorRoutes(app: FastifyInstance, master: Master, version: string): void {
  app.post('/api/v1', async (request) => {
    const body = request.body as { type?: unknown; update_weights?: { weight_infos?: unknown } } | null;
    if (typeof body !== 'object' || body === null || typeof body.type !== 'string') throw new InvalidRequest("an operator call is a JSON object with a string 'type'");
    const state = () => operatorState(master, version);
    switch (body.type) {
      case 'GET_HEALTH':
        return { type: 'GET_HEALTH', get_health: { healthy: master.health().healthy } };
      case 'GET_VERSION':
        return { type: 'GET_VERSION', get_version: { version_info: { version } } };
      case 'GET_STATE': {
        const s = state();
        return { type: 'GET_STATE', get_state: { get_tasks: s.get_tasks, get_executors: s.get_executors, get_frameworks: s.get_frameworks, get_agents: s.get_agents } };
      }
      case 'GET_AGENTS':
        return { type: 'GET_AGENTS', get_agents: state().get_agents };
      case 'GET_FRAMEWORKS':
        return { type: 'GET_FRAMEWORKS', get_frameworks: state().get_frameworks };
      case 'GET_TASKS':
        return { type: 'GET_TASKS', get_tasks: state().get_tasks };
      case 'GET_ROLES':
        return {
          type: 'GET_ROLES',
          get_roles: {
            roles: master.roles().map((r) => ({
              name: r.name,
              weight: r.weight,
              frameworks: r.frameworks.map((value) => ({ value })),
              resources: Object.entries(r.allocated).map(([name, value]) => ({ name, type: 'SCALAR', scalar: { value } })),
              quota: { role: r.name, limit: r.limits },
              share: r.share,
            })),
          },
        };
      case 'GET_WEIGHTS':
        return { type: 'GET_WEIGHTS', get_weights: { weight_infos: master.roles().map((r) => ({ role: r.name, weight: r.weight })) } };
      case 'UPDATE_WEIGHTS': {
        const infos = body.update_weights?.weight_infos;
        if (!Array.isArray(infos) || infos.length === 0) throw new InvalidRequest("UPDATE_WEIGHTS needs 'update_weights.weight_infos': [{role, weight}, ...]");
        // Check all before changing any, so that a bad entry changes nothing.
        for (const [i, w] of infos.entries()) {
          const info = (typeof w === 'object' && w !== null ? w : {}) as { role?: unknown; weight?: unknown };
          if (typeof info.role !== 'string' || typeof info.weight !== 'number') throw new InvalidRequest(`update_weights.weight_infos[${i}] needs a string 'role' and a number 'weight'`);
          if (!(info.weight > 0) || !Number.isFinite(info.weight)) throw new InvalidRequest(`update_weights.weight_infos[${i}].weight must be > 0, got ${info.weight}`);
          if (!isValidRole(info.role)) throw new InvalidRequest(`update_weights.weight_infos[${i}].role '${info.role}' is not a valid role`);
        }
        for (const w of infos as { role: string; weight: number }[]) master.setWeight(w.role, w.weight);
        return {};
      }
      case 'DEACTIVATE_AGENT':
        master.deactivateAgent(agentIdOf(body, 'deactivate_agent'));
        return {};
      case 'REACTIVATE_AGENT':
        master.reactivateAgent(agentIdOf(body, 'reactivate_agent'));
        return {};
      case 'DRAIN_AGENT': {
        const id = agentIdOf(body, 'drain_agent');
        const drain = (body as Record<string, Record<string, unknown>>)['drain_agent']!;
        const max = drain['max_grace_period'];
        const markGone = drain['mark_gone'];
        if (markGone !== undefined && typeof markGone !== 'boolean') throw new InvalidRequest("drain_agent.mark_gone must be true or false");
        let maxGracePeriodMs: number | undefined;
        if (max !== undefined) {
          const ns = typeof max === 'object' && max !== null ? (max as { nanoseconds?: unknown }).nanoseconds : undefined;
          if (typeof ns !== 'number' || !Number.isFinite(ns) || ns < 0) throw new InvalidRequest('drain_agent.max_grace_period must be a DurationInfo {"nanoseconds": <integer >= 0>}');
          maxGracePeriodMs = ns / 1e6;
        }
        master.drainAgent(id, { ...(maxGracePeriodMs !== undefined ? { maxGracePeriodMs } : {}), ...(markGone !== undefined ? { markGone } : {}) });
        return {};
      }
      default:
        throw new InvalidRequest(
          `operator call type '${body.type}' is not supported; supported: GET_HEALTH, GET_VERSION, GET_STATE, GET_AGENTS, GET_FRAMEWORKS, GET_TASKS, GET_ROLES, GET_WEIGHTS, UPDATE_WEIGHTS, DEACTIVATE_AGENT, REACTIVATE_AGENT, DRAIN_AGENT`,
        );
    }
  });

  app.get('/master/state', async () => {
    const s = operatorState(master, version);
    return {
      version,
      id: master.id,
      activated_slaves: s.get_agents.agents.filter((a) => a.active).length,
      unreachable_slaves: s.get_agents.agents.filter((a) => a.state === 'UNREACHABLE').length,
      frameworks: s.get_frameworks.frameworks,
      slaves: s.get_agents.agents,
      tasks: s.get_tasks.tasks,
      unreachable_tasks: s.get_tasks.unreachable_tasks,
      completed_tasks: s.get_tasks.completed_tasks,
      roles: master.roles(),
    };
  });

  // 503 with the reason while the master cannot work (its store refuses writes): load balancers
  // and supervisors see it, as they would a dead process.
  app.get('/health', async (_request, reply) => {
    const h = master.health();
    return h.healthy ? reply.type('text/plain').send('OK') : reply.code(503).type('text/plain').send(`UNHEALTHY: ${h.reason}`);
  });

  app.get('/metrics', async (_request, reply) => {
    const agents = master.agentIds().map((id) => master.agentView(id)!);
    const frameworks = master.frameworkIds().map((id) => master.frameworkView(id)!);
    const byState = new Map<string, number>(TASK_STATES.map((s) => [s, 0]));
    for (const f of frameworks) {
      for (const t of f.tasks) byState.set(t.state, (byState.get(t.state) ?? 0) + 1);
      for (const t of f.completed) if (isTerminal(t.state)) byState.set(t.state, (byState.get(t.state) ?? 0) + 1);
    }
    const lines = [
      '# HELP slipway_agents Agents known to the master, by state.',
      '# TYPE slipway_agents gauge',
      ...['ACTIVE', 'UNREACHABLE', 'RECOVERED'].map((st) => `slipway_agents{state="${st}"} ${agents.filter((a) => a.state === st).length}`),
      '# HELP slipway_frameworks Frameworks known to the master.',
      '# TYPE slipway_frameworks gauge',
      `slipway_frameworks{connected="true"} ${frameworks.filter((f) => f.connected).length}`,
      `slipway_frameworks{connected="false"} ${frameworks.filter((f) => !f.connected).length}`,
      '# HELP slipway_offers_outstanding Offers made and not yet answered.',
      '# TYPE slipway_offers_outstanding gauge',
      `slipway_offers_outstanding ${master.offerCount()}`,
      '# HELP slipway_tasks Tasks by state (terminal states: the completed tasks kept in memory).',
      '# TYPE slipway_tasks gauge',
      ...[...byState].map(([st, n]) => `slipway_tasks{state="${st}"} ${n}`),
      '# HELP slipway_allocation_run_seconds Duration of allocation passes.',
      '# TYPE slipway_allocation_run_seconds summary',
      `slipway_allocation_run_seconds_count ${master.allocationStats.runs}`,
      `slipway_allocation_run_seconds_sum ${(master.allocationStats.totalMs / 1000).toFixed(6)}`,
      '# HELP slipway_allocation_last_run_seconds Duration of the last allocation pass.',
      '# TYPE slipway_allocation_last_run_seconds gauge',
      `slipway_allocation_last_run_seconds ${(master.allocationStats.lastMs / 1000).toFixed(6)}`,
    ];
    return reply.type('text/plain; version=0.0.4').send(lines.join('\n') + '\n');
  });
}
