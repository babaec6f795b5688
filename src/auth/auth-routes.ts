import type { FastifyInstance } from 'fastify';
import { SlipwayError } from '../core/errors.ts';
import type { AuditLog } from './audit-log.ts';
import { identityOf, Unauthenticated, type AuditEntry, type HttpGate, type RouteRule } from './http-gate.ts';
import { capabilitiesOn, RESOURCE_KINDS, type Capability, type Policy, type ResourceKind } from './policy.ts';
import { PolicyNotFound, type PolicyRegistry } from './policy-registry.ts';
import type { TokenRegistry } from './tokens.ts';

/**
 * `/auth/v1`: who the caller is, tokens, the audit log (docs/security.md).
 * - `GET /auth/v1/whoami`: the caller's name, token id, policies and capabilities by kind of
 *   resource (on every name of the kind: what the UI enables); any authenticated caller.
 * - `GET /auth/v1/tokens`, `GET /auth/v1/tokens/:id`: tokens without their secrets (read on tokens).
 * - `POST /auth/v1/tokens {"name", "policies": [...], "ttlSeconds"?}`: 201 with the token's text,
 *   shown this once (admin on tokens).
 * - `DELETE /auth/v1/tokens/:id`: revoked for good (admin on tokens).
 * - `GET /auth/v1/audit?limit=&before=`: the newest changes first (read on tokens `audit`).
 * - `POST /auth/v1/audit {"entries": [...]}`: 204; entries of a part that runs apart from the
 *   master (`slipway apps`, `slipway ci`), recorded with `via` = the caller's name (register on
 *   frameworks: the parts' tokens are framework tokens).
 * - `GET /auth/v1/policies[/:name]` (read on tokens), `PUT /auth/v1/policies/:name {"description",
 *   "rules": [...]}` (201 when new, 200 when replaced), `DELETE` (admin on tokens): the policies an
 *   operator writes; the built-in ones are listed, and cannot be changed.
 */
export const AUTH_ROUTE_RULES: readonly RouteRule[] = [
  { method: 'GET', url: '/auth/v1/whoami', access: () => [] },
  { method: 'GET', url: '/auth/v1/tokens', access: () => [{ capability: 'read', resource: { kind: 'tokens', name: '*' } }] },
  { method: 'GET', url: '/auth/v1/tokens/:id', access: () => [{ capability: 'read', resource: { kind: 'tokens', name: '*' } }] },
  { method: 'POST', url: '/auth/v1/tokens', access: () => [{ capability: 'admin', resource: { kind: 'tokens', name: '*' } }] },
  { method: 'DELETE', url: '/auth/v1/tokens/:id', access: () => [{ capability: 'admin', resource: { kind: 'tokens', name: '*' } }] },
  { method: 'GET', url: '/auth/v1/audit', access: () => [{ capability: 'read', resource: { kind: 'tokens', name: 'audit' } }] },
  // The parts apart from the master report their changes here with their framework token.
  { method: 'POST', url: '/auth/v1/audit', access: () => [{ capability: 'register', resource: { kind: 'frameworks', name: '*' } }] },
  { method: 'GET', url: '/auth/v1/policies', access: () => [{ capability: 'read', resource: { kind: 'tokens', name: '*' } }] },
  { method: 'GET', url: '/auth/v1/policies/:name', access: () => [{ capability: 'read', resource: { kind: 'tokens', name: '*' } }] },
  { method: 'PUT', url: '/auth/v1/policies/:name', access: () => [{ capability: 'admin', resource: { kind: 'tokens', name: '*' } }] },
  { method: 'DELETE', url: '/auth/v1/policies/:name', access: () => [{ capability: 'admin', resource: { kind: 'tokens', name: '*' } }] },
];

export class InvalidAuthRequest extends SlipwayError {
  readonly code = 'INVALID_AUTH_REQUEST';
  readonly status = 400;
}

export interface WhoAmI {
  name: string;
  tokenId: string | null;
  policies: string[];
  capabilities: Record<ResourceKind, Capability[]>;
  /** The policies' documents, for the parts that resolve tokens through the master. */
  policyDocs: Policy[];
}

/** The routes of /auth/v1 on `app` (whose gate must have AUTH_ROUTE_RULES). */
export function mountAuthRoutes(app: FastifyInstance, o: { gate: HttpGate; tokens: TokenRegistry; audit: AuditLog; policies: PolicyRegistry }): void {
  app.get('/auth/v1/whoami', (req): WhoAmI => {
    const who = identityOf(req);
    if (who === undefined) throw new Unauthenticated('authentication required');
    const capabilities = Object.fromEntries(RESOURCE_KINDS.map((kind) => [kind, capabilitiesOn(who.policies, { kind, name: '*' })])) as Record<ResourceKind, Capability[]>;
    return { name: who.name, tokenId: who.tokenId ?? null, policies: who.policies.map((p) => p.name), capabilities, policyDocs: [...who.policies] };
  });
  app.get('/auth/v1/tokens', () => ({ tokens: o.tokens.list() }));
  app.get('/auth/v1/tokens/:id', (req) => o.tokens.get((req.params as { id: string }).id));
  app.post('/auth/v1/tokens', async (req, reply) => {
    const body = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidAuthRequest('the body must be a JSON object: {"name": "...", "policies": ["viewer"], "ttlSeconds": 3600}');
    const { name, policies, ttlSeconds } = body as Record<string, unknown>;
    if (typeof name !== 'string') throw new InvalidAuthRequest('name must be a string');
    if (!Array.isArray(policies) || !policies.every((p): p is string => typeof p === 'string')) throw new InvalidAuthRequest('policies must be an array of policy names');
    if (ttlSeconds !== undefined && (typeof ttlSeconds !== 'number' || !Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0)) throw new InvalidAuthRequest('ttlSeconds must be a positive integer');
    const created = await o.tokens.create({ name, policies, ...(ttlSeconds !== undefined ? { ttlMs: ttlSeconds * 1000 } : {}) });
    return reply.code(201).send({ ...created.view, token: created.token });
  });
  app.delete('/auth/v1/tokens/:id', async (req) => o.tokens.revoke((req.params as { id: string }).id));
  app.get('/auth/v1/policies', () => ({ policies: o.policies.list() }));
  app.get('/auth/v1/policies/:name', (req) => {
    const { name } = req.params as { name: string };
    const p = o.policies.list().find((x) => x.name === name);
    if (p === undefined) throw new PolicyNotFound(`no policy '${name.slice(0, 80)}'`);
    return p;
  });
  app.put('/auth/v1/policies/:name', async (req, reply) => {
    const { policy, created } = await o.policies.put((req.params as { name: string }).name, req.body);
    return reply.code(created ? 201 : 200).send(policy);
  });
  app.delete('/auth/v1/policies/:name', async (req, reply) => {
    await o.policies.delete((req.params as { name: string }).name);
    return reply.code(204).send();
  });
  app.post('/auth/v1/audit', async (req, reply) => {
    const who = identityOf(req);
    if (who === undefined) throw new Unauthenticated('authentication required');
    for (const e of readAuditEntries(req.body)) o.audit.record({ ...e, via: who.name });
    return reply.code(204).send();
  });
  app.get('/auth/v1/audit', async (req) => {
    const q = req.query as Record<string, unknown>;
    const limit = q['limit'] === undefined ? 100 : Number(q['limit']);
    const before = q['before'] === undefined ? undefined : Number(q['before']);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new InvalidAuthRequest('limit must be an integer from 1 to 1000');
    if (before !== undefined && !Number.isSafeInteger(before)) throw new InvalidAuthRequest('before must be an integer (the seq of an entry)');
    const entries = await o.audit.list({ limit, ...(before !== undefined ? { before } : {}) });
    return { entries: entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })) };
  });
}

const MAX_REPORTED_ENTRIES = 1000;

/** The entries of a part's report, each field checked (400 naming the first that is wrong). */
function readAuditEntries(body: unknown): AuditEntry[] {
  const list = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>)['entries'] : undefined;
  if (!Array.isArray(list)) throw new InvalidAuthRequest('the body must be {"entries": [...]}');
  if (list.length > MAX_REPORTED_ENTRIES) throw new InvalidAuthRequest(`at most ${MAX_REPORTED_ENTRIES} entries per report, not ${list.length}`);
  return list.map((raw, i) => {
    const e = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
    const text = (field: string, max: number): string => {
      const v = e[field];
      if (typeof v !== 'string' || v.length > max) throw new InvalidAuthRequest(`entries[${i}].${field} must be a string of at most ${max} characters`);
      return v;
    };
    const at = e['at'];
    const status = e['status'];
    if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) throw new InvalidAuthRequest(`entries[${i}].at must be a time in ms`);
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) throw new InvalidAuthRequest(`entries[${i}].status must be an HTTP status`);
    const tokenId = e['tokenId'];
    if (tokenId !== undefined && (typeof tokenId !== 'string' || tokenId.length > 64)) throw new InvalidAuthRequest(`entries[${i}].tokenId must be a token id`);
    return { at, tokenId: tokenId as string | undefined, name: text('name', 200), method: text('method', 16), path: text('path', 2000), status, remote: text('remote', 100), requestId: text('requestId', 100) };
  });
}
