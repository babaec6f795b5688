import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import { httpErrorReply } from '../../core/http-error-reply.ts';
import { fastifyServerOptions, WEBSOCKET_MAX_PAYLOAD, type TlsFiles } from '../../lib/http-server-limits.ts';
import { guardJsonBodies } from '../../lib/json-depth.ts';
import type { AuditLog } from '../../auth/audit-log.ts';
import { AUTH_ROUTE_RULES, mountAuthRoutes } from '../../auth/auth-routes.ts';
import { mountSecretRoutes, SECRET_ROUTE_RULES } from '../../auth/secret-routes.ts';
import type { SecretRegistry } from '../../auth/secret-registry.ts';
import type { HttpGate } from '../../auth/http-gate.ts';
import type { TokenRegistry } from '../../auth/tokens.ts';
import type { PolicyRegistry } from '../../auth/policy-registry.ts';
import type { Master } from '../master.ts';
import { masterAccessRules } from './access-rules.ts';
import { agentRoutes } from './agent-routes.ts';
import { filesRoutes } from './files-routes.ts';
import { operatorRoutes } from './operator-routes.ts';
import { schedulerRoutes } from './scheduler-routes.ts';

/**
 * The master's HTTP server: scheduler API, operator API, agent streams and sandbox files. Errors
 * answer with the status their class declares and the message as plain text, as Mesos does
 * (httpErrorReply; the scheduler API through schedulerErrorReply, the same answer that the
 * in-process transport gives); a request Fastify itself refuses (malformed JSON, wrong content
 * type) keeps its 4xx status with Fastify's message. Nothing a client sends can make a 500.
 */
export interface MasterAuth {
  gate: HttpGate;
  tokens: TokenRegistry;
  audit: AuditLog;
  policies: PolicyRegistry;
  secrets: SecretRegistry;
}

/**
 * `auth` is the gate every route passes (src/auth/http-gate.ts): installed before any route, with
 * the master's rules and /auth/v1; APIs mounted later on the same app add their rules first.
 */
export async function buildMasterApp(master: Master, options: { version: string; logger?: boolean; auth: MasterAuth; log?: (line: string) => void; tls?: TlsFiles; /** The CA of agents' HTTPS files servers. */ agentCa?: Buffer }): Promise<FastifyInstance> {
  // forceCloseConnections: close() must not wait for idle keep-alive sockets a client left open
  // (an aborted fetch of an event stream leaves one; Fastify would wait out its 72 s timeout).
  const app = Fastify({ logger: options.logger ?? false, ...fastifyServerOptions(options.tls !== undefined ? { tls: options.tls } : {}) });
  guardJsonBodies(app);
  const { gate } = options.auth;
  gate.install(app);
  gate.addRules(masterAccessRules(master));
  gate.addRules(AUTH_ROUTE_RULES);
  gate.addRules(SECRET_ROUTE_RULES);
  await app.register(websocket, { options: { maxPayload: WEBSOCKET_MAX_PAYLOAD } });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { status, message, internal } = httpErrorReply(error);
    if (internal) request.log.error(error);
    return reply.code(status).type('text/plain').send(message);
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).type('text/plain').send(`no route ${request.method} ${request.url}`));
  schedulerRoutes(app, master);
  operatorRoutes(app, master, options.version);
  agentRoutes(app, master, options.log);
  filesRoutes(app, master, options.agentCa !== undefined ? { agentCa: options.agentCa } : {});
  mountAuthRoutes(app, options.auth);
  mountSecretRoutes(app, options.auth.secrets);
  return app;
}
