import type { FastifyInstance } from 'fastify';
import { identityOf, Unauthenticated, type RouteRule } from './http-gate.ts';
import { secretName } from '../core/secret-name.ts';
import { decide } from './policy.ts';
import { InvalidSecret, type SecretRegistry } from './secret-registry.ts';

/**
 * `/auth/v1/secrets`: the secret store, write-only (docs/security.md).
 * - `GET /auth/v1/secrets`: the secrets the caller may read (`read` on secrets), names and
 *   versions only; `GET /auth/v1/secrets/{name}`: one (`read`).
 * - `PUT /auth/v1/secrets/{name} {"value": "..."}`: 201 when new, 200 when replaced, answering the
 *   secret without its value (`configure`). No request answers a value back.
 * - `DELETE /auth/v1/secrets/{name}`: 204 (`delete`). Tasks already given it keep their copy.
 * Names may hold `/` (`team-a/db/password`): the rest of the path is the name.
 */
/** The name checked is the one the registry will use (core/secret-name.ts), or the raw text when it is not a name (the registry refuses it). */
const named = (capability: 'read' | 'configure' | 'delete'): RouteRule['access'] => (req) => {
  const raw = nameParam(req.params);
  const n = secretName(raw);
  return [{ capability, resource: { kind: 'secrets', name: 'name' in n ? n.name : raw } }];
};

/** The rest of the path, as given: the registry normalizes it (and refuses what is not a name). */
function nameParam(params: Record<string, string | undefined>): string {
  return params['*'] ?? '';
}

export const SECRET_ROUTE_RULES: readonly RouteRule[] = [
  { method: 'GET', url: '/auth/v1/secrets', access: () => [] },
  { method: 'GET', url: '/auth/v1/secrets/*', access: named('read') },
  { method: 'PUT', url: '/auth/v1/secrets/*', access: named('configure') },
  { method: 'DELETE', url: '/auth/v1/secrets/*', access: named('delete') },
];

export function mountSecretRoutes(app: FastifyInstance, secrets: SecretRegistry): void {
  app.get('/auth/v1/secrets', (req) => {
    const who = identityOf(req);
    if (who === undefined) throw new Unauthenticated('authentication required');
    return { secrets: secrets.list().filter((s) => decide(who.policies, 'read', { kind: 'secrets', name: s.name }).allowed) };
  });
  app.get('/auth/v1/secrets/*', (req) => secrets.get(nameParam(req.params as Record<string, string>)));
  app.put('/auth/v1/secrets/*', async (req, reply) => {
    const body = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body) || !Object.hasOwn(body, 'value')) {
      throw new InvalidSecret('the body must be a JSON object {"value": "..."}');
    }
    const extra = Object.keys(body).filter((k) => k !== 'value');
    if (extra.length > 0) throw new InvalidSecret(`unknown field ${extra.map((k) => `'${k.slice(0, 40)}'`).join(', ')}: the body is {"value": "..."}`);
    const { view, created } = await secrets.put(nameParam(req.params as Record<string, string>), (body as { value: unknown }).value, identityOf(req)?.name ?? 'anonymous');
    return reply.code(created ? 201 : 200).send(view);
  });
  app.delete('/auth/v1/secrets/*', async (req, reply) => {
    await secrets.delete(nameParam(req.params as Record<string, string>));
    return reply.code(204).send();
  });
}
