import type { Check, RouteRule } from '../../auth/http-gate.ts';
import type { Master } from '../master.ts';

/**
 * What each route of the master asks of its caller (src/auth/http-gate.ts; the table of
 * docs/security.md). The scheduler API checks here only that a SUBSCRIBE may register in its
 * roles; that the other calls act on the caller's own framework is checked by the route, which
 * knows the framework's principal.
 */
const STATE: Check = { capability: 'read', resource: { kind: 'cluster', name: 'state' } };

const OPERATOR_WRITES: Readonly<Record<string, Check>> = {
  UPDATE_WEIGHTS: { capability: 'admin', resource: { kind: 'cluster', name: 'weights' } },
  DEACTIVATE_AGENT: { capability: 'admin', resource: { kind: 'cluster', name: 'maintenance' } },
  REACTIVATE_AGENT: { capability: 'admin', resource: { kind: 'cluster', name: 'maintenance' } },
  DRAIN_AGENT: { capability: 'admin', resource: { kind: 'cluster', name: 'maintenance' } },
};

function field(body: unknown, ...path: string[]): unknown {
  let v = body;
  for (const p of path) v = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)[p] : undefined;
  return v;
}

export function masterAccessRules(master: Master): RouteRule[] {
  return [
    {
      method: 'POST',
      url: '/api/v1/scheduler',
      access: ({ body }) => {
        if (field(body, 'type') !== 'SUBSCRIBE') return [];
        const info = field(body, 'subscribe', 'framework_info');
        const roles = field(info, 'roles');
        const role = field(info, 'role');
        const names = Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [typeof role === 'string' ? role : '*'];
        return (names.length > 0 ? names : ['*']).map((name) => ({ capability: 'register' as const, resource: { kind: 'frameworks' as const, name } }));
      },
    },
    {
      method: 'POST',
      url: '/api/v1',
      access: ({ body }) => {
        const type = field(body, 'type');
        return [typeof type === 'string' && Object.hasOwn(OPERATOR_WRITES, type) ? OPERATOR_WRITES[type]! : STATE];
      },
    },
    { method: 'GET', url: '/master/state', access: () => [STATE] },
    { method: 'GET', url: '/metrics', access: () => [{ capability: 'read', resource: { kind: 'cluster', name: 'metrics' } }] },
    { method: 'GET', url: '/health', access: 'public' },
    ...['browse', 'read', 'download', 'follow'].map(
      (action): RouteRule => ({
        method: 'GET',
        url: `/files/${action}`,
        access: ({ query }) => {
          const id = typeof query['framework_id'] === 'string' ? query['framework_id'] : '';
          const roles = master.frameworkView(id)?.roles ?? ['*'];
          return [{ capability: 'files', resource: { kind: 'frameworks', name: roles[0] ?? '*' } }];
        },
      }),
    ),
    // The agents' stream: a join token (or any token that may register agents).
    { method: 'GET', url: '/api/v1/agent', access: () => [{ capability: 'register', resource: { kind: 'agents', name: '*' } }] },
  ];
}
