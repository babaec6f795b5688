import { requestUrl, responseText } from '../lib/http-request.ts';
import { builtInPolicy, type Policy } from './policy.ts';
import { readPolicy } from './policy-registry.ts';
import type { Identity } from './tokens.ts';

/**
 * Identities resolved by the master (`GET /auth/v1/whoami` with the caller's token), for the parts
 * that run apart from it (`slipway apps`, `slipway ci`, an agent's files server): the master holds
 * the tokens, the others ask it. Answers are cached for `ttlMs` (default 10 s): a revoked token is
 * refused everywhere within that time. A master that does not answer refuses the request (the
 * caller hears 401), never lets it through.
 */
export class RemoteIdentities {
  private readonly cache = new Map<string, { identity: Identity | undefined; until: number }>();

  constructor(
    private readonly masterUrl: string,
    /** `ca`: the certificates an HTTPS master's must chain to (an agent's `--ca`). */
    private readonly o: { ttlMs?: number; now?: () => number; ca?: Buffer } = {},
  ) {}

  async resolve(token: string): Promise<Identity | undefined> {
    const now = (this.o.now ?? Date.now)();
    const hit = this.cache.get(token);
    if (hit !== undefined && hit.until > now) return hit.identity;
    let identity: Identity | undefined;
    try {
      const r = await requestUrl(new URL('/auth/v1/whoami', this.masterUrl), { headers: { Authorization: `Bearer ${token}` }, timeoutMs: 5_000, ca: this.o.ca });
      const text = await responseText(r);
      if (r.statusCode === 200) {
        const who = JSON.parse(text) as { name: string; tokenId: string | null; policies: string[]; policyDocs?: unknown[] };
        // The master's documents of the policies (written ones too), read as a policy is read
        // from outside; a master that sends none (an older one) grants its built-in ones.
        const docs = Array.isArray(who.policyDocs) ? who.policyDocs.flatMap((d): Policy[] => readDoc(d)) : who.policies.flatMap((p): Policy[] => {
          const policy = builtInPolicy(p);
          return policy !== undefined ? [policy] : [];
        });
        identity = { tokenId: who.tokenId ?? undefined, name: who.name, policies: docs };
      } else if (r.statusCode !== 401) return undefined; // Not cached: the master may answer next time.
    } catch {
      return undefined;
    }
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(token, { identity, until: now + (this.o.ttlMs ?? 10_000) });
    return identity;
  }
}

/** A policy document of the master's answer: a built-in one by name, a written one read in full; one that does not read grants nothing. */
function readDoc(d: unknown): Policy[] {
  const name = typeof d === 'object' && d !== null ? (d as { name?: unknown }).name : undefined;
  if (typeof name !== 'string') return [];
  const builtIn = builtInPolicy(name);
  if (builtIn !== undefined) return [builtIn];
  try {
    return [readPolicy(name, { description: (d as { description?: unknown }).description, rules: (d as { rules?: unknown }).rules })];
  } catch {
    return [];
  }
}
