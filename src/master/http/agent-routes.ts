import type { FastifyInstance, FastifyRequest } from 'fastify';
import { identityOf } from '../../auth/http-gate.ts';
import { AgentCredentialMismatch } from '../errors.ts';
import type {} from '@fastify/websocket';
import type { WebSocket } from 'ws';
import { SlipwayError } from '../../core/errors.ts';
import { websocketOnly } from '../../core/websocket-only.ts';
import type { AgentToMaster } from '../../protocol/agent.ts';
import { parseAgentMessage } from '../../protocol/parse-agent-message.ts';
import type { AgentConnection, Master } from '../master.ts';
import { parseJsonText } from '../../lib/json-depth.ts';

/**
 * `GET /api/v1/agent` (WebSocket): an agent's one long-lived stream. The agent's first message is
 * REGISTER; the master answers REGISTERED, then both sides send JSON messages of
 * src/protocol/agent.ts. A bad message gets an ERROR message and the stream is closed; when the
 * stream drops, the master gives the agent its grace period to come back.
 */
export function agentRoutes(app: FastifyInstance, master: Master, log: (line: string) => void = () => undefined): void {
  app.get('/api/v1/agent', { websocket: true, onRequest: websocketOnly('GET /api/v1/agent (the agents\' stream)') }, (socket: WebSocket, request: FastifyRequest) => {
    // The gate let the stream open for a token that may register agents; its id binds the agent id.
    const who = identityOf(request);
    const credential = who?.tokenId ?? who?.name;
    let agentId: string | undefined;
    const conn: AgentConnection = {
      send: (message) => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
      },
      close: () => socket.close(),
    };
    const refuse = (message: string) => {
      conn.send({ type: 'ERROR', message });
      socket.close(1008, message.slice(0, 120));
    };
    socket.on('message', (data) => {
      let message: AgentToMaster;
      try {
        message = parseAgentMessage(parseJsonText(data.toString()));
      } catch (e) {
        refuse(`bad message: ${(e as Error).message}`);
        return;
      }
      try {
        if (agentId === undefined) {
          if (message.type !== 'REGISTER') {
            refuse('the first message of an agent stream must be REGISTER');
            return;
          }
          agentId = master.registerAgent(message, conn, credential);
        } else {
          master.agentMessage(agentId, message);
        }
      } catch (e) {
        // Never let a message take the master down: a bug surfaces as a refused stream, logged.
        if (!(e instanceof SlipwayError)) app.log.error(e);
        if (e instanceof AgentCredentialMismatch) log(`refused an agent stream from ${request.ip} (token ${who?.tokenId ?? 'none'} '${who?.name ?? ''}'): ${e.message}`);
        refuse(e instanceof SlipwayError ? e.message : 'internal error while handling the message');
      }
    });
    socket.on('close', () => {
      if (agentId !== undefined) master.agentDisconnected(agentId, conn);
    });
  });
}
