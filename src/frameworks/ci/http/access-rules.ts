import type { Check, GateRequest, RouteRule } from '../../../auth/http-gate.ts';
import type { Capability } from '../../../auth/policy.ts';
import { secretName } from '../../../core/secret-name.ts';

/**
 * What each route of CI's API and of its Jenkins API asks of its caller (src/auth/http-gate.ts;
 * docs/security.md). Resources are jobs by name; the lists (`GET /ci/v1/jobs`, `/ci/v1/queue`,
 * Jenkins's job list and queue) answer the jobs the caller may read; the executors need read on
 * every job (`*`). Four routes
 * prove their caller by their own means (`own`): an executor's stream, its artifact uploads and
 * its deploy tokens (the executor's token, bound to it), and webhooks (the job's webhook secret, a signature).
 */
const job = (capability: Capability, name: string | undefined): Check => ({ capability, resource: { kind: 'ci', name: name ?? '*' } });
const byName = (capability: Capability) => (req: GateRequest) => [job(capability, req.params['name'])];
const all = (capability: Capability) => () => [job(capability, '*')];

/**
 * PUT of a job: configure on it, `use` on each secret its `credentials` and the
 * `passwordSecret`s of its `artifactStores` and `registries` name (its builds get the values, so
 * whoever writes its pipeline can read them), and `deploy` on each delivery service its
 * `deploys` lists (`NAME/*`: its builds release and promote it). A PUT replaces the whole job, so the body's are all there is to check.
 */
function putJobChecks(req: GateRequest): Check[] {
  const checks = [job('configure', req.params['name'])];
  const body = req.body;
  const credentials = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>)['credentials'] : undefined;
  if (typeof credentials === 'object' && credentials !== null && !Array.isArray(credentials)) {
    // Every one, each name once (the job's validation refuses more than MAX_CREDENTIALS).
    const names = new Set<string>();
    for (const v of Object.values(credentials)) {
      if (typeof v !== 'string') continue; // Refused by the job's validation, with its field.
      const n = secretName(v);
      names.add('name' in n ? n.name : v);
    }
    for (const name of names) checks.push({ capability: 'use', resource: { kind: 'secrets', name } });
  }
  // The password secrets of its artifact stores and registries too: its builds upload and push with them.
  const fields = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const names = new Set<string>();
  for (const configured of [fields['artifactStores'], fields['registries']]) {
    if (typeof configured !== 'object' || configured === null || Array.isArray(configured)) continue;
    for (const entry of Object.values(configured)) {
      const v = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>)['passwordSecret'] : undefined;
      if (typeof v !== 'string') continue; // Refused by the job's validation, with its field.
      const n = secretName(v);
      names.add('name' in n ? n.name : v);
    }
  }
  for (const name of names) {
    if (!checks.some((c) => c.capability === 'use' && c.resource.name === name)) checks.push({ capability: 'use', resource: { kind: 'secrets', name } });
  }
  // The delivery services it deploys: its builds get a token to release and promote each.
  const deploys = fields['deploys'];
  if (Array.isArray(deploys)) {
    // The job's validation refuses more than MAX_DEPLOYS (with its field): no need to check more.
    for (const service of new Set(deploys.slice(0, 21))) {
      if (typeof service === 'string') checks.push({ capability: 'deploy', resource: { kind: 'delivery', name: `${service}/*` } });
    }
  }
  return checks;
}

export const CI_ACCESS_RULES: readonly RouteRule[] = [
  // Any caller: the list holds only the jobs it may read (ci-routes filters it).
  { method: 'GET', url: '/ci/v1/jobs', access: () => [] },
  { method: 'PUT', url: '/ci/v1/jobs/:name', access: putJobChecks },
  { method: 'GET', url: '/ci/v1/jobs/:name', access: byName('read') },
  { method: 'DELETE', url: '/ci/v1/jobs/:name', access: byName('delete') },
  { method: 'POST', url: '/ci/v1/jobs/:name/builds', access: byName('trigger') },
  { method: 'GET', url: '/ci/v1/jobs/:name/builds', access: byName('read') },
  { method: 'GET', url: '/ci/v1/jobs/:name/builds/:n', access: byName('read') },
  { method: 'POST', url: '/ci/v1/jobs/:name/builds/:n/cancel', access: byName('trigger') },
  { method: 'POST', url: '/ci/v1/jobs/:name/builds/:n/rebuild', access: byName('trigger') },
  { method: 'GET', url: '/ci/v1/jobs/:name/builds/:n/log', access: byName('read-logs') },
  { method: 'GET', url: '/ci/v1/jobs/:name/builds/:n/artifacts/*', access: byName('read') },
  { method: 'PUT', url: '/ci/v1/jobs/:name/builds/:n/artifacts/*', access: 'own' },
  { method: 'POST', url: '/ci/v1/jobs/:name/builds/:n/deploy-token', access: 'own' },
  { method: 'POST', url: '/ci/v1/hooks/:job', access: 'own' },
  { method: 'GET', url: '/ci/v1/jobs/:name/triggers', access: byName('read') },
  { method: 'PUT', url: '/ci/v1/executors/:label', access: () => [job('configure', 'executors')] },
  { method: 'GET', url: '/ci/v1/executors', access: all('read') },
  // Any caller: the queue holds only the builds of jobs it may read.
  { method: 'GET', url: '/ci/v1/queue', access: () => [] },
  { method: 'GET', url: '/ci/v1/executor-stream', access: 'own' },
  // Jenkins's remote API.
  // Any caller: the job lists and the queue hold only the jobs it may read; a queue item is
  // checked on its job once it is found (job-access.ts).
  { method: 'GET', url: '/jenkins/api/json', access: () => [] },
  { method: 'GET', url: '/jenkins/', access: () => [] },
  { method: 'GET', url: '/jenkins', access: () => [] },
  { method: 'GET', url: '/jenkins/crumbIssuer/api/json', access: () => [] },
  { method: 'GET', url: '/jenkins/queue/api/json', access: () => [] },
  { method: 'GET', url: '/jenkins/queue/item/:id/api/json', access: () => [] },
  { method: 'POST', url: '/jenkins/queue/item/:id/cancelQueue', access: () => [] },
  { method: 'GET', url: '/jenkins/job/:name/api/json', access: byName('read') },
  { method: 'POST', url: '/jenkins/job/:name/build', access: byName('trigger') },
  { method: 'POST', url: '/jenkins/job/:name/buildWithParameters', access: byName('trigger') },
  { method: 'GET', url: '/jenkins/job/:name/:n/api/json', access: byName('read') },
  { method: 'GET', url: '/jenkins/job/:name/:n/buildNumber', access: byName('read') },
  { method: 'POST', url: '/jenkins/job/:name/:n/stop', access: byName('trigger') },
  { method: 'POST', url: '/jenkins/job/:name/:n/term', access: byName('trigger') },
  { method: 'POST', url: '/jenkins/job/:name/:n/kill', access: byName('trigger') },
  { method: ['GET', 'POST'], url: '/jenkins/job/:name/:n/logText/progressiveText', access: byName('read-logs') },
  { method: 'GET', url: '/jenkins/job/:name/:n/consoleText', access: byName('read-logs') },
  { method: 'GET', url: '/jenkins/job/:name/:n/artifact/*', access: byName('read') },
];
