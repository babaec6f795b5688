import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { requestUrl } from '../../lib/http-request.ts';
import { AgentUnavailable, InvalidRequest, TaskNotFound } from '../errors.ts';
import type { Master } from '../master.ts';

/**
 * Sandbox files through the master, like Mesos's /files API: the master finds the task's agent
 * and forwards the request to the agent's own /files endpoints, which serve only files inside
 * that task's sandbox.
 *
 *   GET /files/browse?framework_id=F&task_id=T[&path=dir]        list a directory of the sandbox
 *   GET /files/read?framework_id=F&task_id=T&path=stdout[&offset=N][&length=N]
 *                                                                 {data, offset}; offset=-1: {"", size}
 *   GET /files/download?framework_id=F&task_id=T&path=stdout     the whole file
 *   GET /files/follow?framework_id=F&task_id=T&path=stdout[&offset=N]
 *                                                                 the file as it grows, until the task ends
 *
 * An agent whose files server speaks HTTPS (`slipway agent --tls-cert`) is verified against the
 * system's CAs or `agentCa` (`slipway master --agent-ca`): the caller's token goes with the request.
 */
export function filesRoutes(app: FastifyInstance, master: Master, o: { agentCa?: Buffer } = {}): void {
  for (const action of ['browse', 'read', 'download', 'follow']) {
    app.get(`/files/${action}`, async (request, reply) => {
      const query = request.query as Record<string, string | string[] | undefined>;
      for (const [k, v] of Object.entries(query)) if (Array.isArray(v)) throw new InvalidRequest(`parameter '${k}' is given more than once`);
      const frameworkId = query['framework_id'] as string | undefined;
      const taskId = query['task_id'] as string | undefined;
      if (!frameworkId || !taskId) throw new InvalidRequest(`/files/${action} needs the query parameters framework_id and task_id`);
      const task = master.findTask(frameworkId, taskId);
      if (task === undefined) throw new TaskNotFound(`task ${taskId} of framework ${frameworkId} is not known`);
      const agent = master.agentView(task.agentId);
      if (agent?.url === undefined || agent.state !== 'ACTIVE') throw new AgentUnavailable(`agent ${task.agentId} of task ${taskId} is not reachable`);
      const url = new URL(`/files/${action}`, agent.url);
      for (const [k, v] of Object.entries(query)) if (typeof v === 'string') url.searchParams.set(k, v);
      const abort = new AbortController();
      request.raw.on('close', () => abort.abort());
      let response: IncomingMessage;
      try {
        // The caller's credentials go with it: the agent asks the master who they are.
        const authorization = request.headers.authorization;
        response = await requestUrl(url, { signal: abort.signal, ca: o.agentCa, timeoutMs: 30_000, ...(authorization !== undefined ? { headers: { Authorization: authorization } } : {}) });
      } catch (e) {
        throw new AgentUnavailable(`agent ${task.agentId} did not answer: ${(e as Error).message}`);
      }
      reply.code(response.statusCode ?? 502);
      const type = response.headers['content-type'];
      if (type !== undefined) reply.type(type);
      return reply.send(response);
    });
  }
}
