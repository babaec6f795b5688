import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { HttpMasterAgents, MasterAgentsUnavailable } from './master-agents.ts';

async function serve(status: number, body: string): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { url: `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`, server };
}

const unavailable = (pattern: RegExp) => (e: unknown) => e instanceof MasterAgentsUnavailable && e.status === 503 && pattern.test(e.message);

describe('HttpMasterAgents', () => {
  it('reads the agents of a GET_AGENTS answer', async () => {
    const { url, server } = await serve(200, JSON.stringify({ type: 'GET_AGENTS', get_agents: { agents: [{ agent_info: { id: { value: 'a1' }, hostname: 'h1' }, active: true }] } }));
    try {
      const agents = await new HttpMasterAgents(url, 't').agents();
      assert.deepEqual(agents.map((a) => [a.id, a.hostname, a.active, a.state]), [['a1', 'h1', true, 'ACTIVE']]);
    } finally {
      server.close();
    }
  });

  it('answers 503 naming the master when it does not answer, refuses, or answers no JSON', async () => {
    const gone = await serve(200, '{}');
    gone.server.close();
    await assert.rejects(new HttpMasterAgents(gone.url, undefined, 2_000).agents(), unavailable(/does not answer GET_AGENTS/));
    const refused = await serve(403, '{"message":"no read on cluster state"}');
    const notJson = await serve(200, '<html>');
    try {
      await assert.rejects(new HttpMasterAgents(refused.url, 't').agents(), unavailable(/refused GET_AGENTS \(403\): .*no read on cluster state/));
      await assert.rejects(new HttpMasterAgents(notJson.url, 't').agents(), unavailable(/not JSON/));
    } finally {
      refused.server.close();
      notJson.server.close();
    }
  });
});
