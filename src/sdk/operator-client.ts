import { SlipwayError } from '../core/errors.ts';
import { authHeaders, defaultToken } from './credentials.ts';

/**
 * The master refused an operator call (unknown agent, bad input) or could not be reached.
 * `answerStatus` is the master's HTTP status (0: no answer). HTTP 502 where it is relayed: the
 * fault is upstream of whoever made the call.
 */
export class OperatorCallRefused extends SlipwayError {
  readonly code = 'OPERATOR_CALL_REFUSED';
  readonly status = 502;

  constructor(
    message: string,
    readonly answerStatus = 0,
  ) {
    super(message);
  }
}

/** An agent as GET_AGENTS shows it (the fields the clients read). */
export interface OperatorAgent {
  agent_info: { id: { value: string }; hostname: string };
  active: boolean;
  state?: string;
  deactivated?: boolean;
  drain_info?: { state: 'DRAINING' | 'DRAINED'; config: { mark_gone?: boolean; max_grace_period?: { nanoseconds: number } } };
  planned_restart?: { announced_time: { nanoseconds: number }; back_by_time?: { nanoseconds: number } };
  url?: string;
}

/**
 * A client of the master's operator API (`POST /api/v1`, Mesos's JSON shapes), for the CLI and
 * tools: the agents and their maintenance (deactivate, drain, reactivate). Every method answers
 * once the master answered 200, and throws OperatorCallRefused with its message otherwise.
 */
export class OperatorClient {
  constructor(
    readonly masterUrl: string,
    private readonly token: string | undefined = defaultToken(),
  ) {}

  async call<T = Record<string, unknown>>(type: string, payload: Record<string, unknown> = {}): Promise<T> {
    let response: Response;
    try {
      response = await fetch(new URL('/api/v1', this.masterUrl), { method: 'POST', headers: { 'Content-Type': 'application/json', ...authHeaders(this.token) }, body: JSON.stringify({ type, ...payload }) });
    } catch (e) {
      throw new OperatorCallRefused(`the master at ${this.masterUrl} does not answer: ${e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)}`);
    }
    const text = await response.text();
    if (response.status !== 200) throw new OperatorCallRefused(`${type}: the master answered ${response.status}: ${text}`, response.status);
    return (text === '' ? {} : JSON.parse(text)) as T;
  }

  async agents(): Promise<OperatorAgent[]> {
    const answer = await this.call<{ get_agents: { agents: OperatorAgent[] } }>('GET_AGENTS');
    return answer.get_agents.agents;
  }

  /** The agent named by its id or, when no id matches, by its hostname (which must be unique). */
  async findAgent(name: string): Promise<OperatorAgent> {
    const agents = await this.agents();
    const byId = agents.find((a) => a.agent_info.id.value === name);
    if (byId !== undefined) return byId;
    const byHost = agents.filter((a) => a.agent_info.hostname === name);
    if (byHost.length === 1) return byHost[0]!;
    if (byHost.length > 1) throw new OperatorCallRefused(`${byHost.length} agents have the hostname ${name} (${byHost.map((a) => a.agent_info.id.value).join(', ')}): name one by its id`, 404);
    throw new OperatorCallRefused(`no agent has the id or hostname ${name}`, 404);
  }

  /** DEACTIVATE_AGENT: no more offers of the agent; its tasks run on. */
  async deactivate(agentId: string): Promise<void> {
    await this.call('DEACTIVATE_AGENT', { deactivate_agent: { agent_id: { value: agentId } } });
  }

  /** REACTIVATE_AGENT: ends a deactivation or a drain. */
  async reactivate(agentId: string): Promise<void> {
    await this.call('REACTIVATE_AGENT', { reactivate_agent: { agent_id: { value: agentId } } });
  }

  /** DRAIN_AGENT: deactivates the agent and kills its tasks so that their frameworks move them. */
  async drain(agentId: string, options: { maxGracePeriodSeconds?: number; markGone?: boolean } = {}): Promise<void> {
    await this.call('DRAIN_AGENT', {
      drain_agent: {
        agent_id: { value: agentId },
        ...(options.maxGracePeriodSeconds !== undefined ? { max_grace_period: { nanoseconds: Math.round(options.maxGracePeriodSeconds * 1e9) } } : {}),
        ...(options.markGone === true ? { mark_gone: true } : {}),
      },
    });
  }
}
