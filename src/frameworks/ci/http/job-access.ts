import type { FastifyRequest } from 'fastify';
import { Forbidden, identityOf } from '../../../auth/http-gate.ts';
import { decide, type Capability } from '../../../auth/policy.ts';

/**
 * What the caller may do on CI jobs, for the routes whose job is known only once the request is
 * read (a Jenkins queue item names a build, not a job) and for the lists, which hold only the
 * jobs the caller may read (as Jenkins's matrix authorization hides them).
 */

/** Whether the caller may `capability` on job `name` (a request without identity: the gate let it through). */
export function mayOnJob(req: FastifyRequest, capability: Capability, name: string): boolean {
  const who = identityOf(req);
  return who === undefined || decide(who.policies, capability, { kind: 'ci', name }).allowed;
}

/** 403 naming what is missing unless the caller may `capability` on job `name`. */
export function requireOnJob(req: FastifyRequest, capability: Capability, name: string): void {
  const who = identityOf(req);
  if (who === undefined) return;
  const d = decide(who.policies, capability, { kind: 'ci', name });
  if (!d.allowed) throw new Forbidden(`${who.name}: ${d.reason}`);
}
