import { SlipwayError } from '../../core/errors.ts';
import { Resources } from '../../core/resources.ts';

/**
 * What a framework may read of the master's agents, and how: the operator API's GET_AGENTS
 * (Mesos's `Response.GetAgents.Agent`, JSON; src/master/http/operator-routes.ts answers it). A
 * framework reaches the master only through its APIs, never its code: `slipway up` implements
 * MasterAgents in process from the same function that answers `POST /api/v1`, a framework in its
 * own process uses HttpMasterAgents; both read the answer with readMasterAgents.
 */

/** One agent of GET_AGENTS, read and checked. */
export interface MasterAgent {
  id: string;
  hostname: string;
  /** TEXT and SCALAR attributes as strings (as constraints compare them, offer-attributes.ts). */
  attributes: Record<string, string>;
  /** Registered and reachable (`active`): the master offers only active agents that are not deactivated. */
  active: boolean;
  /** The master's state of the agent: ACTIVE, UNREACHABLE, RECOVERED (Slipway's own field). */
  state: string;
  /** Deactivated by the operator (DEACTIVATE_AGENT or DRAIN_AGENT): no offers until REACTIVATE_AGENT. */
  deactivated: boolean;
  /** DRAINING or DRAINED while a drain runs (DRAIN_AGENT). */
  drain?: string;
  total: Resources;
  /**
   * What is taken for good: `allocated_resources - offered_resources` (allocated counts what tasks
   * use and what is offered right now). Free to place on is `total - used`.
   */
  used: Resources;
}

/**
 * The port through which a framework reads the master's agents. `agents()` rejects with
 * MasterAgentsUnavailable (503) when the master does not answer, refuses, or answers something
 * that is not GET_AGENTS.
 */
export interface MasterAgents {
  agents(): Promise<MasterAgent[]>;
}

/** The master's agents could not be read (no answer, the call was refused, a bad answer): 503, try again. */
export class MasterAgentsUnavailable extends SlipwayError {
  readonly code = 'MASTER_AGENTS_UNAVAILABLE';
  readonly status = 503;
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * Reads `get_agents.agents` of GET_AGENTS. Throws MasterAgentsUnavailable naming the agent and
 * the field when the answer is not what the master answers (a proxy's page, another version).
 */
export function readMasterAgents(agents: unknown): MasterAgent[] {
  if (!Array.isArray(agents)) throw new MasterAgentsUnavailable('the master answered GET_AGENTS without get_agents.agents');
  return agents.map((raw: unknown, i) => {
    const bad = (what: string): never => {
      throw new MasterAgentsUnavailable(`the master's GET_AGENTS answer: agents[${i}]: ${what}`);
    };
    const a = record(raw) ?? bad('not an object');
    const info = record(a['agent_info']) ?? bad('no agent_info');
    const id = record(info['id'])?.['value'];
    if (typeof id !== 'string') bad('no agent_info.id.value');
    const hostname = info['hostname'];
    if (typeof hostname !== 'string') bad('no agent_info.hostname');
    const attributes: Record<string, string> = {};
    for (const attr of Array.isArray(info['attributes']) ? (info['attributes'] as unknown[]) : []) {
      const x = record(attr);
      const name = x?.['name'];
      if (x === undefined || typeof name !== 'string') continue;
      const text = record(x['text'])?.['value'];
      const scalar = record(x['scalar'])?.['value'];
      if (typeof text === 'string') attributes[name] = text;
      else if (typeof scalar === 'number') attributes[name] = String(scalar);
    }
    const resources = (field: string): Resources => {
      try {
        return a[field] === undefined ? Resources.EMPTY : Resources.fromJSON(a[field]);
      } catch (e) {
        return bad(`${field}: ${(e as Error).message}`);
      }
    };
    const total = resources('total_resources');
    const used = resources('allocated_resources').subtract(resources('offered_resources'));
    const drain = record(a['drain_info'])?.['state'];
    return {
      id: id as string,
      hostname: hostname as string,
      attributes,
      active: a['active'] === true,
      state: typeof a['state'] === 'string' ? a['state'] : a['active'] === true ? 'ACTIVE' : 'INACTIVE',
      deactivated: a['deactivated'] === true,
      ...(typeof drain === 'string' ? { drain } : {}),
      total,
      used,
    };
  });
}

/**
 * GET_AGENTS over HTTP (`POST /api/v1`), with the framework's own token: the token it
 * subscribes with. The master's operator API asks `read` on cluster `state` for it, which the
 * built-in `framework` policy does not grant: give the framework's token a policy that does, or
 * its preflights answer 503 naming the refusal.
 */
export class HttpMasterAgents implements MasterAgents {
  constructor(
    private readonly masterUrl: string,
    private readonly token: string | undefined,
    private readonly timeoutMs = 10_000,
  ) {}

  async agents(): Promise<MasterAgent[]> {
    let response: Response;
    let text: string;
    try {
      response = await fetch(new URL('/api/v1', this.masterUrl), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...(this.token !== undefined ? { Authorization: `Bearer ${this.token}` } : {}) },
        body: JSON.stringify({ type: 'GET_AGENTS' }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (e) {
      const why = e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e);
      throw new MasterAgentsUnavailable(`the master at ${this.masterUrl} does not answer GET_AGENTS: ${why}`);
    }
    if (response.status !== 200) throw new MasterAgentsUnavailable(`the master at ${this.masterUrl} refused GET_AGENTS (${response.status}): ${text.slice(0, 500)}`);
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      throw new MasterAgentsUnavailable(`the master at ${this.masterUrl} answered GET_AGENTS with something that is not JSON: ${text.slice(0, 200)}`);
    }
    return readMasterAgents(record(record(answer)?.['get_agents'])?.['agents']);
  }
}
