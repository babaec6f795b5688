import { InvalidCall } from './parse-call.ts';
import type { AgentToMaster } from './agent.ts';

/**
 * Checks the shape of a message from an agent, enough that the master can rely on the fields it
 * reads. Agents are Slipway's own programs, so this guards against version skew and bugs, not
 * against hostile input; resources are checked again by the master when it parses them.
 */
export function parseAgentMessage(json: unknown): AgentToMaster {
  if (typeof json !== 'object' || json === null) throw new InvalidCall('an agent message must be a JSON object');
  const m = json as Record<string, unknown>;
  const isId = (v: unknown) => typeof v === 'object' && v !== null && typeof (v as { value?: unknown }).value === 'string';
  switch (m['type']) {
    case 'REGISTER':
      if (typeof m['hostname'] !== 'string') throw new InvalidCall("REGISTER needs a string 'hostname'");
      if (!Array.isArray(m['resources'])) throw new InvalidCall("REGISTER needs 'resources' (an array of Resource)");
      if (m['agent_id'] !== undefined && !isId(m['agent_id'])) throw new InvalidCall("REGISTER's 'agent_id' must be {value}");
      for (const key of ['attributes', 'tasks', 'frameworks']) if (m[key] === undefined) m[key] = [];
      for (const key of ['attributes', 'tasks', 'frameworks']) if (!Array.isArray(m[key])) throw new InvalidCall(`REGISTER's '${key}' must be an array`);
      (m['tasks'] as unknown[]).forEach((t, i) => {
        const task = t as Record<string, unknown> | null;
        const info = task?.['task'] as Record<string, unknown> | undefined;
        if (task === null || typeof task !== 'object' || !isId(task['framework_id']) || typeof task['state'] !== 'string' || typeof info !== 'object' || info === null || !isId(info['task_id']) || !Array.isArray(info['resources'])) {
          throw new InvalidCall(`REGISTER's tasks[${i}] needs framework_id, state and task {task_id, resources}`);
        }
      });
      (m['frameworks'] as unknown[]).forEach((f, i) => {
        const fw = f as Record<string, unknown> | null;
        if (fw === null || typeof fw !== 'object' || typeof fw['name'] !== 'string' || (fw['id'] !== undefined && !isId(fw['id']))) throw new InvalidCall(`REGISTER's frameworks[${i}] needs a string name and an id {value}`);
      });
      if (m['url'] !== undefined && (typeof m['url'] !== 'string' || !/^https?:\/\/[^\s]+$/.test(m['url']) || !URL.canParse(m['url']))) {
        throw new InvalidCall("REGISTER's 'url' must be an http(s) URL");
      }
      return m as unknown as AgentToMaster;
    case 'HEARTBEAT':
      return { type: 'HEARTBEAT' };
    case 'RESTARTING':
      return { type: 'RESTARTING' };
    case 'STATUS_UPDATE': {
      const status = m['status'] as Record<string, unknown> | undefined;
      if (!isId(m['framework_id'])) throw new InvalidCall("STATUS_UPDATE needs 'framework_id'");
      if (typeof status !== 'object' || status === null || !isId(status['task_id']) || typeof status['state'] !== 'string' || typeof status['uuid'] !== 'string') {
        throw new InvalidCall("STATUS_UPDATE needs 'status' with task_id, state and uuid");
      }
      if (typeof m['latest_state'] !== 'string') throw new InvalidCall("STATUS_UPDATE needs 'latest_state'");
      return m as unknown as AgentToMaster;
    }
    default:
      throw new InvalidCall(`unknown agent message type ${JSON.stringify(m['type'])}`);
  }
}
